"""The document's intervals and weighted figures are the reference estimator's (``survey.estimate_ratios``, itself checked
against R's ``survey``), ballot by ballot, for agencies and for a province whose agencies share weight
groups — the figures compute them from the cells' moments, summed per weight group for all units at once."""

from __future__ import annotations

import math
import random
from collections import Counter
from fractions import Fraction

import pytest

from sipas_cli.registry_client import builtin_definition
from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_scoring.application.definitions import CampaignBasis, instrument_of, labels_of, scheme_of
from sipas_scoring.application.figures import CampaignFigures
from sipas_scoring.application.measured import Batch, measurable_codes
from sipas_scoring.domain.codes import Codebook
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.survey import Observation, estimate_ratios
from sipas_scoring.domain.tallies import ballot_tallies
from sipas_scoring.domain.weighted_shares import answered_items, factor_terms, overall_terms, share_observations

INSTRUMENT = InstrumentDefinition.model_validate(builtin_definition("instrument", "sipas-2017"))
SCHEME = SchemeDefinition.model_validate({**builtin_definition("scheme", "share-satisfied"), "small_cell_n": 3})
BASIS = CampaignBasis("c-w", 2026, "province", "01", ("sipas-2017", 1), ("share-satisfied", 1),
                      instrument_of(INSTRUMENT), scheme_of(SCHEME), labels_of(INSTRUMENT))
BOOK = Codebook.of(BASIS.instrument)
# a1 and a2 share both weight groups (S1 at 10, S2 at 25); a3 has its own stratum, with two weights in it.
DESIGN = {"a1": [("S1", Fraction(10)), ("S2", Fraction(25))], "a2": [("S1", Fraction(10)), ("S2", Fraction(25))],
          "a3": [("S3", Fraction(40, 3)), ("S3", Fraction(16))]}
AGENCIES = {a: {"agency_id": a, "code": f"H01.{a}", "name": f"Agency {a}", "province": "01"} for a in DESIGN}


def answers(rng: random.Random) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for item in BOOK.items:
        out[item] = None if rng.random() < 0.08 else rng.choice((1, 2, 3, 4, 4, 5, 5))
    return out


@pytest.fixture(scope="module")
def campaign():
    rng = random.Random(5)
    ballots, design = [], {}
    for agency, places in DESIGN.items():
        for k in range(rng.randrange(14, 22)):
            ballot_id = f"{agency}-{k:03d}"
            design[ballot_id] = (agency, *places[k % 2])
            ballots.append(Ballot(ballot_id, answers(rng)))
    batch = Batch([b.ballot_id for b in ballots], b"".join(measurable_codes(BOOK, b.answers) for b in ballots),
                  [design[b.ballot_id][0] for b in ballots], ["01"] * len(ballots),
                  [f"d|{design[b.ballot_id][1]}" for b in ballots], [design[b.ballot_id][2] for b in ballots])
    tallies: dict[str, Counter[str]] = {}
    for b in ballots:
        tallies.setdefault(design[b.ballot_id][0], Counter()).update(ballot_tallies(BASIS.instrument, b))
    document = CampaignFigures(BASIS, tallies, batch, AGENCIES, None, [], {"01": "Hà Nội"}).document()
    return ballots, design, {row["key"]: row for row in document["units"]}


def reference(ballots, design, unit_agencies, terms):
    """The unit as a domain of the campaign's strata: its ballots as they are, every other ballot of the same
    strata as zeros."""
    mine = [b for b in ballots if design[b.ballot_id][0] in unit_agencies]
    strata = {design[b.ballot_id][1] for b in mine}
    places = {b.ballot_id: (f"d|{design[b.ballot_id][1]}", design[b.ballot_id][2]) for b in ballots}
    observations = share_observations(mine, terms, BASIS.instrument.satisfied_levels, places)
    zeros = (0,) * len(terms.items)
    observations += [Observation(*places[b.ballot_id], zeros, zeros) for b in ballots
                     if design[b.ballot_id][0] not in unit_agencies and design[b.ballot_id][1] in strata]
    return estimate_ratios(observations, terms.coefficients, weighted=True, lonely="certainty")


@pytest.mark.parametrize("unit", ["A:a1", "A:a2", "A:a3", "P:01"])
def test_interval_figures_equal_the_reference_estimator(campaign, unit):
    ballots, design, rows = campaign
    agencies = {"A:a1": {"a1"}, "A:a2": {"a2"}, "A:a3": {"a3"}, "P:01": set(DESIGN)}[unit]
    answered = answered_items([b for b in ballots if design[b.ballot_id][0] in agencies])
    row = rows[unit]
    figures = [(row["overall"], overall_terms(BASIS.instrument, BASIS.scheme, answered))]
    figures += [(row["factors"][f.code], factor_terms(f, BASIS.scheme, answered))
                for f in BASIS.instrument.factors if row["factors"][f.code]["weighted"] is not None]
    assert len(figures) >= 4
    for figure, terms in figures:
        # The interval beside the figure: the unweighted estimate over the unit's own ballots.
        mine = [b for b in ballots if design[b.ballot_id][0] in agencies]
        plain = estimate_ratios(share_observations(mine, terms, BASIS.instrument.satisfied_levels,
                                                   {b.ballot_id: ("all", Fraction(1)) for b in mine}),
                                terms.coefficients, weighted=False)
        low, high = (float(x) for x in figure["ci"])
        assert low == pytest.approx(plain.interval.lower * 100, abs=5.1e-3)
        assert high == pytest.approx(plain.interval.upper * 100, abs=5.1e-3)
        shown = figure["weighted"]
        want = reference(ballots, design, agencies, terms)
        assert Fraction(shown["exact"]) == want.estimate * 100
        assert float(shown["se"]) == pytest.approx(math.sqrt(want.variance) * 100, abs=5.1e-5)
        assert shown["n"] == want.n
        assert float(shown["deff"]) == pytest.approx(want.design_effect, abs=5.1e-5)
        low, high = (float(x) for x in shown["ci"])
        assert low == pytest.approx(max(0.0, want.interval.lower) * 100, abs=5.1e-3)
        assert high == pytest.approx(min(1.0, want.interval.upper) * 100, abs=5.1e-3)
