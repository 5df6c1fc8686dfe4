"""A campaign's figures: every unit's indices with n, intervals, suppression and ranks, as one document.

Point figures come from the tallies (exact fractions, presented once by the scheme's rounding rule).
Intervals: Wilson for an item's simple share (from the tallies); Taylor linearisation for factor,
overall and points figures — unweighted over the unit's ballots, and weighted (design weight, or the
non-response adjusted weight once sampling published it) over the unit's strata as a domain, with the
design effect and effective sample size — computed from the moments of the unit's cells (agency by weight
group, :mod:`~sipas_scoring.application.measured`), never from its ballots one by one; the estimates of
all the units a computation recomputes are made together, in array passes over one block of their moments
(:func:`~sipas_scoring.domain.survey_arrays.estimate_arrays`), each unit's numbers those it gets alone.
The document is canonical JSON: the same state gives the same bytes, so its SHA-256 (``figures_digest``)
identifies it.

Hierarchy: agency → province (its agencies' tallies pooled) → national (the mean of province indices,
as the Ministry reports it). Suppression hides a cell under the scheme's ``small_cell_n`` and any cell
that subtraction from its parent would reveal; suppressed cells show n but no figure and take no rank.

Refreshing: :func:`figures_of` hands the computation to an engine
(:mod:`~sipas_scoring.application.figures_engine`, in the figures worker's own process) that keeps each
campaign's measured ballots (:mod:`~sipas_scoring.application.measured`) and units' rows between
refreshes, so a refresh reads and measures only the ballots accepted or voided since the last one and
recomputes only the units they reach. The document is the one a computation from scratch gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np
import orjson
import structlog
from pydantic_core import to_json
from sqlalchemy import Text as SqlText
from sqlalchemy import any_, bindparam, case, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events import canonical
from sipas_scoring.adapters import tally_rows
from sipas_scoring.adapters.tables import ballots, dossiers, reference, tally_revisions, units, weights
from sipas_scoring.application.definitions import CampaignBasis, definitions
from sipas_scoring.application.figures_engine import (
    Context,
    Held,
    LocalRunner,
    Reply,
    Request,
    Runner,
    TallyDeltas,
    fingerprint_of,
    held_after,
)
from sipas_scoring.application.measured import Batch, Counted, Measured, items_of, measurable_codes
from sipas_scoring.domain.codes import TAG_BYTES, Codebook
from sipas_scoring.domain.fast_rounding import present_floats, present_fractions, present_ratios, present_text
from sipas_scoring.domain.intervals import Interval, wilson, wilson_arrays, z_value
from sipas_scoring.domain.online766 import Dossier, score_online_766
from sipas_scoring.domain.points import presented_factor_points, presented_total
from sipas_scoring.domain.ranking import RankInput, rank_with_intervals
from sipas_scoring.domain.rounding import RoundingRule
from sipas_scoring.domain.shares import HUNDRED, mean
from sipas_scoring.domain.suppression import Cell, suppress
from sipas_scoring.domain.survey_arrays import UNWEIGHTED, Estimates, Groups, Layout, Moments, estimate_arrays
from sipas_scoring.domain.tallies import (
    SharePlan,
    ShareRatios,
    Tallies,
    TallyMatrix,
    points_scores,
    share_values,
    share_values_many,
    sum_tallies,
)
from sipas_scoring.domain.weighted_shares import Terms, factor_terms, overall_terms
from sipas_scoring.projections.tallies import UNASSIGNED

log = structlog.get_logger(__name__)

NATIONAL = "national"
SIMPLES_KEPT = 20_000
"""Item and expectation figures kept (about 0.5 KB each), in each of two generations (:class:`Kept`): a
national campaign of 1,000 agencies shows 29 a unit, many shared; as its counts grow, a refresh makes new
ones (offline, some 3,000-5,000 a refresh of 1,600 ballots at 80,000 counted)."""
_UNITS = '"units":[]'
Text = tuple[dict[str, Any], tuple[Any, Any], str]
"""A row's canonical JSON text with what made it: the memo row it copies, its (suppression, rank)."""


class Kept:
    """What was used recently, in two generations of at most ``limit`` each: when the new one is full it
    becomes the old one and the old one goes, and a hit in the old one comes back into the new. So what the
    figures keep asking for stays (a campaign whose counts keep growing makes thousands of new figures a
    refresh; emptying the whole store when full, as before, made every figure again at once every few
    refreshes)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.new: dict[Any, Any] = {}
        self.old: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        found = self.new.get(key)
        if found is None:
            found = self.old.get(key)
            if found is not None:
                self.put(key, found)
        return found

    def put(self, key: Any, value: Any) -> None:
        if len(self.new) >= self.limit:
            self.old, self.new = self.new, {}
        self.new[key] = value

    def __len__(self) -> int:
        return len(self.new) + len(self.old)


_SIMPLES: dict[tuple[str, int], Kept] = {}
"""Per rounding (rule, places): item and expectation figures by their counts (:meth:`CampaignFigures._simple`)."""


@dataclass
class Unit:
    key: str
    level: str
    unit_id: str
    parent: str | None
    tallies: Counter[str]
    info: dict[str, Any] = field(default_factory=dict)
    rows: Any = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Its counted ballots' rows in the campaign's measured state."""

    @cached_property
    def counts(self) -> Tallies:
        return Tallies(self.tallies)


def exact(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


def _ci(interval: Interval | None, scale: float = HUNDRED) -> list[str] | None:
    if interval is None:
        return None
    return [present_text(interval.lower * scale), present_text(interval.upper * scale)]


async def load_weights(conn: AsyncConnection, campaign_id: str) -> dict[tuple[str, str], tuple[Fraction | None, int]]:
    """Per (draw, stratum): the adjusted weight once sampling published it (else None) and the frame size."""
    return {(r.draw_id, r.stratum): (None if r.final_weight is None else Fraction(r.final_weight), int(r.population))
            for r in await conn.execute(select(weights).where(weights.c.campaign_id == campaign_id))}


_NAMED_KEYS = ("agency_id", "code", "name", "province")
_NAMED = select(*(reference.agencies.c[k] for k in _NAMED_KEYS)).where(
    reference.agencies.c.agency_id == any_(bindparam("ids", type_=ARRAY(SqlText))))
"""Agencies' names, codes and provinces: one statement whatever the number of agencies asked for (an ``IN``
list is a statement of its own for each length, prepared and planned again on most refreshes)."""


async def load_context(conn: AsyncConnection, campaign_id: str,
                       adjusted: dict[tuple[str, str], tuple[Fraction | None, int]] | None = None,
                       only: Sequence[str] | None = None, named: Sequence[str] = ()) -> Context:
    """Everything a document is computed from but the counted ballots: tallies by agency (of ``only``, or of
    every agency), the names of those agencies and of ``named``, the adjusted weights and strata
    populations (``adjusted`` if read already), dossiers, province names."""
    by_agency = await tally_rows.read(conn, campaign_id, only)
    if adjusted is None:
        adjusted = await load_weights(conn, campaign_id)
    agencies: dict[str, dict[str, Any]] = {}
    if by_agency or named:
        found = await conn.execute(_NAMED, {"ids": sorted({*by_agency, *named})})
        agencies = {row[0]: dict(zip(_NAMED_KEYS, row, strict=True)) for row in found}
    rated = [dict(r._mapping) for r in await conn.execute(
        select(dossiers).where(dossiers.c.campaign_id == campaign_id).order_by(dossiers.c.dossier_id))]
    a = reference.agencies.c
    provinces = {code: name for code, name in await conn.execute(
        select(a.code, a.name).where(a.level == "province").order_by(a.valid_from))}  # the latest name wins
    return Context(by_agency, agencies, adjusted, rated, provinces)


def _coded(book: Codebook) -> Any:
    """A ballot whose stored answer codes are of this instrument (counted since migration 0005)."""
    b = ballots.c
    return (func.length(b.answer_codes) == book.width) & (func.substring(b.answer_codes, 1, TAG_BYTES) == book.tag)


def _counted_query(basis: CampaignBasis) -> Any:
    """Ballots of the campaign with what measuring them needs: their answer codes (or, without codes of this
    instrument, their JSONB answers) and their unit's draw, stratum and design weight."""
    b, u = ballots.c, units.c
    return (select(b.ballot_id, b.agency_id, b.province, b.draw_id, b.stratum, b.answer_codes,
                   case((_coded(Codebook.of(basis.instrument)), None), else_=b.answers).label("answers"),
                   u.draw_id.label("unit_draw_id"), u.stratum.label("unit_stratum"), u.design_weight)
            .select_from(ballots.outerjoin(units, (u.unit_id == b.unit_id) & (u.campaign_id == basis.campaign_id)))
            .where(b.campaign_id == basis.campaign_id))


def _batch_of(basis: CampaignBasis, rows: Iterable[Any],
              adjusted: Mapping[tuple[str, str], tuple[Fraction | None, int]]) -> Batch:
    """Rows of :func:`_counted_query` as a :class:`Batch`, in ballot-id order: the unit's draw and stratum
    (else the ballot's own) and its design weight, or the adjusted weight of its stratum once published."""
    book = Codebook.of(basis.instrument)
    found = []
    exact: dict[Any, Fraction] = {}  # a design weight's Fraction, made once per value (a stratum's units share it)
    for r in rows:
        if r.unit_draw_id is None:
            draw_id, stratum, weight = r.draw_id, r.stratum, None
        else:
            draw_id, stratum = r.unit_draw_id or r.draw_id, r.unit_stratum or r.stratum
            weight = exact.get(r.design_weight)
            if weight is None:
                weight = exact[r.design_weight] = Fraction(r.design_weight)
        final = adjusted.get((draw_id, stratum))
        if final is not None and final[0] is not None:
            weight = final[0]
        codes = bytes(r.answer_codes) if r.answers is None else measurable_codes(book, r.answers)
        found.append((r.ballot_id, codes, r.agency_id, r.province, f"{draw_id}|{stratum}", weight))
    found.sort(key=lambda row: row[0])  # whatever the database's collation: the order a state keeps
    return Batch([r[0] for r in found], b"".join(r[1] for r in found), [r[2] for r in found],
                 [r[3] for r in found], [r[4] for r in found], [r[5] for r in found])


async def load_counted(conn: AsyncConnection, basis: CampaignBasis,
                       adjusted: Mapping[tuple[str, str], tuple[Fraction | None, int]]) -> Batch:
    """The campaign's counted ballots with their design (:func:`_batch_of`). Answers come as the answer codes
    the tallies projection stored; a ballot without codes of this instrument (counted before migration 0005)
    is read from its JSONB answers and encoded here."""
    return _batch_of(basis, await conn.execute(_counted_query(basis).where(ballots.c.status == "accepted")),
                     adjusted)


async def load(conn: AsyncConnection, campaign_id: str) -> tuple[dict[str, Counter[str]], Batch,
                                                                  dict[str, dict[str, Any]], dict[str, int] | None,
                                                                  list[dict[str, Any]], dict[str, str]]:
    """Tallies by agency, counted ballots with weights, agencies' names, strata populations, dossiers,
    province names: the arguments of :class:`CampaignFigures` after the basis."""
    context = await load_context(conn, campaign_id)
    counted = await load_counted(conn, await definitions.basis(conn, campaign_id), context.adjusted)
    population = context.population({s for s in counted.strata if s is not None})
    return context.by_agency, counted, context.agencies, population, context.rated, context.provinces


@dataclass
class Domain:
    """What a unit's estimates of one kind (weighted or not) run over: its weight groups' moments, where they
    are in the block prepared with it, and through the block the cells each group sums (to count who
    answered an estimate's items)."""

    moments: Moments
    block: Block
    """The stack its moments are rows of (made with the moments of the units prepared with it)."""
    span: tuple[int, int]
    """(first row, rows) of its weight groups in ``block``."""


@dataclass
class Block:
    """The moments of the domains prepared together (:meth:`CampaignFigures._prepare`): Σ v as floats and
    Σ v vᵀ of each domain's weight groups, one domain after another. :func:`estimate_arrays` gathers from it
    the rows and columns each term set needs, so no domain's moments are stacked again per term set. Group
    ``g`` sums the measured cells ``cells[starts[g]:starts[g + 1]]``."""

    sums: Any
    cross: Any
    cells: Any
    starts: Any

    @staticmethod
    def of(domains: Sequence[Domain]) -> tuple[Any, Any, Any]:
        """``domains``' moments as :func:`estimate_arrays` takes them stacked: (Σ v as floats, Σ v vᵀ, the rows
        of the domains' groups in order — None when they are every row of the block)."""
        if len({id(d.block) for d in domains}) != 1:  # prepared apart: stacked here
            return (np.concatenate([d.moments.sums for d in domains]).astype(np.float64),
                    np.concatenate([d.moments.cross for d in domains]), None)
        block = domains[0].block
        at = 0
        for d in domains:
            if d.span[0] != at:
                break
            at += d.span[1]
        else:
            if at == len(block.sums):
                return block.sums, block.cross, None
        return block.sums, block.cross, np.concatenate([np.arange(a, a + n) for a, n in (d.span for d in domains)])


def _answering_all(domains: Iterable[Domain], cell_hits: Any) -> dict[int, Any]:
    """Per domain (by ``id``), per weight group (rows) and per set of items (columns), its ballots that
    answered any item of the set; ``cell_hits``: per measured cell and set, how many of its ballots did
    (:meth:`~sipas_scoring.application.measured.Measured.answering`). The domains of one :class:`Block` are
    counted together: one sum over the cells of each of its groups."""
    out: dict[int, Any] = {}
    by_block: dict[int, tuple[Block, list[Domain]]] = {}
    for domain in domains:
        by_block.setdefault(id(domain.block), (domain.block, []))[1].append(domain)
    for block, members in by_block.values():
        counts = np.add.reduceat(cell_hits[block.cells], block.starts, axis=0)
        for d in members:
            out[id(d)] = counts[d.span[0]:d.span[0] + d.span[1]]
    return out


_GROUPS: dict[tuple[tuple[Fraction, str], ...], Groups] = {}
"""Weight groups by their (weight, stratum) pairs, made once per process (their floats, scaled integers and
strata are then computed once too): about one per agency and province of the campaigns computed, emptied
when ``GROUPS_KEPT`` are held (new weights make new groups)."""
GROUPS_KEPT = 10_000


def _groups(weights: Sequence[Fraction], strata: Sequence[str]) -> Groups:
    key = tuple(zip(weights, strata, strict=True))
    found = _GROUPS.get(key)
    if found is None:
        if len(_GROUPS) >= GROUPS_KEPT:
            _GROUPS.clear()
        found = _GROUPS[key] = Groups(list(weights), list(strata))
    return found


def simple_figures(keys: Sequence[tuple[str, int, int]], rule: RoundingRule, places: int) -> list[dict[str, Any]]:
    """Item figures (kind ``"item"``: the share hits/n on 0-100 with its Wilson interval) and expectation
    figures (``"expect"``: the share) of many (kind, hits, n) at once: the value presented by the scheme's
    rounding, the exact fraction and n (nothing but n when n is 0). The share's presentation and exact
    fraction are integer array arithmetic, the intervals float arrays (:func:`wilson_arrays`, the same floats
    as :func:`wilson`), presented together."""
    hits = np.array([k[1] for k in keys], dtype=np.int64)
    n = np.array([k[2] for k in keys], dtype=np.int64)
    out: list[dict[str, Any]] = []
    shown = np.flatnonzero(n > 0)
    numerators, denominators = hits[shown] * HUNDRED, n[shown]
    common = np.gcd(numerators, denominators)
    values = present_ratios(numerators, denominators, rule, places)
    exacts = [f"{a}/{b}" for a, b in zip((numerators // common).tolist(), (denominators // common).tolist(),
                                         strict=True)]
    lower, upper = wilson_arrays(hits[shown], denominators)
    lows, highs = present_floats(lower * HUNDRED), present_floats(upper * HUNDRED)
    at = dict(zip(shown.tolist(), range(len(shown)), strict=True))
    for k, (kind, _, count) in enumerate(keys):
        j = at.get(k)
        if kind == "item":
            out.append({"value": None, "exact": None, "n": count, "ci": None, "ci_method": "wilson"} if j is None
                       else {"value": values[j], "exact": exacts[j], "n": count, "ci": [lows[j], highs[j]],
                             "ci_method": "wilson"})
        else:
            out.append({"value": None, "exact": None, "n": count} if j is None
                       else {"value": values[j], "exact": exacts[j], "n": count})
    return out


def _intervals(found: Estimates) -> list[list[str] | None]:
    """Each estimate's interval as a figure shows it (on 0-100; None where there is no estimate)."""
    lower, upper = present_floats(found.lower * HUNDRED), present_floats(found.upper * HUNDRED)
    return [None if error is not None or low is None or high is None else [low, high]
            for error, low, high in zip(found.errors, lower, upper, strict=True)]


class CampaignFigures:
    """Builds the figures document of one campaign from what :func:`load` read."""

    def __init__(self, basis: CampaignBasis, by_agency: dict[str, Counter[str]],
                 counted: Batch | Sequence[Counted] | None,
                 agencies: dict[str, dict[str, Any]], population: dict[str, int] | None,
                 rated: list[dict[str, Any]], province_names: dict[str, str] | None = None,
                 memo: Mapping[str, tuple[bytes, dict[str, Any], dict[str, dict[str, Any]] | None]] | None = None,
                 measured: Measured | None = None, texts: Mapping[str, Text] | None = None,
                 tally_digests: dict[str, tuple[Counter[str], bytes]] | None = None,
                 tally_sums: dict[str, tuple[tuple[Counter[str], ...], Counter[str]]] | None = None) -> None:
        """The counted ballots come either as ``counted`` (measured here) or as ``measured``, the state of the
        ballots now counted kept from an earlier computation (see :mod:`~sipas_scoring.application.measured`;
        ``counted`` is then None). ``memo`` and ``texts`` are an earlier computation's :attr:`memo` and
        :attr:`texts`; ``tally_digests`` a store of agencies' tally digests kept with the tallies (see
        :meth:`_tally_digest`), ``tally_sums`` one of provinces' summed tallies (:meth:`_summed`), filled here."""
        if measured is None:
            if counted is None:
                raise ValueError("the counted ballots or their measured state")
            measured = Measured.build(basis, counted)
        self.basis, self.population = basis, population
        self._previous = memo or {}
        self.memo: dict[str, tuple[bytes, dict[str, Any], dict[str, dict[str, Any]] | None]] = {}
        """Each unit's row before suppression and ranks, by the digest of everything it was computed from:
        handed to the next computation of the campaign (see :meth:`_unit_row`)."""
        self.recomputed: list[str] = []  # the units computed, not taken from ``memo``
        self._bodies: dict[str, dict[str, Any]] = {}  # share figures made together before their rows
        self._previous_texts = texts or {}
        self.texts: dict[str, Text] = {}
        """Each unit's row as canonical JSON, with what made it (see :meth:`text`): handed on like ``memo``."""
        self._bases: dict[str, dict[str, Any]] = {}  # per unit, the memo's row its document row copies
        self._small: dict[str, dict[str, dict[str, Any]] | None] = {}  # per unit, its parts with small cells blanked
        self._tally_digests = {} if tally_digests is None else tally_digests
        self._tally_sums = {} if tally_sums is None else tally_sums
        self.province_names = province_names or {}
        self.agencies, self.rated = agencies, rated
        self.scheme, self.instrument = basis.scheme, basis.instrument
        self._simples = _SIMPLES.setdefault((self.scheme.rounding.rule, self.scheme.rounding.places),
                                            Kept(SIMPLES_KEPT))
        self.items = items_of(basis)
        self._position = {code: i for i, code in enumerate(self.items)}
        self._take(measured)
        self._digest_campaign()
        self._domains: dict[tuple[str, bool], Domain | None] = {}
        self._members: dict[str, list[Unit]] = {}
        self.units = self._hierarchy(by_agency)

    def present(self, value: Fraction | None) -> str | None:
        rounding = self.scheme.rounding  # as ``rounding.present(value)``, in integer arithmetic
        return None if value is None else present_text(value, rounding.rule, rounding.places)

    def _province_of(self, agency_id: str) -> str:
        known = self.agencies.get(agency_id, {}).get("province")
        if known:
            return str(known)
        rows = self.measured.agency_rows.get(agency_id)
        seen = set() if rows is None else {p for p in self.measured.provinces[rows].tolist() if p}
        return min(seen) if seen else (self.basis.province or "--")

    def _hierarchy(self, by_agency: dict[str, Counter[str]]) -> list[Unit]:
        provinces: dict[str, list[Unit]] = defaultdict(list)
        none = np.zeros(0, dtype=np.int64)
        rows_of = self.measured.agency_rows
        for agency_id in sorted(by_agency):
            province = self._province_of(agency_id)
            info = self.agencies.get(agency_id, {})
            rows = rows_of.get(agency_id, none)
            provinces[province].append(Unit(
                f"A:{agency_id}", "agency", agency_id, f"P:{province}", by_agency[agency_id],
                {"code": info.get("code"), "name": info.get("name") or ("—" if agency_id == UNASSIGNED else None),
                 "province": province}, rows))
        out: list[Unit] = [Unit(NATIONAL, "national", NATIONAL, None, Counter(),
                                rows=self.measured.order)]
        for province in sorted(provinces):
            members = provinces[province]
            self._members[f"P:{province}"] = members
            out.append(Unit(f"P:{province}", "province", province, NATIONAL,
                            self._summed(f"P:{province}", members),
                            {"province": province, "name": self.province_names.get(province)},
                            np.concatenate([u.rows for u in members]) if members else none))
            out.extend(members)
        return out

    def _summed(self, key: str, members: Sequence[Unit]) -> Counter[str]:
        """The members' tallies summed: kept in the store handed in (:attr:`_tally_sums`, which the engine keeps
        with the agencies' tallies) beside the very tallies objects summed, and used again while the members
        hold those objects (tallies are never changed in place, see :meth:`_tally_digest`): a refresh sums
        again only the provinces whose agencies' tallies changed."""
        objects = tuple(u.tallies for u in members)
        found = self._tally_sums.get(key)
        if found is not None and len(found[0]) == len(objects) and all(
                a is b for a, b in zip(found[0], objects, strict=True)):
            return found[1]
        total = sum_tallies(objects)
        self._tally_sums[key] = (objects, total)
        return total

    # ---- observations ---------------------------------------------------------------------------
    def _select(self, terms: Sequence[tuple[str, ...]]) -> Any:
        """Items by terms: term k sums the columns of its items."""
        key = tuple(terms)
        found = self._selects.get(key)
        if found is None:
            found = np.zeros((len(self.items), len(terms)), dtype=np.int64)
            for k, items in enumerate(terms):
                for item in items:
                    found[self._position[item], k] += 1
            self._selects[key] = found
        return found

    def _cells(self, unit: Unit) -> Any:
        cells_of = self.measured.agency_cells
        none = np.zeros(0, dtype=np.int64)
        if unit.level == "agency":
            return cells_of.get(unit.unit_id, none)
        if unit.level == "province":
            members = [cells_of.get(u.unit_id, none) for u in self._members.get(unit.key, [])]
            return np.concatenate(members) if members else none
        return np.concatenate(list(cells_of.values())) if cells_of else none

    def _domain(self, unit: Unit, weighted: bool) -> Domain | None:
        """The moments an estimate of the unit runs over, once per unit and kind (every term set reuses them):
        see :meth:`_prepare`."""
        key = (unit.key, weighted)
        if key not in self._domains:
            self._prepare([unit])
        return self._domains[key]

    def _prepare(self, units: Sequence[Unit]) -> None:
        """The domains of many units at once, each kind in one :class:`Block` (a few array operations for
        all the units, not a few per unit). Weighted: the unit as a domain of its strata — each of its weight
        groups with its exact weight (its cells in the group summed), and each stratum's ballots in the whole
        campaign as the pool (the others count as zeros); None while a ballot's weight has not arrived.
        Unweighted: one group of every cell. The sums are of integers (in float64 below 2**53: exact), so a
        domain's moments are the same whichever units it is prepared with."""
        m = self.measured
        todo = [u for u in units if (u.key, True) not in self._domains]
        cells = [self._cells(u) for u in todo]
        for unit, listed_cells in zip(todo, cells, strict=True):
            if not len(listed_cells):
                self._domains[(unit.key, True)] = self._domains[(unit.key, False)] = None
        todo, cells = [u for u, c in zip(todo, cells, strict=True) if len(c)], [c for c in cells if len(c)]
        if not todo:
            return
        sizes = np.array([len(c) for c in cells], dtype=np.int64)
        owner = np.repeat(np.arange(len(todo), dtype=np.int64), sizes)
        every = np.concatenate(cells)
        at = m.cell_group_at[every]
        # Each unit's cells by weight group (stable: as the unit lists them), then per (unit, group) its sum.
        order = np.lexsort((at, owner))
        every, at, owner = every[order], at[order], owner[order]
        starts = np.flatnonzero(np.r_[True, (np.diff(owner) != 0) | (np.diff(at) != 0)])
        gathered = m.cell_cross[every]
        cross = gathered if len(starts) == len(every) else np.add.reduceat(gathered, starts, axis=0)
        sums = np.add.reduceat(m.cell_sums[every], starts, axis=0)
        rows = np.add.reduceat(m.cell_rows[every], starts)
        group_owner, group_at = owner[starts], at[starts]
        unit_first = np.searchsorted(group_owner, np.arange(len(todo) + 1))
        # Unweighted: every cell of the unit in one group (the sum of its weighted groups' sums).
        plain_sums = np.add.reduceat(sums, unit_first[:-1], axis=0)
        plain_cross = cross[unit_first[:-1]]  # a unit of one weight group (most agencies): that group's
        for k in np.flatnonzero(np.diff(unit_first) > 1).tolist():  # of several: summed (integers: exact)
            plain_cross[k] = cross[unit_first[k]:unit_first[k + 1]].sum(axis=0)
        plain = Block(plain_sums.astype(np.float64), plain_cross, every, starts[unit_first[:-1]])
        weighted = Block(sums.astype(np.float64), cross, every, starts)
        weights_known = np.bincount(group_owner, weights=group_at < 0, minlength=len(todo)) == 0
        bounds = unit_first.tolist()
        for k, unit in enumerate(todo):
            n = len(unit.rows)
            self._domains[(unit.key, False)] = Domain(
                Moments(UNWEIGHTED, np.array([n], dtype=np.int64), plain_sums[k:k + 1], plain.cross[k:k + 1],
                        {"all": n}), plain, (k, 1))
            found: Domain | None = None
            if weights_known[k]:
                a, b = bounds[k], bounds[k + 1]
                local = group_at[a:b]
                listed = local.tolist()
                groups = _groups([self._group_weight[g] for g in listed], [self._group_stratum[g] for g in listed])
                moments = Moments(groups, rows[a:b], sums[a:b], cross[a:b], {s: m.pool[s] for s in set(groups.stratum)})
                found = Domain(moments, weighted, (a, b - a))
            self._domains[(unit.key, True)] = found

    def _take(self, measured: Measured) -> None:
        """The measured state: per ballot which items it answered, its stratum and weight group; per cell
        (agency, weight group) the moments every interval is computed from."""
        self.measured = measured
        self._group_weight, self._group_stratum = measured.group_weight, measured.group_stratum
        self._group_texts = measured.group_texts
        self._strata_digests = measured.strata_digests
        self._strata_groups = measured.strata_groups
        self._selects: dict[tuple[tuple[str, ...], ...], Any] = {}
        self._estimates: dict[tuple[str, int], dict[bool, Any]] = {}
        self._terms: dict[str, list[Terms]] = {}
        self._terms_of_answered: dict[frozenset[str], list[Terms]] = {}
        self._answered: dict[str, frozenset[str]] = {}  # units' answered items, made together (_answered_all)

    def _interval_pair(self, unit: Unit, which: int) -> dict[str, Any]:
        """The unweighted estimate's interval and the weighted estimate's figure (each None where there is no
        estimate) of the unit's ``which``-th terms (:meth:`_terms_asked`)."""
        if (unit.key, which) not in self._estimates:
            self._estimate_all([unit])
        found = self._estimates[(unit.key, which)]
        return {"unweighted": found[False], "weighted": found[True]}

    def _terms_asked(self, unit: Unit) -> list[Terms]:
        """The terms whose intervals the unit's row shows: for ``share-satisfied`` each factor's then the
        overall index's; for ``points`` the criteria's (what :meth:`_share_unit` and :meth:`_points_unit`
        show, in that order)."""
        found = self._terms.get(unit.key)
        if found is None:
            if self.scheme.kind == "share-satisfied":
                answered = self._answered_items(unit)
                found = self._terms_of_answered.get(answered)
                if found is None:  # most units answered every item: their terms are made once
                    found = self._terms_of_answered[answered] = [
                        *(factor_terms(f, self.scheme, answered) for f in self.instrument.factors),
                        overall_terms(self.instrument, self.scheme, answered)]
            elif self.scheme.kind == "points":
                found = [Terms((self.instrument.criteria,), (Fraction(1),))]
            else:
                found = []
            self._terms[unit.key] = found
        return found

    def _estimate_all(self, units: Iterable[Unit]) -> None:
        """The unweighted and weighted estimates of every terms each unit asks for, those with the same terms
        and kind in one :func:`estimate_arrays` (each unit's numbers are the ones it would get alone)."""
        batches: dict[tuple[Any, bool], tuple[Terms, list[tuple[tuple[str, int], Domain]]]] = {}
        sames: dict[int, Any] = {}  # per terms (made once per answered set: few), its batch key
        units = list(units)
        self._prepare([u for u in units if u.level != "national"])
        if self.scheme.kind == "share-satisfied":  # the terms they ask follow from the items answered
            self._answered_all([u for u in units if u.key not in self._terms])
        # Units asking for the same terms (the same list: made once per answered set) are batched together.
        by_terms: dict[int, tuple[list[Terms], list[Unit]]] = {}
        for unit in units:
            asked = self._terms_asked(unit)
            by_terms.setdefault(id(asked), (asked, []))[1].append(unit)
        for asked, alike in by_terms.values():
            for unit in alike:
                for which in range(len(asked)):
                    self._estimates[(unit.key, which)] = {False: None, True: None}
            held = [unit for unit in alike if len(unit.rows)]
            of_kind = {weighted: [(unit.key, self._domain(unit, weighted)) for unit in held]
                       for weighted in (False, True)}
            for which, terms in enumerate(asked):
                if not terms.items:
                    continue
                same = sames.get(id(terms))
                if same is None:
                    same = sames[id(terms)] = (terms.items, tuple((c.numerator, c.denominator)
                                                                  for c in terms.coefficients))
                for weighted in (False, True):
                    listed = [((key, which), domain) for key, domain in of_kind[weighted] if domain is not None]
                    if listed:
                        batches.setdefault((same, weighted), (terms, []))[1].extend(listed)
        # Who answered each batch's items, per domain and weight group: every set of items at once per domain.
        asked_sets: dict[bytes, int] = {}
        set_of_batch = {}
        for batch_key, (terms, _) in batches.items():
            asked = self._select(terms.items).any(axis=1)
            set_of_batch[batch_key] = asked_sets.setdefault(asked.tobytes(), len(asked_sets))
        # Who answered each set is kept per cell with the moments: a group's count is its cells' summed.
        columns = self.measured.answering([np.frombuffer(raw, dtype=bool) for raw in asked_sets])
        counted = _answering_all((domain for _, members in batches.values() for _, domain in members),
                                 self.measured.cell_hits[:, columns])
        layouts: dict[tuple[int, ...], Layout] = {}  # the term sets of the same domains share their layout
        for batch_key, (terms, members) in batches.items():
            select, k = self._select(terms.items), set_of_batch[batch_key]
            answering = [counted[id(domain)][:, k] for _, domain in members]
            weighted = batch_key[1]
            # Who has anyone answering the terms' items: every domain's groups at once.
            sizes = [len(count) for count in answering]
            anyone = np.logical_or.reduceat(np.concatenate(answering) > 0,
                                            np.cumsum(sizes) - np.array(sizes, dtype=np.int64)).tolist()
            wanted = [(key, domain, count) for (key, domain), count, some
                      in zip(members, answering, anyone, strict=True) if some]
            domains = [domain for _, domain, _ in wanted]
            same = tuple(map(id, domains))
            layout = layouts.get(same)
            if layout is None:
                layout = layouts[same] = Layout.of([domain.moments for domain in domains])
            # Only the weighted estimate's point is shown (exactly); the unweighted one gives its interval.
            found = estimate_arrays([(domain.moments, count) for _, domain, count in wanted], select,
                                    terms.coefficients, self.population if weighted else None, lonely="certainty",
                                    exact=weighted, stack=Block.of(domains), layout=layout)
            shown = self._weighted_figures(found) if weighted else _intervals(found)
            for (key, _, _), figure in zip(wanted, shown, strict=True):
                self._estimates[key][weighted] = figure

    def _weighted_figures(self, found: Estimates) -> list[dict[str, Any] | None]:
        """Each weighted estimate as its figure (None where there is none), presented a batch at a time."""
        ci = _intervals(found)
        se = present_floats(np.sqrt(found.variance) * HUNDRED, places=4)
        deff = present_floats(found.deff, places=4)
        with np.errstate(divide="ignore", invalid="ignore"):
            effective = present_floats(np.where(found.deff > 0, found.n / found.deff, np.nan), places=1)
        shown = [d for d, (error, point) in enumerate(zip(found.errors, found.exact, strict=True))
                 if error is None and point is not None]
        # θ·100 as its reduced integer ratio (θ = n/d reduced: 100n/d reduces by gcd(100, d) alone), presented
        # a batch at a time.
        ratios = []
        for d in shown:
            n, m = found.exact[d].as_integer_ratio()  # type: ignore[union-attr]
            common = math.gcd(HUNDRED, m)
            ratios.append((n * (HUNDRED // common), m // common))
        values = present_fractions(ratios, self.scheme.rounding.rule, self.scheme.rounding.places)
        out: list[dict[str, Any] | None] = [None] * len(found.errors)
        counts = found.n.tolist()
        for d, (n, m), value in zip(shown, ratios, values, strict=True):
            out[d] = {"value": value, "exact": f"{n}/{m}", "n": counts[d], "se": se[d], "ci": ci[d], "deff": deff[d],
                      "effective_n": effective[d]}
        return out

    # ---- one unit -----------------------------------------------------------------------------
    def _index(self, value: Fraction | None, n: int, pair: dict[str, Any] | None = None,
               simple: tuple[int, int] | None = None) -> dict[str, Any]:
        if pair is not None and simple is None:
            return self._shown(self.present(value), exact(value), n, pair)
        out: dict[str, Any] = {"value": self.present(value), "exact": exact(value), "n": n}
        if simple is not None:
            out["ci"], out["ci_method"] = (_ci(wilson(*simple)) if simple[1] else None), "wilson"
        return out

    @staticmethod
    def _shown(value: str | None, exact_value: str | None, n: int, pair: dict[str, Any]) -> dict[str, Any]:
        """A figure with its Taylor interval pair (:meth:`_interval_pair`), from its value and exact text presented
        already (None where there is none): what :meth:`_index` makes of a fraction."""
        return {"value": value, "exact": exact_value, "n": n, "ci": pair["unweighted"], "ci_method": "taylor",
                "weighted": pair["weighted"]}

    def _averaged(self, ratios: ShareRatios | None) -> list[list[tuple[str | None, str | None]] | None] | None:
        """Per unit, its factor figures then its overall figure as (value, exact) texts, from
        :func:`share_values_many` — presented a batch at a time (:func:`present_ratios`, the rounding of
        :meth:`present`), each exact ratio written as :func:`exact` writes its fraction. None for a unit whose
        numbers int64 could not hold (and for all, without ratios): its figures are made one by one."""
        if ratios is None:
            return None
        numerators = np.stack([c[0] for c in (*ratios.factors, ratios.overall)], axis=1)
        denominators = np.stack([c[1] for c in (*ratios.factors, ratios.overall)], axis=1)
        shown = (denominators > 0) & ratios.held[:, None]
        listed_n, listed_d = numerators[shown], denominators[shown]
        rounding = self.scheme.rounding
        values = iter(present_ratios(listed_n, listed_d, rounding.rule, rounding.places))
        exacts = iter([f"{a}/{b}" for a, b in zip(listed_n.tolist(), listed_d.tolist(), strict=True)])
        out: list[list[tuple[str | None, str | None]] | None] = []
        for held, row in zip(ratios.held.tolist(), shown.tolist(), strict=True):
            out.append([(next(values), next(exacts)) if some else (None, None) for some in row] if held else None)
        return out

    def _simple(self, kind: str, hits: int, n: int) -> dict[str, Any]:
        """An item's figure (its share with the Wilson interval) or an expectation's (its share), from
        hits out of n: the same figure for the same counts, so it is made once per process and shared by
        every row showing it (rows are never written into in place, see :meth:`_unit_row`)."""
        key = (kind, hits, n)
        found = self._simples.get(key)
        if found is None:
            self._make_simples([key])
            found = self._simples.get(key)
        return found  # type: ignore[no-any-return]

    def _make_simples(self, keys: Sequence[tuple[str, int, int]]) -> None:
        """Make the figures of ``keys`` (kind, hits, n) together (:func:`simple_figures`) and keep them."""
        rounding = self.scheme.rounding
        for key, figure in zip(keys, simple_figures(keys, rounding.rule, rounding.places), strict=True):
            self._simples.put(key, figure)

    def _share_bodies(self, units: Sequence[Unit]) -> dict[str, dict[str, Any]]:
        """The ``share-satisfied`` figures of ``units`` (each its :meth:`_share_unit`), made together: every
        unit's item counts in one :class:`TallyMatrix`, and the item and expectation figures not kept yet in
        one batch (a growing campaign needs thousands of new ones a refresh). The stores keep at least twice
        what this computation shows in each generation, so none of it is dropped before its rows are written
        (at a million counted ballots most of a refresh's figures are new ones). The unit's estimates are
        asked for here (:meth:`_interval_pair`): estimate the units together first (:meth:`_estimate_all`)."""
        instrument, scheme = self.instrument, self.scheme
        plan = SharePlan.of(instrument)
        criteria, options = range(len(instrument.criteria)), instrument.expectation_options
        matrix = TallyMatrix([unit.tallies for unit in units], plan.items, instrument.satisfied_levels)
        hits, valid = matrix.hits.tolist(), matrix.valid.tolist()
        counted = {key: matrix.count(key).tolist()
                   for key in ("criteria", "factor-overall", *(f[1] for f in plan.factors))}
        expect = matrix.count("expect").tolist()
        chosen = [matrix.count(f"expect:{code}").tolist() for code in options]
        keys = [[("item", h[k], v[k]) for k in criteria] for h, v in zip(hits, valid, strict=True)]
        expects = [[("expect", c[u], expect[u]) for c in chosen] for u in range(len(units))]
        asked = dict.fromkeys(key for listed in (*keys, *expects) for key in listed)
        self._simples.limit = max(self._simples.limit, 2 * len(asked))
        simples = self._simples
        shown = {key: simples.get(key) for key in asked}
        wanted = [key for key, figure in shown.items() if figure is None]
        if wanted:
            self._make_simples(wanted)
            shown.update((key, simples.get(key)) for key in wanted)
        get = shown.get
        codes, factor_codes = instrument.criteria, [f.code for f in instrument.factors]
        averaged = self._averaged(share_values_many(instrument, scheme, matrix.hits, matrix.valid))
        factor_n = [counted[key] for _, key, _, _ in plan.factors]
        overall_n = counted["criteria"]
        bodies = {}
        for u, unit in enumerate(units):
            presented = averaged[u] if averaged is not None else None
            if presented is not None:  # the factor and overall figures made together
                factors = {code: self._shown(*presented[which], factor_n[which][u], self._interval_pair(unit, which))
                           for which, code in enumerate(factor_codes)}
                overall = self._shown(*presented[-1], overall_n[u], self._interval_pair(unit, len(factor_codes)))
            else:
                factors_of, overall_of = share_values(instrument, scheme, hits[u], valid[u],
                                                      lambda key, u=u: counted[key][u])  # type: ignore[misc]
                factors = {}
                for which, code in enumerate(factor_codes):
                    ix = factors_of[code]
                    factors[code] = self._index(ix.value, ix.n, self._interval_pair(unit, which))
                overall = self._index(overall_of.value, overall_of.n,
                                      self._interval_pair(unit, len(factor_codes)))
            items = dict(zip(codes, map(get, keys[u]), strict=True))
            expectations = dict(zip(options, map(get, expects[u]), strict=True))
            for part, asked_for in ((items, keys[u]), (expectations, expects[u])):
                if None in part.values():  # dropped from the store meanwhile (never while its limit holds them)
                    part.update((code, self._simple(*key)) for code, key in zip(part, asked_for, strict=True)
                                if part[code] is None)
            bodies[unit.key] = {"overall": overall, "factors": factors, "items": items, "expectations": expectations}
        return bodies

    def _answered_all(self, units: Sequence[Unit]) -> None:
        """:meth:`_answered_items` of many units at once (one pass over their cells), kept for
        :meth:`_terms_asked`."""
        todo = [u for u in units if u.key not in self._answered]
        cells = [self._cells(u) for u in todo]
        sizes = np.array([len(c) for c in cells], dtype=np.int64)
        held = np.flatnonzero(sizes).tolist()
        for k in np.flatnonzero(sizes == 0).tolist():
            self._answered[todo[k].key] = frozenset()
        if not held:
            return
        given = self.measured.cell_given[np.concatenate([cells[k] for k in held])]
        rows = np.logical_or.reduceat(given, np.cumsum(sizes[held]) - sizes[held], axis=0)
        sets: dict[bytes, frozenset[str]] = {}
        for k, row in zip(held, rows, strict=True):
            raw = row.tobytes()
            found = sets.get(raw)
            if found is None:
                found = sets[raw] = frozenset(self.items[i] for i in np.flatnonzero(row).tolist())
            self._answered[todo[k].key] = found

    def _answered_items(self, unit: Unit) -> frozenset[str]:
        """The items someone in the unit answered: of :func:`answered_items` (every answered code), what
        the terms ask about — they only ever ask about the items measured."""
        if unit.key not in self._answered:
            self._answered_all([unit])
        return self._answered[unit.key]

    def _share_unit(self, unit: Unit) -> dict[str, Any]:
        found = self._bodies.pop(unit.key, None)
        return self._share_bodies([unit])[unit.key] if found is None else found

    def _points_unit(self, unit: Unit) -> dict[str, Any]:
        scores = points_scores(self.instrument, self.scheme, unit.counts)
        pair = self._interval_pair(unit, 0)
        overall = self._index(scores.tally.percent, unit.counts["criteria"], pair)
        rounding = self.scheme.rounding
        factor_points = presented_factor_points(scores, rounding)
        factors = {f.factor: {"points": None if factor_points[f.factor] is None else str(factor_points[f.factor]),
                              "exact": exact(f.points), "max": str(Decimal(f.max_points.numerator)
                                                                    / Decimal(f.max_points.denominator)),
                              "rate": self.present(f.tally.percent), "scored": f.scored}
                   for f in scores.factors}
        total_max = scores.total_max_points
        return {"overall": overall, "factors": factors, "items": {}, "expectations": {},
                "points": {"achieved": scores.tally.achieved, "maximum": scores.tally.maximum,
                           "total": str(presented_total(scores, rounding)), "exact_total": exact(scores.exact_total),
                           "max_total": str(Decimal(total_max.numerator) / Decimal(total_max.denominator))}}

    def _online_unit(self, unit: Unit, rated: Sequence[dict[str, Any]]) -> dict[str, Any]:
        scores = score_online_766([Dossier(r["rated_unsatisfied"], r["complained"], r["overdue"]) for r in rated], [])
        bad = sum(bool(r["rated_unsatisfied"] or r["complained"] or r["overdue"]) for r in rated)
        overall = self._index(scores.dossier_satisfaction, scores.dossiers, simple=(scores.dossiers - bad,
                                                                                     scores.dossiers))
        return {"overall": overall, "factors": {}, "items": {}, "expectations": {},
                "online766": {"dossiers": scores.dossiers, "bad": bad}}

    # ---- the document ---------------------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        head, ordered = self._parts()
        return {**head, "units": ordered}

    def text(self) -> tuple[str, dict[str, Any]]:
        """The document as canonical JSON (``canonical.dumps(self.document())``, byte for byte) and the
        document. Each row's text is kept (:attr:`texts`) with the memo row it copies, its suppression and
        its rank — all that makes it — so the next computation writes again only the rows whose text changed,
        not the whole document: most of a refresh's rows are the previous one's."""
        head, ordered = self._parts()
        parts = []
        for row in ordered:
            key, base = row["key"], self._bases.get(row["key"])
            made = (row["suppressed"], row.get("rank"))
            found = self._previous_texts.get(key)
            if found is not None and base is not None and found[0] is base and found[1] == made:
                written = found[2]
            else:
                written = _row_text(row)
            if base is not None:
                self.texts[key] = (base, made, written)
            parts.append(written)
        outer = canonical.dumps({**head, "units": []})
        if outer.count(_UNITS) != 1:
            raise AssertionError("the document's units cannot be placed in its text")  # a key named like it
        before, after = outer.split(_UNITS)
        return f"{before}\"units\":[{','.join(parts)}]{after}", {**head, "units": ordered}

    def _parts(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The document's fields but its units, and its units' rows in order."""
        kind = self.scheme.kind
        rows: dict[str, dict[str, Any]] = {}
        if kind == "online-766":
            self._online_units()
        digests = {unit.key: self._inputs_digest(unit) for unit in self.units
                   if unit.level != "national" and kind != "online-766"}
        changed = [unit for unit in self.units if unit.level != "national"
                   and not self._reusable(unit, digests.get(unit.key))]
        self._estimate_all(changed)
        if kind == "share-satisfied":
            self._bodies = self._share_bodies(changed)
        for unit in self.units:
            if unit.level != "national":
                rows[unit.key] = self._unit_row(unit, digests.get(unit.key))
        rows[NATIONAL] = self._national(rows)
        self._suppress(rows)
        self._rank(rows)
        ordered = [rows[u.key] for u in self.units if u.key in rows]
        return {"campaign_id": self.basis.campaign_id, "year": self.basis.year,
                "scheme": {"id": self.basis.scheme_ref[0], "version": self.basis.scheme_ref[1], "kind": kind,
                           "rounding": {"rule": self.scheme.rounding.rule, "places": self.scheme.rounding.places}},
                "instrument": {"id": self.basis.instrument_ref[0], "version": self.basis.instrument_ref[1]},
                "small_cell_n": self.scheme.small_cell_n, "national_rule": self.scheme.national_index,
                "weights": "adjusted" if self.population is not None else "design"}, ordered

    def _reusable(self, unit: Unit, digest_of: bytes | None) -> bool:
        previous = self._previous.get(unit.key)
        return digest_of is not None and previous is not None and previous[0] == digest_of

    def _unit_row(self, unit: Unit, digest_of: bytes | None) -> dict[str, Any]:
        """The unit's row before suppression and ranks: computed, or the previous computation's copy when
        everything it is computed from is the same (:meth:`_inputs_digest`), so a refresh after a change
        recomputes only the units the change reached — the agencies whose ballots or weights changed, their
        provinces, and units sharing a stratum with them — and the nation from its provinces as always."""
        kind = self.scheme.kind
        small: dict[str, dict[str, Any]] | None = None
        if self._reusable(unit, digest_of):
            _, row, small = self._previous[unit.key]
        else:
            self.recomputed.append(unit.key)
            if kind == "share-satisfied":
                body = self._share_unit(unit)
            elif kind == "points":
                body = self._points_unit(unit)
            else:
                body = self._online_unit(unit, unit.info.get("rated", []))
            row = {"key": unit.key, "level": unit.level, "id": unit.unit_id, "parent": unit.parent,
                   **{k: v for k, v in unit.info.items() if k != "rated"},
                   "ballots": unit.tallies["ballots"] if kind != "online-766" else body["online766"]["dossiers"],
                   **body}
            small = _small_parts(row, self.scheme.small_cell_n)
        if digest_of is not None:
            self.memo[unit.key] = (digest_of, row, small)
            self._bases[unit.key] = row
            self._small[unit.key] = small
        # Suppression and ranks write into the document's rows, never the memo's: they set keys of the row and
        # of its overall figure, and copy a part before blanking a figure in it (see :meth:`_suppress`).
        return {**row, "overall": dict(row["overall"])}

    def _inputs_digest(self, unit: Unit) -> bytes:
        """A digest of everything a unit's row is computed from: the campaign's definitions and strata
        populations, the unit's identity, place, names and tallies (:meth:`_tally_digest`), its ballots (ids,
        per-item y and x, stratum, weight) and, for the weighted estimates, every ballot of the strata it
        draws from with their weight groups in the order the estimate sees them. A counted ballot's answers
        never change (the projection writes them once; voiding removes the ballot), so its id and measures
        stand for it."""
        h = hashlib.sha256(self._campaign_digest)
        h.update(orjson.dumps([unit.key, unit.level, unit.unit_id, unit.parent,
                               sorted((k, v) for k, v in unit.info.items() if k != "rated")], default=repr))
        # Its tallies (an agency's digest is kept with them; a province's are its agencies', see
        # :meth:`_tally_digest`) and its ballots (each one's id, stratum, weight and measures: a province's rows are
        # its agencies' rows, one agency after another), both per agency: their digests, made when they changed.
        m = self.measured
        members = [unit] if unit.level == "agency" else self._members.get(unit.key, [])
        strata: set[int] = set()
        for member in members:
            name = member.unit_id.encode()
            h.update(b"%d:%s%s%s" % (len(name), name, self._tally_digest(member),
                                     m.agency_digests.get(member.unit_id, b"")))
            strata.update(m.agency_strata.get(member.unit_id, ()))
        for s in sorted(strata):
            h.update(self._strata_digests[s])
        groups = sorted(set().union(*(self._strata_groups[s] for s in strata)))
        h.update(orjson.dumps([(self._group_stratum[g], self._group_texts[g]) for g in groups]))
        return h.digest()

    def _tally_digest(self, unit: Unit) -> bytes:
        """A digest of an agency's tallies, kept in the store handed in (the engine keeps it with the agencies'
        tallies) beside the very tallies object it was made of, and used again while the agency holds that
        object: tallies are never changed in place — a change gives the agency a new object
        (:meth:`~sipas_scoring.application.figures_engine.TallyDeltas.apply`). A province's tallies are its
        agencies' summed: :meth:`_inputs_digest` takes its agencies' digests."""
        found = self._tally_digests.get(unit.unit_id)
        if found is None or found[0] is not unit.tallies:
            found = self._tally_digests[unit.unit_id] = (  # canonical JSON: a third of the time of repr
                unit.tallies, hashlib.sha256(to_json(dict(sorted(unit.tallies.items())))).digest())
        return found[1]

    def _digest_campaign(self) -> None:
        """Everything every unit's row depends on: the definitions and the strata populations. (Per stratum,
        the digest of its ballots and the weight groups it holds come with the measured state: campaign-wide
        indices of strata and groups, numbered as first met, move when unrelated ballots come or go, so they
        never enter a digest; the order they give a unit's groups does, see :meth:`_inputs_digest`.)"""
        self._campaign_digest = hashlib.sha256(repr((
            self.basis.campaign_id, self.basis.instrument_ref, self.basis.scheme_ref, self.scheme.kind,
            self.items, None if self.population is None else sorted(self.population.items()),
        )).encode()).digest()

    def _online_units(self) -> None:
        """online-766 counts dossiers, not ballots: place them under their agency (by code)."""
        by_code = {info["code"]: agency_id for agency_id, info in self.agencies.items() if info.get("code")}
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in self.rated:
            grouped[by_code.get(r["agency_code"], f"code:{r['agency_code']}")].append(r)
        provinces: dict[str, list[Unit]] = defaultdict(list)
        for agency_id in sorted(grouped):
            info = self.agencies.get(agency_id, {})
            province = info.get("province") or grouped[agency_id][0]["province"] or self.basis.province or "--"
            provinces[province].append(Unit(f"A:{agency_id}", "agency", agency_id, f"P:{province}", Counter(),
                                            {"code": info.get("code") or grouped[agency_id][0]["agency_code"],
                                             "name": info.get("name"), "province": province,
                                             "rated": grouped[agency_id]}))
        self.units = [Unit(NATIONAL, "national", NATIONAL, None, Counter())]
        for province in sorted(provinces):
            members = provinces[province]
            self.units.append(Unit(f"P:{province}", "province", province, NATIONAL, Counter(),
                                   {"province": province, "name": self.province_names.get(province),
                                    "rated": [r for u in members for r in u.info["rated"]]}))
            self.units.extend(members)

    def _national(self, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Mean of province indices (the Ministry's rule); its interval treats provinces as independent."""
        provinces = [r for r in rows.values() if r["level"] == "province"]
        values = [Fraction(*map(int, r["overall"]["exact"].split("/"))) for r in provinces if r["overall"]["exact"]]
        value = mean(values)
        variances = []
        for r in provinces:
            source = (r["overall"].get("weighted") or {}).get("se") or None
            if source is None and r["overall"].get("ci"):
                low, high = (float(x) for x in r["overall"]["ci"])
                source = str((high - low) / (2 * z_value()))
            if r["overall"]["exact"] and source is not None:
                variances.append(float(source) ** 2)
        ci = None
        if value is not None and len(variances) == len(values):
            half = z_value() * math.sqrt(sum(variances)) / len(values)
            ci = [present_text(max(0.0, float(value) - half)), present_text(min(100.0, float(value) + half))]
        n = sum(r["overall"]["n"] for r in provinces)
        return {"key": NATIONAL, "level": "national", "id": NATIONAL, "parent": None,
                "ballots": sum(r["ballots"] for r in provinces), "provinces": len(values),
                "overall": {"value": self.present(value), "exact": exact(value), "n": n, "ci": ci,
                            "ci_method": "mean_of_provinces"},
                "factors": {}, "items": {}, "expectations": {}}

    def _suppress(self, rows: dict[str, dict[str, Any]]) -> None:
        cells = [Cell(key, r["overall"]["n"], r["parent"]) for key, r in rows.items()]
        hidden = suppress(cells, self.scheme.small_cell_n)
        for key, r in rows.items():
            reason = hidden.reasons.get(key)
            r["suppressed"] = reason
            if reason is not None:
                _blank(r)
                continue
            small = self._small[key] if key in self._small else _small_parts(r, self.scheme.small_cell_n)
            if small:
                r.update(small)

    def _rank(self, rows: dict[str, dict[str, Any]]) -> None:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows.values():
            if r["level"] != "national":
                groups[r["level"] if r["level"] == "province" else r["parent"]].append(r)
        for members in groups.values():
            inputs = []
            for r in members:
                figure = r["overall"]
                if r["suppressed"] or figure["exact"] is None:
                    continue
                ci = figure.get("ci")  # the interval shown beside the figure ranked, never another one
                numerator, denominator = figure["exact"].split("/")
                estimate = int(numerator) / int(denominator)  # correctly rounded, as float(Fraction(...)) is
                low, high = (min(float(ci[0]), estimate), max(float(ci[1]), estimate)) if ci else (estimate, estimate)
                inputs.append(RankInput(r["key"], estimate, low, high))
            ranked = {x.key: x for x in rank_with_intervals(inputs)}
            for r in members:
                found = ranked.get(r["key"])
                r["rank"] = None if found is None else {"rank": found.rank, "best": found.best,
                                                        "worst": found.worst, "of": found.of}


_ROW_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | \
    orjson.OPT_PASSTHROUGH_SUBCLASS


def _row_text(row: dict[str, Any]) -> str:
    """``canonical.dumps(row)``, byte for byte, written by orjson (a national refresh writes some thousand
    rows of a few KB: about a quarter of the time). For what rows hold — dictionaries, lists, strings,
    integers, None; never a float — its output is canonical JSON's (keys sorted by code point, UTF-8, the
    same escapes: a property test holds the two equal); whatever it would write otherwise (a datetime, a
    dataclass, a subclass, an integer past 64 bits, a lone surrogate) it refuses, and the row is written
    by :func:`canonical.dumps`."""
    try:
        return orjson.dumps(row, option=_ROW_OPTIONS).decode()
    except TypeError:
        return canonical.dumps(row)


def _small_parts(row: Mapping[str, Any], small: int) -> dict[str, dict[str, Any]] | None:
    """The row's parts holding a sub-cell too small to show, each with those figures blanked (a small sub-cell
    never shows, whatever its unit's suppression); None when there is none. Made once per row computed, and
    kept with it in the memo."""
    out = {}
    for part in ("factors", "items", "expectations"):
        if any(isinstance(f, dict) and f.get("n", small) < small for f in row[part].values()):
            blanked = _blanked if part == "factors" else _blanked_shared
            out[part] = {code: blanked(f) if isinstance(f, dict) and f.get("n", small) < small else f
                         for code, f in row[part].items()}
    return out or None


def _blanked(figure: dict[str, Any]) -> dict[str, Any]:
    """A copy of a sub-cell's figure, blanked as too small to show."""
    out = dict(figure)
    _blank_figure(out)
    out["suppressed"] = "insufficient_sample"
    return out


_BLANKED = Kept(SIMPLES_KEPT)
"""Item and expectation figures blanked (:func:`_blanked_shared`), by the id of the figure blanked, beside it."""


def _blanked_shared(figure: dict[str, Any]) -> dict[str, Any]:
    """:func:`_blanked` of an item or expectation figure — made once per figure and shared like it (see
    :meth:`CampaignFigures._simple`): a national refresh blanks thousands of small sub-cells, most of them
    the same few figures. The figure is kept beside its copy, so no other takes its id meanwhile."""
    found = _BLANKED.get(id(figure))
    if found is None:
        found = (figure, _blanked(figure))
        _BLANKED.put(id(figure), found)
    return found[1]  # type: ignore[no-any-return]


def _blank_figure(figure: dict[str, Any]) -> None:
    for key in ("value", "exact", "ci", "weighted", "points", "rate"):
        if key in figure:
            figure[key] = None


def _blank(row: dict[str, Any]) -> None:
    _blank_figure(row["overall"])
    row["factors"], row["items"], row["expectations"] = {}, {}, {}
    row.pop("points", None)
    row.pop("online766", None)


def digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical.dumpb(dict(document))).hexdigest()


def province_of(document: Mapping[str, Any]) -> str | None:
    """The one province a document covers, or None (a national campaign, or no units yet)."""
    provinces = {row["id"] for row in document["units"] if row["level"] == "province"}
    return next(iter(provinces)) if len(provinces) == 1 and "--" not in provinces else None


@dataclass
class Figures:
    """A computed document: its canonical JSON text (stored as it is), digest and province; the dictionary
    is parsed from the text only when asked for (the figures worker stores the text and never needs it), so
    whoever holds it owns it."""

    text: str
    digest: str
    province: str | None
    parsed: dict[str, Any] | None = None

    @property
    def document(self) -> dict[str, Any]:
        if self.parsed is None:
            self.parsed = json.loads(self.text)
        return self.parsed

    @classmethod
    def of(cls, reply: Reply) -> Figures:
        assert reply.text is not None
        return cls(reply.text, reply.digest, reply.province)


_LOCAL = LocalRunner()
_runner: Runner = _LOCAL
"""Where documents are computed: in this process unless the figures worker installed its process."""


def use_runner(runner: Runner | None) -> None:
    """Compute documents with ``runner`` from now on (None: in this process again)."""
    global _runner
    _runner = runner or _LOCAL


async def compute(conn: AsyncConnection, basis: CampaignBasis) -> dict[str, Any]:
    return (await figures_of(conn, basis)).document


async def tally_revision(conn: AsyncConnection, campaign_id: str) -> str | None:
    return (await conn.execute(select(tally_revisions.c.revision)
                               .where(tally_revisions.c.campaign_id == campaign_id))).scalar()


async def figures_of(conn: AsyncConnection, basis: CampaignBasis, positions: Mapping[str, int] | None = None
                     ) -> Figures:
    """The campaign's figures, as of ``conn``'s snapshot.

    With ``positions`` (the consumers' positions read in the same snapshot) the engine keeps the campaign's
    measured ballots and tallies as of the ballots stream's position, and the next call reads and sends only
    the ballots accepted or voided after it (``sc_ballots.accepted_position``/``voided_position``). Their
    answer codes are the tallies' change, as the tallies projection made it (:meth:`Codebook.tallies` is
    :func:`ballot_tallies` summed); an agency with such a ballot without codes of this instrument (counted
    before migration 0005) has its tallies read again. Every other change of the tallies is a recount,
    which moves the campaign's tally revision. A change of the definitions, of another producer's position
    (units, weights, names), of the weights or of the tally revision, a position that went back (a rebuild),
    a state the engine no longer holds, or a count that disagrees makes it read everything again. The
    document is the same either way."""
    runner, campaign_id = _runner, basis.campaign_id
    key = (conn.engine.url.render_as_string(hide_password=True), campaign_id)
    at = None if positions is None else positions.get("ballots")
    if at is None:
        context = await load_context(conn, campaign_id)
        counted = await load_counted(conn, basis, context.adjusted)
        return Figures.of(await runner.run(Request(key, basis, context, added=counted)))
    adjusted = await load_weights(conn, campaign_id)
    fingerprint = fingerprint_of(basis, positions or {}, adjusted, await tally_revision(conn, campaign_id))
    async with runner.lock(key):
        held = held_after(runner.held.get(key), fingerprint, at)
        if held is not None:
            # The ballots accepted or voided since: those newly counted with what measuring them needs, in
            # the same statement (the indexes of migration 0008 find them without visiting the others).
            b = ballots.c
            changed = (await conn.execute(_counted_query(basis).add_columns(
                b.status, case((_coded(Codebook.of(basis.instrument)), b.answer_codes), else_=None).label("coded"))
                .where((b.accepted_position > held.at) | (b.voided_position > held.at)))).all()
            removed, new, deltas, unknown = [], [], TallyDeltas(), set()
            for row in changed:
                if row.status == "accepted" and row.ballot_id not in held.ids:
                    new.append(row)
                elif row.status != "accepted" and row.ballot_id in held.ids:
                    removed.append(row.ballot_id)
                else:
                    continue  # counted and still counted, or come and gone since: the tallies are as they were
                if row.coded is None:
                    unknown.add(row.agency_id)
                else:
                    deltas.add(row.agency_id, bytes(row.coded), row.status == "accepted")
            retallied = sorted(unknown)
            context = await load_context(conn, campaign_id, adjusted, retallied, named=deltas.agencies())
            added = _batch_of(basis, new, adjusted)
            reply = await _checked(conn, campaign_id, runner.run(Request(
                key, basis, context, fingerprint, at, held.at, added, removed, retallied=retallied,
                deltas=deltas.without(unknown))))
            if reply.text is not None:
                held.ids.difference_update(removed)
                held.ids.update(added.ids)
                held.at = at
                runner.keep(key, held)
                return Figures.of(reply)
        context = await load_context(conn, campaign_id, adjusted)
        counted = await load_counted(conn, basis, adjusted)
        reply = await runner.run(Request(key, basis, context, fingerprint, at, None, counted))
        runner.keep(key, Held(fingerprint, at, set(counted.ids)))
        return Figures.of(reply)


async def _checked(conn: AsyncConnection, campaign_id: str, computing: Awaitable[Reply]) -> Reply:
    """The engine's reply to a delta, checked against the database: the ballots the state holds must be as many
    as ``conn``'s snapshot counts (else a delta went astray: the reply is refused, ``text=None``, and the
    caller sends everything). The count — a scan of the campaign's ballots, the one read of a refresh that
    grows with the campaign — runs on the server while the engine computes, not before it."""
    task = asyncio.ensure_future(computing)
    try:
        count = (await conn.execute(select(func.count()).select_from(ballots).where(
            ballots.c.campaign_id == campaign_id, ballots.c.status == "accepted"))).scalar_one()
    except BaseException:
        # An engine in another process is stopped half-way and starts afresh, holding nothing; one in a thread
        # may still apply the delta, and then refuses the next one (its state is no longer at ``since``).
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    reply = await task
    if reply.text is not None and reply.held != count:
        log.warning("figures.state_disagrees", campaign_id=campaign_id, held=reply.held, counted=count)
        return Reply(None)
    return reply


def units_of(document: Mapping[str, Any], level: str | None = None, unit: str | None = None,
             province: str | None = None) -> Iterable[dict[str, Any]]:
    for row in document["units"]:
        if level and row["level"] != level:
            continue
        if unit and row["id"] != unit:
            continue
        if province and row.get("province") != province and row["id"] != province:
            continue
        yield row
