import datetime as dt
import hashlib
import unicodedata

import pytest

from sipas_sampling.domain.digest import FrameDigester, canonical_row, frame_digest, sort_key
from sipas_sampling.domain.errors import FrameOrderError
from sipas_sampling.domain.frame import FrameRow, FrameRules, Window, known_agencies, parse_day, validate_row

WINDOW = Window(dt.date(2023, 10, 1), dt.date(2024, 9, 30))
RULES = FrameRules(WINDOW, known_agencies({"H29.05", "H29.07"}))


def raw(**changes):
    base = {
        "agency_code": "H29.05",
        "procedure": "Cấp giấy chứng nhận quyền sử dụng đất",
        "service_field": "đất đai",
        "dossier_id": "000.00.05.H29-231015-0001",
        "completed_on": "15/10/2023",
        "respondent_type": "Cá nhân",
        "name": "Nguyễn Văn An",
        "phone": "+84 912 345 678",
        "address": "Thôn 3, xã Tân Lập",
    }
    base.update(changes)
    return base


def errors_of(check):
    return {(e.field, e.code) for e in check.errors}


def test_a_good_row_comes_out_clean():
    check = validate_row(raw(name="  Nguyễn   Văn\tAn "), RULES, set())
    assert check.ok and check.errors == ()
    row = check.row
    assert row == FrameRow(
        agency_code="H29.05", procedure="Cấp giấy chứng nhận quyền sử dụng đất", service_field="đất đai",
        dossier_id="000.00.05.H29-231015-0001", completed_on=dt.date(2023, 10, 15), respondent_type="individual",
        name="Nguyễn Văn An", phone="0912345678", address="Thôn 3, xã Tân Lập",
    )


def test_names_are_nfc():
    decomposed = unicodedata.normalize("NFD", "Trần Thị Hương")
    assert decomposed != "Trần Thị Hương"
    row = validate_row(raw(name=decomposed), RULES, set()).row
    assert row is not None and row.name == "Trần Thị Hương"
    assert unicodedata.is_normalized("NFC", row.name)


@pytest.mark.parametrize("field", ["agency_code", "procedure", "service_field", "dossier_id", "completed_on",
                                   "respondent_type", "name"])
@pytest.mark.parametrize("blank", [None, "", "   "])
def test_each_missing_required_field_is_named(field, blank):
    check = validate_row(raw(**{field: blank}), RULES, set(), line=7)
    assert not check.ok
    assert (field, "missing") in errors_of(check)
    assert all(e.line == 7 for e in check.errors)


def test_malformed_phone_is_reported_with_its_reason():
    check = validate_row(raw(phone="0951 234 567"), RULES, set())
    [error] = check.errors
    assert (error.field, error.code) == ("phone", "malformed")
    assert "unknown mobile network prefix 095" in error.message


def test_a_date_outside_the_window_is_refused():
    check = validate_row(raw(completed_on="2023-09-30"), RULES, set())
    [error] = check.errors
    assert (error.field, error.code) == ("completed_on", "outside_window")
    assert "2023-10-01" in error.message and "2024-09-30" in error.message
    assert validate_row(raw(completed_on=dt.date(2024, 9, 30)), RULES, set()).ok


@pytest.mark.parametrize("text", ["31/02/2024", "2024/10/01", "10-01-2024", "yesterday", "2024-1-5"])
def test_malformed_dates(text):
    assert errors_of(validate_row(raw(completed_on=text), RULES, set())) == {("completed_on", "malformed")}


def test_dates_are_day_first_or_iso():
    assert parse_day("05/01/2024") == dt.date(2024, 1, 5)
    assert parse_day("2024-01-05") == dt.date(2024, 1, 5)
    assert parse_day(dt.datetime(2024, 1, 5, 9, 30)) == dt.date(2024, 1, 5)
    assert parse_day(45000) is None


def test_unknown_agency_is_checked_on_the_completion_day():
    asked = []

    def agency_known(code, day):
        asked.append((code, day))
        return day < dt.date(2024, 7, 1)  # the agency was merged away on 1 July 2024

    rules = FrameRules(WINDOW, agency_known)
    assert validate_row(raw(completed_on="2024-06-30"), rules, set()).ok
    check = validate_row(raw(completed_on="2024-07-01", dossier_id="other"), rules, set())
    assert errors_of(check) == {("agency_code", "unknown_agency")}
    assert asked == [("H29.05", dt.date(2024, 6, 30)), ("H29.05", dt.date(2024, 7, 1))]
    assert errors_of(validate_row(raw(agency_code="X99"), RULES, set())) == {("agency_code", "unknown_agency")}


def test_duplicate_dossiers_within_the_file():
    seen: set[str] = set()
    assert validate_row(raw(), RULES, seen).ok
    again = validate_row(raw(dossier_id=" 000.00.05.H29-231015-0001 "), RULES, seen)
    assert errors_of(again) == {("dossier_id", "duplicate")}
    assert seen == {"000.00.05.H29-231015-0001"}


def test_a_dossier_is_remembered_even_when_its_first_row_fails():
    seen: set[str] = set()
    assert not validate_row(raw(phone="123"), RULES, seen).ok
    assert errors_of(validate_row(raw(), RULES, seen)) == {("dossier_id", "duplicate")}


def test_every_error_of_a_row_is_reported_at_once():
    check = validate_row(raw(name="", phone="abc", completed_on="2020-01-01", respondent_type="household"),
                         RULES, set())
    assert errors_of(check) == {("name", "missing"), ("phone", "malformed"), ("completed_on", "outside_window"),
                                ("respondent_type", "invalid")}


@pytest.mark.parametrize(("text", "kind"), [("individual", "individual"), ("CÁ NHÂN", "individual"),
                                            ("ca nhan", "individual"), ("Tổ chức", "organisation"),
                                            ("organization", "organisation"), ("Organisation", "organisation")])
def test_respondent_type_spellings(text, kind):
    row = validate_row(raw(respondent_type=text), RULES, set()).row
    assert row is not None and row.respondent_type == kind


def test_contact_rules():
    assert validate_row(raw(phone=None), RULES, set()).ok  # address suffices
    assert errors_of(validate_row(raw(phone=None, address=" "), RULES, set())) == {("phone", "missing")}
    phone_survey = FrameRules(WINDOW, RULES.agency_known, require_phone=True)
    assert errors_of(validate_row(raw(phone=None), phone_survey, set())) == {("phone", "missing")}


def test_cells_that_are_not_text_are_read_as_text():
    row = validate_row(raw(phone=912345678, dossier_id=12345), RULES, set()).row
    assert row is not None and row.phone == "0912345678" and row.dossier_id == "12345"


def test_window_must_be_ordered():
    with pytest.raises(ValueError, match="ends"):
        Window(dt.date(2024, 1, 2), dt.date(2024, 1, 1))


# --- canonical form and digest -------------------------------------------------------------------

def frame_rows(n=20):
    rows = []
    for i in range(n):
        agency = "H29.05" if i % 3 else "H29.07"
        check = validate_row(raw(agency_code=agency, dossier_id=f"D-{i:04d}", name=f"Người {i}"), RULES, set())
        assert check.row is not None
        rows.append(check.row)
    return rows


def test_canonical_line_is_compact_json_in_fixed_order():
    row = frame_rows(1)[0]
    assert canonical_row(row) == (
        '["H29.07","D-0000","Cấp giấy chứng nhận quyền sử dụng đất","đất đai","2023-10-15","individual",'
        '"Người 0","0912345678","Thôn 3, xã Tân Lập"]\n'
    ).encode()


def test_digest_is_sha256_over_header_and_sorted_lines():
    rows = frame_rows(5)
    expected = hashlib.sha256(b"sipas-frame/v2\n" + b"".join(
        hashlib.sha256(canonical_row(r)).digest() for r in sorted(rows, key=sort_key)))
    assert frame_digest(rows) == expected.hexdigest()


def test_digest_does_not_depend_on_row_order():
    rows = frame_rows()
    assert frame_digest(rows) == frame_digest(list(reversed(rows))) == frame_digest(rows[7:] + rows[:7])


def test_digest_ignores_whitespace_and_unicode_normalisation():
    rows = frame_rows(3)
    first = rows[0]
    messy = FrameRow(
        agency_code=f" {first.agency_code}", procedure=unicodedata.normalize("NFD", first.procedure) + "  ",
        service_field=first.service_field, dossier_id=first.dossier_id, completed_on=first.completed_on,
        respondent_type=first.respondent_type, name=unicodedata.normalize("NFD", "Người  0"),
        phone=first.phone, address=f"{first.address}\t",
    )
    assert frame_digest(rows) == frame_digest([messy, *rows[1:]])


def test_digest_changes_with_any_real_change():
    rows = frame_rows(3)
    base = frame_digest(rows)
    for change in ({"name": "Người khác"}, {"completed_on": dt.date(2023, 10, 16)}, {"phone": None},
                   {"respondent_type": "organisation"}):
        changed = FrameRow(**{**rows[0].__dict__, **change})
        assert frame_digest([changed, *rows[1:]]) != base
    assert frame_digest(rows[:2]) != base


def test_streaming_digest_needs_sorted_unique_rows():
    rows = sorted(frame_rows(6), key=sort_key)
    digester = FrameDigester()
    for row in rows:
        digester.update(row)
    assert digester.rows == 6 and digester.hexdigest() == frame_digest(rows)
    with pytest.raises(FrameOrderError, match="repeats"):
        digester.update(rows[-1])
    backwards = FrameDigester()
    backwards.update(rows[1])
    with pytest.raises(FrameOrderError, match="comes after"):
        backwards.update(rows[0])
