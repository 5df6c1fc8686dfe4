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

import numpy as np
from numpy.typing import NDArray

from sipas_scoring.domain.errors import DesignError
from sipas_scoring.domain.intervals import normal_interval
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
    items, terms = select.shape
    out: list[SurveyEstimate | DesignError | None] = [None] * len(domains)
    usable = []
    for d, (moments, _) in enumerate(domains):
        if not int(moments.rows.sum()):
            out[d] = DesignError("no observations")
        elif terms == 0 or moments.sums.shape[1] != 2 * items:
            out[d] = DesignError("observations disagree on the number of terms")
        else:
            usable.append(d)
    if not usable:
        return _settled(out)

    # Exact: each group's weight times its domain's common denominator is an integer, so a domain's term
    # totals are integers over that denominator, which cancels in each ratio.
    candidates = [domains[d][0] for d in usable]
    sizes = [len(m.rows) for m in candidates]
    starts = np.cumsum([0, *sizes[:-1]])
    sums_all = np.concatenate([m.sums for m in candidates])
    term_x, term_y = sums_all[:, items:] @ select, sums_all[:, :items] @ select
    scaled = [w for m in candidates for w in m.groups.scaled[1]]
    commons = [m.groups.scaled[0] for m in candidates]
    totals_x, totals_y = _domain_totals(scaled, term_x, starts, sizes), _domain_totals(scaled, term_y, starts, sizes)
    if coefficients is None:
        answered = [sum(1 for t in row if t) for row in totals_x]
        given = None
    else:
        if len(coefficients) != terms:
            raise DesignError("one coefficient per term")
        given = [c if isinstance(c, Fraction) else Fraction(c) for c in coefficients]
    exact: list[Fraction] = []
    kept: list[int] = []
    rows_kept: list[int] = []
    coefficient_rows: list[list[float]] = []
    floats_given = None if given is None else [float(c) for c in given]
    # The coefficients as integer pairs once (a Fraction's numerator is a property: slow in a loop).
    pairs_given = None if given is None else [(c.numerator, c.denominator) for c in given]
    needed = None if given is None else [k for k, c in enumerate(given) if c]
    for i, d in enumerate(usable):
        tx, ty = totals_x[i], totals_y[i]
        if given is None:
            if not answered[i]:
                out[d] = DesignError("no term has an answer")
                continue
            pairs = [(1, answered[i]) if t else (0, 1) for t in tx]
            coefficient_rows.append([1 / answered[i] if t else 0.0 for t in tx])
        else:
            assert needed is not None and pairs_given is not None and floats_given is not None
            if not all(tx[k] for k in needed):
                out[d] = DesignError("a term with a coefficient has no answer")
                continue
            pairs = pairs_given
            coefficient_rows.append(floats_given)
        exact.append(_sum_of_ratios(pairs, ty, tx))
        kept.append(d)
        rows_kept.append(i)
    if not kept:
        return _settled(out)
    # The linearisation's a per domain: z = a · (y, x), a = (S s, -S (s r)) with s_k = c_k / X_k, r_k = Y_k / X_k
    # (float(c)/(X/common) and Y/X: numpy's division of the same exactly held values as Python's int / int).
    tx_f = np.array([totals_x[i] for i in rows_kept], dtype=np.float64)
    ty_f = np.array([totals_y[i] for i in rows_kept], dtype=np.float64)
    common_f = np.array([commons[i] for i in rows_kept], dtype=np.float64)[:, None]
    c_f = np.array(coefficient_rows, dtype=np.float64)
    on = c_f != 0
    scale = np.divide(c_f, tx_f / common_f, out=np.zeros_like(c_f), where=on)
    rate = np.divide(ty_f, tx_f, out=np.zeros_like(c_f), where=on)
    chosen = select.astype(np.float64)
    vectors = np.hstack([np.einsum("dk,ik->di", scale, chosen), -np.einsum("dk,ik->di", scale * rate, chosen)])

    parts = [domains[d][0] for d in kept]
    owner = np.concatenate([np.full(len(m.rows), i, dtype=np.int64) for i, m in enumerate(parts)])
    # Only the items the terms select enter z: the float work runs over their columns of the moments.
    asked = np.flatnonzero(select.any(axis=1))
    columns = np.concatenate([asked, items + asked])
    a = vectors[:, columns][owner]                                             # each group's domain's a
    every = len(asked) == items  # the overall index asks for every item: no column to leave out, no copy
    sums = np.concatenate([m.sums if every else m.sums[:, columns] for m in parts]).astype(np.float64)
    cross = np.concatenate([m.cross if every else m.cross[:, columns][:, :, columns] for m in parts])
    linear = np.einsum("gi,gi->g", sums, a)                                    # Σ z per group
    square = np.einsum("gi,gi->g", np.einsum("gij,gj->gi", cross, a), a)       # Σ z² per group
    magnitude = np.abs(a)                                                      # Σ (|a|·v)² ≥ Σ z²: the scale
    bound = np.einsum("gi,gi->g", np.einsum("gij,gj->gi", cross, magnitude), magnitude)  # of its noise
    weight = np.concatenate([m.groups.floats for m in parts])
    answering = np.concatenate([domains[d][1] for d in kept]).astype(np.float64)

    # Per (domain, stratum): Σ u, Σ u², and the scale of Σ u² (u = w z).
    offsets = np.cumsum([0, *(len(m.groups.strata[0]) for m in parts)])
    pair = np.concatenate([m.groups.strata[1] + offsets[i] for i, m in enumerate(parts)])
    width = int(offsets[-1])
    totals = np.bincount(pair, weights=weight * linear, minlength=width).tolist()
    squares = np.bincount(pair, weights=weight * weight * square, minlength=width).tolist()
    scales = np.bincount(pair, weights=weight * weight * bound, minlength=width).tolist()
    # Per domain, over its answering ballots (those answering nothing have z = 0: they add nothing).
    count = len(parts)
    srs_w = np.bincount(owner, weights=weight * answering, minlength=count).tolist()
    srs_z = np.bincount(owner, weights=weight * linear, minlength=count).tolist()
    srs_zz = np.bincount(owner, weights=weight * square, minlength=count).tolist()
    srs_scale = np.bincount(owner, weights=weight * bound, minlength=count).tolist()
    srs_n = np.bincount(owner, weights=answering, minlength=count).tolist()

    for i, d in enumerate(kept):
        moments = parts[i]
        names = moments.groups.strata[0]
        try:
            variance = _stratified_variance(names, totals[offsets[i]:offsets[i + 1]],
                                            squares[offsets[i]:offsets[i + 1]], scales[offsets[i]:offsets[i + 1]],
                                            moments.pool, population, lonely)
        except DesignError as exc:
            out[d] = exc
            continue
        n = int(srs_n[i])
        frame = None if population is None else sum(population[s] for s in names)
        srs = _srs_variance(n, srs_w[i], srs_z[i], srs_zz[i], srs_scale[i], moments.sampled, frame)
        deff = variance / srs if srs else None
        out[d] = SurveyEstimate(exact[i], variance, normal_interval(float(exact[i]), variance, confidence), n, deff)
    return _settled(out)


def _settled(out: Sequence[SurveyEstimate | DesignError | None]) -> list[SurveyEstimate | DesignError]:
    """Every domain's answer (each is set by the time this is called; None would be a bug, said as such)."""
    return [x if x is not None else DesignError("no estimate") for x in out]


def _sum_of_ratios(coeffs: Sequence[tuple[int, int]], numerators: Sequence[int], denominators: Sequence[int]
                   ) -> Fraction:
    """Σ_k c_k · numerators[k] / denominators[k], exactly, reduced once (not once a term); c_k as the pair
    (numerator, denominator)."""
    parts = [(a * n, b * d) for (a, b), n, d in zip(coeffs, numerators, denominators, strict=True) if a and n]
    if not parts:
        return Fraction(0)
    common = math.lcm(*(d for _, d in parts))
    return Fraction(sum(n * (common // d) for n, d in parts), common)


def _domain_totals(scaled: Sequence[int], values: NDArray[np.int64], starts: NDArray[np.int64],
                   sizes: Sequence[int]) -> list[list[int]]:
    """Per domain (its groups from ``starts``, ``sizes`` of them), Σ_g scaled[g] · values[g, k] per k, exactly:
    in int64 when it cannot overflow, else in Python's integers."""
    if not len(scaled):
        return [[0] * values.shape[1] for _ in sizes]
    largest = max(abs(s) for s in scaled)
    if largest < _SAFE_INT and largest * int(np.abs(values).max(initial=0)) * max(sizes) < _SAFE_INT:
        weighted = np.array(scaled, dtype=np.int64)[:, None] * values
        return np.add.reduceat(weighted, starts, axis=0).tolist()
    columns = values.tolist()
    return [[sum(scaled[g] * columns[g][k] for g in range(start, start + size)) for k in range(values.shape[1])]
            for start, size in zip(starts.tolist(), sizes, strict=True)]


def _stratified_variance(names: Sequence[str], totals: Sequence[float], squares: Sequence[float],
                         scales: Sequence[float], pool: Mapping[str, int], population: Mapping[str, int] | None,
                         lonely: LonelyStratum) -> float:
    """Σ_h (1 - f_h) n_h/(n_h - 1) Σ_i (u_i - ū_h)² from each stratum's Σ u, Σ u² (and their noise scale)."""
    variance = 0.0
    for s, name in enumerate(names):
        n_h = int(pool.get(name, 0))
        if n_h == 0:
            continue
        if n_h < 2:
            if lonely == "fail":
                raise DesignError(f"stratum {name!r} has a single ballot: its variance is unknown")
            continue
        fpc = 1.0
        if population is not None:
            if name not in population or population[name] < n_h:
                raise DesignError(f"stratum {name!r} needs a frame size of at least {n_h}")
            fpc = 1 - n_h / population[name]
        spread = squares[s] - totals[s] * totals[s] / n_h
        if spread > NO_SPREAD * scales[s]:  # else every ballot of the stratum alike: no spread
            variance += fpc * n_h / (n_h - 1) * spread
    return variance


def _srs_variance(n: int, total_w: float, sum_z: float, sum_zz: float, scale: float, sampled: int,
                  frame: int | None) -> float | None:
    """The variance of the same estimator under simple random sampling of the n answering ballots, from
    their Σ w, Σ w z, Σ w z² (and the noise scale of the last)."""
    if n < 2:
        return None
    mean_square = sum_zz / total_w
    mean_z = sum_z / total_w
    spread = mean_square - mean_z * mean_z
    if spread <= NO_SPREAD * scale / total_w:
        return 0.0  # every ballot alike: no spread (rounding noise must not make a design effect of it)
    variance = total_w**2 / n * spread * n / (n - 1)
    if frame is not None:
        variance *= 1 - sampled / frame
    return variance
