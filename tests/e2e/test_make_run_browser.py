"""`make run` ends with a published release a reader can open in a browser.

`make run` is `sipas up --demo`: on a fresh data folder the platform starts, loads its reference data,
and plays a whole synthetic round (``sipas demo``) that ends with the report's address. Here that exact
command runs as a subprocess on a fresh temporary SIPAS_HOME and its own ports (two provinces sampled
instead of six, to keep it short); the test waits for the report URL and the summary, opens the URL in
headless chromium, checks the release is there — published, signed, each province's figure as the
release holds it — and every service ready (database, migrations at head, NATS), then stops the platform
with Ctrl-C (SIGINT) and checks it exits cleanly, every port freed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from sipas_cli.platform import SERVICES
from sipas_cli.stack import free_port_block
from sipas_kit.auth import DevIdentity, Role

pytestmark = pytest.mark.e2e
REPORT = re.compile(r"Public report:\s*(http://127\.0\.0\.1:\d+/report/[0-9a-f-]+)")
MANIFEST = re.compile(r"Manifest SHA-256 ([0-9a-f]{64})")
FAILED = ("The demo failed", "The demo stopped", "Run `sipas demo` in another terminal")  # the last: not fresh


class Output:
    """Everything the process prints, read as it comes (a full pipe would stall the platform)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)


def test_make_run_ends_with_a_published_release_in_the_browser():
    from conftest import headless_chromium, traversable_tmp
    from selenium.webdriver.common.by import By

    home = traversable_tmp("sipas-run-") / "sipas"  # `make run` plays the demo on a data folder it creates
    base = free_port_block(8)
    sipas = Path(sys.executable).parent / "sipas"
    proc = subprocess.Popen([str(sipas), "up", "--demo", "--port-base", str(base), "--demo-provinces", "2"],
                            env=os.environ | {"SIPAS_HOME": str(home), "COLUMNS": "160"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(proc)
    try:
        deadline = time.monotonic() + 900  # a guard against a hang, not a measure of speed
        while not REPORT.search(out.text):
            assert proc.poll() is None, out.text
            assert not any(f in out.text for f in FAILED), out.text
            assert time.monotonic() < deadline, out.text
            time.sleep(1)
        url = REPORT.search(out.text).group(1)  # type: ignore[union-attr]
        printed = out.text
        assert "SIPAS is running" in printed and "Published index" in printed, printed
        manifest_sha256 = MANIFEST.search(printed).group(1)  # type: ignore[union-attr]
        assert "Bad submissions planted on purpose" in printed and "sipas trace figure" in printed

        for i, service in enumerate(SERVICES, start=3):  # every service ready: database, migrations at head, NATS
            ready = httpx.get(f"http://127.0.0.1:{base + i}/readyz", timeout=5)
            assert ready.status_code == 200, (service, ready.text)
            assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "nats": "ok"}, service

        release_id = url.rsplit("/", 1)[1]
        token = DevIdentity(home / "keys").mint("reader@test", Role.AUDITOR)
        publishing = url.split("/report/")[0]
        release = httpx.get(f"{publishing}/v1/releases/{release_id}", headers={"Authorization": f"Bearer {token}"})
        assert release.status_code == 200 and release.json()["status"] == "published"
        assert release.json()["manifest_sha256"] == manifest_sha256
        figures = httpx.get(f"{publishing}/v1/releases/{release_id}/scores", params={"level": "province"},
                            headers={"Authorization": f"Bearer {token}"}).json()["units"]
        assert len(figures) == 2

        driver = headless_chromium()
        try:
            driver.get(url)
            heading = driver.find_element(By.TAG_NAME, "h1").text
            published = driver.find_element(By.ID, "published").text
            sha_shown = driver.find_element(By.ID, "manifest-sha256").text
            rows = driver.find_element(By.ID, "ranking").find_elements(By.CSS_SELECTOR, "tbody tr")
            shown = {cells[1].text: cells[2].text for cells in (r.find_elements(By.TAG_NAME, "td") for r in rows)}
            national = driver.find_element(By.ID, "national").text
        finally:
            driver.quit()
        assert "dữ liệu mô phỏng" in heading
        assert published.startswith("Công bố") and "Ed25519" in published and sha_shown == manifest_sha256
        assert shown == {u["name"]: u["overall"]["value"] for u in figures}
        assert all(re.fullmatch(r"\d+(\.\d+)?", value) for value in shown.values()), shown
        national_value = next(u for u in httpx.get(
            f"{publishing}/v1/releases/{release_id}/scores", params={"level": "national"},
            headers={"Authorization": f"Bearer {token}"}).json()["units"])["overall"]["value"]
        assert national_value in national
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        out.thread.join(timeout=10)
    assert proc.returncode == 0, out.text
    assert "Stopped." in out.text
    for i in range(8):
        assert not _busy(base + i), f"port {base + i} still in use after stop"


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
