"""The figures engine's kept rows and texts: a refresh writes again only the rows whose text changed, and
its text is still ``canonical.dumps`` of the document computed from scratch — even when a row it did not
recompute changed rank because a sibling moved, or a sibling's change made it suppressed."""

from __future__ import annotations

import json
from collections import Counter
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from sipas_cli.registry_client import builtin_definition
from sipas_events import canonical
from sipas_events.catalogue.registry import InstrumentDefinition, SchemeDefinition
from sipas_scoring.application.definitions import CampaignBasis, instrument_of, labels_of, scheme_of
from sipas_scoring.application.figures import CampaignFigures
from sipas_scoring.application.figures_engine import Context, Engine, Request, TallyDeltas
from sipas_scoring.application.measured import Batch, measurable_codes
from sipas_scoring.domain.codes import Codebook
from sipas_scoring.domain.scheme import Ballot
from sipas_scoring.domain.tallies import ballot_tallies

INSTRUMENT = InstrumentDefinition.model_validate(builtin_definition("instrument", "sipas-2017"))
SCHEME = SchemeDefinition.model_validate({**builtin_definition("scheme", "share-satisfied"), "small_cell_n": 3})
BASIS = CampaignBasis("c-text", 2026, "province", "01", ("sipas-2017", 1), ("share-satisfied", 1),
                      instrument_of(INSTRUMENT), scheme_of(SCHEME), labels_of(INSTRUMENT))
BOOK = Codebook.of(BASIS.instrument)
AGENCIES = {a: {"agency_id": a, "code": f"H01.{a}", "name": f"Agency {a}", "province": "01"}
            for a in ("a1", "a2", "a3", "a4")}


class Campaign:
    """Ballots of three agencies of one province, each agency its own stratum with its design weight; every
    answer the same value per ballot, so an agency's index is its share of satisfied ballots."""

    def __init__(self) -> None:
        self.ballots: list[tuple[str, str, bytes, dict]] = []

    def add(self, agency: str, values: list[int]) -> Batch:
        start = len(self.ballots)
        for k, value in enumerate(values):
            answers = {item: value for item in BASIS.instrument.criteria}
            self.ballots.append((f"{agency}-{start + k:03d}", agency, measurable_codes(BOOK, answers), answers))
        return self.batch(self.ballots[start:])

    @staticmethod
    def batch(ballots) -> Batch:
        return Batch([b[0] for b in ballots], b"".join(b[2] for b in ballots), [b[1] for b in ballots],
                     ["01"] * len(ballots), [f"d|{b[1]}" for b in ballots], [Fraction(10)] * len(ballots))

    def tallies(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for ballot_id, agency, _, answers in self.ballots:
            out.setdefault(agency, Counter()).update(ballot_tallies(BASIS.instrument, Ballot(ballot_id, answers)))
        return out

    def scratch(self) -> str:
        return canonical.dumps(CampaignFigures(BASIS, self.tallies(), self.batch(self.ballots), AGENCIES, None, [],
                                               {"01": "Hà Nội"}).document())


def delta(batch: Batch) -> TallyDeltas:
    found = TallyDeltas()
    for k, agency in enumerate(batch.agency_ids):
        found.add(agency, batch.codes[k * BOOK.width:(k + 1) * BOOK.width], True)
    return found


def test_rows_kept_from_the_last_refresh_take_their_new_rank_and_suppression():
    campaign, engine, key = Campaign(), Engine(), ("db", "c-text")
    for agency, values in (("a1", [5, 5, 1, 1, 1, 1]), ("a2", [5, 5, 5, 5, 1, 1]), ("a4", [5, 5, 5, 1, 1])):
        campaign.add(agency, values)
    context = Context(campaign.tallies(), AGENCIES, {}, [], {"01": "Hà Nội"})
    reply = engine.run(Request(key, BASIS, context, "fp", 1, None, Campaign.batch(campaign.ballots)))
    assert reply.text == campaign.scratch()
    before = rows(reply.text)
    assert [before[a]["rank"]["rank"] for a in ("a2", "a4", "a1")] == [1, 2, 3]

    # a1 overtakes the others with ballots of its own: a2 and a4 are not recomputed, but their ranks move.
    reply = refresh(engine, campaign, 2, campaign.add("a1", [5] * 12))
    assert reply.text == campaign.scratch()
    after = rows(reply.text)
    assert {"A:a1", "P:01"} <= set(reply.recomputed) and not {"A:a2", "A:a4"} & set(reply.recomputed)
    assert [after[a]["rank"]["rank"] for a in ("a1", "a2", "a4")] == [1, 2, 3]

    # A new agency with one ballot is too small to show, and hides its smallest sibling, a4, with it (else
    # the province's total would give it away): a4's row, not recomputed, loses its figure and rank.
    reply = refresh(engine, campaign, 3, campaign.add("a3", [1]))
    assert reply.text == campaign.scratch()
    hidden = rows(reply.text)
    assert "A:a4" not in reply.recomputed
    assert (hidden["a3"]["suppressed"], hidden["a4"]["suppressed"]) == ("insufficient_sample", "complementary")
    assert hidden["a4"]["rank"] is None and hidden["a4"]["overall"]["value"] is None

    # Once it has enough ballots, both show again.
    reply = refresh(engine, campaign, 4, campaign.add("a3", [5, 5]))
    assert reply.text == campaign.scratch()
    shown = rows(reply.text)
    assert "A:a4" not in reply.recomputed and shown["a4"] == after["a4"] | {"rank": shown["a4"]["rank"]}
    assert shown["a4"]["suppressed"] is None and shown["a3"]["suppressed"] is None


def rows(text: str) -> dict[str, dict]:
    return {row["id"]: row for row in json.loads(text)["units"]}


def refresh(engine: Engine, campaign: Campaign, at: int, added: Batch):
    """A delta as the figures worker sends it: the ballots counted since, and their codes as the tallies'
    change."""
    reply = engine.run(Request(("db", "c-text"), BASIS, Context({}, {}, {}, [], {"01": "Hà Nội"}), "fp", at, at - 1,
                               added, [], [], delta(added)))
    assert reply.held == len(campaign.ballots)  # what the worker checks against the database's count
    return reply


def test_a_rows_text_is_canonical_json_of_the_row():
    """Rows are written by orjson (:func:`figures._row_text`): each must be ``canonical.dumps`` of the row, byte
    for byte — rows of agencies, provinces and the nation, names with diacritics, blanked small cells."""
    import random

    from sipas_scoring.application import figures

    rng = random.Random(3)
    options = sorted(BASIS.instrument.expectation_options)
    ballots, tallies = [], {}
    for k in range(90):
        agency = ("a1", "a2", "a3")[k % 3]
        answers = {item: rng.choice((1, 3, 4, 5, None)) for item in BASIS.instrument.criteria}
        ballot = Ballot(f"{agency}-{k:03d}", answers, frozenset(rng.sample(options, rng.randrange(0, 3))))
        ballots.append((ballot.ballot_id, agency, measurable_codes(BOOK, answers), answers))
        tallies.setdefault(agency, Counter()).update(ballot_tallies(BASIS.instrument, ballot))
    document = CampaignFigures(BASIS, tallies, Campaign.batch(ballots), AGENCIES, None, [],
                               {"01": "Hà Nội"}).document()
    levels = set()
    for row in document["units"]:
        assert figures._row_text(row) == canonical.dumps(row)
        levels.add(row["level"])
    assert levels == {"national", "province", "agency"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_rows_are_written_as_canonical_json_whatever_they_hold(row):
    """orjson writes what a row can hold as canonical JSON does — keys in code-point order, every character
    as UTF-8 with the same escapes — and what it would write otherwise (integers past 64 bits, lone
    surrogates) goes to ``canonical.dumps``."""
    from sipas_scoring.application import figures

    assert figures._row_text(row) == canonical.dumps(row)


def test_what_orjson_would_write_otherwise_is_written_by_canonical_json():
    import datetime as dt

    from sipas_scoring.application import figures

    for row in ({"n": 2**64}, {"name": "\ud800"}, {"at": dt.datetime(2026, 12, 1, tzinfo=dt.UTC)}):
        assert figures._row_text(row) == canonical.dumps(row)


def test_kept_figures_keep_what_is_used_and_drop_what_is_not():
    """The store of shared figures keeps two generations: a figure asked for again survives a rotation, one
    no longer asked for goes at the second — never everything at once."""
    from sipas_scoring.application.figures import Kept

    kept = Kept(2)
    kept.put("a", 1)
    kept.put("b", 2)
    kept.put("c", 3)  # the first generation is full: it becomes the old one
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (1, 2, 3)  # each found, brought back into the new
    kept.put("d", 4)
    kept.put("e", 5)
    assert kept.get("d") == 4 and kept.get("e") == 5
    assert len(kept) <= 4 and kept.get("zzz") is None
    stale = Kept(2)
    for key in ("x", "y", "z", "w", "v"):
        stale.put(key, key)
    assert stale.get("x") is None and stale.get("v") == "v"  # never asked for again: gone after two rotations


def reference_simple(kind, hits, n, rule, places):
    """An item's or expectation's figure made one by one, as the figures made it before they were batched."""
    from sipas_scoring.domain.fast_rounding import present_text
    from sipas_scoring.domain.intervals import wilson

    value = Fraction(hits * 100, n) if n else None
    figure = {"value": None if value is None else present_text(value, rule, places),
              "exact": None if value is None else f"{value.numerator}/{value.denominator}", "n": n}
    if kind == "item":
        ci = wilson(hits, n) if n else None
        figure["ci"] = None if ci is None else [present_text(ci.lower * 100), present_text(ci.upper * 100)]
        figure["ci_method"] = "wilson"
    return figure


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["item", "expect"]), st.integers(0, 10**6), st.integers(0, 10**6))
                .map(lambda k: (k[0], min(k[1], k[2]), k[2])), max_size=40),
       st.sampled_from(["half_up", "truncate"]), st.integers(0, 4))
def test_figures_made_together_are_the_ones_made_one_by_one(keys, rule, places):
    """Item and expectation figures are made a batch at a time (thousands a refresh of a growing campaign):
    each must be the figure made alone."""
    from sipas_scoring.application.figures import simple_figures

    for (kind, hits, n), figure in zip(keys, simple_figures(keys, rule, places), strict=True):
        assert figure == reference_simple(kind, hits, n, rule, places)


def test_digests_and_sums_kept_beside_tallies_follow_a_change_to_the_new_objects():
    """A change carries an agency's kept digest (chained with the change) and its province's kept sum (with
    the change added) to the new tallies objects, so a refresh makes neither again from whole tallies: the
    sum is the one summed afresh, and the digest moves exactly when the tallies do."""
    from sipas_scoring.application.figures_engine import Carried
    from sipas_scoring.domain.tallies import sum_tallies

    campaign = Campaign()
    campaign.add("a1", [5, 4, 2])
    campaign.add("a2", [1, 5])
    by_agency = campaign.tallies()
    digests = {a: (bag, a.encode() * 4) for a, bag in by_agency.items()}
    sums = {"P:01": ((by_agency["a1"], by_agency["a2"]), sum_tallies([by_agency["a1"], by_agency["a2"]]))}
    carried = Carried(digests, sums)
    change = delta(campaign.add("a1", [5, 3]))
    for codes in change.plus["a1"][:1]:  # one of them goes again: plus and minus in one change
        change.add("a1", codes, False)
    before = dict(digests)
    change.apply(BOOK, by_agency, carried)
    removed = campaign.ballots[-2][0]  # the first of the two new ones went again
    campaign.ballots = [b for b in campaign.ballots if b[0] != removed]
    assert by_agency == campaign.tallies()
    new_a1 = by_agency["a1"]
    assert digests["a1"][0] is new_a1 and digests["a1"][1] != before["a1"][1]
    assert digests["a2"] == before["a2"]  # not changed: kept as it was
    objects, total = sums["P:01"]
    assert objects[0] is new_a1 and objects[1] is by_agency["a2"]
    assert total == sum_tallies([new_a1, by_agency["a2"]])


def test_units_whose_share_figures_int64_cannot_hold_are_made_one_by_one_the_same(monkeypatch):
    """A unit :func:`share_values_many` cannot hold in int64 (counts no campaign reaches; forced here for every
    other unit) has its factor and overall figures made by :func:`share_values`: the document is the same."""
    from dataclasses import replace

    from sipas_scoring.application import figures

    campaign = Campaign()
    for agency, values in (("a1", [5, 4, 2, 1, 5]), ("a2", [5, 5, 3, 1]), ("a3", [1, 2, 3, 4, 5, 5]), ("a4", [4])):
        campaign.add(agency, values)
    together = campaign.scratch()
    made = figures.share_values_many
    refused = []

    def some_refused(*args):
        found = made(*args)
        held = found.held.copy()
        held[::2] = False
        refused.append(int((~held).sum()))
        return replace(found, held=held)

    monkeypatch.setattr(figures, "share_values_many", some_refused)
    assert campaign.scratch() == together and sum(refused) >= 3
    assert json.loads(together)["units"][1]["factors"]  # the figures compared hold factor figures
