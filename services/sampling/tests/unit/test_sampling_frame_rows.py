"""The import's fast path gives exactly the staged record of ``validate_row`` then ``_record``, or defers."""

import datetime as dt
import random
import secrets
import unicodedata

from sipas_sampling.adapters.keys import Sealer
from sipas_sampling.application.frame_rows import RowPipeline
from sipas_sampling.application.frames import Agency, _record, _Unseen, agency_on
from sipas_sampling.domain.frame import FrameRules, Window, validate_row

WINDOW = Window(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
AGENCIES = {
    "H01.001": [Agency("a-1", "commune", "01", dt.date(2020, 1, 1), None)],
    "H01.002": [Agency("a-2", "district", "01", dt.date(2020, 1, 1), dt.date(2024, 6, 30)),
                Agency("a-2b", "district", None, dt.date(2024, 7, 1), None)],
}
RULES = FrameRules(WINDOW, lambda code, day: agency_on(AGENCIES, code, day) is not None)
NFD = unicodedata.normalize("NFD", "Nguyễn Văn Ánh")
CELLS = {
    "agency_code": ["H01.001", "H01.002", " H01.001 ", "H01.009", "", "h01.001", 7],
    "procedure": ["Cấp giấy phép xây dựng", unicodedata.normalize("NFD", "Đăng ký khai sinh"), "  a \t b ", "", None],
    "service_field": ["xây dựng", "hộ tịch", "đất\u00a0đai", ""],
    "completed_on": ["2024-03-05", "05/03/2024", "5/3/2024", " 2024-07-02 ", "2023-12-31", "2024-W10-1",
                     "31/02/2024", "", "soon", dt.date(2024, 3, 5), dt.datetime(2024, 8, 1, 9, 30)],
    "respondent_type": ["cá nhân", "Cá nhân", "CA NHAN", "tổ chức", "organization", " individual ", "other", ""],
    "name": ["Trần Thị Hương", NFD, "  Lê\u2003 Văn  B ", "ACME Co", "", "\u0301x"],
    "phone": ["0912345678", "0987 654 321", "+84 912 345 678", "912345678", "0084912345678", "02438251234",
              "024 3825 1234", "0212345678", "01234567890", "0951234567", "09123", "\uff10\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
              "0912.345.678", "", "  ", 912345678],
    "address": ["Số 5 Hàng Bài, Hà Nội", "", "  ", "ngõ  3\tphố Huế"],
}


def sealer() -> Sealer:
    return Sealer(secrets.token_bytes(32), "camp-1")


def plaintext(seal: Sealer, staged: tuple) -> bytes:
    return seal._aead.decrypt(staged[11][:12], staged[11][12:], b"camp-1|" + staged[1].encode())


def rows(count: int, seed: int):
    rng = random.Random(seed)
    for line in range(2, count + 2):
        # mostly the first, clean value of each cell, so that many rows are clean and many are not
        raw = {name: values[0] if rng.random() < 0.75 else rng.choice(values) for name, values in CELLS.items()}
        raw["dossier_id"] = rng.choice([f"H01.001-{line:06d}", f" H01.002-{line:06d} ", "", f"hồ sơ  {line}",
                                        unicodedata.normalize("NFD", f"hồ sơ {line}"), line])
        if rng.random() < 0.05:
            del raw[rng.choice(sorted(raw))]
        yield line, raw


def test_the_fast_path_stages_exactly_what_the_full_check_stages():
    seal = sealer()
    pipeline = RowPipeline("f-1", RULES, AGENCIES, seal, agency_on)
    fast = deferred = 0
    for line, raw in rows(20_000, seed=7):
        header, cells = list(raw), list(raw.values())
        staged = pipeline.record(line, header, cells)
        if staged is None:
            deferred += 1
            continue
        fast += 1
        check = validate_row(raw, RULES, _Unseen(), line)
        assert check.row is not None, (raw, check.errors)
        expected = (*_record("f-1", check.row, AGENCIES, seal), line)
        assert staged[:11] + staged[12:] == expected[:11] + expected[12:], raw
        # the contacts are sealed under fresh nonces: they differ, but hold the same plaintext, byte for byte
        assert staged[11] != expected[11] and len(staged[11]) == len(expected[11])
        assert plaintext(seal, staged) == plaintext(seal, expected)
    assert fast > 2000 and deferred > 2000  # both paths were exercised


def test_clean_rows_take_the_fast_path_and_nonces_never_repeat():
    seal = sealer()
    pipeline = RowPipeline("f-1", RULES, AGENCIES, seal, agency_on)
    nonces = set()
    for line in range(2, 10_002):
        raw = {"agency_code": "H01.001", "procedure": "Cấp giấy phép", "service_field": "xây dựng",
               "dossier_id": f"D-{line}", "completed_on": "2024-05-01", "respondent_type": "cá nhân",
               "name": "Trần Thị Hương", "phone": "0912345678", "address": ""}
        staged = pipeline.record(line, list(raw), list(raw.values()))
        assert staged is not None
        nonces.add(staged[11][:12])
    assert len(nonces) == 10_000


def test_the_caches_stay_bounded(monkeypatch):
    from sipas_sampling.application import frame_rows

    monkeypatch.setattr(frame_rows, "CACHE_LIMIT", 10)
    pipeline = RowPipeline("f-1", RULES, AGENCIES, sealer(), agency_on)
    for line in range(2, 200):
        raw = {"agency_code": "H01.001", "procedure": f"p{line}", "service_field": "x", "dossier_id": f"D{line}",
               "completed_on": (WINDOW.start + dt.timedelta(days=line)).isoformat(), "respondent_type": "cá nhân",
               "name": "A", "phone": "0912345678", "address": ""}
        assert pipeline.record(line, list(raw), list(raw.values())) is not None
    caches = (pipeline._texts, pipeline._days, pipeline._units, pipeline._kinds, pipeline._codes)
    assert all(len(cache) <= 10 for cache in caches)


def test_rows_as_the_csv_gives_them_short_or_under_a_repeated_column():
    seal = sealer()
    pipeline = RowPipeline("f-1", RULES, AGENCIES, seal, agency_on)
    header = ["agency_code", "procedure", "service_field", "dossier_id", "completed_on", "respondent_type", "name",
              "phone", "address", "phone"]
    cells = ["H01.002", "Cấp phép", "xây dựng", "D-1", "2024-08-01", "cá nhân", "Lê B", "0912345678", "",
             "0987654321"]
    staged = pipeline.record(5, header, cells)
    check = validate_row(dict(zip(header, cells, strict=False)), RULES, _Unseen(), 5)
    assert staged is not None and check.row is not None and check.row.phone == "0987654321"  # the last one
    expected = (*_record("f-1", check.row, AGENCIES, seal), 5)
    assert staged[:11] + staged[12:] == expected[:11] + expected[12:] and staged[3] == "a-2b"
    # a short row is left to the full check, which takes it without an address, or names what is missing
    assert pipeline.record(6, header, cells[:8]) is None and pipeline.record(7, header, cells[:6]) is None
    assert validate_row(dict(zip(header, cells[:8], strict=False)), RULES, _Unseen(), 6).row is not None
    assert ("name", "missing") in {(e.field, e.code) for e in
                                   validate_row(dict(zip(header, cells[:6], strict=False)), RULES, _Unseen(), 7).errors}
