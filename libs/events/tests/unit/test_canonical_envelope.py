import datetime as dt
import decimal
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sipas_events import canonical
from sipas_events.catalogue import CATALOGUE
from sipas_events.catalogue.registry import AgencyRegistered
from sipas_events.envelope import Envelope, parse_type
from sipas_events.ids import is_uuid7, new_id

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_canonical_is_stable_under_reparse(value):
    once = canonical.dumps(value)
    assert canonical.dumps(json.loads(once)) == once


@given(st.dictionaries(st.text(), st.integers(), min_size=2))
def test_canonical_ignores_key_order(d):
    reversed_d = dict(reversed(list(d.items())))
    assert canonical.dumps(d) == canonical.dumps(reversed_d)


def test_canonical_types():
    t = dt.datetime(2025, 7, 1, 7, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    out = canonical.dumps({"b": decimal.Decimal("88.55"), "a": t, "c": uuid.UUID(int=1), "d": "Hà Nội"})
    assert out == ('{"a":"2025-07-01T00:00:00.000000Z","b":"88.55",'
                   '"c":"00000000-0000-0000-0000-000000000001","d":"Hà Nội"}')
    with pytest.raises(ValueError):
        canonical.dumps({"t": dt.datetime(2025, 1, 1)})
    with pytest.raises(ValueError):
        canonical.dumps({"x": float("nan")})


def test_ids_are_uuid7_and_time_ordered():
    ids = [new_id() for _ in range(200)]
    assert all(is_uuid7(i) for i in ids)
    assert len(set(ids)) == 200
    assert [i.bytes[:6] for i in ids] == sorted(i.bytes[:6] for i in ids)


def _envelope(**over):
    base = dict(
        id=new_id(), source="/sipas/registry", type="vn.gov.sipas.registry.AgencyRegistered.v1",
        subject="agency-1", time=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), data={"x": 1}, sequence=1,
        correlationid="c-1", actor="u-1", province="01",
    )
    return Envelope(**(base | over))


def test_envelope_round_trips_canonically():
    env = _envelope(position=7)
    raw = env.to_json()
    again = Envelope.from_json(raw)
    assert again == env
    assert again.to_json() == raw
    doc = json.loads(raw)
    assert doc["specversion"] == "1.0" and doc["position"] == 7 and doc["time"].endswith("Z")
    assert env.service == "registry" and env.event_name == "AgencyRegistered" and env.event_version == 1


@pytest.mark.parametrize("field,value", [
    ("type", "vn.gov.sipas.registry.agencyRegistered.v1"),
    ("source", "registry"),
    ("sequence", 0),
    ("province", "1"),
    ("time", dt.datetime(2026, 1, 1)),
])
def test_envelope_rejects_malformed(field, value):
    with pytest.raises(ValidationError):
        _envelope(**{field: value})


def test_envelope_forbids_unknown_attributes():
    with pytest.raises(ValidationError):
        _envelope(colour="red")


def test_parse_type():
    assert parse_type("vn.gov.sipas.ballots.BallotAccepted.v12") == ("ballots", "BallotAccepted", 12)
    with pytest.raises(ValueError):
        parse_type("com.example.x.v1")


def test_event_normalises_vietnamese_to_nfc():
    decomposed = "Ha\u0300 No\u0323\u0302i"  # "Hà Nội" in NFD
    ev = AgencyRegistered(agency_id="a", code="01", name=decomposed, level="province", province="01",
                          valid_from=dt.date(2008, 8, 1))
    assert ev.name == "Hà Nội"
    assert ev.event_type() == "vn.gov.sipas.registry.AgencyRegistered.v1"
    assert ev.partition() == "01"


def test_events_are_frozen_and_strict():
    ev = AgencyRegistered(agency_id="a", code="01", name="Hà Nội", level="province", province="01",
                          valid_from=dt.date(2008, 8, 1))
    with pytest.raises(ValidationError):
        ev.name = "x"
    with pytest.raises(ValidationError):
        AgencyRegistered(agency_id="a", code="01", name="x", level="planet", valid_from=dt.date(2008, 8, 1))
    with pytest.raises(ValidationError):
        AgencyRegistered(agency_id="a", code="01", name="x", level="province", valid_from=dt.date(2008, 8, 1),
                         extra_field=1)


def test_catalogue_is_consistent():
    assert CATALOGUE.check() == []
    names = {s.type for s in CATALOGUE.specs()}
    for expected in ("registry.AgencyRegistered", "registry.AgencyMerged", "registry.CampaignOpened",
                     "registry.InstrumentPublished", "sampling.FrameImported", "sampling.SampleDrawn",
                     "sampling.UnitReplaced", "ballots.BallotIssued", "ballots.BallotAccepted",
                     "ballots.BallotRejected", "ballots.BallotVoided", "ballots.BackcheckRecorded",
                     "scoring.ScoresUpdated", "scoring.ScoreSnapshotTaken", "publishing.ReleaseApproved",
                     "publishing.ReleasePublished", "publishing.ReleaseRetracted"):
        assert f"vn.gov.sipas.{expected}.v1" in names
