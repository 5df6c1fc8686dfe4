"""A campaign's counted ballots, measured once and kept between refreshes.

What :class:`~sipas_scoring.application.figures.CampaignFigures` computes intervals from: each counted
ballot's (y, x) per item as two integer arrays, which items it answered, its stratum and weight group,
and the digests a unit's memo key is made of. Building these from every counted ballot of a national
round takes seconds of Python, so the figures worker keeps them per campaign and, on the next refresh,
applies only the ballots accepted or voided since (:meth:`Measured.apply`). An applied state equals, array
for array, the one :meth:`Measured.build` makes from the same ballots: rows in ballot-id order, strata and
weight groups numbered as first met in that order, the same per-stratum digests — so the document is the
same bytes whichever way the state was made.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from sipas_scoring.application.definitions import CampaignBasis
from sipas_scoring.domain.scheme import Ballot


@dataclass
class Counted:
    """One counted ballot with its design: what intervals are computed from."""

    ballot: Ballot
    agency_id: str
    province: str | None
    stratum: str | None
    weight: Fraction | None
    row: int = -1
    """Its row in the campaign's per-item arrays (see :class:`Measured`)."""


def items_of(basis: CampaignBasis) -> list[str]:
    """The items measured, in column order: criteria, factors' overall items, the overall item."""
    instrument = basis.instrument
    overall_items = [f.overall_item for f in instrument.factors if f.overall_item]
    return [*instrument.criteria, *overall_items, *([instrument.overall_item] if instrument.overall_item else [])]


_NO_ANSWERS: dict[str, int | None] = {}


def _light(c: Counted) -> Counted:
    """The ballot as kept once measured: its answers are in the arrays, so the state holds none of them."""
    return Counted(Ballot(c.ballot.ballot_id, _NO_ANSWERS), c.agency_id, c.province, c.stratum, c.weight)


def _scorer(basis: CampaignBasis) -> Callable[[int | None, bool], tuple[int, int]]:
    scheme, instrument = basis.scheme, basis.instrument
    if scheme.kind == "points":
        top = max(scheme.points_for(level) for level in instrument.scale)
        zero = scheme.unanswered == "zero"

        def points(value: int | None, carried: bool) -> tuple[int, int]:
            if value is None:
                return 0, top if carried and zero else 0
            return scheme.points_for(instrument.level(value)), top
        return points
    satisfied = instrument.satisfied_levels

    def share(value: int | None, carried: bool) -> tuple[int, int]:
        return (0, 0) if value is None else (int(value in satisfied), 1)
    return share


def _first_met(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber stable codes as first met along the rows: (per-row index, the codes in that order)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    unique, first = np.unique(codes, return_index=True)
    order = unique[np.argsort(first, kind="stable")]
    remap = np.empty(int(unique.max()) + 1, dtype=np.int64)
    remap[order] = np.arange(len(order), dtype=np.int64)
    return remap[codes], order


class Measured:
    """The measured counted ballots of one campaign (see the module's docstring)."""

    def __init__(self, basis: CampaignBasis) -> None:
        self.items = items_of(basis)
        self.width = len(self.items)
        self._item = _scorer(basis)
        self.counted: list[Counted] = []
        self.ids: list[str] = []
        self.y = np.zeros((0, self.width), dtype=np.int64)
        self.x = np.zeros((0, self.width), dtype=np.int64)
        self.answered = np.zeros((0, self.width), dtype=bool)
        # Stable codes (never renumbered while the state lives) of strata labels and (label, weight) groups;
        # the per-row numbering the arrays expose is "as first met" in ballot-id order, as a full build gives.
        self._label_code: dict[str, int] = {}
        self._group_code: dict[tuple[str, Fraction], int] = {}
        self._labels: list[str] = []
        self._groups: list[tuple[str, Fraction]] = []
        self.label_codes = np.zeros(0, dtype=np.int64)
        self.group_codes = np.zeros(0, dtype=np.int64)  # -1: no weight yet
        self._lines: list[bytes] = []        # per row: b"{id}|{weight}" (stratum digests)
        self.unit_lines: list[bytes] = []    # per row: b"{id}|{stratum}|{weight}" (units' digests)
        self._label_digests: dict[int, bytes] = {}  # by stable label code; dropped when its rows change

    # ---- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, basis: CampaignBasis, counted: Sequence[Counted]) -> Measured:
        """From every counted ballot (in any order: rows go in ballot-id order)."""
        out = cls(basis)
        out._rows(sorted(counted, key=lambda c: c.ballot.ballot_id))
        out._index()
        return out

    def _measure(self, counted: Sequence[Counted]) -> tuple[Any, Any, Any, Any, Any, list[bytes], list[bytes]]:
        item, none = self._item, (0, 0)
        ys, xs, answered, labels, groups, lines, unit_lines = [], [], [], [], [], [], []
        for c in counted:
            answers = c.ballot.answers
            pairs = [item(answers[code], True) if code in answers else none for code in self.items]
            ys.append([p[0] for p in pairs])
            xs.append([p[1] for p in pairs])
            answered.append([answers.get(code) is not None for code in self.items])
            label = c.stratum or "all"
            code = self._label_code.get(label)
            if code is None:
                code = self._label_code[label] = len(self._labels)
                self._labels.append(label)
            labels.append(code)
            if c.weight is None:
                groups.append(-1)
            else:
                key = (label, c.weight)
                g = self._group_code.get(key)
                if g is None:
                    g = self._group_code[key] = len(self._groups)
                    self._groups.append(key)
                groups.append(g)
            lines.append(f"{c.ballot.ballot_id}|{c.weight}".encode())
            unit_lines.append(f"{c.ballot.ballot_id}|{c.stratum}|{c.weight}".encode())
        n = len(counted)
        width = self.width
        return (np.array(ys, dtype=np.int64).reshape(n, width), np.array(xs, dtype=np.int64).reshape(n, width),
                np.array(answered, dtype=bool).reshape(n, self.width), np.array(labels, dtype=np.int64),
                np.array(groups, dtype=np.int64), lines, unit_lines)

    def _rows(self, counted: list[Counted]) -> None:
        self.counted = [_light(c) for c in counted]
        self.ids = [c.ballot.ballot_id for c in counted]
        (self.y, self.x, self.answered, self.label_codes, self.group_codes, self._lines,
         self.unit_lines) = self._measure(counted)

    def apply(self, added: Iterable[Counted], removed: Iterable[str]) -> None:
        """Ballots newly counted (``added``; those already here are left as they are: a counted ballot's
        answers and design never change while the state lives) and ballots no longer counted (``removed``;
        unknown ids are ignored). Afterwards the state is the one :meth:`build` makes of the ballots now
        counted."""
        position = {ballot_id: row for row, ballot_id in enumerate(self.ids)}
        gone = sorted({position[b] for b in removed if b in position})
        fresh: dict[str, Counted] = {}
        for c in added:
            if c.ballot.ballot_id not in position:
                fresh.setdefault(c.ballot.ballot_id, c)
        if not gone and not fresh:
            return
        touched = {int(self.label_codes[r]) for r in gone}
        keep = np.ones(len(self.ids), dtype=bool)
        keep[gone] = False
        kept = np.flatnonzero(keep)
        measuring = sorted(fresh.values(), key=lambda c: c.ballot.ballot_id)
        y, x, answered, labels, groups, lines, unit_lines = self._measure(measuring)
        new = [_light(c) for c in measuring]
        touched |= set(labels.tolist())
        kept_ids = [self.ids[r] for r in kept.tolist()]
        # Where each new ballot goes among the kept ones (ids are unique and both lists sorted).
        at = np.array([bisect.bisect_left(kept_ids, c.ballot.ballot_id) for c in new], dtype=np.int64)
        self.y = np.insert(self.y[kept], at, y, axis=0)
        self.x = np.insert(self.x[kept], at, x, axis=0)
        self.answered = np.insert(self.answered[kept], at, answered, axis=0)
        self.label_codes = np.insert(self.label_codes[kept], at, labels)
        self.group_codes = np.insert(self.group_codes[kept], at, groups)
        total = len(kept) + len(new)
        slot = at + np.arange(len(new), dtype=np.int64)     # the new ballots' rows
        is_new = np.zeros(total, dtype=bool)
        is_new[slot] = True
        old_rows = iter(kept.tolist())
        new_rows = iter(range(len(new)))
        counted, ids, all_lines, all_unit_lines = [], [], [], []
        for fresh_row in is_new.tolist():
            if fresh_row:
                k = next(new_rows)
                counted.append(new[k])
                all_lines.append(lines[k])
                all_unit_lines.append(unit_lines[k])
            else:
                r = next(old_rows)
                counted.append(self.counted[r])
                all_lines.append(self._lines[r])
                all_unit_lines.append(self.unit_lines[r])
        ids = [c.ballot.ballot_id for c in counted]
        self.counted, self.ids, self._lines, self.unit_lines = counted, ids, all_lines, all_unit_lines
        for code in touched:
            self._label_digests.pop(code, None)
        self._index()

    def _index(self) -> None:
        """The per-row numbering of strata and groups as first met, each row's ``Counted.row``."""
        for row, c in enumerate(self.counted):
            c.row = row
        self.stratum, label_order = _first_met(self.label_codes)
        weighted = self.group_codes >= 0
        self.weighted = weighted
        group = np.full(len(self.group_codes), -1, dtype=np.int64)
        renumbered, group_order = _first_met(self.group_codes[weighted])
        group[weighted] = renumbered
        self.group = group
        self.group_weight = [self._groups[g][1] for g in group_order.tolist()]
        self.group_stratum = [self._groups[g][0] for g in group_order.tolist()]
        self._label_order = label_order.tolist()
        members = np.argsort(self.stratum, kind="stable")
        bounds = np.searchsorted(self.stratum[members], np.arange(len(self._label_order) + 1))
        self.strata_rows = [members[bounds[s]:bounds[s + 1]] for s in range(len(self._label_order))]
        """Per stratum (index as first met), its rows in order."""
        self.strata_groups = [{int(g) for g in np.unique(group[rows]).tolist() if g >= 0} for rows in self.strata_rows]
        self.strata_digests = [self._label_digest(code, rows) for code, rows in zip(self._label_order,
                                                                                     self.strata_rows, strict=True)]

    def _label_digest(self, code: int, rows: np.ndarray) -> bytes:
        """A digest of the stratum's ballots (ids, measures, weights): campaign-wide indices move when
        unrelated ballots come or go, so they never enter it."""
        found = self._label_digests.get(code)
        if found is None:
            listed = rows.tolist()
            h = hashlib.sha256(b"\n".join([self._lines[r] for r in listed]))
            for part in (self.y[rows], self.x[rows], self.weighted[rows]):
                h.update(part.tobytes())
            found = self._label_digests[code] = h.digest()
        return found

    @property
    def strata_seen(self) -> set[str]:
        """The strata keys of the ballots counted."""
        return {c.stratum for c in (self.counted[int(rows[0])] for rows in self.strata_rows if len(rows))
                if c.stratum is not None}

    def __len__(self) -> int:
        return len(self.ids)
