import pytest

from sipas_ballots.domain.codes import derived_code, display
from sipas_ballots.domain.errors import (
    AlreadyCancelled,
    AlreadyIssued,
    AlreadyUsed,
    InvalidCode,
    InvalidParameter,
    UnknownBallot,
)
from sipas_ballots.domain.issuance import (
    CodeCancelled,
    CodeIssued,
    CodeUsed,
    Status,
    UnitBallots,
    decide_cancel,
    decide_issue,
    decide_reissue,
    decide_use,
    evolve,
    evolve_all,
)

KEY = b"0123456789abcdef0123456789abcdef"
CODE_1 = derived_code(KEY, "c-2025", "u-1", 1)
CODE_2 = derived_code(KEY, "c-2025", "u-1", 2)
CODE_3 = derived_code(KEY, "c-2025", "u-1", 3)


def fresh():
    return UnitBallots("c-2025", "u-1")


def issued():
    unit = fresh()
    return evolve(unit, decide_issue(unit, ballot_id="b-1", code=CODE_1))


def test_issue_gives_the_unit_its_ballot():
    fact = decide_issue(fresh(), ballot_id="b-1", code=display(CODE_1).lower())
    assert fact == CodeIssued("b-1", "c-2025", "u-1", CODE_1)
    unit = evolve(fresh(), fact)
    assert unit.current is not None
    assert (unit.current.code, unit.current.status) == (CODE_1, Status.ISSUED)


def test_a_unit_holds_one_live_ballot():
    with pytest.raises(AlreadyIssued) as raised:
        decide_issue(issued(), ballot_id="b-2", code=CODE_2)
    assert raised.value.field == "unit_id"


def test_issue_refuses_a_malformed_code():
    with pytest.raises(InvalidCode):
        decide_issue(fresh(), ballot_id="b-1", code="NOT-A-CODE")


def test_use_marks_the_code_used_once():
    unit = issued()
    fact = decide_use(unit, CODE_1, "s-1")
    assert fact == CodeUsed("b-1", CODE_1, "s-1")
    unit = evolve(unit, fact)
    assert unit.find(CODE_1).status is Status.USED
    with pytest.raises(AlreadyUsed):
        decide_use(unit, CODE_1, "s-2")
    with pytest.raises(AlreadyUsed):
        decide_cancel(unit, CODE_1, "lost")
    with pytest.raises(AlreadyUsed):
        decide_reissue(unit, CODE_1, "lost", new_ballot_id="b-2", new_code=CODE_2)


def test_a_cancelled_code_is_final():
    unit = issued()
    fact = decide_cancel(unit, CODE_1, "  respondent moved away ")
    assert fact == CodeCancelled("b-1", CODE_1, "respondent moved away")
    unit = evolve(unit, fact)
    assert unit.find(CODE_1).cancel_reason == "respondent moved away"
    for attempt in (lambda: decide_use(unit, CODE_1, "s-1"), lambda: decide_cancel(unit, CODE_1, "again"),
                    lambda: decide_reissue(unit, CODE_1, "again", new_ballot_id="b-2", new_code=CODE_2)):
        with pytest.raises(AlreadyCancelled):
            attempt()


def test_after_an_outright_cancel_the_unit_may_be_issued_again():
    unit = issued()
    unit = evolve(unit, decide_cancel(unit, CODE_1, "misprinted"))
    unit = evolve(unit, decide_issue(unit, ballot_id="b-2", code=CODE_2))
    assert unit.current is not None and unit.current.ballot_id == "b-2"


def test_reissue_cancels_the_old_code_and_issues_a_new_one_for_the_same_unit():
    unit = issued()
    facts = decide_reissue(unit, CODE_1, "ballot lost", new_ballot_id="b-2", new_code=CODE_2)
    assert facts == (CodeCancelled("b-1", CODE_1, "ballot lost"), CodeIssued("b-2", "c-2025", "u-1", CODE_2))
    unit = evolve_all(unit, facts)
    assert [(b.code, b.status) for b in unit.ballots] == [(CODE_1, Status.CANCELLED), (CODE_2, Status.ISSUED)]
    assert unit.current is not None and unit.current.code == CODE_2
    unit = evolve_all(unit, decide_reissue(unit, CODE_2, "spoiled", new_ballot_id="b-3", new_code=CODE_3))
    assert [b.status for b in unit.ballots] == [Status.CANCELLED, Status.CANCELLED, Status.ISSUED]


def test_reissue_needs_a_reason_and_a_code_and_id_not_yet_used():
    unit = issued()
    with pytest.raises(InvalidParameter) as raised:
        decide_reissue(unit, CODE_1, "  ", new_ballot_id="b-2", new_code=CODE_2)
    assert raised.value.field == "reason"
    with pytest.raises(AlreadyIssued) as same_code:
        decide_reissue(unit, CODE_1, "lost", new_ballot_id="b-2", new_code=CODE_1)
    assert same_code.value.field == "code"
    with pytest.raises(AlreadyIssued) as same_id:
        decide_reissue(unit, CODE_1, "lost", new_ballot_id="b-1", new_code=CODE_2)
    assert same_id.value.field == "ballot_id"


def test_unknown_codes_are_refused():
    for attempt in (lambda: decide_use(issued(), CODE_2, "s-1"), lambda: decide_cancel(fresh(), CODE_1, "x")):
        with pytest.raises(UnknownBallot) as raised:
            attempt()
        assert raised.value.field == "code"
