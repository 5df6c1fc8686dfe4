"""Versioning: a new version beside the old, an upcaster between them, readers see the latest."""

import datetime as dt

import pytest

from sipas_events.catalogue.base import Catalogue, Event, UnknownEventType
from sipas_events.envelope import Envelope
from sipas_events.ids import new_id


def make_catalogue() -> Catalogue:
    cat = Catalogue()

    @cat.register("ballots", 1)
    class Rated(Event):
        """v1: a score out of 5."""
        score: int

    @cat.register("ballots", 2)
    class Rated(Event):  # noqa: F811 - the same event, a new version
        """v2: a score on a named scale."""
        score: int
        scale: str

    @cat.upcaster("ballots", "Rated", from_version=1)
    def v1_to_v2(data):
        return data | {"scale": "1-5"}

    return cat


def _env(type_, data):
    return Envelope(id=new_id(), source="/sipas/ballots", type=type_, subject="s", time=dt.datetime.now(dt.UTC),
                    data=data, sequence=1, correlationid="c", actor="a")


def test_old_versions_are_upcast_to_the_latest():
    cat = make_catalogue()
    ev = cat.decode(_env("vn.gov.sipas.ballots.Rated.v1", {"score": 4}))
    assert ev.event_version == 2 and ev.score == 4 and ev.scale == "1-5"
    ev2 = cat.decode(_env("vn.gov.sipas.ballots.Rated.v2", {"score": 3, "scale": "1-3"}))
    assert ev2.scale == "1-3"
    assert cat.check() == []


def test_missing_upcaster_is_reported():
    cat = Catalogue()

    @cat.register("ballots", 1)
    class Thing(Event):
        a: int

    @cat.register("ballots", 2)
    class Thing(Event):  # noqa: F811
        a: int
        b: int

    assert cat.check() == ["vn.gov.sipas.ballots.Thing.v1: no upcaster to version 2"]
    with pytest.raises(UnknownEventType):
        cat.decode(_env("vn.gov.sipas.ballots.Thing.v1", {"a": 1}))


def test_unknown_type_and_double_registration():
    cat = make_catalogue()
    with pytest.raises(UnknownEventType):
        cat.model("vn.gov.sipas.ballots.Nope.v1")
    with pytest.raises(ValueError):
        @cat.register("ballots", 1)
        class Rated(Event):
            score: int


def test_a_type_decoded_as_the_latest_is_upcast_once_a_newer_version_is_registered():
    """Decoding remembers which types are their event's latest version; registering a newer one forgets it."""
    cat = Catalogue()

    @cat.register("ballots", 1)
    class Scored(Event):
        score: int

    first = cat.decode(_env("vn.gov.sipas.ballots.Scored.v1", {"score": 4}))
    assert first.event_version == 1 and cat.decode(_env("vn.gov.sipas.ballots.Scored.v1", {"score": 2})).score == 2

    @cat.register("ballots", 2)
    class Scored(Event):  # noqa: F811 - the same event, a new version
        score: int
        out_of: int

    @cat.upcaster("ballots", "Scored", from_version=1)
    def v1_to_v2(data):
        return data | {"out_of": 5}

    again = cat.decode(_env("vn.gov.sipas.ballots.Scored.v1", {"score": 4}))
    assert again.event_version == 2 and again.out_of == 5
