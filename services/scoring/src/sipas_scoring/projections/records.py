"""Accepted ballots as a rebuild's reader prepares them for the tallies projection's runs.

Apart from :mod:`sipas_scoring.projections.tallies` so that a reader process (:mod:`sipas_events.rebuild_reader`)
imports only what preparing needs — the ballots' events and the codebook — in a fraction of a second, not
the service (SQLAlchemy, FastAPI: two seconds a rebuild would wait).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from pydantic_core import to_json

from sipas_events.catalogue.ballots import BallotAccepted
from sipas_events.envelope import Envelope
from sipas_scoring.domain.codes import Codebook


class AcceptedRecord(NamedTuple):
    """A ``BallotAccepted`` as a rebuild's reader prepares it for the tallies' ``rebuild_run``: plain data, so
    that it crosses from a reader process in microseconds — the event's fields a run reads, the answers and
    expectations as the JSON texts the COPY writes, and the answer codes with the digest of the codebook that
    made them (None: no codebook was known, or the answers have no codes)."""

    ballot_id: str
    campaign_id: str
    unit_id: str | None
    agency_id: str | None
    province: str | None
    stratum: str | None
    weight_ref: str | None
    channel: str | None
    texts: tuple[str, str]
    codes: bytes | None
    book: bytes | None

    def answers(self) -> tuple[dict[str, int | None], list[str]]:
        """The answers and (sorted) expectations, read back from their texts."""
        return json.loads(self.texts[0]), json.loads(self.texts[1])


def prepare(event: Any, env: Envelope, books: dict[str, Codebook] | None) -> AcceptedRecord | None:
    """What a run would do with each accepted ballot alone, done by a rebuild's reader ahead of the run (in a
    process of its own on a long stream), with the codebooks the rebuild found at its start: None for any
    other event, which the run gets as it is."""
    if type(event) is not BallotAccepted:
        return None
    expectations = sorted(event.expectations)
    book = (books or {}).get(event.campaign_id)
    codes = None if book is None else book.encode(event.answers, event.expectations)
    return AcceptedRecord(event.ballot_id, event.campaign_id, event.unit_id, event.agency_id, event.province,
                          event.stratum, event.weight_ref, event.channel,
                          (to_json(event.answers).decode(), to_json(expectations).decode()), codes,
                          None if codes is None or book is None else book.digest)
