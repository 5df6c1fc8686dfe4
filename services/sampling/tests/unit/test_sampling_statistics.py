"""Statistical tests of the sampling design (METHODOLOGY §4-§5), each over thousands of fixed seeds.

Every claim the draw makes about probabilities is checked against what the draw actually does:

- within a stratum, selection is simple random sampling without replacement (SRSWOR): every unit, every
  pair of units and every whole sample is as likely as SRSWOR says, in every rank of the ordered draw,
  and strata are drawn independently of each other;
- a unit's realised inclusion frequency times its design weight ``N_h / n_h`` is 1 (so Horvitz-Thompson
  totals are unbiased);
- reserves are a uniform draw from the units the sample leaves, and never overlap it;
- the resident design's villages are hit with probability ``k·M_i/M`` (1 for certainty villages),
  households are drawn uniformly, and the product of the stages is the inverse of the weight;
- draws are reproducible, distinct across seeds, and ``verify_draw`` notices a one-character edit.

The seeds are fixed (``sha256`` of an index), so the tests are deterministic and never flake; the
significance levels are strict (p > 0.001, or 4.5 binomial standard errors per unit), so a correct
implementation would pass with overwhelming probability for any other list of seeds too, while the
``test_the_checks_have_power`` cases show that the same checks reject plausible wrong samplers.

scipy is not a dependency, so the chi-square survival function is computed here from the regularized
incomplete gamma function (and checked against closed forms).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import TypeVar

import pytest

from sipas_sampling.domain.allocation import plan_proportional
from sipas_sampling.domain.digest import frame_digest
from sipas_sampling.domain.draw import Draw, ReservePolicy, StratumDraw, draw_sample, verify_draw
from sipas_sampling.domain.frame import FrameRow
from sipas_sampling.domain.prng import RandomStream, check_seed, ordered_sample
from sipas_sampling.domain.resident import (
    Area,
    StageUnit,
    draw_communes,
    draw_households,
    draw_villages,
)
from sipas_sampling.domain.strata import Stratification
from sipas_sampling.domain.weights import design_weight

ALPHA = 0.001
"""Significance level of every goodness-of-fit test (a family of tests shares it, Bonferroni)."""
Z = 4.5
"""Tolerance of a single frequency, in binomial standard errors (two-sided p ≈ 7e-6)."""
K = TypeVar("K", bound=Hashable)


# --- statistics helpers ---------------------------------------------------------------------------

def chi2_sf(statistic: float, df: int) -> float:
    """P(X ≥ statistic) for X ~ chi-square(df): the regularized upper incomplete gamma Q(df/2, statistic/2)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    return _upper_gamma_q(df / 2, statistic / 2) if statistic > 0 else 1.0


def _upper_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a): the series for P below x = a + 1, Lentz's continued fraction above."""
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1 / a
        n = a
        while abs(term) > abs(total) * 1e-16:
            n += 1
            term *= x / n
            total += term
        return max(0.0, 1 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    fraction = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        fraction *= step
        if abs(step - 1) < 1e-16:
            break
    return math.exp(log_prefix) * fraction


def normal_quantile_two_sided(alpha: float) -> float:
    """The z with P(|N(0,1)| ≥ z) = alpha (bisection on erfc)."""
    low, high = 0.0, 40.0
    for _ in range(200):
        middle = (low + high) / 2
        if math.erfc(middle / math.sqrt(2)) > alpha:
            low = middle
        else:
            high = middle
    return high


def pearson_p(counts: Sequence[int], probabilities: Sequence[float]) -> float:
    """Pearson's chi-square goodness-of-fit p-value for multinomial ``counts`` (one category per draw)."""
    runs = sum(counts)
    assert math.isclose(sum(probabilities), 1)
    statistic = sum((o - runs * p) ** 2 / (runs * p) for o, p in zip(counts, probabilities, strict=True))
    return chi2_sf(statistic, len(counts) - 1)


def srswor_p(counts: Sequence[int], runs: int, size: int) -> float:
    """p-value of "these are the per-unit counts of ``runs`` SRSWOR samples of ``size`` of ``len(counts)``".

    Each run adds exactly ``size`` ones, so the counts are not multinomial: under SRSWOR the indicators
    have variance π(1-π) and covariance -π(1-π)/(N-1) (π = n/N), which makes Pearson's statistic
    ``(N-n)/(N-1)`` times a chi-square with N-1 degrees of freedom. Dividing by that factor restores
    the exact asymptotic chi-square(N-1) (for n = 1 it is the plain multinomial test).
    """
    population = len(counts)
    assert 0 < size < population and sum(counts) == runs * size
    expected = runs * size / population
    pearson = sum((o - expected) ** 2 / expected for o in counts)
    return chi2_sf(pearson * (population - 1) / (population - size), population - 1)


def binomial_outliers(hits: Mapping[K, int], runs: int, probabilities: Mapping[K, Fraction | float],
                      z: float = Z) -> dict[K, tuple[float, float]]:
    """Units whose hit frequency is more than ``z`` binomial standard errors from its probability:
    unit -> (frequency, probability). A probability of 0 or 1 must be met exactly."""
    outliers = {}
    for unit, probability in probabilities.items():
        p = float(probability)
        frequency = hits.get(unit, 0) / runs
        if abs(frequency - p) > z * math.sqrt(p * (1 - p) / runs):
            outliers[unit] = (frequency, p)
    return outliers


def pair_outliers(samples: Iterable[Iterable[int]], population: int, size: int,
                  family_alpha: float = ALPHA) -> dict[tuple[int, int], int]:
    """Pairs co-selected too often or too rarely for SRSWOR (π_ij = n(n-1) / (N(N-1))), every pair
    tested with a Bonferroni-corrected binomial tolerance: pair -> times co-selected."""
    together: Counter[tuple[int, int]] = Counter()
    runs = 0
    for sample in samples:
        runs += 1
        together.update(itertools.combinations(sorted(sample), 2))
    pairs = list(itertools.combinations(range(population), 2))
    z = normal_quantile_two_sided(family_alpha / len(pairs))
    joint = size * (size - 1) / (population * (population - 1))
    bad = binomial_outliers({i: together[pair] for i, pair in enumerate(pairs)}, runs,
                            dict.fromkeys(range(len(pairs)), joint), z)
    return {pairs[i]: together[pairs[i]] for i in bad}


def tally(samples: Iterable[Iterable[int]], population: int) -> list[int]:
    counts = Counter(itertools.chain.from_iterable(samples))
    assert set(counts) <= set(range(population))
    return [counts[i] for i in range(population)]


def seeds(count: int, purpose: str) -> list[str]:
    return [check_seed(hashlib.sha256(f"sipas-sampling-statistics/{purpose}/{i}".encode()).hexdigest())
            for i in range(count)]


def test_chi_square_helper_matches_closed_forms():
    # df = 1: P(X ≥ x) = erfc(sqrt(x/2)); even df = 2k: a Poisson tail, e^(-x/2) Σ_{i<k} (x/2)^i / i!
    for x in (0.001, 0.5, 3.841458820694124, 10.83, 25.0):
        assert math.isclose(chi2_sf(x, 1), math.erfc(math.sqrt(x / 2)), rel_tol=1e-9)
    for df in (2, 4, 10, 38, 118, 206):
        for x in (0.3 * df, df - 1, df + 2, 1.5 * df, 2.5 * df + 30):
            half = x / 2
            poisson = sum(math.exp(-half + i * math.log(half) - math.lgamma(i + 1)) for i in range(df // 2))
            assert math.isclose(chi2_sf(x, df), poisson, rel_tol=1e-9, abs_tol=1e-300)
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05)
    assert chi2_sf(23.209251158954356, 10) == pytest.approx(0.01)
    assert chi2_sf(0, 5) == 1.0
    assert normal_quantile_two_sided(0.05) == pytest.approx(1.959964, abs=1e-6)
    assert normal_quantile_two_sided(2 * 0.5 * math.erfc(4.5 / math.sqrt(2))) == pytest.approx(4.5)


# --- the stratified draw ---------------------------------------------------------------------------

RUNS = 4000
SALT = b"statistics-campaign-salt-2025"
BY_AGENCY = Stratification.of("agency_code")
RESERVES = ReservePolicy(count=3)
STRATUM_SIZES = {"H29.05": 10, "H29.07": 24, "H29.11": 40}


def make_frame(sizes: Mapping[str, int]) -> list[FrameRow]:
    return [
        FrameRow(agency_code=agency, procedure="Cấp giấy chứng nhận quyền sử dụng đất", service_field="đất đai",
                 dossier_id=f"{agency}-{i:04d}", completed_on=dt.date(2024, 10, 1) + dt.timedelta(days=i),
                 respondent_type="individual", name=f"Người dân {agency} {i}", phone="0912345678",
                 address=f"Số {i + 1} đường Lê Lợi, phường {agency[-2:]}")
        for agency, count in sizes.items() for i in range(count)
    ]


FRAME = make_frame(STRATUM_SIZES)
PLAN = plan_proportional(BY_AGENCY.names, BY_AGENCY.populations(FRAME), 15, floor=3)
SEEDS = seeds(RUNS, "stratified")


def draw(seed: str, frame: Sequence[FrameRow] = FRAME) -> Draw:
    return draw_sample(frame, PLAN, BY_AGENCY, seed=seed, campaign_salt=SALT, reserves=RESERVES)


@pytest.fixture(scope="module")
def draws() -> list[Draw]:
    # Canonical order is (agency, dossier), so a unit's position in its stratum is its frame index i.
    assert [(s.population, s.sample) for s in PLAN.strata] == [(10, 3), (24, 4), (40, 8)]
    return [draw(seed) for seed in SEEDS]


def strata_of(draws: Sequence[Draw], index: int) -> list[StratumDraw]:
    return [d.strata[index] for d in draws]


def positions(units: Iterable) -> list[int]:
    return [u.position for u in units]


STRATA = pytest.mark.parametrize("index", range(len(STRATUM_SIZES)), ids=list(STRATUM_SIZES))


@STRATA
def test_each_unit_is_selected_equally_often_within_its_stratum(draws, index):
    strata = strata_of(draws, index)
    population, size = strata[0].population, len(strata[0].selected)
    counts = tally((positions(s.selected) for s in strata), population)
    assert srswor_p(counts, RUNS, size) > ALPHA, counts


def test_every_sample_of_the_small_stratum_is_equally_likely(draws):
    # N = 10, n = 3: each of the C(10, 3) = 120 possible samples should turn up ~33 times in 4000 draws.
    strata = strata_of(draws, 0)
    population, size = strata[0].population, len(strata[0].selected)
    samples = Counter(tuple(sorted(positions(s.selected))) for s in strata)
    every = list(itertools.combinations(range(population), size))
    assert set(samples) == set(every)
    assert pearson_p([samples[c] for c in every], [1 / len(every)] * len(every)) > ALPHA


@STRATA
def test_pairs_are_selected_together_as_often_as_under_srswor(draws, index):
    # Every pair, not just a few: the joint inclusion probability n(n-1)/(N(N-1)), Bonferroni over pairs.
    strata = strata_of(draws, index)
    population, size = strata[0].population, len(strata[0].selected)
    assert pair_outliers((positions(s.selected) for s in strata), population, size) == {}


@STRATA
def test_every_rank_of_the_ordered_draw_is_uniform(draws, index):
    # prng.ordered_sample promises every ordered selection is equally likely: whichever rank, in the
    # sample or in the reserves, it holds any unit with probability 1/N.
    strata = strata_of(draws, index)
    population = strata[0].population
    ranks = len(strata[0].selected) + len(strata[0].reserves)
    for rank in range(ranks):
        ordered = [(*s.selected, *s.reserves)[rank].position for s in strata]
        counts = tally(([p] for p in ordered), population)
        assert pearson_p(counts, [1 / population] * population) > ALPHA / ranks, (rank, counts)


def test_strata_are_drawn_independently(draws):
    # The first-ranked units of two strata: all N_a·N_b combinations equally likely (uniform margins and
    # independence). A stream shared between strata would tie them together.
    for a, b in ((0, 1), (0, 2)):
        cells = Counter((d.strata[a].selected[0].position, d.strata[b].selected[0].position) for d in draws)
        shape = (draws[0].strata[a].population, draws[0].strata[b].population)
        grid = list(itertools.product(range(shape[0]), range(shape[1])))
        assert pearson_p([cells[c] for c in grid], [1 / len(grid)] * len(grid)) > ALPHA / 2, (a, b)


@STRATA
def test_inclusion_frequency_times_design_weight_is_one(draws, index):
    strata = strata_of(draws, index)
    population, size = strata[0].population, len(strata[0].selected)
    weight = design_weight(population, size)
    assert weight == Fraction(STRATUM_SIZES[strata[0].key[0]], PLAN.strata[index].sample)
    counts = tally((positions(s.selected) for s in strata), population)
    probability = 1 / float(weight)
    for unit, count in enumerate(counts):
        frequency = count / RUNS
        tolerance = Z * math.sqrt(probability * (1 - probability) / RUNS) * float(weight)
        assert abs(frequency * float(weight) - 1) <= tolerance, (unit, frequency, float(weight))
    # so the weighted (Horvitz-Thompson) total of any variable is unbiased: here y = position + 1
    y = [i + 1 for i in range(population)]
    estimates = [float(weight) * sum(y[p] for p in positions(s.selected)) for s in strata]
    mean = sum(estimates) / RUNS
    spread = math.sqrt(sum((e - mean) ** 2 for e in estimates) / (RUNS - 1))
    variance = population**2 * (1 - size / population) * _variance(y) / size  # SRSWOR, exact
    assert spread**2 == pytest.approx(variance, rel=0.15)
    assert abs(mean - sum(y)) <= Z * math.sqrt(variance / RUNS)


def _variance(values: Sequence[int]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


@STRATA
def test_reserves_are_uniform_and_never_overlap_the_sample(draws, index):
    strata = strata_of(draws, index)
    population, size = strata[0].population, len(strata[0].selected)
    reserve_size = RESERVES.size(population, size)
    assert reserve_size == 3
    for s in strata:
        chosen, backups = set(positions(s.selected)), positions(s.reserves)
        assert len(backups) == len(set(backups)) == reserve_size
        assert not chosen & set(backups)
        assert not {u.unit_id for u in s.selected} & {u.unit_id for u in s.reserves}
    counts = tally((positions(s.reserves) for s in strata), population)
    assert srswor_p(counts, RUNS, reserve_size) > ALPHA, counts
    assert binomial_outliers(dict(enumerate(counts)), RUNS,
                             dict.fromkeys(range(population), Fraction(reserve_size, population))) == {}
    # given that a unit was not selected, its chance of being a reserve is r / (N - n) for every unit
    passed_over = tally(((set(range(population)) - set(positions(s.selected))) for s in strata), population)
    conditional = {u: counts[u] / passed_over[u] for u in range(population)}
    expected = reserve_size / (population - size)
    for unit, frequency in conditional.items():
        assert abs(frequency - expected) <= Z * math.sqrt(expected * (1 - expected) / passed_over[unit]), unit


# --- the resident design: villages by systematic PPS, households by SRS ------------------------------

PPS_RUNS = 4000
COMMUNE = StageUnit(code="C-0412", conditional=Fraction(1, 2), inclusion=Fraction(1, 2), rank=1)


def _expected_pps(sizes: Sequence[int], k: int, certain: Sequence[int]) -> dict[int, Fraction]:
    """Certainty villages (given by hand) get 1; the others ``wanted·M_i / M_rest`` (0 for empty ones)."""
    wanted = k - len(certain)
    rest = sum(s for i, s in enumerate(sizes) if i not in certain)
    return {i: Fraction(1) if i in certain else Fraction(wanted * s, rest) for i, s in enumerate(sizes)}


PPS_CASES = {
    # M = 220, k = 3: the largest is 3·45/220 ≈ 0.61 < 1, so no certainty; V04 is empty, never drawn
    "no-certainty": ([12, 30, 7, 45, 0, 20, 16, 9, 25, 38, 18], 3, []),
    # M = 600, k = 3: 3·300/600 ≥ 1, so V00 is certain; 2 more from M = 300, at most 2·90/300 = 0.6
    "one-certain": ([300, 40, 25, 60, 35, 50, 90], 3, [0]),
    # M = 900, k = 3: V00 certain (1500 ≥ 900); then 2·200 ≥ 400 makes V01 certain; 1 more from M = 200
    "cascade": ([500, 200, 30, 40, 50, 60, 20], 3, [0, 1]),
}


@pytest.mark.parametrize("case", list(PPS_CASES))
def test_villages_are_hit_in_proportion_to_their_size(case):
    sizes, k, certain = PPS_CASES[case]
    expected = _expected_pps(sizes, k, certain)
    villages = [Area(f"V{i:02d}", households=s) for i, s in enumerate(sizes)]
    hits: Counter[int] = Counter()
    for seed in seeds(PPS_RUNS, f"pps/{case}"):
        drawn = draw_villages(COMMUNE, villages, k, seed=seed)
        picked = {int(v.code[1:]): v for v in drawn.selected}
        assert len(picked) == k
        for i, v in picked.items():  # the probability each village carries is the one it is drawn with
            assert v.conditional == expected[i] and v.inclusion == COMMUNE.inclusion * expected[i]
        hits.update(picked.keys())
    assert sum(expected.values()) == k
    assert {i for i in certain if hits[i] == PPS_RUNS} == set(certain)
    assert binomial_outliers(hits, PPS_RUNS, expected) == {}, hits


def test_households_within_a_village_are_uniform():
    village = StageUnit(code="V-0412-03", conditional=Fraction(3, 10), inclusion=Fraction(3, 20), rank=1)
    listing = [f"V-0412-03-hh{i:03d}" for i in range(30)]
    size, reserves, index = 6, 3, {code: i for i, code in enumerate(sorted(listing))}
    chosen, backups = [], []
    for seed in seeds(PPS_RUNS, "households"):
        drawn = draw_households(village, listing, size, seed=seed, campaign_salt=SALT, reserves=reserves)
        picked, spare = [index[h.code] for h in drawn.selected], [index[h.code] for h in drawn.reserves]
        assert len(set(picked)) == size and len(set(spare)) == reserves and not set(picked) & set(spare)
        assert all(h.conditional == Fraction(size, 30) and h.inclusion == village.inclusion * Fraction(size, 30)
                   for h in (*drawn.selected, *drawn.reserves))
        chosen.append(picked)
        backups.append(spare)
    counts = tally(chosen, 30)
    assert srswor_p(counts, PPS_RUNS, size) > ALPHA, counts
    assert binomial_outliers(dict(enumerate(counts)), PPS_RUNS, dict.fromkeys(range(30), Fraction(size, 30))) == {}
    assert pair_outliers(chosen, 30, size) == {}
    assert srswor_p(tally(backups, 30), PPS_RUNS, reserves) > ALPHA


MULTI_RUNS = 3000
# commune -> village sizes; 2 villages per commune by PPS, 3 households per village by SRS
RESIDENT = {
    "C1": [12, 8, 20, 6],   # M = 46, no certainty (2·20/46 < 1)
    "C2": [30, 5, 9, 7],    # M = 51, the 30-household village is certain (60 ≥ 51)
    "C3": [10, 14],         # both villages, with certainty
}


def test_three_stages_realise_the_inclusion_probability_each_household_carries():
    communes = [Area(code, households=sum(sizes)) for code, sizes in RESIDENT.items()]
    expected: dict[str, Fraction] = {}
    certain = {"C1": [], "C2": [0], "C3": [0, 1]}
    for commune, sizes in RESIDENT.items():
        for v, p in _expected_pps(sizes, 2, certain[commune]).items():
            for h in range(sizes[v]):
                expected[f"{commune}-V{v}-h{h:02d}"] = Fraction(2, 3) * p * Fraction(3, sizes[v])
    hits: Counter[str] = Counter()
    estimates = []
    for seed in seeds(MULTI_RUNS, "three-stages"):
        estimate = Fraction(0)
        for commune in draw_communes(communes, 2, seed=seed, stratum="province-29").selected:
            areas = [Area(f"{commune.code}-V{v}", households=s) for v, s in enumerate(RESIDENT[commune.code])]
            for village in draw_villages(commune, areas, 2, seed=seed).selected:
                listing = [f"{village.code}-h{h:02d}" for h in range(RESIDENT[commune.code][int(village.code[-1])])]
                for household in draw_households(village, listing, 3, seed=seed, campaign_salt=SALT).selected:
                    assert household.inclusion == expected[household.code]
                    hits[household.code] += 1
                    estimate += household.weight  # Horvitz-Thompson estimate of the number of households
        estimates.append(float(estimate))
    assert binomial_outliers(hits, MULTI_RUNS, expected) == {}
    mean = sum(estimates) / MULTI_RUNS
    spread = math.sqrt(sum((e - mean) ** 2 for e in estimates) / (MULTI_RUNS - 1))
    assert abs(mean - len(expected)) <= Z * spread / math.sqrt(MULTI_RUNS), (mean, len(expected))


# --- reproducibility and verification -----------------------------------------------------------------

def test_every_seed_reproduces_its_draw_whatever_the_row_order(draws):
    for seed, published in zip(SEEDS[:25], draws, strict=False):
        assert draw(seed, _shuffled(FRAME, seed)) == published


def _shuffled(rows: Sequence[FrameRow], seed: str) -> list[FrameRow]:
    return sorted(rows, key=lambda row: hashlib.sha256(f"{seed}/{row.dossier_id}".encode()).digest())


def test_distinct_seeds_give_distinct_draws(draws):
    # All 4000 draws differ (a collision is astronomically unlikely: 120·10626·76904685 unordered draws).
    signatures = {tuple(tuple(positions((*s.selected, *s.reserves))) for s in d.strata) for d in draws}
    assert len(signatures) == RUNS
    samples = {tuple(frozenset(positions(s.selected)) for s in d.strata) for d in draws}
    assert len(samples) == RUNS
    # one hex digit of the seed changed: another draw
    for seed, published in zip(SEEDS[:25], draws, strict=False):
        neighbour = seed[:-1] + ("0" if seed[-1] != "0" else "1")
        assert draw(neighbour).strata != published.strata


def _one_character_changed(text: str) -> str:
    return text[:-1] + ("x" if text[-1] != "x" else "y")


@pytest.mark.parametrize("field", ["address", "dossier_id"])
@pytest.mark.parametrize("which", ["selected", "not-selected"])
def test_verify_draw_catches_a_one_character_edit_in_one_row(draws, field, which):
    for seed, published in zip(SEEDS[:5], draws, strict=False):
        assert verify_draw(published, FRAME, PLAN, BY_AGENCY, seed=seed, campaign_salt=SALT,
                           reserves=RESERVES).ok
        stratum = published.strata[1]
        if which == "selected":
            target = stratum.selected[0].dossier_id
        else:
            taken = {u.dossier_id for u in (*stratum.selected, *stratum.reserves)}
            target = next(r.dossier_id for r in FRAME if r.agency_code == "H29.07" and r.dossier_id not in taken)
        edited = [dataclasses.replace(r, **{field: _one_character_changed(getattr(r, field))})
                  if r.dossier_id == target else r for r in FRAME]
        assert sum(a != b for a, b in zip(FRAME, edited, strict=True)) == 1
        check = verify_draw(published, edited, PLAN, BY_AGENCY, seed=seed, campaign_salt=SALT, reserves=RESERVES)
        assert not check.ok
        assert check.problems[0] == (f"the frame's digest is {frame_digest(edited)}, the draw was published with "
                                     f"{published.frame_digest}")
        # the digest keys every stratum's stream, so the re-run's sample moves too
        assert any("differs from the re-run" in p for p in check.problems[1:])


# --- the checks above would catch a wrong sampler -------------------------------------------------

def _naive_shuffle(stream: RandomStream, population: int, size: int) -> list[int]:
    """The classic mistake: swap position i with any position, not one at or after i."""
    order = list(range(population))
    for i in range(size):
        j = stream.below(population)
        order[i], order[j] = order[j], order[i]
    return order[:size]


def _systematic(stream: RandomStream, population: int, size: int) -> list[int]:
    """Equal-probability systematic sampling: every unit has probability n/N, but pairs do not."""
    step = population // size
    start = stream.below(step)
    return [start + j * step for j in range(size)]


def _samples(sampler: Callable[[RandomStream, int, int], list[int]], population: int, size: int) -> list[list[int]]:
    return [sampler(RandomStream(seed, "power"), population, size) for seed in SEEDS]


def test_the_checks_have_power():
    # the real shuffle passes all of them (a control for the cases below)
    good = _samples(ordered_sample, 10, 3)
    assert srswor_p(tally(good, 10), RUNS, 3) > ALPHA and pair_outliers(good, 10, 3) == {}

    # a naive shuffle favours the first units: the per-unit test rejects it
    naive = _samples(_naive_shuffle, 10, 3)
    assert srswor_p(tally(naive, 10), RUNS, 3) < 1e-12
    assert binomial_outliers(dict(enumerate(tally(naive, 10))), RUNS, dict.fromkeys(range(10), 0.3))

    # systematic sampling has exactly uniform margins, which the per-unit test accepts, but it never
    # takes two neighbours together: the pair test rejects it
    systematic = _samples(_systematic, 24, 4)
    assert srswor_p(tally(systematic, 24), RUNS, 4) > ALPHA
    assert (0, 1) in pair_outliers(systematic, 24, 4)

    # villages drawn with equal probability instead of PPS: outside the PPS tolerance
    sizes, k, certain = PPS_CASES["no-certainty"]
    positive = [i for i, s in enumerate(sizes) if s]
    equal: Counter[int] = Counter()
    for seed in SEEDS:
        equal.update(positive[j] for j in ordered_sample(RandomStream(seed, "srs"), len(positive), k))
    assert len(binomial_outliers(equal, RUNS, _expected_pps(sizes, k, certain))) >= 5

    # a 15% excess on one unit of the 40-unit stratum is caught by the per-unit tolerance
    probability, runs = 8 / 40, RUNS
    excess = round(runs * probability * 1.15)
    assert binomial_outliers({0: excess}, runs, {0: probability}) == {0: (excess / runs, probability)}



def test_draw_depends_only_on_canonical_rows():
    """Whitespace around a dossier id changes neither the digest nor the draw (found by review)."""
    by_agency = Stratification.of("agency_code")
    rows = [FrameRow("H29.05", "p", "f", f"H29.05-{i:03d}", dt.date(2024, 1, 1), "individual", "n", "0912345678", None)
            for i in range(10)]
    padded = [dataclasses.replace(rows[0], dossier_id=" H29.05-000 "), *rows[1:]]
    plan = plan_proportional(by_agency.names, by_agency.populations(rows), 10)
    seed, salt = "a" * 32, b"x" * 16
    assert frame_digest(padded) == frame_digest(rows)
    published = draw_sample(rows, plan, by_agency, seed=seed, campaign_salt=salt)
    assert verify_draw(published, padded, plan, by_agency, seed=seed, campaign_salt=salt).ok
