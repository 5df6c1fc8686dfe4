"""The ``online-766`` scheme (Decision 766/QĐ-TTg): per-dossier online ratings.

Every figure has one form: (all cases - cases with a bad mark) ÷ all cases * 100. A case with no
rating is not a bad mark, so it counts as satisfied and the denominator is every case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

HUNDRED = 100


@dataclass(frozen=True)
class Dossier:
    rated_unsatisfied: bool = False
    complained: bool = False
    overdue: bool = False

    @property
    def bad(self) -> bool:
        return self.rated_unsatisfied or self.complained or self.overdue


@dataclass(frozen=True)
class Complaint:
    handled_late: bool = False
    handling_rated_unsatisfied: bool = False


@dataclass(frozen=True)
class Online766Scores:
    dossiers: int
    dossier_satisfaction: Fraction | None
    complaints: int
    complaints_on_time: Fraction | None
    complaint_handling_satisfaction: Fraction | None


def share_without_mark(total: int, marked: int) -> Fraction | None:
    """(total - marked) ÷ total * 100; ``None`` when there is nothing to rate."""
    if not 0 <= marked <= total:
        raise ValueError("marked cases must be between 0 and the total")
    return Fraction((total - marked) * HUNDRED, total) if total else None


def dossier_satisfaction(dossiers: Sequence[Dossier]) -> Fraction | None:
    """Dossiers not rated unsatisfied, not complained about and not overdue, per 100 dossiers."""
    return share_without_mark(len(dossiers), sum(d.bad for d in dossiers))


def complaints_on_time(complaints: Sequence[Complaint]) -> Fraction | None:
    return share_without_mark(len(complaints), sum(c.handled_late for c in complaints))


def complaint_handling_satisfaction(complaints: Sequence[Complaint]) -> Fraction | None:
    return share_without_mark(len(complaints), sum(c.handling_rated_unsatisfied for c in complaints))


def score_online_766(dossiers: Sequence[Dossier], complaints: Sequence[Complaint]) -> Online766Scores:
    return Online766Scores(
        dossiers=len(dossiers),
        dossier_satisfaction=dossier_satisfaction(dossiers),
        complaints=len(complaints),
        complaints_on_time=complaints_on_time(complaints),
        complaint_handling_satisfaction=complaint_handling_satisfaction(complaints),
    )
