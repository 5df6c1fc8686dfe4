import pytest

from sipas_ballots.domain.double_entry import (
    Agreed,
    Disagreed,
    Disagreement,
    Keying,
    PaperBallot,
    adjudicate,
    compare,
)
from sipas_ballots.domain.errors import IncompleteAdjudication, InvalidParameter, NotAllowed

PAPER = PaperBallot("7k3m-q9tx-2hc", {"1.1": 5, "1.2": 4, "1.3": None}, frozenset({"E1"}))


def keyed(clerk, **changes):
    fields = {"code": PAPER.code, "answers": PAPER.answers, "expectations": PAPER.expectations,
              "not_applicable_factors": PAPER.not_applicable_factors} | changes
    return Keying(clerk, PaperBallot(**fields))


def test_identical_keyings_agree_on_the_normalised_ballot():
    outcome = compare(keyed("a"), keyed("b", code="7K3M Q9TX 2HC", answers={"1.1": 5, "1.2": 4}))
    assert isinstance(outcome, Agreed)
    assert outcome.ballot == PaperBallot("7K3MQ9TX2HC", {"1.1": 5, "1.2": 4, "1.3": None}, frozenset({"E1"}))


def test_disagreements_are_listed_field_by_field():
    second = keyed("b", code="7K3M-Q9TX-2HD", answers={"1.1": 5, "1.2": 2, "1.4": 3},
                   expectations=frozenset({"E1", "E2"}), not_applicable_factors=frozenset({"F5"}))
    outcome = compare(keyed("a"), second)
    assert isinstance(outcome, Disagreed)
    assert outcome.disagreements == (
        Disagreement("code", "7K3MQ9TX2HC", "7K3MQ9TX2HD"),
        Disagreement("answers.1.2", 4, 2),
        Disagreement("answers.1.4", None, 3),
        Disagreement("expectations", frozenset({"E1"}), frozenset({"E1", "E2"})),
        Disagreement("not_applicable_factors", frozenset(), frozenset({"F5"})),
    )


def test_one_clerk_cannot_key_both():
    with pytest.raises(NotAllowed) as raised:
        compare(keyed("a"), keyed("a"))
    assert raised.value.field == "clerk_id"


def test_adjudication_settles_each_disagreement():
    second = keyed("b", answers={"1.1": 5, "1.2": 2, "1.3": None}, expectations=frozenset({"E2"}))
    final = adjudicate(keyed("a"), second, "supervisor", {"answers.1.2": 3, "expectations": {"E1", "E2"}})
    assert final == PaperBallot("7K3MQ9TX2HC", {"1.1": 5, "1.2": 3, "1.3": None}, frozenset({"E1", "E2"}))


def test_adjudicating_agreed_keyings_returns_them_and_takes_no_choices():
    assert adjudicate(keyed("a"), keyed("b"), "s", {}).code == "7K3MQ9TX2HC"
    with pytest.raises(IncompleteAdjudication):
        adjudicate(keyed("a"), keyed("b"), "s", {"answers.1.1": 4})


def test_the_adjudicator_is_neither_keyer():
    for adjudicator in ("a", "b"):
        with pytest.raises(NotAllowed) as raised:
            adjudicate(keyed("a"), keyed("b", answers={"1.1": 1}), adjudicator, {"answers.1.1": 1})
        assert raised.value.field == "adjudicator_id"


def test_adjudication_must_settle_exactly_the_disputed_fields():
    second = keyed("b", answers={"1.1": 1, "1.2": 2})
    with pytest.raises(IncompleteAdjudication, match=r"unsettled: answers\.1\.2"):
        adjudicate(keyed("a"), second, "s", {"answers.1.1": 5})
    with pytest.raises(IncompleteAdjudication, match=r"not in dispute: code"):
        adjudicate(keyed("a"), second, "s", {"answers.1.1": 5, "answers.1.2": 4, "code": "X"})


@pytest.mark.parametrize(("field", "value"), [
    ("answers.1.1", "5"), ("answers.1.1", True), ("expectations", ["E1"]), ("code", 7),
])
def test_a_chosen_value_must_fit_its_field(field, value):
    second = keyed("b", code="7K3M-Q9TX-2HD", answers={"1.1": 1, "1.2": 4}, expectations=frozenset())
    choices = {"code": "7K3M-Q9TX-2HC", "answers.1.1": 5, "expectations": frozenset()} | {field: value}
    with pytest.raises(InvalidParameter) as raised:
        adjudicate(keyed("a"), second, "s", choices)
    assert raised.value.field == f"choices.{field}"
