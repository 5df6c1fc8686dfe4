"""The platform's weighted estimates of every share index of the synthetic sample, as JSON.

    python platform_estimates.py DATA_DIR OUT.json

Reads DATA_DIR/ballots.csv and DATA_DIR/instrument.csv (see ``generate.py``) and computes, with the
scoring domain itself (``weighted_shares`` for the terms of each index), every item index, every factor
index both pooled and as a mean of its items, and the overall index as a mean of factor means and pooled:
once with the finite population correction (frame sizes from the ``fpc`` column), once without — and each
by both of the domain's estimators:

- ``reference``: ``survey.estimate_ratios`` over the ballots one by one;
- ``moments``: ``survey_arrays.estimate_moments`` over the moments of each weight group (Σ v and Σ v vᵀ of
  the ballots' per-item satisfied and valid answers), the estimator the figures worker runs.

Nothing here recomputes a figure; it only reads the files and calls the domain.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from sipas_scoring.domain.scheme import Ballot, Factor, Instrument, Scheme, five_level_scale
from sipas_scoring.domain.survey import SurveyEstimate, estimate_ratios
from sipas_scoring.domain.survey_arrays import Groups, Moments, estimate_moments
from sipas_scoring.domain.weighted_shares import (
    Terms,
    answered_items,
    factor_terms,
    overall_terms,
    share_observations,
)

ESTIMATORS = ("reference", "moments")
POOLED = Scheme(factor_index="pooled", overall_index="pooled")
MEAN_ITEMS = Scheme(factor_index="mean_items", overall_index="mean_factors")


def read_instrument(path: Path) -> Instrument:
    factors: dict[str, list[str]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            factors.setdefault(row["factor"], []).append(row["item"])
    return Instrument(five_level_scale(), tuple(Factor(code, tuple(items)) for code, items in factors.items()))


Design = dict[str, tuple[str, Fraction]]


def read_ballots(path: Path, items: Sequence[str]) -> tuple[list[Ballot], Design, dict[str, int]]:
    """Ballots, each ballot's (stratum, weight) and each stratum's frame size."""
    ballots: list[Ballot] = []
    design: Design = {}
    frame: dict[str, int] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            answers = {item: int(row[item]) if row[item] else None for item in items}
            ballots.append(Ballot(row["ballot_id"], answers))
            design[row["ballot_id"]] = (row["stratum"], Fraction(row["weight"]))
            frame[row["stratum"]] = int(row["fpc"])
    return ballots, design, frame


def figures(instrument: Instrument, ballots: Sequence[Ballot]) -> dict[str, Terms]:
    """Every index of the instrument, named as in ``check.R``, as the domain's terms."""
    answered = answered_items(ballots)
    named = {f"item:{code}": Terms(((code,),), (Fraction(1),)) for code in instrument.criteria}
    for factor in instrument.factors:
        named[f"factor:{factor.code}:pooled"] = factor_terms(factor, POOLED, answered)
        named[f"factor:{factor.code}:mean_items"] = factor_terms(factor, MEAN_ITEMS, answered)
    named["overall:mean_factors"] = overall_terms(instrument, MEAN_ITEMS, answered)
    named["overall:pooled"] = overall_terms(instrument, POOLED, answered)
    return named


class Measures:
    """The sample as the figures worker holds it: per ballot its weight group and, per item, y (a satisfied
    answer) and x (a valid answer); per weight group (stratum, weight) the moments of its ballots."""

    def __init__(self, instrument: Instrument, ballots: Sequence[Ballot], design: Design) -> None:
        self.items = list(instrument.criteria)
        satisfied = instrument.satisfied_levels
        keys = sorted({design[b.ballot_id] for b in ballots})
        number = {key: g for g, key in enumerate(keys)}
        self.group = np.array([number[design[b.ballot_id]] for b in ballots], dtype=np.int64)
        answers = [[b.answers.get(item) for item in self.items] for b in ballots]
        self.y = np.array([[int(v is not None and v in satisfied) for v in row] for row in answers], dtype=np.int64)
        self.x = np.array([[int(v is not None) for v in row] for row in answers], dtype=np.int64)
        self.moments = Moments.of_rows(self.group, Groups([w for _, w in keys], [s for s, _ in keys]), self.y, self.x)

    def estimate(self, terms: Terms, population: dict[str, int] | None) -> SurveyEstimate:
        column = {item: k for k, item in enumerate(self.items)}
        select = np.zeros((len(self.items), len(terms.items)), dtype=np.int64)
        for k, items in enumerate(terms.items):
            for item in items:
                select[column[item], k] += 1
        answering = np.bincount(self.group, weights=self.x[:, select.any(axis=1)].any(axis=1),
                                minlength=len(self.moments.rows)).astype(np.int64)
        return estimate_moments(self.moments, select, answering, terms.coefficients, population)


def _figure(estimate: SurveyEstimate) -> dict[str, float | int | None]:
    return {"estimate": float(estimate.estimate), "se": estimate.standard_error, "deff": estimate.design_effect,
            "n": estimate.n, "effective_n": estimate.effective_n}


def estimates(data: Path) -> dict[str, dict[str, dict[str, dict[str, float | int | None]]]]:
    """estimator → design → figure → its estimate, standard error, design effect, n and effective n."""
    instrument = read_instrument(data / "instrument.csv")
    ballots, design, frame = read_ballots(data / "ballots.csv", instrument.criteria)
    measures = Measures(instrument, ballots, design)
    result: dict[str, dict[str, dict[str, dict[str, float | int | None]]]] = {
        estimator: {"with_fpc": {}, "without_fpc": {}} for estimator in ESTIMATORS}
    for name, terms in figures(instrument, ballots).items():
        observations = share_observations(ballots, terms, instrument.satisfied_levels, design)
        for key, population in (("with_fpc", frame), ("without_fpc", None)):
            result["reference"][key][name] = _figure(estimate_ratios(observations, terms.coefficients, population))
            result["moments"][key][name] = _figure(measures.estimate(terms, population))
    return result


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: platform_estimates.py DATA_DIR OUT.json")
    Path(sys.argv[2]).write_text(json.dumps(estimates(Path(sys.argv[1])), indent=2) + "\n")
    print(f"wrote {sys.argv[2]}")
