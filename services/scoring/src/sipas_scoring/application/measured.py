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


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class Measured:
    """The measured counted ballots of one campaign (see the module's docstring).

    Per row (ballot, in ballot-id order): ``y``/``x``/``answered`` per item, stable codes of its stratum
    label, weight group and agency, and a digest of the row (id, stratum, weight, measures) that the
    memo keys of strata and units are made of, so no refresh hashes every ballot's text again."""

    def __init__(self, basis: CampaignBasis) -> None:
        self.items = items_of(basis)
        self.width = len(self.items)
        self._item = _scorer(basis)
        self._counted = _objects([])
        self.ids = _objects([])
        self.y = np.zeros((0, self.width), dtype=np.int64)
        self.x = np.zeros((0, self.width), dtype=np.int64)
        self.answered = np.zeros((0, self.width), dtype=bool)
        # Stable codes (never renumbered while the state lives) of strata labels, (label, weight) groups and
        # agencies; the numbering the arrays expose is "as first met" in ballot-id order, as a full build gives.
        self._label_code: dict[str, int] = {}
        self._group_code: dict[tuple[str, Fraction], int] = {}
        self._agency_code: dict[str, int] = {}
        self._labels: list[str] = []
        self._groups: list[tuple[str, Fraction]] = []
        self._agencies: list[str] = []
        self.label_codes = np.zeros(0, dtype=np.int64)
        self.group_codes = np.zeros(0, dtype=np.int64)  # -1: no weight yet
        self.agency_codes = np.zeros(0, dtype=np.int64)
        self.row_digests = np.zeros((0, 32), dtype=np.uint8)

    # ---- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, basis: CampaignBasis, counted: Sequence[Counted]) -> Measured:
        """From every counted ballot (in any order: rows go in ballot-id order)."""
        out = cls(basis)
        ordered = sorted(counted, key=lambda c: c.ballot.ballot_id)
        (out.y, out.x, out.answered, out.label_codes, out.group_codes, out.agency_codes,
         out.row_digests) = out._measure(ordered)
        out._counted = _objects([_light(c) for c in ordered])
        out.ids = _objects([c.ballot.ballot_id for c in ordered])
        out._index()
        return out

    def _code(self, codes: dict[Any, int], listed: list[Any], value: Any) -> int:
        found = codes.get(value)
        if found is None:
            found = codes[value] = len(listed)
            listed.append(value)
        return found

    def _measure(self, counted: Sequence[Counted]) -> tuple[Any, ...]:
        item, none, items = self._item, (0, 0), self.items
        ys, xs, answered, labels, groups, agencies, lines = [], [], [], [], [], [], []
        for c in counted:
            answers = c.ballot.answers
            pairs = [item(answers[code], True) if code in answers else none for code in items]
            ys.append([p[0] for p in pairs])
            xs.append([p[1] for p in pairs])
            answered.append([answers.get(code) is not None for code in items])
            label = c.stratum or "all"
            labels.append(self._code(self._label_code, self._labels, label))
            groups.append(-1 if c.weight is None else self._code(self._group_code, self._groups, (label, c.weight)))
            agencies.append(self._code(self._agency_code, self._agencies, c.agency_id))
            line = f"{c.ballot.ballot_id}|{c.stratum}|{c.weight}".encode()
            lines.append(b"%d:%s" % (len(line), line))
        n, width = len(counted), self.width
        y = np.array(ys, dtype=np.int64).reshape(n, width)
        x = np.array(xs, dtype=np.int64).reshape(n, width)
        given = np.array(answered, dtype=bool).reshape(n, width)
        # A row's digest: its id, stratum and weight, then its measures (y, x as int64, answered as bytes).
        measures = np.hstack([y.view(np.uint8).reshape(n, -1), x.view(np.uint8).reshape(n, -1),
                              given.view(np.uint8)]) if n else np.zeros((0, 0), dtype=np.uint8)
        digests = b"".join([hashlib.sha256(line + row).digest() for line, row in zip(lines, map(bytes, measures),
                                                                                      strict=True)])
        return (y, x, given, np.array(labels, dtype=np.int64), np.array(groups, dtype=np.int64),
                np.array(agencies, dtype=np.int64), np.frombuffer(digests, dtype=np.uint8).reshape(n, 32).copy())

    def apply(self, added: Iterable[Counted], removed: Iterable[str]) -> None:
        """Ballots newly counted (``added``; those already here are left as they are: a counted ballot's
        answers and design never change while the state lives) and ballots no longer counted (``removed``;
        unknown ids are ignored). Afterwards the state is the one :meth:`build` makes of the ballots now
        counted."""
        n = len(self.ids)
        gone = self._found(_objects(sorted(set(removed))))
        fresh: dict[str, Counted] = {}
        for c in added:
            fresh.setdefault(c.ballot.ballot_id, c)
        candidates = _objects(sorted(fresh))
        new_ids = candidates[self._found(candidates, missing=True)] if n else candidates
        if not len(gone) and not len(new_ids):
            return
        measuring = [fresh[i] for i in new_ids.tolist()]
        y, x, answered, labels, groups, agencies, digests = self._measure(measuring)
        columns = ["ids", "_counted", "y", "x", "answered", "label_codes", "group_codes", "agency_codes",
                   "row_digests"]
        values = [new_ids, _objects([_light(c) for c in measuring]), y, x, answered, labels, groups, agencies,
                  digests]
        kept_ids = np.delete(self.ids, gone)
        at = np.searchsorted(kept_ids, new_ids) if len(kept_ids) else np.zeros(len(new_ids), dtype=np.int64)
        for name, value in zip(columns, values, strict=True):
            setattr(self, name, np.insert(np.delete(getattr(self, name), gone, axis=0), at, value, axis=0))
        self._index()

    def _found(self, ids: np.ndarray, missing: bool = False) -> np.ndarray:
        """Rows of ``ids`` (sorted) that are here; with ``missing``, the positions in ``ids`` of those not."""
        n = len(self.ids)
        if not len(ids) or not n:
            return np.arange(len(ids), dtype=np.int64) if missing else np.zeros(0, dtype=np.int64)
        at = np.searchsorted(self.ids, ids)
        here = at < n
        here[here] = self.ids[at[here]] == ids[here]
        return np.flatnonzero(~here) if missing else at[here]

    def _index(self) -> None:
        """The per-row numbering of strata and groups as first met, each row's ``Counted.row``, the rows of
        each stratum and agency, and the strata digests."""
        self.counted: list[Counted] = self._counted.tolist()
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
        self.strata_rows = _split(self.stratum, len(label_order))
        """Per stratum (index as first met), its rows in order."""
        self.strata_groups = [{int(g) for g in np.unique(group[rows]).tolist() if g >= 0} for rows in self.strata_rows]
        # A stratum's ballots (ids, measures, weights) — never campaign-wide indices: they move when
        # unrelated ballots come or go.
        self.strata_digests = [hashlib.sha256(self.row_digests[rows].tobytes()).digest() for rows in self.strata_rows]
        self.agency_rows = {self._agencies[code]: rows
                            for code, rows in enumerate(_split(self.agency_codes, len(self._agencies))) if len(rows)}
        """Per agency id, its rows in order."""
        seen = {int(rows[0]) for rows in self.strata_rows if len(rows)}
        self.strata_seen = {self.counted[r].stratum for r in seen} - {None}
        """The strata keys of the ballots counted."""

    def __len__(self) -> int:
        return len(self.ids)


def _split(codes: np.ndarray, count: int) -> list[np.ndarray]:
    """Per code 0..count-1, the rows holding it, in order."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(count + 1))
    return [order[bounds[k]:bounds[k + 1]] for k in range(count)]
