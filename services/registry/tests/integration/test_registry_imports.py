"""Agency files as provinces send them: XLSX with real date cells, CSV with ';' and a BOM, and files
that cannot be read at all — each answered precisely, none leaving anything behind."""

from __future__ import annotations

import datetime as dt
import io

import pytest

pytestmark = pytest.mark.asyncio
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def hanoi(api):
    r = await api.client.post("/v1/agencies", headers=api.auth("ministry-admin"), json={
        "code": "01", "name": "Hà Nội", "level": "province", "province": "01", "valid_from": "2008-08-01"})
    assert r.status_code == 201
    return r.json()["agency_id"]


def workbook(rows: list[list[object]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_xlsx_with_vietnamese_headers_and_date_cells_imports(open_api):
    api = await open_api("registry")
    parent = await hanoi(api)
    content = workbook([
        ["Mã", "Tên", "Cấp", "Mã cha", "Tỉnh", "Từ ngày"],
        ["SNV01", "Sở Nội vụ", "sở", "01", 1, dt.datetime(2025, 7, 1)],
        ["P00004", "Phường Ba Đình", "phường", "01", "01", "01/07/2025"],
    ])
    op = api.auth("province-operator", "01")
    r = await api.client.post("/v1/agency-imports", params={"filename": "ha-noi.xlsx"}, content=content,
                              headers=op | {"Content-Type": XLSX})
    assert r.status_code == 201, r.text
    listed = (await api.client.get("/v1/agencies", params={"parent_id": parent}, headers=op)).json()["items"]
    assert {(u["code"], u["level"], u["valid_from"]) for u in listed} == {
        ("SNV01", "department", "2025-07-01"), ("P00004", "commune", "2025-07-01")}


async def test_semicolon_csv_with_a_bom_is_read(open_api):
    api = await open_api("registry")
    await hanoi(api)
    text = "\ufeffcode;name;level;parent_code;province;valid_from\nS2;Sở Tư pháp;department;01;01;2025-07-01\n"
    r = await api.client.post("/v1/agency-imports", content=text.encode("utf-8"),
                              headers=api.auth("ministry-admin") | {"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(("content", "media", "status", "says"), [
    (b"code,name\nA,B\n", "text/csv", 422, "missing columns: level, province, valid_from"),
    (b"code,name,level,province,valid_from\n" + "Hồ,Tên,commune,01,2025-07-01\n".encode("utf-16-le"),
     "text/csv", 422, "not UTF-8"),
    (b"PK\x03\x04 not really a workbook", XLSX, 422, "not a readable XLSX"),
    (b"code,name,level,province,valid_from\n", "text/csv", 422, "no rows"),
    (b"{}", "application/json", 415, "text/csv"),
])
async def test_unreadable_files_are_refused_precisely(open_api, content, media, status, says):
    api = await open_api("registry")
    await hanoi(api)
    r = await api.client.post("/v1/agency-imports", content=content,
                              headers=api.auth("ministry-admin") | {"Content-Type": media})
    assert r.status_code == status, r.text
    assert says in r.json()["detail"]
    listed = (await api.client.get("/v1/agencies", headers=api.auth("ministry-admin"))).json()["items"]
    assert [u["code"] for u in listed] == ["01"]


async def test_an_import_registers_units_under_units_of_the_same_file_each_on_its_own_stream(open_api):
    """A file's rows may name each other as parents (a commune listed before its district): each unit is
    registered under the one decided before it, as its stream's first event, with its history — so the next
    command on it finds it at version 1 — and the import's own event follows them."""
    api = await open_api("registry")
    province = await hanoi(api)
    admin = api.auth("ministry-admin")
    text = ("code,name,level,parent_code,province,valid_from\n"
            "X1,Xã Một,commune,D1,01,2020-01-01\nD1,Huyện Một,district,01,01,2020-01-01\n"
            "S3,Sở Tài chính,department,01,01,2025-07-01\n")
    r = await api.client.post("/v1/agency-imports", params={"filename": "ha-noi.csv"}, content=text.encode(),
                              headers=admin | {"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    units = {u["code"]: u for u in (await api.client.get("/v1/agencies", params={"province": "01"},
                                                         headers=admin)).json()["items"]}
    assert units["D1"]["parent_id"] == province and units["S3"]["parent_id"] == province
    assert units["X1"]["parent_id"] == units["D1"]["agency_id"]
    assert units["D1"]["valid_to"] == "2025-06-30"  # the law ended every district: the event says so
    commune = (await api.client.get(f"/v1/agencies/{units['X1']['agency_id']}", headers=admin)).json()
    assert commune["history"] == [{"effective_date": "2020-01-01", "name": "Xã Một",
                                   "parent_id": units["D1"]["agency_id"], "legal_basis": None}]
    renamed = await api.client.post(f"/v1/agencies/{units['X1']['agency_id']}/rename", headers=admin, json={
        "name": "Xã Một Mới", "effective_date": "2024-01-01", "legal_basis": "Nghị quyết 1"})
    assert renamed.status_code == 200, renamed.text  # its stream's second event: the import's was its first
    assert [h["name"] for h in renamed.json()["history"]] == ["Xã Một", "Xã Một Mới"]
    events = (await api.client.get("/v1/events", params={"limit": 100}, headers=admin)).json()["events"]
    kinds = [(e["type"].split(".")[-2], e["subject"], e["sequence"]) for e in events][1:4 + 1]
    registered = [f"agency-{units[c]['agency_id']}" for c in ("D1", "X1", "S3")]
    assert kinds == [*(("AgencyRegistered", s, 1) for s in registered),
                     ("AgencyImportCompleted", f"import-{r.json()['import_id']}", 1)]
