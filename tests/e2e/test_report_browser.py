"""The public report in a real headless browser (Debian's chromium), over a real release.

A commune of Hà Nội is sampled and its respondents answer through the ballots API; scoring freezes
a snapshot; publishing drafts a release from it (one ministry officer), a second officer approves
and publishes it; then a reader opens the report on a desktop and on a phone-sized screen, follows
the ranking to the province page and downloads the figures (CSV and PDF). Screenshots are kept under
``test-artefacts/report-browser/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import httpx
import pytest
from conftest import headless_chromium, wait_for

pytestmark = pytest.mark.e2e
SEED = "9e" * 20
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "report-browser"
PHONE = (390, 844)


def chromium(downloads: Path, phone: bool) -> object:
    return headless_chromium(PHONE if phone else (1280, 1000), phone=phone,
                             prefs={"download.default_directory": str(downloads), "download.prompt_for_download": False})


@pytest.fixture(scope="module")
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nreport screenshots and downloads: {ARTEFACTS}")
    return ARTEFACTS


@pytest.fixture(scope="module")
def desktop(artefacts):
    driver = chromium(artefacts, phone=False)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def phone(artefacts):
    driver = chromium(artefacts, phone=True)
    yield driver
    driver.quit()


def officer(platform, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.identity.mint(who, 'ministry-admin')}"}


@pytest.fixture(scope="module")
def release(platform, admin, run_round) -> dict:
    """A campaign of 40 answered ballots, frozen by scoring and published by two different people."""
    rows = [f"RP-1,Chứng thực,chứng thực,R-{i:04d},2026-02-0{1 + i % 9},cá nhân,Người {i},09{i:08d},Số {i}"
            for i in range(50)]
    round_ = run_round(code="RP-1", frame_rows=rows, seed=SEED, collection=("2026-01-01", "2099-12-31"))
    cid = round_["campaign_id"]
    codes = wait_for(lambda: platform.pg.psql(
        f"SELECT code FROM ballots WHERE campaign_id = '{cid}' AND status = 'issued' ORDER BY code",
        database="sipas_ballots").split(), timeout=60)
    assert len(codes) >= 40
    criteria = wait_for(lambda: instrument_criteria(platform, admin))
    rng = random.Random(7)
    for code in codes[:40]:
        answers = {c: rng.choice([2, 3, 4, 5, 5, 4, 5]) for c in criteria}
        r = httpx.post(platform.url("ballots") + "/v1/submissions",
                       json={"code": code, "campaign_id": cid, "answers": answers, "channel": "online"})
        assert r.status_code == 201 and r.json()["outcome"] == "accepted", r.text

    def counted():
        body = httpx.get(platform.url("scoring") + f"/v1/campaigns/{cid}/scores", headers=admin).json()
        return [u for u in body.get("units", []) if u["level"] == "agency" and u["overall"]["n"] == 40]

    wait_for(counted, timeout=60)
    snap = httpx.post(platform.url("scoring") + f"/v1/campaigns/{cid}/snapshots", headers=admin)
    assert snap.status_code == 201, snap.text
    snapshot = snap.json()

    publishing = platform.url("publishing")
    lan, minh = officer(platform, "lan@bnv"), officer(platform, "minh@bnv")

    def drafted():  # publishing learns of the snapshot from scoring's event stream
        r = httpx.post(publishing + "/v1/releases", headers=lan, timeout=60,
                       json={"snapshot_id": snapshot["snapshot_id"], "title": "SIPAS 2026 — Hà Nội (thử)"})
        return r.json() if r.status_code == 201 else None

    draft = wait_for(drafted, timeout=60)
    assert draft["figures_digest"] == snapshot["digest"] and draft["drafted_by"] == "lan@bnv"
    release_id = draft["release_id"]
    assert httpx.post(f"{publishing}/v1/releases/{release_id}/submit", headers=lan).json()["status"] == "submitted"
    refused = httpx.post(f"{publishing}/v1/releases/{release_id}/approve", headers=lan)
    assert refused.status_code == 403 and refused.json()["title"] == "Four eyes"
    assert httpx.post(f"{publishing}/v1/releases/{release_id}/approve", headers=minh).json()["approved_by"] == \
        "minh@bnv"
    r = httpx.post(f"{publishing}/v1/releases/{release_id}/publish", headers=minh, json={})
    assert r.status_code == 200 and r.json()["status"] == "published", r.text
    scores = httpx.get(platform.url("scoring") + f"/v1/snapshots/{snapshot['snapshot_id']}", headers=admin).json()
    return {"release_id": release_id, "campaign_id": cid, "url": publishing, "snapshot": scores}


def instrument_criteria(platform, admin) -> list[str]:
    found = httpx.get(platform.url("scoring") + "/v1/reference/definitions", headers=admin).json()
    sipas = next((d["definition"] for d in found if d["kind"] == "instrument" and d["def_id"] == "sipas-2017"), None)
    return [i["code"] for f in sipas["factors"] for i in f["items"]] if sipas else []


def fits(driver, width: int) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth") <= width


def test_a_reader_follows_the_ranking_to_a_province_and_downloads_the_figures(release, desktop, artefacts):
    from selenium.webdriver.common.by import By

    release_id, base = release["release_id"], release["url"]
    units = release["snapshot"]["units"]
    province = next(u for u in units if u["level"] == "province")
    agency = next(u for u in units if u["level"] == "agency")

    desktop.get(f"{base}/report")
    desktop.find_element(By.LINK_TEXT, "SIPAS 2026 — Hà Nội (thử)").click()
    assert desktop.current_url == f"{base}/report/{release_id}"
    assert desktop.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi"
    assert "<script" not in desktop.page_source  # the report needs no JavaScript
    ranking = desktop.find_element(By.ID, "ranking")
    assert "Xếp hạng tỉnh, thành phố" in desktop.find_element(By.TAG_NAME, "main").text
    [row] = ranking.find_elements(By.CSS_SELECTOR, "tbody tr")
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == "Hà Nội" and cells[2] == province["overall"]["value"]
    bar = row.find_element(By.CSS_SELECTOR, "svg.ci")
    assert bar.is_displayed() and bar.size["width"] > 50  # the CI bar is drawn, not collapsed
    desktop.save_screenshot(str(artefacts / "ranking-desktop.png"))

    row.find_element(By.LINK_TEXT, "Hà Nội").click()
    assert desktop.current_url == f"{base}/report/{release_id}/provinces/01"
    assert desktop.find_element(By.TAG_NAME, "h1").text == "Hà Nội"
    [agency_row] = desktop.find_elements(By.CSS_SELECTOR, "#agencies tbody tr")
    agency_cells = [c.text for c in agency_row.find_elements(By.TAG_NAME, "td")]
    assert agency_cells[0] == agency["name"] and agency_cells[1] == agency["overall"]["value"]
    assert agency_cells[3] == "40"
    desktop.save_screenshot(str(artefacts / "province-desktop.png"))

    desktop.find_element(By.ID, "lang").click()  # the English switch keeps the reader on the same page
    assert desktop.current_url.endswith("/provinces/01?lang=en")
    assert "Agencies" in desktop.find_element(By.TAG_NAME, "main").text

    downloaded = artefacts / f"sipas-{release_id}.csv"
    downloaded.unlink(missing_ok=True)
    desktop.get(f"{base}/report/{release_id}")
    desktop.find_element(By.ID, "csv").click()
    wait_for(lambda: downloaded.exists() and downloaded.stat().st_size > 0, timeout=30)
    rows = list(csv.DictReader(io.StringIO(downloaded.read_text(encoding="utf-8-sig"))))
    overall = {r["unit_id"]: r["value"] for r in rows if r["figure"] == "overall"}
    assert overall[agency["id"]] == agency["overall"]["value"] and overall[province["id"]] == \
        province["overall"]["value"]
    assert {r["n"] for r in rows if r["unit_id"] == agency["id"] and r["figure"] == "overall"} == {"40"}

    report = artefacts / f"sipas-{release_id}.pdf"
    report.unlink(missing_ok=True)
    desktop.find_element(By.ID, "pdf").click()
    wait_for(lambda: report.exists() and report.stat().st_size > 0, timeout=30)
    from pypdf import PdfReader

    text = "\n".join(page.extract_text() for page in PdfReader(report).pages)
    assert "Xếp hạng tỉnh, thành phố" in text and "Hà Nội" in text and agency["name"] in text
    assert agency["overall"]["value"] in text


def test_the_report_fits_a_phone(release, phone, artefacts):
    from selenium.webdriver.common.by import By

    release_id, base = release["release_id"], release["url"]
    for name, path in (("index", "/report"), ("ranking", f"/report/{release_id}"),
                       ("province", f"/report/{release_id}/provinces/01")):
        phone.get(base + path)
        assert phone.execute_script("return window.innerWidth") == PHONE[0]
        assert fits(phone, PHONE[0]), f"{path} scrolls sideways on a {PHONE[0]}px screen"
        phone.save_screenshot(str(artefacts / f"{name}-phone.png"))
        if name != "index":
            hidden = phone.find_elements(By.CSS_SELECTOR, "th.wide")
            assert hidden and not any(h.is_displayed() for h in hidden)  # secondary columns fold away
    phone.get(f"{base}/report/{release_id}")
    bar = phone.find_element(By.CSS_SELECTOR, "#ranking svg.ci")
    assert bar.is_displayed() and bar.location["x"] + bar.size["width"] <= PHONE[0]
