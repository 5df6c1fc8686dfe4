"""What a rebuild's reader process sends for each message, and how the consumer reads it back."""

import datetime as dt
import pickle

import pytest

from sipas_events import frames
from sipas_events.catalogue import CATALOGUE
from sipas_events.envelope import Envelope, Stamp
from sipas_events.ids import new_id
from sipas_events.rebuild_reader import element, ref_of, stamped
from sipas_events.testing import agency, prepare_registered

HANDLED = {"AgencyRegistered"}


def envelope(position: int | None = 7, **changes: object) -> Envelope:
    event = agency(3)
    fields = {"id": new_id(), "source": "/sipas/registry", "type": event.event_type(), "subject": "agency-a3",
              "time": dt.datetime(2026, 11, 30, 9, 15, 30, 123456, tzinfo=dt.UTC), "data": event.payload(),
              "sequence": 1, "position": position, "correlationid": "req-1", "actor": "tester"}
    return Envelope(**(fields | changes))


def test_a_prepared_event_crosses_as_a_stamp_and_plain_data_and_comes_back_equal():
    env = envelope()
    data = env.to_json()
    sent = element(data, HANDLED, prepare_registered, {"k": 1}, CATALOGUE.decode)
    assert isinstance(sent, tuple)
    head, event, prepared, raw = stamped(pickle.loads(pickle.dumps(sent)))  # as it crosses the pipe
    assert head == Stamp.of(env) and head.time == env.time and head.id == env.id
    assert event is None and raw == data
    assert prepared == ("prepared", "a3", "Đơn vị 3", 7, {"k": 1})
    assert Envelope.model_validate_json(raw) == env  # the whole envelope, for a dead letter or a handler


def test_what_the_child_cannot_or_need_not_prepare_crosses_as_its_bytes():
    def refuses(event, env, context):
        raise ValueError("no")

    def declines(event, env, context):
        return None

    good = envelope().to_json()
    for data, handled, prepare in [
        (b"{not json", HANDLED, prepare_registered),                        # the consumer raises, as always
        (envelope(position=None).to_json(), HANDLED, prepare_registered),   # no position
        (good, {"SomethingElse"}, prepare_registered),                      # no handler: skipped by the runs
        (good, HANDLED, refuses),                                           # the run meets it again
        (good, HANDLED, declines),                                          # the run gets the event as it is
        (envelope(data={"agency_id": "a3"}).to_json(), HANDLED, prepare_registered),  # not a valid event
    ]:
        assert element(data, handled, prepare, None, CATALOGUE.decode) == data


def test_only_a_module_level_function_can_be_named_to_the_child():
    assert ref_of(prepare_registered) == "sipas_events.testing:prepare_registered"

    def local(event, env, context):
        return None

    with pytest.raises(ValueError, match="module-level"):
        ref_of(local)


def test_frames_round_trip_and_a_cut_pipe_reads_as_closed():
    import io

    out = io.BytesIO()
    frames.write(out, ("batch", [b"x", (1, "two")]))
    frames.write(out, ("end", None))
    whole = out.getvalue()
    source = io.BytesIO(whole)
    assert frames.read(source) == (True, ("batch", [b"x", (1, "two")]))
    assert frames.read(source) == (True, ("end", None))
    assert frames.read(source) == (False, None)
    assert frames.read(io.BytesIO(whole[:5])) == (False, None)
