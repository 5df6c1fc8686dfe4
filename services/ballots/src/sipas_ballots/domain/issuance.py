"""Issuance: one live ballot per sampled unit, and the life of its code.

    issued ──use──▶ used
       └──cancel / reissue──▶ cancelled

``used`` and ``cancelled`` are final. A reissue (lost or spoiled ballot) cancels the unit's code with a
reason and issues a new code for the same unit, as one decision, so the unit is never without a ballot
or with two. The aggregate is the unit (``UnitBallots``): ``decide_*(unit, …)`` returns facts (past
tense) or raises, and ``evolve(unit, fact)`` applies one. The facts carry the code; the catalogue
events the application publishes from them (``BallotIssued``…) never do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

from sipas_ballots.domain.codes import parse_code
from sipas_ballots.domain.errors import (
    AlreadyCancelled,
    AlreadyIssued,
    AlreadyUsed,
    InvalidParameter,
    UnknownBallot,
)


class Status(StrEnum):
    ISSUED = "issued"
    USED = "used"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Ballot:
    ballot_id: str
    campaign_id: str
    unit_id: str
    code: str
    status: Status = Status.ISSUED
    cancel_reason: str | None = None


@dataclass(frozen=True)
class CodeIssued:
    ballot_id: str
    campaign_id: str
    unit_id: str
    code: str


@dataclass(frozen=True)
class CodeUsed:
    ballot_id: str
    code: str
    submission_id: str


@dataclass(frozen=True)
class CodeCancelled:
    ballot_id: str
    code: str
    reason: str


Fact = CodeIssued | CodeUsed | CodeCancelled


@dataclass(frozen=True)
class UnitBallots:
    """The aggregate: every ballot issued to one sampled unit in one campaign, in issue order; the last
    is the unit's current ballot. Codes are unique across campaigns by the store's unique index (a new
    random code collides with probability ~n ÷ 2⁵⁰); here only the unit's own codes are compared."""

    campaign_id: str
    unit_id: str
    ballots: tuple[Ballot, ...] = ()

    @property
    def current(self) -> Ballot | None:
        return self.ballots[-1] if self.ballots else None

    def find(self, code: str) -> Ballot:
        ballot = next((b for b in self.ballots if b.code == code), None)
        if ballot is None:
            raise UnknownBallot(f"unit {self.unit_id} holds no ballot with this code", field="code")
        return ballot


def _live(ballot: Ballot) -> Ballot:
    if ballot.status is Status.CANCELLED:
        raise AlreadyCancelled(f"ballot {ballot.ballot_id} was cancelled ({ballot.cancel_reason})", field="code")
    if ballot.status is Status.USED:
        raise AlreadyUsed(f"ballot {ballot.ballot_id} has already been used", field="code")
    return ballot


def _reason(reason: str) -> str:
    if not reason.strip():
        raise InvalidParameter("cancelling a ballot needs a reason", field="reason")
    return reason.strip()


def _fresh(unit: UnitBallots, ballot_id: str, code: str) -> str:
    code = parse_code(code)
    if any(b.code == code for b in unit.ballots):
        raise AlreadyIssued("this code was already issued to the unit; draw another", field="code")
    if any(b.ballot_id == ballot_id for b in unit.ballots):
        raise AlreadyIssued(f"ballot id {ballot_id} is already taken", field="ballot_id")
    return code


def decide_issue(unit: UnitBallots, *, ballot_id: str, code: str) -> CodeIssued:
    """Issue the unit's first ballot (or a new one after its code was cancelled outright)."""
    current = unit.current
    if current is not None and current.status is not Status.CANCELLED:
        raise AlreadyIssued(f"unit {unit.unit_id} already holds ballot {current.ballot_id} ({current.status}); "
                            "reissue it instead", field="unit_id")
    return CodeIssued(ballot_id, unit.campaign_id, unit.unit_id, _fresh(unit, ballot_id, code))


def decide_use(unit: UnitBallots, code: str, submission_id: str) -> CodeUsed:
    """Mark the code used by an accepted submission (``AlreadyUsed`` on a second one: a duplicate)."""
    ballot = _live(unit.find(code))
    return CodeUsed(ballot.ballot_id, ballot.code, submission_id)


def decide_cancel(unit: UnitBallots, code: str, reason: str) -> CodeCancelled:
    ballot = _live(unit.find(code))
    return CodeCancelled(ballot.ballot_id, ballot.code, _reason(reason))


def decide_reissue(unit: UnitBallots, code: str, reason: str, *, new_ballot_id: str,
                   new_code: str) -> tuple[CodeCancelled, CodeIssued]:
    """Cancel the unit's live code and issue it a new ballot, in one decision."""
    cancelled = decide_cancel(unit, code, reason)
    issued = CodeIssued(new_ballot_id, unit.campaign_id, unit.unit_id, _fresh(unit, new_ballot_id, new_code))
    return cancelled, issued


def _apply(ballot: Ballot, fact: CodeUsed | CodeCancelled) -> Ballot:
    if isinstance(fact, CodeUsed):
        return replace(ballot, status=Status.USED)
    return replace(ballot, status=Status.CANCELLED, cancel_reason=fact.reason)


def evolve(unit: UnitBallots, fact: Fact) -> UnitBallots:
    if isinstance(fact, CodeIssued):
        ballot = Ballot(fact.ballot_id, fact.campaign_id, fact.unit_id, fact.code)
        return replace(unit, ballots=(*unit.ballots, ballot))
    return replace(unit, ballots=tuple(_apply(b, fact) if b.code == fact.code else b for b in unit.ballots))


def evolve_all(unit: UnitBallots, facts: Iterable[Fact]) -> UnitBallots:
    for fact in facts:
        unit = evolve(unit, fact)
    return unit
