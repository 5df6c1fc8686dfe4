from fractions import Fraction

import pytest

from sipas_scoring.domain.online766 import (
    Complaint,
    Dossier,
    complaint_handling_satisfaction,
    complaints_on_time,
    dossier_satisfaction,
    score_online_766,
    share_without_mark,
)


def test_dossier_satisfaction_counts_unrated_as_satisfied():
    dossiers = [
        Dossier(rated_unsatisfied=True),
        Dossier(complained=True),
        Dossier(complained=True, overdue=True),  # one bad dossier, however many marks
        *[Dossier() for _ in range(5)],  # unrated or rated satisfied: both count as satisfied
    ]
    # (8 - 3) / 8 * 100 = 62.5
    assert dossier_satisfaction(dossiers) == Fraction(125, 2)


def test_complaint_figures_have_the_same_form():
    complaints = [Complaint(handled_late=True), Complaint(handling_rated_unsatisfied=True), Complaint(), Complaint()]
    assert complaints_on_time(complaints) == 75
    assert complaint_handling_satisfaction(complaints) == 75
    scores = score_online_766([Dossier(overdue=True), Dossier(), Dossier()], complaints)
    assert scores.dossier_satisfaction == Fraction(200, 3)
    assert (scores.dossiers, scores.complaints) == (3, 4)


def test_nothing_to_rate():
    assert dossier_satisfaction([]) is None
    assert score_online_766([], []).complaints_on_time is None
    with pytest.raises(ValueError):
        share_without_mark(2, 3)
