import datetime as dt

from sipas_ballots.domain.online766 import DossierRating, ItemError, parse_rating, validate_batch

ROW = {"source_system": "dvc-h29", "dossier_id": "H29.05-2025-000123", "agency_code": "H29.05",
       "completed_on": "2025-07-14", "rated_unsatisfied": False, "complained": False, "overdue": True}


def test_a_row_becomes_a_rating_with_its_idempotency_key():
    rating = parse_rating(ROW)
    assert rating == DossierRating("dvc-h29", "H29.05-2025-000123", "H29.05", dt.date(2025, 7, 14), overdue=True)
    assert isinstance(rating, DossierRating) and rating.idempotency_key == ("dvc-h29", "H29.05-2025-000123")


def test_flags_default_to_false_and_accept_csv_spellings():
    rating = parse_rating({**{k: ROW[k] for k in ("source_system", "dossier_id", "agency_code")},
                           "completed_on": dt.date(2025, 7, 14), "complained": "TRUE", "overdue": 0})
    assert isinstance(rating, DossierRating)
    assert (rating.rated_unsatisfied, rating.complained, rating.overdue) == (False, True, False)


def test_every_problem_of_a_row_is_reported_precisely():
    errors = parse_rating({"dossier_id": "  ", "agency_code": 29, "completed_on": "14/07/2025",
                           "overdue": "maybe", "rating": 5}, index=7)
    assert errors == [
        ItemError(7, "rating", "unknown field"),
        ItemError(7, "source_system", "is required"),
        ItemError(7, "dossier_id", "must not be empty"),
        ItemError(7, "agency_code", "must be text, not int"),
        ItemError(7, "completed_on", "must be a date as YYYY-MM-DD, not '14/07/2025'"),
        ItemError(7, "overdue", "must be true or false, not 'maybe'"),
    ]


def test_times_and_future_dates_are_refused():
    assert parse_rating({**ROW, "completed_on": dt.datetime(2025, 7, 14, 9)}) == [
        ItemError(0, "completed_on", "must be a date without a time")]
    assert parse_rating(ROW, 3, not_after=dt.date(2025, 7, 1)) == [
        ItemError(3, "completed_on", "2025-07-14 is after 2025-07-01")]


def test_a_batch_keeps_valid_rows_drops_exact_repeats_and_refuses_conflicts():
    other = {**ROW, "dossier_id": "H29.05-2025-000124"}
    rows = [
        ROW,
        other,
        {**ROW, "dossier_id": " H29.05-2025-000123 "},           # the same dossier again: a harmless repeat
        {**ROW, "completed_on": "bad"},                           # invalid row
        {**other, "complained": True},                            # conflicts with row 1
        {**ROW, "source_system": "kiosk-h29"},                    # another source: another key
    ]
    batch = validate_batch(rows)
    assert [r.idempotency_key for r in batch.ratings] == [("dvc-h29", "H29.05-2025-000123"),
                                                          ("kiosk-h29", "H29.05-2025-000123")]
    assert batch.duplicates == (2,)
    assert [(e.index, e.field) for e in batch.errors] == [(1, "dossier_id"), (3, "completed_on"), (4, "dossier_id")]
    assert "rows 1, 4" in batch.errors[0].message


def test_an_empty_batch_is_empty():
    batch = validate_batch([])
    assert (batch.ratings, batch.errors, batch.duplicates) == ((), (), ())
