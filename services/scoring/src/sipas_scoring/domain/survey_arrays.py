"""The estimator of :mod:`survey`, from sums kept per weight group: the same numbers, at a cost that
follows the number of groups and items, not of ballots — so a refresh of every unit of a national round
costs what its changes cost.

:func:`survey.estimate_ratios` is the reference (pure Python, checked against R's ``survey``); this is
its twin over *moments*, and a property test keeps the two equal. A weight group is the ballots of one
stratum sharing one weight. Per group it takes, over the ballots' per-item values v = (y₁…y_I, x₁…x_I):

- ``rows``: how many ballots; ``answering``: how many answered any item of the estimate's terms;
- ``sums``: Σ v (integers, so exact); ``cross``: Σ v vᵀ (integers held in float64, exact below 2**53).

A term sums its items' columns (``select``, items by terms). Point estimates stay exact: term totals are
integer sums per group, multiplied by each group's exact weight and added as fractions. The variance is
in floats, as in the reference. With the linearised value z = a·v (a from the coefficients, ratios and
totals), each group's Σ z = a·Σv and Σ z² = aᵀ(Σ v vᵀ)a, so a stratum's

    Σ_i (u_i - ū_h)² = Σ_g w_g² Σ z² - (Σ_g w_g Σ z)² / n_h        (u = w z)

where n_h counts every ballot of the stratum in the domain's pool, those outside the unit (u = 0) too.
The inputs are exact integers, so the same counted ballots give the same floats however the sums were
reached (from scratch, or ballot by ballot as they come and go).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sipas_scoring.domain.errors import DesignError
from sipas_scoring.domain.intervals import Interval, z_value
from sipas_scoring.domain.shares import EXACT_FLOAT
from sipas_scoring.domain.survey import LonelyStratum, SurveyEstimate

NO_SPREAD = 1e-12
"""A spread this small relative to the scale of the sums it is the difference of (Σ (|a|·v)², see
:func:`estimate_moments`) is rounding noise: every ballot alike."""
_SAFE_INT = 2**62


@dataclass(frozen=True)
class Groups:
    """Who shares a weight: ``weight[g]`` and ``stratum[g]`` of group ``g``."""

    weight: Sequence[Fraction]
    stratum: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.weight) != len(self.stratum):
            raise DesignError("one stratum per weight group")
        if any(w <= 0 for w in self.weight):
            raise DesignError("a weight must be positive")

    @cached_property
    def floats(self) -> NDArray[np.float64]:
        return np.array([float(w) for w in self.weight], dtype=np.float64)

    @cached_property
    def scaled(self) -> tuple[int, list[int]]:
        """(the weights' common denominator, each weight times it: integers)."""
        common = math.lcm(*(w.denominator for w in self.weight)) if self.weight else 1
        return common, [w.numerator * (common // w.denominator) for w in self.weight]

    @cached_property
    def strata(self) -> tuple[list[str], NDArray[np.int64]]:
        """(the strata's names sorted, each group's index among them)."""
        names = sorted(set(self.stratum))
        code = {name: i for i, name in enumerate(names)}
        return names, np.array([code[s] for s in self.stratum], dtype=np.int64)


UNWEIGHTED = Groups((Fraction(1),), ("all",))


@dataclass(frozen=True)
class Moments:
    """A domain's ballots as sums per weight group (see the module's docstring)."""

    groups: Groups
    rows: NDArray[np.int64]
    """(G,) ballots per group in the domain."""
    sums: NDArray[np.int64]
    """(G, 2I) Σ (y, x) per item."""
    cross: NDArray[np.float64]
    """(G, 2I, 2I) Σ (y, x)(y, x)ᵀ, integers."""
    pool: Mapping[str, int]
    """Per stratum, its ballots in the pool the domain is drawn from (the domain's own and the others)."""

    @cached_property
    def total(self) -> int:
        """The domain's ballots (every term set of the domain asks for it)."""
        return int(self.rows.sum())

    @cached_property
    def sampled(self) -> int:
        """The ballots of the domain's strata in the pool (every term set of the domain asks for it)."""
        return sum(self.pool.get(s, 0) for s in self.groups.strata[0])

    @classmethod
    def of_rows(cls, group: NDArray[np.int64], groups: Groups, y: NDArray[np.int64], x: NDArray[np.int64],
                pool: Mapping[str, int] | None = None) -> Moments:
        """From per-ballot rows (``group`` per row; ``y``/``x`` rows by items), e.g. for a test; ``pool``
        defaults to the rows of each stratum here."""
        count = len(groups.weight)
        v = np.hstack([y, x]).astype(np.int64)
        sums = np.zeros((count, v.shape[1]), dtype=np.int64)
        np.add.at(sums, group, v)
        vf = v.astype(np.float64)
        cross = np.stack([vf[group == g].T @ vf[group == g] for g in range(count)]) if count else \
            np.zeros((0, v.shape[1], v.shape[1]))
        rows = np.bincount(group, minlength=count).astype(np.int64)
        if pool is None:
            found: dict[str, int] = {}
            for g, s in enumerate(groups.stratum):
                found[s] = found.get(s, 0) + int(rows[g])
            pool = found
        return cls(groups, rows, sums, cross, pool)


@dataclass
class Layout:
    """What :func:`estimate_arrays` needs of a list of domains' moments whatever the terms: their groups'
    sums, exact and float weights and strata laid end to end. Made once (:meth:`of`) and handed to every
    term set estimated over the same domains, so the per-domain work is not done again per term set; a
    subset's (:meth:`take`) is laid out anew, in the same order, so each domain's numbers are unchanged."""

    parts: Sequence[Moments]
    total: NDArray[np.int64]
    """Per domain: its ballots."""
    width: NDArray[np.int64]
    """Per domain: its sums' columns (2I)."""
    sizes: NDArray[np.int64]
    """Per domain: its groups."""
    starts: NDArray[np.int64]
    owner: NDArray[np.int64]
    """Per group: its domain."""
    scaled: list[int]
    """Per group: its weight times its domain's common denominator (integers)."""
    largest: int
    commons: NDArray[np.float64]
    weight: NDArray[np.float64]
    """Per group: its weight in floats."""
    widths: NDArray[np.int64]
    """Per domain: its strata."""
    pair: NDArray[np.int64]
    """Per group: its (domain, stratum) among every domain's strata, one domain after another."""
    names: list[str]
    """Per (domain, stratum): the stratum's name."""
    n_h: NDArray[np.float64]
    """Per (domain, stratum): the stratum's ballots in the domain's pool."""
    sampled: NDArray[np.float64]
    _frames: tuple[Mapping[str, int], NDArray[np.float64], NDArray[np.float64]] | None = None

    @classmethod
    def of(cls, parts: Sequence[Moments]) -> Layout:
        sizes = np.array([len(m.rows) for m in parts], dtype=np.int64)
        widths = np.array([len(m.groups.strata[0]) for m in parts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(widths)])
        scaled = [w for m in parts for w in m.groups.scaled[1]]
        return cls(
            parts=parts,
            total=np.array([m.total for m in parts], dtype=np.int64),
            width=np.array([m.sums.shape[1] for m in parts], dtype=np.int64),
            sizes=sizes,
            starts=np.cumsum(sizes) - sizes,
            owner=np.repeat(np.arange(len(parts), dtype=np.int64), sizes),
            scaled=scaled,
            largest=max(map(abs, scaled), default=0),
            commons=np.array([m.groups.scaled[0] for m in parts], dtype=np.float64),
            weight=np.concatenate([m.groups.floats for m in parts]) if parts else np.zeros(0),
            widths=widths,
            pair=(np.concatenate([m.groups.strata[1] + offsets[i] for i, m in enumerate(parts)]) if parts
                  else np.zeros(0, dtype=np.int64)),
            names=[name for m in parts for name in m.groups.strata[0]],
            n_h=np.array([m.pool.get(name, 0) for m in parts for name in m.groups.strata[0]], dtype=np.float64),
            sampled=np.array([m.sampled for m in parts], dtype=np.float64),
        )

    def term_sums(self, select: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Per group, each term's Σ x and Σ y (its items' columns summed): in a float product (BLAS) while
        every sum is an integer float64 holds exactly, else in integers."""
        items = select.shape[0]
        if self.sums_max * max(int(np.abs(select).sum(axis=0).max(initial=0)), 1) < EXACT_FLOAT:
            chosen = select.astype(np.float64)
            floats = self.float_sums
            return (floats[:, items:] @ chosen).astype(np.int64), (floats[:, :items] @ chosen).astype(np.int64)
        return self.sums[:, items:] @ select, self.sums[:, :items] @ select

    @cached_property
    def sums(self) -> NDArray[np.int64]:
        """Per group: Σ (y, x) (integers)."""
        return np.concatenate([m.sums for m in self.parts])

    @cached_property
    def float_sums(self) -> NDArray[np.float64]:
        return self.sums.astype(np.float64)

    @cached_property
    def sums_max(self) -> int:
        return int(np.abs(self.sums).max(initial=0))

    @cached_property
    def scaled_int64(self) -> NDArray[np.int64]:
        """:attr:`scaled` in int64 (only when :attr:`largest` fits)."""
        return np.array(self.scaled, dtype=np.int64)

    def take(self, domains: Sequence[int]) -> Layout:
        """The layout of the domains at ``domains`` (in that order)."""
        if len(domains) == len(self.parts):
            return self
        return Layout.of([self.parts[d] for d in domains])

    def frames(self, population: Mapping[str, int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per (domain, stratum) its frame size (-1 where unknown), and per domain its strata's frames summed."""
        if self._frames is None or self._frames[0] is not population:
            per_stratum = np.array([population.get(name, -1) for name in self.names], dtype=np.float64)
            per_domain = np.array([sum(population.get(s, 0) for s in m.groups.strata[0]) for m in self.parts],
                                  dtype=np.float64)
            self._frames = (population, per_stratum, per_domain)
        return self._frames[1], self._frames[2]


def estimate_moments(
    moments: Moments,
    select: NDArray[np.int64],
    answering: NDArray[np.int64],
    coefficients: Sequence[Fraction] | None = None,
    population: Mapping[str, int] | None = None,
    *,
    confidence: float = 0.95,
    lonely: LonelyStratum = "fail",
) -> SurveyEstimate:
    """θ = Σ c_k R_k with its Taylor variance, as :func:`survey.estimate_ratios` (``weighted=True``) over
    the ballots the moments sum. ``select``: items by terms (term k sums the items it selects);
    ``answering``: per group, its ballots that answered any item the terms select. For the unweighted
    estimate give one group of weight 1 (:data:`UNWEIGHTED`) and no population."""
    found = estimate_many([(moments, answering)], select, coefficients, population, confidence=confidence,
                          lonely=lonely)[0]
    if isinstance(found, DesignError):
        raise found
    return found


def estimate_many(
    domains: Sequence[tuple[Moments, NDArray[np.int64]]],
    select: NDArray[np.int64],
    coefficients: Sequence[Fraction] | None = None,
    population: Mapping[str, int] | None = None,
    *,
    confidence: float = 0.95,
    lonely: LonelyStratum = "fail",
) -> list[SurveyEstimate | DesignError]:
    """:func:`estimate_moments` of many domains (each its moments and answering counts) with the same terms,
    their float work done together: each domain's numbers are the ones it gets alone (element by element,
    never summed across domains), and a domain that cannot be estimated gets its :class:`DesignError`."""
    found = estimate_arrays(domains, select, coefficients, population, confidence=confidence, lonely=lonely)
    out: list[SurveyEstimate | DesignError] = []
    for d, error in enumerate(found.errors):
        if error is not None:
            out.append(error)
            continue
        value = found.exact[d]
        assert value is not None
        deff = float(found.deff[d])
        out.append(SurveyEstimate(value, float(found.variance[d]),
                                  Interval(float(found.lower[d]), float(found.upper[d])), int(found.n[d]),
                                  None if math.isnan(deff) else deff))
    return out


@dataclass
class Estimates:
    """:func:`estimate_arrays`' answer, per domain in the order given: its error (None once estimated), and
    for an estimated one (the arrays hold NaN for the others) θ exact (when asked for) and in floats, its
    variance, interval, answering ballots and design effect (NaN where :class:`SurveyEstimate` has None)."""

    errors: list[DesignError | None]
    exact: list[Fraction | None]
    value: NDArray[np.float64]
    variance: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    n: NDArray[np.int64]
    deff: NDArray[np.float64]


def estimate_arrays(
    domains: Sequence[tuple[Moments, NDArray[np.int64]]],
    select: NDArray[np.int64],
    coefficients: Sequence[Fraction] | None = None,
    population: Mapping[str, int] | None = None,
    *,
    confidence: float = 0.95,
    lonely: LonelyStratum = "fail",
    exact: bool = True,
    stack: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64] | None] | None = None,
    layout: Layout | None = None,
) -> Estimates:
    """:func:`estimate_many` as arrays (:class:`Estimates`), for a caller that presents many estimates at once.
    With ``exact=False`` θ is not made as a fraction: its float is Σ c_k·(Y_k/X_k) in floats (within a few
    units in the last place of the exact value's; a caller that shows only the interval needs no more).
    ``stack``: the domains' moments already stacked — Σ v as floats and Σ v vᵀ of every weight group of a
    larger list of domains, and the rows of these domains' groups in it, in order (None: all) — for a caller
    that estimates several term sets over the same domains and stacks their moments once; ``layout``: the
    domains' :class:`Layout` (the moments of ``domains``, in order), for the same caller."""
    items, terms = select.shape
    count = len(domains)
    errors: list[DesignError | None] = [None] * count
    exacts: list[Fraction | None] = [None] * count
    nan = np.full(count, np.nan)
    out = Estimates(errors, exacts, nan.copy(), nan.copy(), nan.copy(), nan.copy(), np.zeros(count, dtype=np.int64),
                    nan.copy())
    if layout is None:
        layout = Layout.of([moments for moments, _ in domains])
    elif len(layout.parts) != count:
        raise ValueError("a layout of other domains")
    wrong = (layout.total == 0) | (terms == 0) | (layout.width != 2 * items)
    for d in np.flatnonzero(wrong).tolist():
        errors[d] = DesignError("no observations" if not layout.total[d]
                                else "observations disagree on the number of terms")
    usable = np.flatnonzero(~wrong).tolist()
    if not usable:
        return out
    if coefficients is not None and len(coefficients) != terms:
        raise DesignError("one coefficient per term")

    # Exact: each group's weight times its domain's common denominator is an integer, so a domain's term
    # totals are integers over that denominator, which cancels in each ratio.
    work = layout.take(usable)
    term_x, term_y = work.term_sums(select)
    totals_x, floats_x = _domain_totals(work, term_x)
    totals_y, floats_y = _domain_totals(work, term_y)
    pairs_given: list[tuple[int, int]] = []
    if coefficients is None:
        answered = (floats_x != 0).sum(axis=1)
        ok = answered > 0
        reason = "no term has an answer"
        c_f = np.divide(1.0, answered[:, None], out=np.zeros_like(floats_x), where=(floats_x != 0) & ok[:, None])
    else:
        given = [c if isinstance(c, Fraction) else Fraction(c) for c in coefficients]
        needed = [k for k, c in enumerate(given) if c]
        ok = (floats_x[:, needed] != 0).all(axis=1)
        reason = "a term with a coefficient has no answer"
        c_f = np.broadcast_to(np.array([float(c) for c in given], dtype=np.float64), floats_x.shape)
        # The coefficients as integer pairs once (a Fraction's numerator is a property: slow in a loop).
        pairs_given = [(c.numerator, c.denominator) for c in given]
    rows_kept = np.flatnonzero(ok)
    for i in np.flatnonzero(~ok).tolist():
        errors[usable[i]] = DesignError(reason)
    if not len(rows_kept):
        return out
    listed_kept = rows_kept.tolist()
    kept = [usable[i] for i in listed_kept]
    if exact:
        if isinstance(totals_x, np.ndarray) and isinstance(totals_y, np.ndarray):  # int64: every domain at once
            tx, ty = totals_x[rows_kept], totals_y[rows_kept]
            if coefficients is not None:
                a = np.broadcast_to(np.array([p for p, _ in pairs_given], dtype=np.int64), tx.shape)
                b = np.broadcast_to(np.array([q for _, q in pairs_given], dtype=np.int64), tx.shape)
            else:
                a = (tx != 0).astype(np.int64)
                b = np.where(tx != 0, answered[rows_kept][:, None], 1).astype(np.int64)
            found = _sums_of_ratios(a, b, ty, tx)
            for j, (d, point) in enumerate(zip(kept, found, strict=True)):
                if point is None:  # past what int64 holds: this one in Python's integers
                    pairs = list(zip(a[j].tolist(), b[j].tolist(), strict=True))
                    point = _sum_of_ratios(pairs, ty[j].tolist(), tx[j].tolist())
                exacts[d] = point
        else:  # Python's integers (one of the two past int64: both as lists)
            listed_x = totals_x.tolist() if isinstance(totals_x, np.ndarray) else totals_x
            listed_y = totals_y.tolist() if isinstance(totals_y, np.ndarray) else totals_y
            for i, d in zip(listed_kept, kept, strict=True):
                tx_i = listed_x[i]
                pairs = pairs_given if coefficients is not None else [(1, int(answered[i])) if t else (0, 1)
                                                                      for t in tx_i]
                exacts[d] = _sum_of_ratios(pairs, listed_y[i], tx_i)
    # The linearisation's a per domain: z = a · (y, x), a = (S s, -S (s r)) with s_k = c_k / X_k, r_k = Y_k / X_k
    # (float(c)/(X/common) and Y/X: numpy's division of the same exactly held values as Python's int / int).
    tx_f, ty_f, c_f = floats_x[rows_kept], floats_y[rows_kept], c_f[rows_kept]
    on = c_f != 0
    scale = np.divide(c_f, tx_f / work.commons[rows_kept][:, None], out=np.zeros_like(c_f), where=on)
    rate = np.divide(ty_f, tx_f, out=np.zeros_like(c_f), where=on)
    chosen = select.astype(np.float64)
    vectors = np.hstack([np.einsum("dk,ik->di", scale, chosen), -np.einsum("dk,ik->di", scale * rate, chosen)])

    final = work.take(listed_kept)
    owner = final.owner
    # Only the items the terms select enter z: the float work runs over their columns of the moments.
    asked = np.flatnonzero(select.any(axis=1))
    columns = np.concatenate([asked, items + asked])
    a = vectors[:, columns][owner]                                             # each group's domain's a
    every = len(asked) == items  # the overall index asks for every item: no column to leave out, no copy
    # Every array C-contiguous, whatever was gathered: a domain's floats then come out the same bits in any
    # batch (einsum's order of summation follows the layout).
    if stack is None:
        stacked_sums = np.concatenate([m.sums for m in final.parts]).astype(np.float64)
        stacked_cross, at = np.concatenate([m.cross for m in final.parts]), None
    else:
        stacked_sums, stacked_cross, at = stack
        if len(kept) < len(domains):  # the refused domains' groups leave the stack too
            ends = np.cumsum(layout.sizes)
            picked = np.concatenate([np.arange(ends[d] - layout.sizes[d], ends[d]) for d in kept])
            at = picked if at is None else at[picked]
    if every:  # one gather of the rows wanted (none at all for every row)
        sums, cross = (stacked_sums, stacked_cross) if at is None else (stacked_sums[at], stacked_cross[at])
    else:  # one gather of the rows and columns wanted (C-contiguous, as numpy lays it out: the same in any batch)
        groups, width = stacked_cross.shape[0], stacked_cross.shape[1]
        sums = (stacked_sums if at is None else stacked_sums[at])[:, columns]
        first, last = int(asked[0]), int(asked[-1]) + 1
        if last - first == len(asked) and width == 2 * items:
            # A factor's items: one run of columns among the y's and one among the x's, so the matrix wanted
            # is a strided view of each group's (y, x) by (y, x) blocks, copied in one pass (several times
            # faster than gathering its cells one by one; the same numbers in the same order).
            blocks = stacked_cross.reshape(groups, 2, items, 2, items)[:, :, first:last, :, first:last]
            cross = np.ascontiguousarray(blocks if at is None else blocks[at]).reshape(-1, len(columns), len(columns))
        else:  # each group's matrix taken as a flat row
            flat = stacked_cross.reshape(groups, width * width)
            cells = (columns[:, None] * width + columns[None, :]).ravel()
            cross = np.take(flat, cells, axis=1) if at is None else flat[np.ix_(at, cells)]
            cross = cross.reshape(len(cross), len(columns), len(columns))
    linear = np.einsum("gi,gi->g", sums, a)                                    # Σ z per group
    square = np.einsum("gi,gi->g", np.einsum("gij,gj->gi", cross, a), a)       # Σ z² per group
    magnitude = np.abs(a)                                                      # Σ (|a|·v)² ≥ Σ z²: the scale
    bound = np.einsum("gi,gi->g", np.einsum("gij,gj->gi", cross, magnitude), magnitude)  # of its noise
    weight = final.weight
    answering = np.concatenate([domains[d][1] for d in kept]).astype(np.float64)

    # Per (domain, stratum): Σ u, Σ u², and the scale of Σ u² (u = w z).
    pair, width = final.pair, len(final.names)
    totals = np.bincount(pair, weights=weight * linear, minlength=width)
    squares = np.bincount(pair, weights=weight * weight * square, minlength=width)
    scales = np.bincount(pair, weights=weight * weight * bound, minlength=width)
    variance, refused = _stratified_variances(final, totals, squares, scales, population, lonely)
    # Per domain, over its answering ballots (those answering nothing have z = 0: they add nothing).
    count_kept = len(final.parts)
    srs_w = np.bincount(owner, weights=weight * answering, minlength=count_kept)
    srs_z = np.bincount(owner, weights=weight * linear, minlength=count_kept)
    srs_zz = np.bincount(owner, weights=weight * square, minlength=count_kept)
    srs_scale = np.bincount(owner, weights=weight * bound, minlength=count_kept)
    srs_n = np.bincount(owner, weights=answering, minlength=count_kept).astype(np.int64)
    frames = None if population is None else final.frames(population)[1]
    srs = _srs_variances(srs_n, srs_w, srs_z, srs_zz, srs_scale, final.sampled, frames)

    if exact:
        value = np.array([float(exacts[d]) for d in kept], dtype=np.float64)  # type: ignore[arg-type]
    else:
        value = (c_f * np.divide(ty_f, tx_f, out=np.zeros_like(c_f), where=on)).sum(axis=1)
    half = z_value(confidence) * np.sqrt(variance)
    deff = np.divide(variance, srs, out=np.full_like(srs, np.nan), where=(srs != 0) & ~np.isnan(srs))
    good = np.array([d for d, why in zip(kept, refused, strict=True) if why is None], dtype=np.int64)
    for d, why in zip(kept, refused, strict=True):
        if why is not None:
            errors[d], exacts[d] = why, None
    keep = np.array([why is None for why in refused], dtype=bool)
    out.value[good], out.variance[good] = value[keep], variance[keep]
    out.lower[good] = np.maximum(0.0, value[keep] - half[keep])
    out.upper[good] = np.minimum(1.0, value[keep] + half[keep])
    out.n[good], out.deff[good] = srs_n[keep], deff[keep]
    return out


def ratio_sums(a: NDArray[np.int64], b: NDArray[np.int64], numerators: NDArray[np.int64],
               denominators: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
    """Per row, Σ_k (a_k/b_k)·(numerators_k/denominators_k) (b_k > 0; a term with a_k or its numerator 0 adds
    nothing) in int64 arrays, every row at once: each term reduced, the row's denominators' lcm, the numerators
    over it, reduced once more — (numerators, denominators, held). A row whose numbers could pass what int64
    holds (checked in floats, with margin, before each product) is not held: its ratio is meaningless."""
    rows, terms = numerators.shape
    limit = float(2**62)
    present = (a != 0) & (numerators != 0)
    ok = ~(present & (denominators == 0)).any(axis=1)
    ok &= ((np.abs(a) * np.abs(numerators.astype(np.float64)) < limit)
           & (np.abs(b) * np.abs(denominators.astype(np.float64)) < limit)).all(axis=1)
    with np.errstate(over="ignore"):
        n = np.where(present & ok[:, None], a * numerators, 0)
        d = np.where(present & ok[:, None], b * denominators, 1)
        d_negative = d < 0
        n, d = np.where(d_negative, -n, n), np.where(d_negative, -d, d)
        common = np.gcd(n, d)
        n, d = n // common, d // common
        lcm = np.ones(rows, dtype=np.int64)
        for k in range(terms):
            step = lcm // np.gcd(lcm, d[:, k])
            ok &= step.astype(np.float64) * d[:, k] < limit
            lcm = np.where(ok, step * d[:, k], 1)
        scaled = np.where(ok[:, None], lcm[:, None] // d, 0)
        ok &= (np.abs(n.astype(np.float64)) * scaled).sum(axis=1) < limit
        total = np.where(ok, (n * scaled).sum(axis=1), 0)
    common = np.gcd(total, lcm)
    return total // common, lcm // common, ok


def _sums_of_ratios(a: NDArray[np.int64], b: NDArray[np.int64], numerators: NDArray[np.int64],
                    denominators: NDArray[np.int64]) -> list[Fraction | None]:
    """Per row, :func:`_sum_of_ratios` of its terms (coefficients a_k/b_k, b_k > 0) as :func:`ratio_sums` makes
    it; None for a row it does not hold: the caller computes it in Python's integers."""
    found_n, found_d, ok = ratio_sums(a, b, numerators, denominators)
    return [Fraction(numerator, denominator) if good else None
            for good, numerator, denominator in zip(ok.tolist(), found_n.tolist(), found_d.tolist(), strict=True)]


def _sum_of_ratios(coeffs: Sequence[tuple[int, int]], numerators: Sequence[int], denominators: Sequence[int]
                   ) -> Fraction:
    """Σ_k c_k · numerators[k] / denominators[k], exactly, reduced once (not once a term); c_k as the pair
    (numerator, denominator)."""
    parts = [(a * n, b * d) for (a, b), n, d in zip(coeffs, numerators, denominators, strict=True) if a and n]
    if not parts:
        return Fraction(0)
    common = math.lcm(*(d for _, d in parts))
    return Fraction(sum(n * (common // d) for n, d in parts), common)


def _domain_totals(layout: Layout, values: NDArray[np.int64]
                   ) -> tuple[NDArray[np.int64] | list[list[int]], NDArray[np.float64]]:
    """Per domain of ``layout``, Σ_g scaled[g] · values[g, k] per k over its groups, exactly (an int64 array
    when it cannot overflow, else lists of Python's integers), and the same as floats (each the nearest float
    to the exact integer, as Python's ``float(int)``)."""
    scaled, starts, sizes = layout.scaled, layout.starts, layout.sizes
    if not len(scaled):
        return [[0] * values.shape[1] for _ in range(len(sizes))], np.zeros((len(sizes), values.shape[1]))
    largest = layout.largest
    if largest < _SAFE_INT and largest * int(np.abs(values).max(initial=0)) * int(sizes.max()) < _SAFE_INT:
        weighted = np.add.reduceat(layout.scaled_int64[:, None] * values, starts, axis=0)
        return weighted, weighted.astype(np.float64)
    columns = values.tolist()
    found = [[sum(scaled[g] * columns[g][k] for g in range(start, start + size)) for k in range(values.shape[1])]
             for start, size in zip(starts.tolist(), sizes.tolist(), strict=True)]
    return found, np.array([[float(t) for t in row] for row in found], dtype=np.float64)


def _stratified_variances(layout: Layout, totals: NDArray[Any], squares: NDArray[Any], scales: NDArray[Any],
                          population: Mapping[str, int] | None, lonely: LonelyStratum
                          ) -> tuple[NDArray[Any], list[DesignError | None]]:
    """Per domain of ``layout``, Σ_h (1 - f_h) n_h/(n_h - 1) Σ_i (u_i - ū_h)² from each of its strata's Σ u,
    Σ u² (and their noise scale), given stratum by stratum (its strata in name order); and per domain the
    :class:`DesignError` that refuses it (a lone ballot in a stratum, under ``lonely="fail"``; a stratum
    without a frame size as large as its ballots), else None."""
    names, n_h = layout.names, layout.n_h
    owner = np.repeat(np.arange(len(layout.parts), dtype=np.int64), layout.widths)
    counted = n_h >= 2
    problems: list[tuple[int, str]] = []  # (the stratum's place, why): a domain is refused by its first
    if lonely == "fail":
        problems += [(k, f"stratum {names[k]!r} has a single ballot: its variance is unknown")
                     for k in np.flatnonzero(n_h == 1).tolist()]
    fpc = np.ones_like(n_h)
    if population is not None:
        frame = layout.frames(population)[0]
        problems += [(k, f"stratum {names[k]!r} needs a frame size of at least {int(n_h[k])}")
                     for k in np.flatnonzero(counted & (frame < n_h)).tolist()]
        fpc = 1 - np.divide(n_h, frame, out=np.zeros_like(n_h), where=counted & (frame > 0))
    refused: list[DesignError | None] = [None] * len(layout.parts)
    for k, why in sorted(problems):
        if refused[owner[k]] is None:
            refused[owner[k]] = DesignError(why)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = squares - totals * totals / n_h
        term = fpc * n_h / (n_h - 1) * spread
    term = np.where(counted & (spread > NO_SPREAD * scales), term, 0.0)
    return np.bincount(owner, weights=term, minlength=len(layout.parts)), refused


def _srs_variances(n: NDArray[np.int64], total_w: NDArray[Any], sum_z: NDArray[Any],
                   sum_zz: NDArray[Any], scale: NDArray[Any], sampled: NDArray[Any],
                   frame: NDArray[Any] | None) -> NDArray[Any]:
    """Per domain, the variance of the same estimator under simple random sampling of its n answering ballots,
    from their Σ w, Σ w z, Σ w z² (and the noise scale of the last): NaN below two ballots, 0 when every
    ballot is alike (rounding noise must not make a design effect of it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_square = sum_zz / total_w
        mean_z = sum_z / total_w
        spread = mean_square - mean_z * mean_z
        nf = n.astype(np.float64)
        variance = total_w * total_w / nf * spread * nf / (nf - 1)
        if frame is not None:
            variance = variance * (1 - sampled / frame)
    variance = np.where(spread <= NO_SPREAD * scale / total_w, 0.0, variance)
    return np.where(n < 2, np.nan, variance)
