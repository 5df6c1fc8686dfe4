"""Quality flags (METHODOLOGY §2): suspicious but valid patterns, flagged for review, never rejected.

- ``straight_lining``: every answered criterion has the same value, with at least ``min_answered``
  (default 10) answered — fewer answers make a uniform pattern unremarkable.
- ``speeder``: keyed or filled in under half the median entry time of its channel and campaign (the
  caller computes the median over the comparable ballots, e.g. with ``median_seconds``).
- ``near_identical``: the ballot's answer vector differs in at most ``max_differences`` items
  (default 1) from another ballot of the same enumerator.

Near-identical search is exact and needs no pairwise scan: two vectors of ``m`` items that differ in at
most ``k`` positions agree on all positions outside some set of ``k`` positions, so they share a bucket
keyed by (those positions, the values elsewhere). Each distinct vector goes into ``C(m, k)`` buckets
(22 for k = 1, 231 for k = 2 on 22 items) and every pair in a bucket is a true match, so the work is
(ballots · buckets) hashing plus the matches themselves. Identical ballots are grouped first, so a
thousand all-"5" ballots cost one vector, not half a million pairs.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from typing import Literal

from sipas_ballots.domain.errors import InvalidParameter

FlagKind = Literal["straight_lining", "speeder", "near_identical"]
DEFAULT_MIN_ANSWERED = 10
DEFAULT_MAX_DIFFERENCES = 1
MAX_MAX_DIFFERENCES = 3
SHOWN = 5

Vector = tuple[object, ...]


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    reason: str


def straight_lining(answers: Mapping[str, int | None], criteria: Collection[str] | None = None,
                    min_answered: int = DEFAULT_MIN_ANSWERED) -> Flag | None:
    """A flag if every answered criterion (every answered item when ``criteria`` is None) has one value
    and at least ``min_answered`` are answered."""
    values = [v for k, v in answers.items() if v is not None and (criteria is None or k in criteria)]
    if len(values) < min_answered or len(set(values)) != 1:
        return None
    return Flag("straight_lining", f"all {len(values)} answered criteria are {values[0]}")


def median_seconds(entry_seconds: Iterable[float | None]) -> float | None:
    """Median of the known entry times; ``None`` when none is known."""
    known = [s for s in entry_seconds if s is not None]
    return statistics.median(known) if known else None


def speeder(entry_seconds: float | None, median: float | None) -> Flag | None:
    """A flag if the entry took less than half the median (compared exactly); unknown or non-finite times
    never flag."""
    if entry_seconds is None or median is None or not (math.isfinite(entry_seconds) and math.isfinite(median)):
        return None
    if median <= 0:
        return None
    if Fraction(entry_seconds) * 2 < Fraction(median):
        return Flag("speeder", f"entered in {entry_seconds:g} s, under half the median of {median:g} s")
    return None


def alone_flags(answers: Mapping[str, int | None], entry_seconds: float | None, median: float | None) -> list[Flag]:
    """The flags one ballot earns on its own: straight-lining, and speeding against its channel's median."""
    return [f for f in (straight_lining(answers), speeder(entry_seconds, median)) if f is not None]


@dataclass(frozen=True)
class Scanned:
    """An open ballot as the quality scan reads it."""

    ballot_id: str
    channel: str
    entry_seconds: float | None
    entered_by: str | None
    answers: Mapping[str, int | None]


def scan_flags(ballots: Sequence[Scanned]) -> dict[tuple[str, str], str]:
    """Every flag the campaign's open ``ballots`` earn, all checked at once: (ballot id, kind) → reason.
    The reference for the scan, which streams the ballots enumerator by enumerator."""
    medians = {ch: median_seconds(b.entry_seconds for b in ballots if b.channel == ch)
               for ch in {b.channel for b in ballots}}
    out: dict[tuple[str, str], str] = {(b.ballot_id, f.kind): f.reason for b in ballots
                                       for f in alone_flags(b.answers, b.entry_seconds, medians[b.channel])}
    items = sorted({k for b in ballots for k in b.answers})
    keyed = [KeyedAnswers(b.ballot_id, b.entered_by, b.answers) for b in ballots if b.entered_by]
    out |= {(ballot_id, f.kind): f.reason for ballot_id, f in near_identical(keyed, items).items()}
    return out


@dataclass(frozen=True)
class KeyedAnswers:
    ballot_id: str
    enumerator_id: str
    answers: Mapping[str, int | None]


@dataclass(frozen=True)
class SimilarPair:
    first: str
    second: str
    enumerator_id: str
    differences: int


def _groups(ballots: Sequence[KeyedAnswers], items: Sequence[str]) -> dict[str, dict[Vector, list[str]]]:
    """Per enumerator, the ballot ids sharing each answer vector (a blank is a value like any other)."""
    groups: dict[str, dict[Vector, list[str]]] = defaultdict(lambda: defaultdict(list))
    for b in ballots:
        groups[b.enumerator_id][tuple(b.answers.get(i) for i in items)].append(b.ballot_id)
    return groups


def _distance(a: Vector, b: Vector) -> int:
    return sum(1 for x, y in zip(a, b, strict=True) if x != y)


def _neighbours(vectors: list[Vector], k: int) -> set[tuple[int, int]]:
    """Index pairs ``i < j`` of distinct vectors at most ``k`` positions apart (see module docstring)."""
    if k == 0 or not vectors:
        return set()
    m = len(vectors[0])
    buckets: dict[tuple[tuple[int, ...], Vector], list[int]] = defaultdict(list)
    for index, vector in enumerate(vectors):
        for hidden in combinations(range(m), min(k, m)):
            rest = tuple(v for p, v in enumerate(vector) if p not in hidden)
            buckets[hidden, rest].append(index)
    return {(i, j) for members in buckets.values() for i, j in combinations(members, 2)}


def near_identical_pairs(ballots: Sequence[KeyedAnswers], items: Sequence[str],
                         max_differences: int = DEFAULT_MAX_DIFFERENCES) -> Iterator[SimilarPair]:
    """Every pair of one enumerator's ballots whose answers to ``items`` differ in at most
    ``max_differences`` items. Beware: n identical ballots make n(n-1)/2 pairs; ``near_identical``
    gives one flag per ballot instead."""
    if not 0 <= max_differences <= MAX_MAX_DIFFERENCES:
        raise InvalidParameter(f"max_differences lies between 0 and {MAX_MAX_DIFFERENCES}", field="max_differences")
    for enumerator, by_vector in sorted(_groups(ballots, items).items()):
        vectors = list(by_vector)
        for ids in by_vector.values():
            for a, b in combinations(ids, 2):
                yield SimilarPair(a, b, enumerator, 0)
        for i, j in sorted(_neighbours(vectors, max_differences)):
            d = _distance(vectors[i], vectors[j])
            for a in by_vector[vectors[i]]:
                for b in by_vector[vectors[j]]:
                    yield SimilarPair(a, b, enumerator, d)


def _near_flag(ballot_id: str, members: list[str], enumerator: str, k: int) -> Flag:
    shown = [b for b in members[:SHOWN + 1] if b != ballot_id][:SHOWN]
    more = len(members) - 1 - len(shown)
    listing = ", ".join(shown) + (f" and {more} more" if more else "")
    return Flag("near_identical", f"answers within {k} item(s) of {len(members) - 1} other ballot(s) "
                f"of enumerator {enumerator}: {listing}")


def near_identical(ballots: Sequence[KeyedAnswers], items: Sequence[str],
                   max_differences: int = DEFAULT_MAX_DIFFERENCES) -> dict[str, Flag]:
    """One flag per ballot that has at least one near-identical sibling of the same enumerator."""
    if not 0 <= max_differences <= MAX_MAX_DIFFERENCES:
        raise InvalidParameter(f"max_differences lies between 0 and {MAX_MAX_DIFFERENCES}", field="max_differences")
    flags: dict[str, Flag] = {}
    for enumerator, by_vector in _groups(ballots, items).items():
        vectors = list(by_vector)
        near: dict[int, set[int]] = {i: {i} for i in range(len(vectors))}
        for i, j in _neighbours(vectors, max_differences):
            near[i].add(j)
            near[j].add(i)
        for i, vector in enumerate(vectors):
            members = sorted(b for g in near[i] for b in by_vector[vectors[g]])
            for ballot_id in by_vector[vector]:
                if len(members) > 1:
                    flags[ballot_id] = _near_flag(ballot_id, members, enumerator, max_differences)
    return flags
