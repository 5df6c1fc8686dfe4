"""The relay's fast path for adding ``position`` to a stored body gives the canonical bytes."""

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sipas_events import canonical
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id
from sipas_events.store import StoredEvent, with_position

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
# Strings that look like the keys the splice searches for, to try to fool it.
tricky = st.sampled_from(['","province":"01', ',"province":', '"province"', "province", "Đơn vị", '\\",\\"'])


def reference(body: str, position: int) -> bytes:
    """What the relay did before: parse, add the key, serialise canonically."""
    doc = json.loads(body)
    doc["position"] = position
    return canonical.dumpb(doc)


@settings(max_examples=300)
@given(
    data=st.dictionaries(st.text() | tricky, json_values | tricky, max_size=6),
    subject=(st.text(min_size=1, max_size=50) | tricky).filter(lambda s: 0 < len(s) <= 200),
    province=st.none() | st.sampled_from(["01", "79"]),
    causation=st.none() | tricky,
    position=st.integers(min_value=1, max_value=2**62),
)
def test_with_position_matches_parse_and_reserialise(data, subject, province, causation, position):
    env = Envelope(
        id=new_id(), source="/sipas/registry", type="vn.gov.sipas.registry.AgencyRegistered.v1",
        subject=subject, time=dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), data={**data, "province": "02"},
        sequence=1, correlationid="c,\"province\":", causationid=causation, actor="tester", province=province,
    )
    body = canonical.dumps(env.body())
    assert with_position(body, position) == reference(body, position)
    stored = StoredEvent(position, env.id, env.type, province, body)
    assert stored.envelope() == env.model_copy(update={"position": position})


def test_a_body_without_the_expected_key_falls_back_to_parsing():
    body = canonical.dumps({"id": "x", "type": "t"})
    assert with_position(body, 5) == reference(body, 5)
