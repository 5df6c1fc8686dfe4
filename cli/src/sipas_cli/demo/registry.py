"""Step 1, the registry: each province registers a couple of departments and communes (one bulk import
by its own Department of Home Affairs), then the ministry opens the national campaign over them."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

from sipas_cli.demo.client import ORGANISER, Api, DemoError, operator, problem, wait_until
from sipas_cli.demo.model import Agency, Round
from sipas_cli.demo.people import Procedure
from sipas_cli.registry_client import MAP34_FROM

WARDS = ["Hòa Bình", "Quang Trung", "Hồng Hà", "Tân An", "Phú Lợi", "Thống Nhất", "Hưng Phú", "Minh Khai",
         "An Hòa", "Trần Phú", "Bình Minh", "Đông Hải"]
VILLAGES = ["Tân Lập", "Đồng Tâm", "Tân Phú", "Bình An", "Phú Thịnh", "Hòa Lạc", "Xuân Sơn", "Thanh Bình",
            "Yên Lạc", "Mỹ Hòa", "Vĩnh Phúc", "Kim Sơn", "Long Hưng"]
JUSTICE = [Procedure("Cấp phiếu lý lịch tư pháp", "tư pháp"),
           Procedure("Chứng thực bản sao từ bản chính", "chứng thực"),
           Procedure("Cấp bản sao trích lục hộ tịch", "hộ tịch")]
FARMING = [Procedure("Đăng ký biến động quyền sử dụng đất", "đất đai"),
           Procedure("Cấp giấy phép môi trường", "môi trường"),
           Procedure("Cấp giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm", "nông nghiệp")]
COMMUNE = [Procedure("Đăng ký khai sinh", "hộ tịch"), Procedure("Đăng ký kết hôn", "hộ tịch"),
           Procedure("Chứng thực chữ ký", "chứng thực"), Procedure("Xác nhận tình trạng hôn nhân", "hộ tịch"),
           Procedure("Cấp giấy chứng nhận quyền sử dụng đất lần đầu", "đất đai")]
# Demo units of a province, in the order a campaign takes them: code suffix, level, name, procedures.
UNITS = [("STP", "department", "Sở Tư pháp {p}", JUSTICE),
         ("PH1", "commune", "Ủy ban nhân dân phường {w}", COMMUNE),
         ("SNN", "department", "Sở Nông nghiệp và Môi trường {p}", FARMING),
         ("XA1", "commune", "Ủy ban nhân dân xã {v}", COMMUNE)]
PROCEDURES = {suffix: procs for suffix, _, _, procs in UNITS}


def unit_rows(index: int, code: str, name: str) -> list[dict[str, str]]:
    ward, village = WARDS[index % len(WARDS)], VILLAGES[index % len(VILLAGES)]
    return [{"code": f"{code}-{suffix}", "name": pattern.format(p=name, w=ward, v=village), "level": level,
             "parent_code": code, "province": code, "valid_from": MAP34_FROM} for suffix, level, pattern, _ in UNITS]


def provinces_today(api: Api) -> dict[str, str]:
    """The 34 provinces as they stand since 1 July 2025, from the registry (loaded by `sipas up`)."""
    page = api.get("registry", "/v1/agencies", ORGANISER, params={"as_of": MAP34_FROM, "level": "province",
                                                                 "limit": 500})
    found = {a["province"]: a["name"] for a in page["items"]}
    if len(found) < 34:
        raise DemoError(f"the registry knows {len(found)} provinces on {MAP34_FROM}, not 34: "
                        "start the platform with its reference data (`sipas up`, seeding is on by default)")
    return dict(sorted(found.items()))


def register_units(api: Api, rnd: Round, provinces: list[str], tick: Callable[[], None]) -> int:
    """Each province imports its demo units (only those it does not have yet): returns how many were new."""
    created = 0
    for index, code in enumerate(provinces):
        who = operator(code)
        known = _units(api, code)
        wanted = unit_rows(index, code, rnd.province_names[code])
        missing = [row for row in wanted if row["code"] not in known]
        if missing:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(missing[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(missing)
            api.call("POST", "registry", "/v1/agency-imports", who, ok=(201,),
                     params={"filename": f"don-vi-{code}.csv"}, content=out.getvalue().encode(),
                     headers={"Content-Type": "text/csv", "Idempotency-Key": f"demo-units-{code}-{rnd.tag}"})
            created += len(missing)
            known = _units(api, code)
        rnd.agencies[code] = [known[row["code"]] for row in wanted]
        tick()
    return created


def _units(api: Api, province: str) -> dict[str, Agency]:
    prefix = f"{province}-"
    return {a["code"]: Agency(a["agency_id"], a["code"], a["name"], a["level"], province)
            for level in ("department", "commune")
            for a in api.pages("registry", "/v1/agencies", operator(province), province=province, level=level)
            if a["code"].startswith(prefix) and a["valid_to"] is None}


def windows(today: dt.date) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    """Collection: from three weeks ago to six weeks ahead. Frame: the year before collection began, never
    before the 34-province map (the demo units exist from 1 July 2025)."""
    start = today - dt.timedelta(days=21)
    collection = (start, today + dt.timedelta(days=42))
    frame = (max(dt.date.fromisoformat(MAP34_FROM), start - dt.timedelta(days=365)), start - dt.timedelta(days=1))
    return collection, frame


def open_campaign(api: Api, rnd: Round, per_province: int, sample: int, *, margin: str = "0.05",
                  frame_window: tuple[dt.date, dt.date] | None = None) -> None:
    """Open the national campaign over ``per_province`` agencies of each sampled province, ``sample`` at most per
    agency (Slovin at ``margin``); the frame window is the year before collection unless ``frame_window``."""
    rnd.targets = [a for p in rnd.provinces for a in rnd.agencies[p][:per_province]]
    collection, frame = windows(rnd.today)
    frame = frame_window or frame
    body = {"name": f"SIPAS {rnd.year} — vòng trình diễn {rnd.tag} (dữ liệu mô phỏng)", "year": collection[0].year,
            "scope": "national", "collection_window": {"start": collection[0].isoformat(),
                                                       "end": collection[1].isoformat()},
            "frame_window": {"start": frame[0].isoformat(), "end": frame[1].isoformat()},
            "target_unit_ids": [a.agency_id for a in rnd.targets],
            "instrument": {"id": "sipas-2017", "version": 1}, "scheme": {"id": "share-satisfied", "version": 1},
            "sampling": {"method": "slovin", "margin": margin, "cap_per_unit": sample, "reserve_ratio": "0.2"},
            "retention_until": (collection[1] + dt.timedelta(days=365)).isoformat()}
    opened = api.post("registry", "/v1/campaigns", ORGANISER, body,
                      headers={"Idempotency-Key": f"demo-campaign-{rnd.tag}"})
    rnd.campaign_id = opened["campaign_id"]
    for service in ("sampling", "ballots", "scoring"):
        wait_until(lambda s=service: any(c["campaign_id"] == rnd.campaign_id for c in api.get(  # type: ignore[misc]
            s, "/v1/reference/campaigns", ORGANISER)), f"{service} learning of the campaign")


def advance(api: Api, rnd: Round, status: str, note: str) -> None:
    """Move the campaign one step on; a step someone (or a service) already took is fine."""
    path = f"/v1/campaigns/{rnd.campaign_id}"
    r = api.call("POST", "registry", f"{path}/status", ORGANISER, ok=(200, 409), json={"status": status, "note": note},
                 headers={"Idempotency-Key": f"demo-{rnd.tag}-{status}"})
    if r.status_code == 409:
        steps = [s["status"] for s in api.get("registry", path, ORGANISER)["steps"]]
        if status not in steps:
            raise DemoError(f"the campaign could not move to {status}: {problem(r)}")
