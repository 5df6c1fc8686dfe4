"""Rankings with rank intervals: the best and worst rank the confidence intervals allow.

For unit i among the n ranked units (higher is better by default):
    best  = 1 + #{j : lower_j > upper_i}          (units clearly above i)
    worst = n - #{j : upper_j < lower_i}          (all but the units clearly below i)
    rank  = 1 + #{j : estimate_j > estimate_i}    (ties share the better rank: 1, 2, 2, 4)
so two units whose intervals overlap can each take the other's place. Suppressed units are not
ranked and do not count in n. Since every estimate lies in its interval, best ≤ rank ≤ worst.
Each count is a binary search in the sorted estimates, lower or upper bounds (a national campaign
ranks a thousand agencies on every refresh: n log n, not n² comparisons).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RankInput:
    """A unit's figure and interval on one scale; floats, like the intervals they come with."""

    key: str
    estimate: float
    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not self.lower <= self.estimate <= self.upper:
            raise ValueError(f"{self.key}: the estimate must lie within its interval")


@dataclass(frozen=True)
class Ranked:
    key: str
    rank: int
    best: int
    worst: int
    of: int


def rank_with_intervals(
    units: Sequence[RankInput], suppressed: Collection[str] = (), higher_is_better: bool = True
) -> list[Ranked]:
    """Ranked units, best first (ties by key)."""
    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        raise ValueError("unit keys must be unique")
    ranked = [u if higher_is_better else _mirrored(u) for u in units if u.key not in suppressed]
    n = len(ranked)
    estimates = sorted(u.estimate for u in ranked)
    lowers = sorted(u.lower for u in ranked)
    uppers = sorted(u.upper for u in ranked)
    result = [
        Ranked(
            key=u.key,
            rank=1 + n - bisect_right(estimates, u.estimate),  # 1 + #{estimate_j > estimate_i}
            best=1 + n - bisect_right(lowers, u.upper),  # 1 + #{lower_j > upper_i}
            worst=n - bisect_left(uppers, u.lower),  # n - #{upper_j < lower_i}
            of=n,
        )
        for u in ranked
    ]
    return sorted(result, key=lambda r: (r.rank, r.key))


def _mirrored(unit: RankInput) -> RankInput:
    """Lower is better: rank the negated figures."""
    return RankInput(unit.key, -unit.estimate, -unit.upper, -unit.lower)
