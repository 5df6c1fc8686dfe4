"""A campaign's counted ballots, measured once and kept between refreshes.

What :class:`~sipas_scoring.application.figures.CampaignFigures` computes intervals from: each counted
ballot's (y, x) per item as two small integer arrays, which items it answered, its stratum and weight
group, and the digests a unit's memo key is made of. Ballots arrive as a :class:`Batch` — their answer
codes (:mod:`~sipas_scoring.domain.codes`, one byte an item, as the tallies projection stores them) and
their design, in columns — and are measured by table lookup, not item by item in Python. The figures
worker keeps the state per campaign and, on the next refresh, applies only the ballots accepted or voided
since (:meth:`Measured.apply`). An applied state answers every question the way the one
:meth:`Measured.build` makes from the same ballots does: each agency's and stratum's rows in ballot-id
order, strata and weight groups numbered as first met in that order, the same per-stratum digests — so the
document is the same bytes whichever way the state was made. The rows themselves stay where they came (new
ballots are appended; :attr:`Measured.order` lists them in id order), so a refresh costs what changed, not
what the campaign holds; removing a voided ballot is the one step that moves every row.

Beside the rows it keeps each *cell*'s moments — the ballots of one agency in one weight group: how many,
Σ (y, x) and Σ (y, x)(y, x)ᵀ over the items (:mod:`~sipas_scoring.domain.survey_arrays`), who answered
each item and each set of items an estimate asks about — added to and taken from as ballots come and go.
They are integers, so a kept cell equals one summed from scratch, and a unit's intervals and counts are
computed from its cells rather than from its ballots.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from sipas_scoring.application.definitions import CampaignBasis
from sipas_scoring.domain.codes import FIRST_VALUE, TAG_BYTES, UNANSWERED, Codebook
from sipas_scoring.domain.scheme import Ballot


@dataclass
class Counted:
    """One counted ballot with its design: what intervals are computed from."""

    ballot: Ballot
    agency_id: str
    province: str | None
    stratum: str | None
    weight: Fraction | None


def items_of(basis: CampaignBasis) -> list[str]:
    """The items measured, in column order: criteria, factors' overall items, the overall item."""
    instrument = basis.instrument
    overall_items = [f.overall_item for f in instrument.factors if f.overall_item]
    return [*instrument.criteria, *overall_items, *([instrument.overall_item] if instrument.overall_item else [])]


@dataclass
class Batch:
    """Counted ballots as columns — each one's answers as its answer codes (:mod:`~sipas_scoring.domain.codes`,
    one byte an item): what the figures process is sent and measures, some 40 bytes a ballot besides its id
    and design rather than a dictionary of answers."""

    ids: list[str] = field(default_factory=list)
    codes: bytes = b""
    """The ballots' codes, one row of the codebook's width each, in ``ids`` order."""
    agency_ids: list[str] = field(default_factory=list)
    provinces: list[str | None] = field(default_factory=list)
    strata: list[str | None] = field(default_factory=list)
    weights: list[Fraction | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, basis: CampaignBasis, counted: Sequence[Counted]) -> Batch:
        book = Codebook.of(basis.instrument)
        return cls([c.ballot.ballot_id for c in counted],
                   b"".join(measurable_codes(book, c.ballot.answers) for c in counted),
                   [c.agency_id for c in counted], [c.province for c in counted], [c.stratum for c in counted],
                   [c.weight for c in counted])

    def take(self, rows: Sequence[int], width: int) -> Batch:
        """The ballots at ``rows``, in that order."""
        codes = np.frombuffer(self.codes, dtype=np.uint8).reshape(len(self.ids), width)
        return Batch([self.ids[r] for r in rows], codes[list(rows)].tobytes(), [self.agency_ids[r] for r in rows],
                     [self.provinces[r] for r in rows], [self.strata[r] for r in rows], [self.weights[r] for r in rows])


def measurable_codes(book: Codebook, answers: Mapping[str, int | None]) -> bytes:
    """A ballot's codes for measuring: its answers to the instrument's items (an item it does not know, or a
    value off its scale, is not measured; the tallies projection never counts such a value)."""
    known = {item: value for item, value in answers.items()
             if item in book.columns and (value is None or (type(value) is int and value in book.values))}
    found = book.encode(known, None)
    assert found is not None  # every kept item and value is the codebook's
    return found


def _tables(basis: CampaignBasis) -> tuple[np.ndarray, np.ndarray]:
    """Per answer code (0..255): the (y, x) an item with that code measures — satisfied and valid answers
    for a share, points and the maximum for points; carried unanswered items score the maximum only under
    ``unanswered: zero``."""
    scheme, instrument = basis.scheme, basis.instrument
    values = Codebook.of(instrument).values
    y, x = np.zeros(256, dtype=np.int16), np.zeros(256, dtype=np.int16)
    if scheme.kind == "points":
        top = max(scheme.points_for(level) for level in instrument.scale)
        x[UNANSWERED] = top if scheme.unanswered == "zero" else 0
        for i, value in enumerate(values):
            y[FIRST_VALUE + i], x[FIRST_VALUE + i] = scheme.points_for(instrument.level(value)), top
    else:
        satisfied = instrument.satisfied_levels
        for i, value in enumerate(values):
            y[FIRST_VALUE + i], x[FIRST_VALUE + i] = int(value in satisfied), 1
    return y, x


def _first_met(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable codes renumbered as first met along ``codes``: (per stable code its number, the codes in that
    order, the place each is first met at)."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    first = np.full(int(codes.max()) + 1, len(codes), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(codes), dtype=np.int64))  # no sort of the rows
    present = np.flatnonzero(first < len(codes))
    order = present[np.argsort(first[present], kind="stable")]
    remap = np.full(len(first), -1, dtype=np.int64)
    remap[order] = np.arange(len(order), dtype=np.int64)
    return remap, order, first[order]


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class Measured:
    """The measured counted ballots of one campaign (see the module's docstring).

    Per row (ballot, in the order they came; :attr:`order` lists them in id order): ``y``/``x``/``answered``
    per item, stable codes of its stratum label, weight group and agency, and a digest of the row (id,
    stratum, weight, measures) that the memo keys of strata and units are made of, so no refresh hashes every
    ballot's text again."""

    def __init__(self, basis: CampaignBasis) -> None:
        self.items = items_of(basis)
        self.width = len(self.items)
        self._basis = basis
        self._book = Codebook.of(basis.instrument)
        self._lut_y, self._lut_x = _tables(basis)
        self.ids = _objects([])
        """The ballots' ids in id order."""
        self.order = np.zeros(0, dtype=np.int64)
        """Per id of :attr:`ids`, its row. Rows are kept in the order the ballots came (a refresh appends its
        new ones and moves no other row): everything that depends on the order of ballots follows this."""
        self.provinces = _objects([])
        self.strata = _objects([])
        self.y = np.zeros((0, self.width), dtype=np.int16)
        self.x = np.zeros((0, self.width), dtype=np.int16)
        self.answered = np.zeros((0, self.width), dtype=bool)
        # Stable codes (never renumbered while the state lives) of strata labels, (label, weight) groups and
        # agencies; the numbering the arrays expose is "as first met" in ballot-id order, as a full build gives.
        self._label_code: dict[str, int] = {}
        self._group_code: dict[tuple[str, int, int], int] = {}  # (label, weight's numerator, denominator)
        self._agency_code: dict[str, int] = {}
        self._labels: list[str] = []
        self._groups: list[tuple[str, Fraction]] = []
        self._group_texts: list[str] = []  # each group's weight as text (a row digest's)
        self._agencies: list[str] = []
        self.label_codes = np.zeros(0, dtype=np.int64)
        self.group_codes = np.zeros(0, dtype=np.int64)  # -1: no weight yet
        self.agency_codes = np.zeros(0, dtype=np.int64)
        self.row_digests = np.zeros((0, 32), dtype=np.uint8)
        # Cells (agency, weight group; group -1: no weight yet) by stable code, with their moments.
        self._cell_code: dict[tuple[int, int], int] = {}
        self.cell_agency = np.zeros(0, dtype=np.int64)  # stable agency code
        self.cell_group = np.zeros(0, dtype=np.int64)   # stable group code, -1: no weight yet
        self.cell_rows = np.zeros(0, dtype=np.int64)
        self.cell_sums = np.zeros((0, 2 * self.width), dtype=np.int64)
        self.cell_cross = np.zeros((0, 2 * self.width, 2 * self.width), dtype=np.float64)
        self._cross_buffer = self.cell_cross
        self.cell_given = np.zeros((0, self.width), dtype=np.int64)
        """Per cell and item, its ballots that answered the item."""
        self.row_cell = np.zeros(0, dtype=np.int64)
        """Per row, its cell."""
        # Sets of items whose answering ballots are counted per cell (see :meth:`answering`).
        self._set_column: dict[bytes, int] = {}
        self._set_masks = np.zeros((self.width, 0), dtype=np.int32)
        self.cell_hits = np.zeros((0, 0), dtype=np.int64)
        self._label_digests: dict[int, Any] = {}  # per strata label's stable code, its ballots' digest
        self._buffers: dict[str, np.ndarray] = {}  # the row columns' buffers (see :meth:`_append`)
        self._agencies_kept: dict[int, Any] = {}  # per agency's stable code, its digest and strata labels

    # ---- building -------------------------------------------------------------------------------
    @classmethod
    def build(cls, basis: CampaignBasis, counted: Batch | Sequence[Counted]) -> Measured:
        """From every counted ballot (in any order: rows go in ballot-id order)."""
        out = cls(basis)
        batch = counted if isinstance(counted, Batch) else Batch.of(basis, counted)
        ordered = batch.take(sorted(range(len(batch)), key=batch.ids.__getitem__), out._book.width)
        (out.y, out.x, out.answered, out.label_codes, out.group_codes, out.agency_codes,
         out.row_digests) = out._measure(ordered)
        out.ids, out.provinces, out.strata = (_objects(ordered.ids), _objects(ordered.provinces),
                                              _objects(ordered.strata))
        out.order = np.arange(len(ordered), dtype=np.int64)
        out.row_cell = out._add_moments(out.order, 1)
        out._index()
        return out

    def _add_moments(self, rows: np.ndarray, sign: int) -> np.ndarray:
        """Add (``sign`` 1) or take away (-1) the moments of ``rows`` to their cells (with who answered each
        item and each set of :meth:`answering`); returns each row's cell."""
        if not len(rows):
            return np.zeros(0, dtype=np.int64)
        pairs = list(zip(self.agency_codes[rows].tolist(), self.group_codes[rows].tolist(), strict=True))
        self._open_cells(set(pairs))
        row_cells = np.array([self._cell_code[p] for p in pairs], dtype=np.int64)
        v = np.hstack([self.y[rows], self.x[rows]]).astype(np.int64)
        order = np.argsort(row_cells, kind="stable")
        cells, v = row_cells[order], v[order]
        starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
        touched = cells[starts]
        bounds = np.r_[starts, len(cells)]
        vf = v.astype(np.float64)
        for k, cell in enumerate(touched.tolist()):
            part = vf[bounds[k]:bounds[k + 1]]
            self.cell_cross[cell] += sign * (part.T @ part)  # integers: exact in float64 below 2**53
        self.cell_sums[touched] += sign * np.add.reduceat(v, starts, axis=0)
        self.cell_rows[touched] += sign * np.diff(bounds)
        self.cell_given[touched] += sign * np.add.reduceat(self.answered[rows][order].astype(np.int64), starts, axis=0)
        if self._set_column:
            hits = ((self.x[rows][order] > 0).astype(np.int32) @ self._set_masks) > 0
            self.cell_hits[touched] += sign * np.add.reduceat(hits.astype(np.int64), starts, axis=0)
        return row_cells

    def answering(self, sets: Sequence[np.ndarray]) -> list[int]:
        """The columns of :attr:`cell_hits` — per cell, its ballots with a valid answer (``x`` > 0) to any item
        of the set — of ``sets`` (each a boolean mask over the items). A set not asked before is counted once
        over every ballot, then kept with the moments as ballots come and go (a campaign asks a few: its
        factors' items and the overall index's)."""
        keys = [np.asarray(s, dtype=bool).tobytes() for s in sets]
        new = {key: np.frombuffer(key, dtype=bool) for key in keys if key not in self._set_column}
        if new:
            if len(self._set_column) + len(new) > SETS_KEPT:
                self._set_column.clear()
                self._set_masks = np.zeros((self.width, 0), dtype=np.int32)
                self.cell_hits = np.zeros((len(self.cell_rows), 0), dtype=np.int64)
                new = {key: np.frombuffer(key, dtype=bool) for key in keys}
            masks = np.stack(list(new.values()), axis=1).astype(np.int32)
            hits = ((self.x > 0).astype(np.int32) @ masks) > 0
            counts = np.stack([np.bincount(self.row_cell, weights=hits[:, k], minlength=len(self.cell_rows))
                               for k in range(len(new))], axis=1).astype(np.int64)
            for key in new:
                self._set_column[key] = len(self._set_column)
            self._set_masks = np.hstack([self._set_masks, masks])
            self.cell_hits = np.hstack([self.cell_hits, counts])
        return [self._set_column[key] for key in keys]

    def _open_cells(self, pairs: set[tuple[int, int]]) -> None:
        """Cells for the (agency, group) pairs not met before, with empty moments."""
        new = sorted(pairs - self._cell_code.keys())
        if not new:
            return
        for pair in new:
            self._cell_code[pair] = len(self._cell_code)
        width, count = 2 * self.width, len(new)
        self.cell_agency = np.concatenate([self.cell_agency, np.array([a for a, _ in new], dtype=np.int64)])
        self.cell_group = np.concatenate([self.cell_group, np.array([g for _, g in new], dtype=np.int64)])
        self.cell_rows = np.concatenate([self.cell_rows, np.zeros(count, dtype=np.int64)])
        self.cell_sums = np.concatenate([self.cell_sums, np.zeros((count, width), dtype=np.int64)])
        self.cell_given = np.concatenate([self.cell_given, np.zeros((count, self.width), dtype=np.int64)])
        self.cell_hits = np.concatenate([self.cell_hits, np.zeros((count, self.cell_hits.shape[1]), dtype=np.int64)])
        # The cross products (25 KB a cell for sipas-2017) live in a buffer grown by half again when full, so
        # a refresh that opens a few cells does not copy all of them; ``cell_cross`` is a view of its cells.
        used = len(self.cell_cross)
        if used + count > len(self._cross_buffer):
            grown = np.zeros((max(used + count, len(self._cross_buffer) * 3 // 2), width, width))
            grown[:used] = self.cell_cross
            self._cross_buffer = grown
        self.cell_cross = self._cross_buffer[:used + count]

    def _code(self, codes: dict[Any, int], listed: list[Any], value: Any) -> int:
        found = codes.get(value)
        if found is None:
            found = codes[value] = len(listed)
            listed.append(value)
        return found

    def _group_of(self, label: str, weight: Fraction) -> int:
        """The stable code of a (stratum label, weight) group, keyed by the weight's integers: a Fraction's
        hash is computed in Python at every lookup, and a million ballots look theirs up once each."""
        key = (label, weight.numerator, weight.denominator)
        found = self._group_code.get(key)
        if found is None:
            found = self._group_code[key] = len(self._groups)
            self._groups.append((label, weight))
            self._group_texts.append(str(weight))
        return found

    def _measure(self, batch: Batch) -> tuple[Any, ...]:
        """Each ballot's (y, x) and answered items from its codes (table lookups, no Python per answer), the
        stable codes of its stratum label, weight group and agency, and its row digest."""
        n, width = len(batch), self.width
        body = np.frombuffer(batch.codes, dtype=np.uint8).reshape(n, self._book.width)[:, TAG_BYTES:TAG_BYTES + width]
        y, x = self._lut_y[body], self._lut_x[body]
        given = body >= FIRST_VALUE
        labels, groups, agencies, lines = [], [], [], []
        for ballot_id, agency_id, stratum, weight in zip(batch.ids, batch.agency_ids, batch.strata, batch.weights,
                                                         strict=True):
            label = stratum or "all"
            labels.append(self._code(self._label_code, self._labels, label))
            if weight is None:
                group, shown = -1, "None"
            else:
                group = self._group_of(label, weight)
                shown = self._group_texts[group]
            groups.append(group)
            agencies.append(self._code(self._agency_code, self._agencies, agency_id))
            line = f"{ballot_id}|{stratum}|{shown}".encode()  # as f"{weight}" writes it
            lines.append(b"%d:%s" % (len(line), line))
        # A row's digest: its id, stratum and weight, then its measures (y, x as int16, answered as bytes).
        measures = np.hstack([y.view(np.uint8).reshape(n, -1), x.view(np.uint8).reshape(n, -1),
                              given.view(np.uint8)]) if n else np.zeros((0, 0), dtype=np.uint8)
        digests = b"".join([hashlib.sha256(line + row).digest() for line, row in zip(lines, map(bytes, measures),
                                                                                      strict=True)])
        return (y, x, given, np.array(labels, dtype=np.int64), np.array(groups, dtype=np.int64),
                np.array(agencies, dtype=np.int64), np.frombuffer(digests, dtype=np.uint8).reshape(n, 32).copy())

    def apply(self, added: Batch | Sequence[Counted], removed: Iterable[str]) -> None:
        """Ballots newly counted (``added``; those already here are left as they are: a counted ballot's
        answers and design never change while the state lives) and ballots no longer counted (``removed``;
        unknown ids are ignored). Afterwards the state is the one :meth:`build` makes of the ballots now
        counted."""
        batch = added if isinstance(added, Batch) else Batch.of(self._basis, added)
        n = len(self.ids)
        gone_at = self._found(_objects(sorted(set(removed))))  # places in ``ids``
        gone = self.order[gone_at]  # rows
        first: dict[str, int] = {}
        for row, ballot_id in enumerate(batch.ids):
            first.setdefault(ballot_id, row)
        candidates = _objects(sorted(first))
        new_ids = candidates[self._found(candidates, missing=True)] if n else candidates
        if not len(gone) and not len(new_ids):
            return
        measuring = batch.take([first[i] for i in new_ids.tolist()], self._book.width)
        touched = set(self.label_codes[gone].tolist()), set(self.agency_codes[gone].tolist())
        went = self._changes(gone)  # (their row digests, read before the rows close up)
        self._add_moments(gone, -1)
        y, x, answered, labels, groups, agencies, digests = self._measure(measuring)
        if len(gone):
            self._drop(gone, gone_at)
        start = len(self.ids)
        rows = np.arange(start, start + len(new_ids), dtype=np.int64)
        for name, value in zip(_ROW_COLUMNS, [_objects(measuring.provinces), _objects(measuring.strata), y, x,
                                              answered, labels, groups, agencies, digests,
                                              np.zeros(len(new_ids), dtype=np.int64)], strict=True):
            self._append(name, value)
        at = np.searchsorted(self.ids, new_ids)
        self.ids, self.order = np.insert(self.ids, at, new_ids), np.insert(self.order, at, rows)
        self.row_cell[rows] = self._add_moments(rows, 1)
        came = self._changes(rows)
        self._index(touched[0] | set(labels.tolist()), touched[1] | set(agencies.tolist()),
                    {kind: (went[kind], came[kind]) for kind in ("labels", "agencies")})

    def _changes(self, rows: np.ndarray) -> dict[str, dict[int, tuple[bytes, list[int]]]]:
        """Of ``rows`` (in id order), per strata label's and per agency's stable code: the digest of their row
        digests in order, and their strata labels."""
        out: dict[str, dict[int, tuple[bytes, list[int]]]] = {"labels": {}, "agencies": {}}
        if not len(rows):
            return out
        for kind, codes in (("labels", self.label_codes[rows]), ("agencies", self.agency_codes[rows])):
            order = np.argsort(codes, kind="stable")
            bounds = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0, True]).tolist()
            for a, b in itertools.pairwise(bounds):
                picked = rows[order[a:b]]
                out[kind][int(codes[order[a]])] = (self._digest_of(picked),
                                                   sorted(set(self.label_codes[picked].tolist())))
        return out

    def _append(self, name: str, value: np.ndarray) -> None:
        """Rows added at the end of a column, in a buffer grown by half again when full (no other row moves)."""
        column = getattr(self, name)
        used, buffer = len(column), self._buffers.get(name)
        if buffer is None or used + len(value) > len(buffer):
            buffer = np.empty((max(used + len(value), len(column) * 3 // 2, 1024), *column.shape[1:]),
                              dtype=column.dtype)
            buffer[:used] = column
            self._buffers[name] = buffer
        buffer[used:used + len(value)] = value
        setattr(self, name, buffer[:used + len(value)])

    def _drop(self, rows: np.ndarray, at: np.ndarray) -> None:
        """Rows no longer counted (``at``: their ids' places in :attr:`ids`): the others close up, in order."""
        keep = np.ones(len(self.order), dtype=bool)
        keep[rows] = False
        for name in _ROW_COLUMNS:
            setattr(self, name, getattr(self, name)[keep])
        self._buffers.clear()
        renumbered = np.cumsum(keep) - 1
        self.ids, self.order = np.delete(self.ids, at), renumbered[np.delete(self.order, at)]

    def _found(self, ids: np.ndarray, missing: bool = False) -> np.ndarray:
        """The places in :attr:`ids` of ``ids`` (sorted) that are here; with ``missing``, the positions in
        ``ids`` of those not."""
        n = len(self.ids)
        if not len(ids) or not n:
            return np.arange(len(ids), dtype=np.int64) if missing else np.zeros(0, dtype=np.int64)
        at = np.searchsorted(self.ids, ids)
        here = at < n
        here[here] = self.ids[at[here]] == ids[here]
        return np.flatnonzero(~here) if missing else at[here]

    def _index(self, touched: Iterable[int] | None = None, touched_agencies: Iterable[int] | None = None,
               changes: dict[str, tuple[dict[int, Any], dict[int, Any]]] | None = None) -> None:
        """The per-row numbering of strata and groups as first met, the rows, digest and strata of each agency,
        the strata digests, and where each cell's weight group is in that numbering. ``touched`` and
        ``touched_agencies``: the stable codes of the strata labels and agencies whose ballots changed since
        the last call (None: every one) — only their digests are made again."""
        order = self.order  # numbered as first met in id order, as a full build meets them
        label_remap, label_order, label_first = _first_met(self.label_codes[order])
        self.stratum = label_remap[self.label_codes]
        weighted = self.group_codes >= 0
        self.weighted = weighted
        group = np.full(len(self.group_codes), -1, dtype=np.int64)
        in_order = self.group_codes[order]
        group_remap, group_order, _ = _first_met(in_order[in_order >= 0])
        group[weighted] = group_remap[self.group_codes[weighted]]
        self.group = group
        self.group_weight = [self._groups[g][1] for g in group_order.tolist()]
        self.group_stratum = [self._groups[g][0] for g in group_order.tolist()]
        self.group_texts = [self._group_texts[g] for g in group_order.tolist()]
        """Per weight group (as first met), its weight as ``str(weight)`` writes it."""
        # A group's ballots all have its label: a stratum's groups are the groups of its label.
        stratum_of_label = dict(zip(label_order.tolist(), range(len(label_order)), strict=True))
        self.strata_groups: list[set[int]] = [set() for _ in range(len(label_order))]
        """Per stratum (index as first met), its weight groups (as first met)."""
        for g, code in enumerate(group_order.tolist()):
            self.strata_groups[stratum_of_label[self._label_code[self._groups[code][0]]]].add(g)
        # A stratum's and an agency's ballots (ids, measures, weights) — never campaign-wide indices: they move
        # when unrelated ballots come or go. Kept per stable code, made again only where ballots changed.
        went, came = (changes or {}).get("labels", ({}, {}))
        _, self._label_digests = self._per_code(
            self.label_codes, len(self._labels), touched, self._label_digests, self._digest_of,
            lambda code, digest, rows: _chained(digest, went.get(code), came.get(code)))
        self.strata_digests = [self._label_digests[code] for code in label_order.tolist()]
        went, came = (changes or {}).get("agencies", ({}, {}))
        rows_of, self._agencies_kept = self._per_code(
            self.agency_codes, len(self._agencies), touched_agencies, self._agencies_kept,
            lambda rows: (self._digest_of(rows), sorted(set(self.label_codes[rows].tolist()))),
            lambda code, kept, rows: (_chained(kept[0], went.get(code), came.get(code)),
                                      # a removal may take a stratum's last ballot of the agency: its rows say
                                      sorted(set(self.label_codes[rows].tolist())) if code in went
                                      else sorted({*kept[1], *came[code][1]})))
        self.agency_rows = {self._agencies[code]: rows for code, rows in rows_of.items()}
        """Per agency id, its rows in order."""
        self.agency_digests = {self._agencies[code]: kept[0] for code, kept in self._agencies_kept.items()}
        """Per agency id, the digest of its rows' digests in order (a unit's memo key is made of its agencies')."""
        self.agency_strata = {self._agencies[code]: sorted(stratum_of_label[label] for label in kept[1])
                              for code, kept in self._agencies_kept.items()}
        """Per agency id, the strata (as first met) of its ballots."""
        self.strata_seen = {self.strata[r] for r in order[label_first].tolist()} - {None}
        """The strata keys of the ballots counted."""
        labels = [self._labels[code] for code in label_order.tolist()]
        pool = np.bincount(self.stratum[weighted], minlength=len(labels)).tolist()
        self.pool = {label: int(count) for label, count in zip(labels, pool, strict=True) if count}
        """Per stratum label, its weighted ballots: the pool a unit's weighted estimate is a domain of."""
        group_at = np.full(len(self._groups) + 1, -1, dtype=np.int64)  # stable code -> as first met; -1 -> -1
        group_at[group_order] = np.arange(len(group_order), dtype=np.int64)
        self.cell_group_at = np.where(self.cell_group >= 0, group_at[self.cell_group], -1)
        """Each cell's weight group as first met (-1: no weight yet)."""
        live = np.flatnonzero(self.cell_rows > 0)
        self.agency_cells = {self._agencies[code]: cells
                             for code, cells in enumerate(_split(self.cell_agency[live], len(self._agencies)))
                             if len(cells)}
        self.agency_cells = {agency: live[cells] for agency, cells in self.agency_cells.items()}
        """Per agency id, its cells holding ballots."""

    def _per_code(self, codes: np.ndarray, count: int, touched: Iterable[int] | None, kept: dict[int, Any],
                  make: Any, change: Any = None) -> tuple[dict[int, np.ndarray], dict[int, Any]]:
        """Per stable code (0..count-1) holding rows: its rows in id order, and what ``make`` makes of them —
        taken from ``kept`` unless the code is in ``touched`` (None: made again for every code); a touched code
        with something kept has it changed by ``change(code, kept, rows)`` instead, when given."""
        again = None if touched is None else set(touched)
        rows_of, made = {}, {}
        for code, at in enumerate(_split(codes[self.order], count)):
            if len(at):
                rows = rows_of[code] = self.order[at]
                found = kept.get(code)
                if again is None or found is None:
                    made[code] = make(rows)
                elif code in again:
                    made[code] = make(rows) if change is None else change(code, found, rows)
                else:
                    made[code] = found
        return rows_of, made

    def _digest_of(self, rows: np.ndarray) -> bytes:
        return hashlib.sha256(self.row_digests[rows].tobytes()).digest()

    def __len__(self) -> int:
        return len(self.ids)


_ROW_COLUMNS = ("provinces", "strata", "y", "x", "answered", "label_codes", "group_codes", "agency_codes",
                "row_digests", "row_cell")
"""The columns of :class:`Measured` with one row a ballot, in the order the ballots came."""
SETS_KEPT = 64
"""Sets of items counted per cell (:meth:`Measured.answering`) before the count starts again."""


def _chained(digest: bytes, went: tuple[bytes, Any] | None, came: tuple[bytes, Any] | None) -> bytes:
    """A kept digest of some rows, after a change took the rows digested in ``went`` and brought those in
    ``came``: made of the digest before and the change, not of all the rows again (a national campaign's
    agency holds a thousand ballots at the end of a round, and a refresh touches most agencies). Equal digests
    still mean equal rows — equal rows before and equal changes — and a change always makes a new one; a
    state built from scratch digests the rows themselves, so its digests differ from a kept state's (a memo
    made from one is not used by the other: the rows are computed again)."""
    return hashlib.sha256(b"changed" + digest + b"-" + (went[0] if went else b"") + b"+" + (came[0] if came else b"")
                          ).digest()


def _split(codes: np.ndarray, count: int) -> list[np.ndarray]:
    """Per code 0..count-1, the rows holding it, in order."""
    keys = codes.astype(np.uint16) if count <= 1 << 16 else codes  # (a stable sort of 16-bit keys is a radix sort)
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(count + 1))
    return [order[bounds[k]:bounds[k + 1]] for k in range(count)]
