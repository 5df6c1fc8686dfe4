import dataclasses
import datetime as dt
import json
import typing
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipas_ballots.domain.codes import derived_code, display
from sipas_ballots.domain.errors import InvalidParameter
from sipas_ballots.domain.instrument import FactorItems, Instrument
from sipas_ballots.domain.issuance import Ballot, Status
from sipas_ballots.domain.validation import (
    Accepted,
    CampaignRules,
    Reason,
    Rejected,
    Submission,
    ValidationContext,
    validate,
)
from sipas_events.catalogue.registry import InstrumentDefinition

ROOT = Path(__file__).resolve().parents[4]
DEFINITION = InstrumentDefinition.model_validate(
    json.loads((ROOT / "data/reference/instruments/sipas-2017.json").read_text())["definition"])
SIPAS = Instrument.from_definition(DEFINITION)
KEY = b"0123456789abcdef0123456789abcdef"
CAMPAIGN = "c-2025"


def code(unit, n=1, campaign=CAMPAIGN):
    return derived_code(KEY, campaign, unit, n)


BALLOTS = {b.code: b for b in [
    Ballot("b-1", CAMPAIGN, "u-1", code("u-1")),
    Ballot("b-2", CAMPAIGN, "u-2", code("u-2")),
    Ballot("b-x", CAMPAIGN, "u-3", code("u-3"), Status.CANCELLED, "lost"),
    Ballot("b-u", CAMPAIGN, "u-4", code("u-4"), Status.USED),
    Ballot("b-o", "c-2024", "u-9", code("u-9", campaign="c-2024")),
    Ballot("b-n", CAMPAIGN, "u-out", code("u-out")),
    # for the order of checks: codes failing every later code and campaign check too
    Ballot("b-xx", "c-2024", "u-zz", code("u-zz", campaign="c-2024"), Status.CANCELLED, "lost"),
    Ballot("b-uu", "c-2024", "u-yy", code("u-yy", campaign="c-2024"), Status.USED),
    Ballot("b-oo", "c-2024", "u-ww", code("u-ww", campaign="c-2024")),
]}
BAD_CHECK = code("u-1")[:-1] + ("0" if code("u-1")[-1] != "0" else "1")
RULES = CampaignRules(CAMPAIGN, dt.date(2025, 6, 1), dt.date(2025, 9, 30))
CONTEXT = ValidationContext(RULES, SIPAS, BALLOTS, frozenset({"u-1", "u-2", "u-3", "u-4", "u-9"}))
ALL_FIVES = dict.fromkeys(SIPAS.criteria, 5)


def submit(**changes):
    base = Submission(code=display(code("u-1")), campaign_id=CAMPAIGN, received_on=dt.date(2025, 7, 15),
                      answers=ALL_FIVES, expectations=frozenset({"E1", "E3"}), channel="paper",
                      entered_by="clerk-1", entry_seconds=95.0)
    return dataclasses.replace(base, **changes)


def reason(**changes):
    outcome = validate(submit(**changes), CONTEXT)
    assert isinstance(outcome, Rejected), outcome
    return outcome


def test_instrument_from_the_built_in_definition():
    assert len(SIPAS.criteria) == 22
    assert [len(f.criteria) for f in SIPAS.factors] == [4, 5, 6, 3, 4]
    assert SIPAS.scale == frozenset(range(1, 6))
    assert {"1.0", "5.0", "0.0"} <= SIPAS.items and "1.0" not in SIPAS.criteria
    assert SIPAS.max_choices == 3 and "E1" in SIPAS.expectation_options


def test_a_complete_ballot_is_accepted():
    outcome = validate(submit(), CONTEXT)
    assert isinstance(outcome, Accepted)
    assert outcome.ballot.ballot_id == "b-1"
    assert outcome.answered_criteria == 22
    assert outcome.expectations == frozenset({"E1", "E3"})


@pytest.mark.parametrize(("changes", "code_", "field"), [
    ({"code": BAD_CHECK}, "unknown_code", "code"),
    ({"code": "hello"}, "unknown_code", "code"),
    ({"code": code("u-never")}, "unknown_code", "code"),
    ({"code": code("u-3")}, "cancelled_code", "code"),
    ({"code": code("u-4")}, "used_code", "code"),
    ({"code": code("u-9", campaign="c-2024")}, "wrong_campaign", "campaign_id"),
    ({"campaign_id": "c-2024"}, "wrong_campaign", "campaign_id"),
    ({"received_on": dt.date(2025, 5, 31)}, "outside_window", "received_on"),
    ({"received_on": dt.date(2025, 10, 1)}, "outside_window", "received_on"),
    ({"code": code("u-out")}, "not_sampled", "code"),
    ({"answers": {**ALL_FIVES, "9.9": 5}}, "unknown_item", "answers.9.9"),
    ({"not_applicable_factors": frozenset({"F9"})}, "unknown_item", "not_applicable_factors"),
    ({"answers": {**ALL_FIVES, "2.3": 6}}, "off_scale", "answers.2.3"),
    ({"answers": {**ALL_FIVES, "2.3": 0}}, "off_scale", "answers.2.3"),
    ({"answers": {**ALL_FIVES, "2.3": True}}, "off_scale", "answers.2.3"),
    ({"answers": {**ALL_FIVES, "2.3": "5"}}, "off_scale", "answers.2.3"),
    ({"expectations": frozenset({"E1", "E99"})}, "unknown_option", "expectations"),
    ({"expectations": frozenset({"E1", "E2", "E3", "E4"})}, "too_many_choices", "expectations"),
    ({"answers": {}}, "too_few_answers", "answers"),
    ({"answers": dict.fromkeys(SIPAS.criteria)}, "too_few_answers", "answers"),
])
def test_every_rejection_reason(changes, code_, field):
    rejected = reason(**changes)
    assert (rejected.reason_code, rejected.field) == (code_, field)
    assert rejected.detail and len(rejected.detail) <= 500


def test_every_reason_code_is_exercised_and_stable():
    assert typing.get_args(Reason) == (
        "unknown_code", "cancelled_code", "used_code", "wrong_campaign", "outside_window", "not_sampled",
        "unknown_item", "off_scale", "unknown_option", "too_many_choices", "too_few_answers",
    )


def test_the_window_includes_its_first_and_last_day():
    for day in (RULES.window_start, RULES.window_end):
        assert isinstance(validate(submit(received_on=day), CONTEXT), Accepted)


def test_a_malformed_code_reports_the_problem():
    rejected = reason(code=code("u-1")[:-1])
    assert rejected.reason_code == "unknown_code" and "11 characters" in rejected.detail


def without(*items):
    return {k: v for k, v in ALL_FIVES.items() if k not in items}


def test_eighty_percent_of_criteria_is_the_threshold():
    # 22 criteria: 18 answered (81.8%) is enough, 17 (77.3%) is not
    assert isinstance(validate(submit(answers=without("1.1", "2.1", "3.1", "4.1")), CONTEXT), Accepted)
    rejected = reason(answers=without("1.1", "2.1", "3.1", "4.1", "5.1"))
    assert rejected.reason_code == "too_few_answers" and "17 of 22" in rejected.detail


def test_none_is_missing_not_zero():
    answers = {**without("1.1", "2.1", "3.1", "4.1", "5.1"), "1.1": None, "2.1": None}
    assert reason(answers=answers).reason_code == "too_few_answers"


def test_overall_items_are_valid_but_not_criteria():
    answers = {**without("1.1", "2.1", "3.1", "4.1", "5.1"), "1.0": 4, "0.0": 5}
    assert reason(answers=answers).reason_code == "too_few_answers"
    outcome = validate(submit(answers={**ALL_FIVES, "1.0": 4, "0.0": None}), CONTEXT)
    assert isinstance(outcome, Accepted) and outcome.answered_criteria == 22


def test_every_applicable_factor_needs_an_answer():
    answers = {**without("4.1", "4.2", "4.3"), "4.1": None}  # 19 of 22 answered, none in F4
    rejected = reason(answers=answers)
    assert rejected.reason_code == "too_few_answers" and "F4" in rejected.detail


def test_a_factor_marked_not_applicable_needs_no_answer_but_still_counts_in_the_share():
    answers = without("4.1", "4.2", "4.3")
    assert isinstance(validate(submit(answers=answers, not_applicable_factors=frozenset({"F4"})), CONTEXT),
                      Accepted)
    # F4 and F5 out: 15 of 22 answered, under 80% even though both factors are marked not applicable
    rejected = reason(answers=without("4.1", "4.2", "4.3", "5.1", "5.2", "5.3", "5.4"),
                      not_applicable_factors=frozenset({"F4", "F5"}))
    assert rejected.reason_code == "too_few_answers" and "15 of 22" in rejected.detail


def test_the_campaign_sets_the_minimum_share():
    lenient = dataclasses.replace(CONTEXT, campaign=dataclasses.replace(RULES, min_answered_share=Decimal("0.5")))
    answers = {k: 3 for k in ("1.1", "2.1", "2.2", "3.1", "3.2", "3.3", "4.1", "4.2", "5.1", "5.2", "5.3")}
    assert isinstance(validate(submit(answers=answers), lenient), Accepted)
    assert validate(submit(answers=answers), CONTEXT).reason_code == "too_few_answers"  # type: ignore[union-attr]


def test_received_on_must_be_a_local_date_not_a_timestamp():
    with pytest.raises(InvalidParameter) as raised:
        submit(received_on=dt.datetime(2025, 7, 15, 23, 30, tzinfo=dt.UTC))
    assert raised.value.field == "received_on"


def test_campaign_rules_are_checked():
    with pytest.raises(InvalidParameter):
        CampaignRules(CAMPAIGN, dt.date(2025, 9, 1), dt.date(2025, 8, 1))
    with pytest.raises(InvalidParameter):
        CampaignRules(CAMPAIGN, dt.date(2025, 8, 1), dt.date(2025, 9, 1), Decimal("1.2"))


def test_an_instrument_without_expectations_accepts_none():
    bare = dataclasses.replace(CONTEXT, instrument=Instrument(SIPAS.factors, SIPAS.scale))
    assert isinstance(validate(submit(expectations=frozenset()), bare), Accepted)
    assert validate(submit(), bare).reason_code == "unknown_option"  # type: ignore[union-attr]


def test_instrument_rejects_repeated_items():
    with pytest.raises(InvalidParameter):
        Instrument((FactorItems("F1", ("1", "2")), FactorItems("F2", ("2",))), frozenset({1, 2}))


# --- the order of checks: each row breaks its own check and every later one; the first must win ---

BROKEN_FROM = [
    ("cancelled_code", {"code": code("u-zz", campaign="c-2024")}),
    ("used_code", {"code": code("u-yy", campaign="c-2024")}),
    ("wrong_campaign", {"code": code("u-ww", campaign="c-2024")}),
    ("outside_window", {"received_on": dt.date(2026, 1, 1), "campaign_id": CAMPAIGN}),
    ("not_sampled", {"code": code("u-out")}),
    ("unknown_item", {"answers": {"9.9": 7, "1.1": 0}}),
    ("off_scale", {"answers": {"1.1": 0}}),
    ("unknown_option", {"expectations": frozenset({"E99", "E1", "E2", "E3"})}),
    ("too_many_choices", {"expectations": frozenset({"E1", "E2", "E3", "E4"})}),
    ("too_few_answers", {"answers": {"1.1": 5}}),
]


@pytest.mark.parametrize("index", range(len(BROKEN_FROM)))
def test_the_first_failing_check_decides(index):
    changes: dict[str, object] = {}
    for _, later in BROKEN_FROM[index:]:
        for key, value in later.items():
            changes.setdefault(key, value)
    assert reason(**changes).reason_code == BROKEN_FROM[index][0]


def test_code_checks_come_before_campaign_and_content_checks():
    everything_wrong = {"code": "garbage", "campaign_id": "x", "received_on": dt.date(2000, 1, 1),
                        "answers": {"zz": "zz"}, "expectations": frozenset({"??"})}
    assert reason(**everything_wrong).reason_code == "unknown_code"


def test_offending_items_are_reported_sorted():
    rejected = reason(answers={**ALL_FIVES, "3.2": 9, "1.3": 0, "2.2": -1})
    assert rejected.field == "answers.1.3"
    assert "1.3 = 0, 2.2 = -1, 3.2 = 9" in rejected.detail


# --- properties ---

values = st.one_of(st.none(), st.integers(-3, 8), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3),
                   st.lists(st.integers(), max_size=2))
keys = st.one_of(st.sampled_from(sorted(SIPAS.items)), st.text(max_size=4))
options = st.one_of(st.sampled_from(sorted(SIPAS.expectation_options)), st.text(max_size=3))
code_texts = st.one_of(st.sampled_from(sorted(BALLOTS)), st.text(max_size=16))


@settings(max_examples=300)
@given(st.dictionaries(keys, values, max_size=30), st.frozensets(options, max_size=5), code_texts,
       st.dates(dt.date(2025, 1, 1), dt.date(2025, 12, 31)), st.frozensets(st.sampled_from(["F1", "F5", "F7"])))
def test_validate_never_raises(answers, expectations, code_text, received, not_applicable):
    outcome = validate(submit(answers=answers, expectations=expectations, code=code_text, received_on=received,
                              not_applicable_factors=not_applicable), CONTEXT)
    assert isinstance(outcome, Accepted | Rejected)
    if isinstance(outcome, Rejected):
        assert outcome.reason_code in typing.get_args(Reason) and outcome.detail


@given(st.fixed_dictionaries({}, optional=dict.fromkeys(SIPAS.criteria, st.one_of(st.none(), st.integers(1, 5)))))
def test_on_scale_answers_are_accepted_iff_enough_criteria_and_every_factor_answered(answers):
    answered = {k for k, v in answers.items() if v is not None}
    enough = len(answered) * 5 >= 22 * 4 and all(set(f.criteria) & answered for f in SIPAS.factors)
    outcome = validate(submit(answers=answers), CONTEXT)
    assert isinstance(outcome, Accepted) == enough
    if not enough:
        assert isinstance(outcome, Rejected) and outcome.reason_code == "too_few_answers"
