"""National-scale benchmark: one whole round of 34 provinces through the running platform's public APIs.

    python -m bench.national --out docs/performance.md            (what ``make bench-national`` runs)
    python -m bench.national --frame-rows 1000000 --ballots 20000  (a reduced scale)

Starts its own platform (``sipas_cli.platform.Platform``: embedded PostgreSQL and NATS, the five services
as their own processes, exactly as ``sipas up`` runs them) on free ports in a temporary folder, loads the
reference data through the registry's API (as the end-to-end tests do), and then, in one run:

- raw ceilings on the same servers: JetStream pipelined publish and pull-consume, asyncpg COPY and batched
  INSERT (``bench.common``), and a minimal FastAPI endpoint that validates a submission and INSERTs one row
  (``bench.ballots``), loaded with as many clients as the online channel;
- registry: every province imports its units (``sipas_cli.demo``), the ministry opens one national campaign;
- sampling: one frame per province, ``--frame-rows`` in all, generated to disk before the clock starts and
  streamed from disk to ``POST /v1/campaigns/{id}/frames``; plans proposed and approved by a second person;
  each draw's seed committed, then revealed; the ballots service issues a code per sampled unit;
- intake: ``--ballots`` ballots, most as the postal service's per-province CSV batches
  (``/ballot-imports``), a share through ``POST /v1/submissions`` from concurrent clients; a few
  straight-lined ballots of one fabricating enumerator, which the quality scan flags and an inspector voids;
- scoring: the time until the tallies reflect every ballot event, then a refresh and a snapshot;
- publishing: a release drafted, submitted, approved by someone else and published;
- a reconciliation: ballots answered 2xx == ballots in the published national figure + ballots voided;
- peak RSS of every service process, of PostgreSQL and of NATS (psutil, sampled every second).

Where each stage's throughput is compared with a raw ceiling, the ceiling was measured in the same run.
The figures go into a "National round" section of docs/performance.md (the rest of that file is
``bench.backbone``'s and stays as it is). This is a measurement, not a test: nothing asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    CpuMeter,
    Result,
    exit_cleanly_on_sigterm,
    fmt_rate,
    md_table,
    process_tree,
    quiet_logs,
    raw_js,
    raw_pg,
    server_pid,
)
from bench.load import http_load, http_request

REPO = Path(__file__).resolve().parent.parent
SECTION = "## National round"
FULL = {"frame_rows": 10_000_000, "ballots": 1_000_000}
FRAME_WINDOW = (dt.date(2025, 10, 1), dt.date(2026, 5, 31))   # bench.sampling.write_frame's dates
RAW_DATABASE = "bench_national_raw"
EXPECTATIONS = ["E1", "E2", "E3", "E4", "E5", "E6", "E7"]
FABRICATOR = "dtv.gian-lan@vnpost.vn"   # keys the planted straight-lined ballots
PER_ENUMERATOR = 500                    # imported ballots per enumerator (entered_by)
RSS_EVERY = 1.0                         # seconds between RSS samples
LIBRARIES = ("fastapi", "uvicorn", "pydantic", "sqlalchemy", "asyncpg", "nats-py", "httpx")


# ---- memory -------------------------------------------------------------------------------------
class RssSampler(threading.Thread):
    """Every ``RSS_EVERY`` s, the resident memory of each kind of process that ``pids`` names: the peak, the
    stage it was in, and for PostgreSQL also its largest single process (the sum counts shared buffers once per
    process that touched them, so it overstates what PostgreSQL holds)."""

    def __init__(self, pids: Callable[[], dict[str, list[int]]]) -> None:
        super().__init__(daemon=True)
        self.pids, self.stage = pids, "start"
        self.peak: dict[str, tuple[float, str]] = {}
        self.largest: dict[str, tuple[float, str]] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            for kind, pids in self.pids().items():
                sizes = []
                for pid in pids:
                    try:
                        sizes.append(psutil.Process(pid).memory_info().rss / 2**20)
                    except psutil.Error:
                        pass
                if sizes:
                    if sum(sizes) > self.peak.get(kind, (0.0, ""))[0]:
                        self.peak[kind] = (sum(sizes), self.stage)
                    if max(sizes) > self.largest.get(kind, (0.0, ""))[0]:
                        self.largest[kind] = (max(sizes), self.stage)
            self._halt.wait(RSS_EVERY)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ---- the run's record ---------------------------------------------------------------------------
@dataclass
class Stage:
    name: str
    count: int
    unit: str
    seconds: float
    ceiling: str = ""           # key of the raw ceiling it is compared with
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""
    grows: str = ""             # what its work grows with: "frame" rows, "ballots", or nothing
    serial: float | None = None  # seconds it adds to the round when it overlaps other stages (default: seconds)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Report:
    command: str
    started: dt.datetime
    commit: str
    sizes: dict[str, Any]
    ceilings: dict[str, Result] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    peak: dict[str, tuple[float, str]] = field(default_factory=dict)
    largest: dict[str, tuple[float, str]] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    wall: float = 0.0
    round_wall: float = 0.0
    previous: dict[str, Any] = field(default_factory=dict)  # an earlier run's date, commit and stage rates


def head_commit() -> str:
    """The commit measured, and the files that differed from it (the services run from this working tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout
        changed = [line[3:] for line in status.splitlines() if line.strip()]
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if not changed:
        return sha
    folders: dict[str, int] = {}
    for path in changed:
        parts = path.split("/")
        folder = "/".join(parts[:2]) if parts[0] in ("services", "libs", "tests") else parts[0]
        folders[folder] = folders.get(folder, 0) + 1
    shown = ", ".join(f"{k} ({n} file{'s' if n > 1 else ''})" for k, n in sorted(folders.items()))
    return f"`{sha}`, plus uncommitted changes in the working tree (the services run from it): {shown}"


# ---- generated inputs (outside the timed regions) -----------------------------------------------
def frame_files(folder: Path, provinces: Sequence[str], agencies: dict[str, list[Any]], total: int,
                seed: int) -> dict[str, Any]:
    """One frame CSV per province on disk (``bench.sampling.write_frame``: realistic rows, about 50 per
    million that the upload must refuse), ``total`` rows in all, spread evenly over each province's agencies."""
    from bench.sampling import AgencySpec, write_frame

    out = {}
    share, extra = divmod(total, len(provinces))
    for i, province in enumerate(provinces):
        specs = [AgencySpec(a.agency_id, a.code, a.name, 1.0) for a in agencies[province]]
        out[province] = write_frame(folder / f"ho-so-{province}.csv", share + (1 if i < extra else 0), specs,
                                    seed + i, bad_per_million=50, dossier_prefix=f"N{province}-")
    return out


def ballot_answers(rng: random.Random, criteria: Sequence[str]) -> dict[str, int]:
    return {c: rng.randint(2, 5) for c in criteria}  # as bench.ballots: no ballot straight-lined by chance


def intake_plan(codes: list[tuple[str, str]], ballots: int, online_share: float, void_every: int,
                seed: int) -> tuple[list[str], dict[str, list[tuple[str, bool]]]]:
    """Which issued codes come back and how: ``online`` codes, and per province the imported (code, planted)."""
    rng = random.Random(seed)
    chosen = rng.sample(codes, min(ballots, len(codes)))
    n_online = round(len(chosen) * online_share)
    online = [code for code, _ in chosen[:n_online]]
    imported: dict[str, list[tuple[str, bool]]] = {}
    for i, (code, province) in enumerate(chosen[n_online:], start=1):
        imported.setdefault(province, []).append((code, void_every > 0 and i % void_every == 0))
    return online, imported


def import_csv(rows: Sequence[tuple[str, bool]], province: str, criteria: Sequence[str], seed: int) -> bytes:
    """The postal service's batch of one province: a row per ballot, its enumerator in ``entered_by``; planted
    rows are the fabricator's, every answer a 4."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", *criteria, "expectations", "entered_by"])
    for i, (code, planted) in enumerate(rows):
        answers = dict.fromkeys(criteria, 4) if planted else ballot_answers(rng, criteria)
        who = FABRICATOR if planted else f"dtv.{province}.{i // PER_ENUMERATOR + 1}@vnpost.vn"
        writer.writerow([code, *(answers[c] for c in criteria), " ".join(rng.sample(EXPECTATIONS, 2)), who])
    return out.getvalue().encode()


def online_bodies(codes: Sequence[str], campaign_id: str, criteria: Sequence[str], seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [json.dumps({"code": c, "campaign_id": campaign_id, "answers": ballot_answers(rng, criteria),
                        "channel": "online", "expectations": rng.sample(EXPECTATIONS, 2)}).encode() for c in codes]


# ---- the run ------------------------------------------------------------------------------------
class National:
    """One round on ``platform`` (a running one, whose reference data is loaded), or on a platform of its own
    in ``home`` (started by ``start``, stopped by ``stop``)."""

    def __init__(self, report: Report, args: argparse.Namespace, home: Path, platform: Any = None) -> None:
        from sipas_cli.platform import SERVICES, Platform
        from sipas_cli.stack import free_port, free_port_block

        self.report, self.args, self.home = report, args, home
        self.owned = platform is None
        if platform is None:
            names = ("postgres", "nats", "nats_monitor", *SERVICES)
            base = free_port_block(len(names))
            platform = Platform(home / "platform", ports={n: base + i for i, n in enumerate(names)})
        self.platform = platform
        self.minimal_port = free_port()
        self.minimal: subprocess.Popen[bytes] | None = None
        self.sampler: RssSampler | None = None
        self.api: Any = None

    def pids(self) -> dict[str, list[int]]:
        p = self.platform
        found: dict[str, list[int]] = {}
        for service, proc in p.procs.items():
            if proc.poll() is None:
                found[service] = process_tree(proc.pid)
        if p.pg is not None and server_pid(p.pg):
            found["postgres"] = process_tree(server_pid(p.pg))
        if p.nats is not None and server_pid(p.nats):
            found["nats-server"] = [server_pid(p.nats)]
        if self.minimal is not None and self.minimal.poll() is None:
            found["minimal"] = [self.minimal.pid]
        found["client"] = [os.getpid()]
        return found

    def stage(self, name: str) -> None:
        print(f"-- {name} ...", flush=True)
        if self.sampler is not None:
            self.sampler.stage = name

    def timed(self, name: str, count: int, unit: str, seconds: float, meter: CpuMeter, ceiling: str = "",
              note: str = "", grows: str = "", serial: float | None = None) -> Stage:
        cores = {k: v / max(meter.wall, 1e-9) for k, v in meter.busy.items()}
        cores["others"] = meter.others / max(meter.wall, 1e-9)  # everything else on the machine (shared)
        s = Stage(name, count, unit, seconds, ceiling, cores, note, grows, serial)
        self.report.stages.append(s)
        print(f"   {name}: {count:,} {unit} in {seconds:.1f} s ({fmt_rate(s.rate)} {unit}/s)", flush=True)
        return s

    # -- platform ----------------------------------------------------------------------------
    def start(self) -> None:
        from sipas_cli.demo.client import Api
        from sipas_cli.platform import SERVICES
        from sipas_cli.registry_client import RegistryClient

        if self.owned:
            self.stage("platform start")
            t0 = time.perf_counter()
            self.platform.start()
            token = self.platform.identity.mint("seed@bench", "ministry-admin", ttl=3600)
            with RegistryClient(self.platform.url("registry"), token) as client:
                client.load_builtins()
                client.load_maps()
            self.report.facts["platform_start"] = time.perf_counter() - t0
        self.api = Api({s: self.platform.url(s) for s in SERVICES}, self.platform.identity, timeout=3600)
        self.sampler = RssSampler(self.pids)
        self.sampler.start()

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
            self.report.peak, self.report.largest = self.sampler.peak, self.sampler.largest
        if self.minimal is not None:
            from bench.load import stop

            stop(self.minimal)
        if self.api is not None:
            self.api.close()
        if self.owned:
            self.platform.stop()

    # -- raw ceilings ------------------------------------------------------------------------
    async def ceilings(self, when: str) -> None:
        """The raw ceilings, measured before the round and again after it (the machine is shared: a stage's
        ratio is taken against the higher of the two)."""
        a, r, p = self.args, self.report, self.platform
        assert p.pg is not None and p.nats is not None
        self.stage(f"raw ceilings, {when}")
        if when == "before":
            p.pg.create_database(RAW_DATABASE)
        pub, sub = await raw_js(p.nats.url, a.raw, a.rounds, self.pids)
        copy, ins = await raw_pg(p.pg.dsn(RAW_DATABASE), a.raw, a.rounds, self.pids)
        for x in (pub, sub, copy, ins, await self.minimal_ceiling(when)):
            x.name += f" ({when} the round)"
            r.ceilings[f"{x.key}@{when}"] = x

    async def minimal_ceiling(self, when: str) -> Result:
        """``bench.ballots``'s minimal endpoint (validate the JSON, INSERT one row), as many clients as online."""
        from bench.ballots import scalar, submission_bodies
        from bench.load import start, stop, wait_ready

        assert self.platform.pg is not None
        dsn, port = self.platform.pg.dsn(RAW_DATABASE), self.minimal_port
        await scalar(dsn, "DROP TABLE IF EXISTS minimal_submissions")
        await scalar(dsn, "CREATE TABLE minimal_submissions (id uuid PRIMARY KEY, code text NOT NULL, "
                          "answers jsonb NOT NULL)")
        log = self.home / f"minimal-{when}.log"
        self.minimal = start([sys.executable, "-m", "bench.ballots", "--serve-minimal", dsn, "--port", str(port)],
                             os.environ | {"PYTHONUNBUFFERED": "1"}, log)
        await wait_ready(self.minimal, f"http://127.0.0.1:{port}/healthz", log)
        n, c = self.args.raw // 4, self.args.online_clients
        requests = [http_request("POST", "/v1/submissions", b)
                    for b in submission_bodies([f"MIN{i:08d}" for i in range(n + 200)], 3)]
        await http_load(port, requests[:200], c, keep_bodies=False)
        meter = CpuMeter(self.pids)
        meter.start()
        load = await http_load(port, requests[200:], c, keep_bodies=False)
        meter.stop()
        stop(self.minimal)
        self.minimal = None
        ok = load.statuses().get(201, 0)
        if ok == 0:
            raise RuntimeError(f"the minimal endpoint answered {load.statuses()}; see {log}")
        return Result("minimal", "Minimal endpoint: FastAPI + pydantic + one asyncpg INSERT", ok, load.seconds,
                      "requests/s", f"{c} keep-alive clients, {ok:,} of {load.n:,} answered 201; "
                                    f"{meter.text('minimal', 'postgres')}")

    # -- registry ----------------------------------------------------------------------------
    def registry(self) -> Any:
        from sipas_cli.demo import VIETNAM, registry
        from sipas_cli.demo.model import Round

        api, a = self.api, self.args
        self.stage("registry: units and the national campaign")
        today = dt.datetime.now(VIETNAM).date()
        names = registry.provinces_today(api)
        provinces = sorted(names)[:a.provinces]
        tag = "N" + dt.datetime.now(dt.UTC).strftime("%m%d-%H%M-") + secrets.token_hex(2)
        rnd = Round(tag=tag, year=today.year, today=today, provinces=provinces, province_names=names)
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        registry.register_units(api, rnd, provinces, lambda: None)
        agencies = len(provinces) * a.agencies
        cap = max(1, math.ceil(a.ballots / agencies))
        collection, _ = registry.windows(today)
        registry.open_campaign(api, rnd, a.agencies, cap, margin="0.001", frame_window=FRAME_WINDOW)
        seconds = time.perf_counter() - t0
        meter.stop()
        self.timed("Registry: 34 provinces import their units, the national campaign opens and reaches the services"
                   if len(provinces) == 34 else f"Registry: {len(provinces)} provinces import their units, the "
                   "campaign opens and reaches the services", len(rnd.targets), "agencies", seconds, meter)
        self.report.facts.update(provinces=len(provinces), agencies=len(rnd.targets), cap_per_unit=cap,
                                 collection=f"{collection[0]} to {collection[1]}")
        return rnd

    # -- sampling ----------------------------------------------------------------------------
    def sampling(self, rnd: Any) -> None:
        from sipas_cli.demo import registry
        from sipas_cli.demo.client import APPROVER, ORGANISER

        api, a, cid = self.api, self.args, rnd.campaign_id
        self.stage("frames generated on disk (not timed)")
        by_province = {p: [t for t in rnd.targets if t.province == p] for p in rnd.provinces}
        folder = self.home / "frames"
        folder.mkdir()
        t0 = time.perf_counter()
        files = frame_files(folder, rnd.provinces, by_province, a.frame_rows, a.seed)
        self.report.facts["frame_generation"] = time.perf_counter() - t0
        self.report.facts["frame_bytes"] = sum(f.bytes for f in files.values())

        self.stage("frame upload")
        frames: dict[str, dict[str, Any]] = {}
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        for province, facts in files.items():
            with open(facts.path, "rb") as body:
                frames[province] = api.call(
                    "POST", "sampling", f"/v1/campaigns/{cid}/frames", ORGANISER, ok=(201,),
                    params={"mode": "accept_valid", "filename": f"ho-so-{province}.csv"},
                    content=iter(lambda body=body: body.read(1 << 20), b""),  # type: ignore[misc]
                    headers={"Content-Type": "text/csv"}).json()
        seconds = time.perf_counter() - t0
        meter.stop()
        rows = sum(f.rows for f in files.values())
        kept = sum(int(f["rows"]) for f in frames.values())
        refused = sum(int(f["rejected_rows"]) for f in frames.values())
        expected_refused = sum(f.rejected for f in files.values())
        self.timed("Sampling: frame upload (CSV streamed from disk, one per province, in turn)", rows, "rows",
                   seconds, meter, "pg_copy", f"{kept:,} kept, {refused:,} refused ({expected_refused:,} planted "
                   f"bad rows); {self.report.facts['frame_bytes'] / 2**20:,.0f} MiB", grows="frame")
        self.report.facts.update(frame_rows_kept=kept, frame_rows_refused=refused,
                                 frame_rows_planted_bad=expected_refused)

        self.stage("plans proposed and approved")
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        plans = {}
        for province, frame in frames.items():
            plan = api.post("sampling", f"/v1/campaigns/{cid}/plans", ORGANISER, {"frame_id": frame["frame_id"]},
                            headers={"Idempotency-Key": f"bench-plan-{frame['frame_id']}"})
            api.post("sampling", f"/v1/plans/{plan['plan_id']}/approve", APPROVER)
            plans[province] = plan
        seconds = time.perf_counter() - t0
        meter.stop()
        planned = sum(int(p["sample"]) for p in plans.values())
        self.timed("Sampling: plans proposed (sizes per agency) and approved by a second person", len(plans),
                   "plans", seconds, meter, note=f"{planned:,} units planned")
        registry.advance(api, rnd, "sample_approved", "plans approved for every province")

        self.stage("draws committed and revealed; codes issued")
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        selected = reserves = 0
        for plan in plans.values():
            seed = secrets.token_hex(32)
            committed = api.post("sampling", f"/v1/plans/{plan['plan_id']}/draws", ORGANISER,
                                 {"seed_commitment": hashlib.sha256(seed.encode()).hexdigest()})
            drawn = api.post("sampling", f"/v1/draws/{committed['draw_id']}/reveal", ORGANISER,
                             {"seed": seed, "reserve_ratio": "0.2"})
            selected += int(drawn["selected"])
            reserves += int(drawn["reserves"])
        drawn_at = time.perf_counter() - t0
        self.issued(rnd, selected)
        seconds = time.perf_counter() - t0
        meter.stop()
        self.timed("Sampling → ballots: draws committed and revealed, then a code issued per sampled unit",
                   selected, "ballots issued", seconds, meter, "pg_insert",
                   f"{selected:,} selected and {reserves:,} reserves drawn in {drawn_at:.1f} s; the ballots "
                   f"service issued the last code {seconds - drawn_at:.1f} s after the last reveal", grows="ballots")
        self.report.facts.update(selected=selected, reserves=reserves, planned=planned)
        registry.advance(api, rnd, "fieldwork_open", "ballots printed and handed out")

    def issued(self, rnd: Any, expected: int) -> None:
        from sipas_cli.demo.client import ORGANISER, wait_until

        path = f"/v1/campaigns/{rnd.campaign_id}/progress"
        wait_until(lambda: self.api.get("ballots", path, ORGANISER)["issued"] >= expected,
                   f"ballots issuing {expected:,} codes", timeout=6 * 3600, every=1.0)

    # -- codes -------------------------------------------------------------------------------
    async def codes(self, rnd: Any) -> list[tuple[str, str]]:
        """Every issued code with its province, from the ballots service's database (see the report for why),
        checked against the printed sheets of the agency with the fewest codes."""
        import asyncpg

        from sipas_cli.demo.client import ORGANISER
        from sipas_cli.demo.sheets import codes_on_sheets

        assert self.platform.pg is not None
        self.stage("codes read")
        conn = await asyncpg.connect(self.platform.pg.dsn("sipas_ballots"))
        try:
            rows = await conn.fetch(
                "SELECT b.code, u.agency_code FROM ballots b JOIN sampled_units u USING (unit_id) "
                "WHERE b.campaign_id = $1 AND b.status = 'issued' ORDER BY b.code", rnd.campaign_id)
        finally:
            await conn.close()
        by_agency: dict[str, set[str]] = {}
        for r in rows:
            by_agency.setdefault(r["agency_code"], set()).add(r["code"].replace("-", "").upper())
        agency = min(by_agency, key=lambda k: len(by_agency[k]))
        checked = "not checked (more than 2,000 sheets)"
        if len(by_agency[agency]) <= 2000:
            pdf = self.api.call("GET", "ballots", f"/v1/campaigns/{rnd.campaign_id}/ballot-sheets.pdf", ORGANISER,
                                params={"agency_code": agency}).content
            printed = {code.replace("-", "") for code, on in codes_on_sheets(pdf) if on == agency}
            if printed != by_agency[agency]:
                raise RuntimeError(f"the sheets of {agency} print {len(printed)} codes, the database holds "
                                   f"{len(by_agency[agency])} (or other ones)")
            checked = f"the {len(printed):,} sheets of {agency} print exactly its {len(printed):,} codes"
        self.report.facts["codes_check"] = checked
        province = {t.code: t.province for t in rnd.targets}  # a national draw's units carry no province
        return [(r["code"], province[r["agency_code"]]) for r in rows]

    # -- intake ------------------------------------------------------------------------------
    async def intake(self, rnd: Any, codes: list[tuple[str, str]]) -> dict[str, int]:
        from bench.ballots import items
        from sipas_cli.demo.client import VNPOST

        a, cid, port = self.args, rnd.campaign_id, self.platform.ports["ballots"]
        self.stage("intake inputs generated (not timed)")
        criteria = items()
        online, imported = intake_plan(codes, a.ballots, a.online_share, a.void_every, a.seed)
        token = self.api.token(VNPOST)
        imports = [(p, len(rows), http_request(
            "POST", f"/v1/campaigns/{cid}/ballot-imports?filename=phieu-{p}.csv",
            import_csv(rows, p, criteria, a.seed + i), {"Authorization": f"Bearer {token}"}, "text/csv"))
            for i, (p, rows) in enumerate(sorted(imported.items()))]
        planted = sum(1 for rows in imported.values() for _, x in rows if x)
        online_requests = [http_request("POST", "/v1/submissions", b)
                           for b in online_bodies(online, cid, criteria, a.seed)]
        out = {"planted": planted}

        self.stage("bulk import")
        self.report.facts["intake_started"] = time.perf_counter()
        meter = CpuMeter(self.pids)
        meter.start()
        load = await http_load(port, [r for _, _, r in imports], a.import_clients)
        meter.stop()
        rows = sum(n for _, n, _ in imports)
        accepted = rejected = 0
        for (province, _, _), status, body in zip(imports, load.status, load.bodies, strict=True):
            if status != 200:
                raise RuntimeError(f"the import of province {province} answered {status}: {body[:300]!r}")
            answer = json.loads(body)
            accepted += answer["accepted"]
            rejected += answer["rejected"]
        self.timed(f"Ballots: bulk import, {len(imports)} per-province CSVs, {a.import_clients} at a time",
                   rows, "rows", load.seconds, meter, "pg_copy", f"{accepted:,} accepted, {rejected:,} rejected",
                   grows="ballots")
        out.update(import_rows=rows, import_accepted=accepted, import_rejected=rejected)

        self.stage("online submissions")
        meter = CpuMeter(self.pids)
        meter.start()
        load = await http_load(port, online_requests, a.online_clients, keep_bodies=False)
        meter.stop()
        statuses = load.statuses()
        if online_requests:
            self.timed(f"Ballots: online submissions, {a.online_clients} concurrent clients", load.n, "submissions",
                       load.seconds, meter, "minimal", ", ".join(f"{n:,} answered {s}" for s, n in sorted(
                           statuses.items())), grows="ballots")
        self.report.facts["intake_ended"] = time.perf_counter()
        out.update(online=load.n, online_201=statuses.get(201, 0),
                   online_other=sum(n for s, n in statuses.items() if s != 201))
        return out

    def quality(self, rnd: Any, accepted: int) -> int:
        """The inspector scans, voids the fabricator's flagged ballots and clears every other flag."""
        from sipas_cli.demo.client import INSPECTOR

        api, path = self.api, f"/v1/campaigns/{rnd.campaign_id}"
        self.stage("quality scan and reviews")
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        flags = api.post("ballots", f"{path}/quality/scan", INSPECTOR)["new_flags"]
        scanned = time.perf_counter() - t0
        voided = cleared = 0
        for level in ("province", "ministry"):
            queue = {f["ballot_id"]: f for f in api.get("ballots", f"{path}/review-queue", INSPECTOR,
                                                        params={"level": level})}
            for ballot_id, flag in queue.items():
                void = flag["entered_by"] == FABRICATOR
                api.post("ballots", f"/v1/ballots/{ballot_id}/review", INSPECTOR, {
                    "action": "void" if void else "clear",
                    "comment": "straight-lined by an enumerator who fabricated" if void else "looked plausible"})
                voided += void
                cleared += not void
        seconds = time.perf_counter() - t0
        meter.stop()
        self.timed("Ballots: quality scan over every accepted ballot, then each flag reviewed", accepted,
                   "ballots", seconds, meter, note=f"scan {scanned:.1f} s raised {flags or 'no flags'}; "
                   f"{voided + cleared:,} flagged ballots reviewed: {voided:,} voided, {cleared:,} cleared",
                   grows="ballots")
        return voided

    # -- scoring and publishing --------------------------------------------------------------
    def scoring(self, rnd: Any, accepted: int) -> dict[str, Any]:
        from sipas_cli.demo.client import ORGANISER, wait_until
        from sipas_cli.demo.quality import consumed, head

        api, path, f = self.api, f"/v1/campaigns/{rnd.campaign_id}", self.report.facts
        self.stage("scoring catches up")
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        ballots_head = head(api, "ballots")
        wait_until(lambda: consumed(api, "scoring", "ballots") >= ballots_head, "scoring applying every ballot event",
                   timeout=6 * 3600, every=0.5)
        caught = time.perf_counter()
        meter.stop()
        since_start = caught - f["intake_started"]
        f["scoring_lag"] = caught - f["intake_ended"]
        self.timed("Scoring: tallies reflect every ballot event (from the first intake request)", accepted,
                   "ballots", since_start, meter, "js_sub",
                   f"{ballots_head:,} events of the ballots service; caught up {caught - f['intake_ended']:.1f} s "
                   f"after the last intake answer ({caught - t0:.1f} s of waiting after the quality review)",
                   grows="ballots", serial=caught - t0)
        self.stage("scoring refresh and snapshot")
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        api.post("scoring", f"{path}/scores/refresh", ORGANISER)
        refreshed = time.perf_counter() - t0
        snapshot = api.post("scoring", f"{path}/snapshots", ORGANISER)
        seconds = time.perf_counter() - t0
        meter.stop()
        self.timed("Scoring: refresh the figures, then freeze a snapshot", accepted, "ballots", seconds, meter,
                   note=f"refresh {refreshed:.1f} s, snapshot {seconds - refreshed:.1f} s", grows="ballots")
        return dict(snapshot)

    def publishing(self, rnd: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
        from sipas_cli.demo import registry
        from sipas_cli.demo.client import APPROVER, DRAFTER, ORGANISER, wait_until

        api = self.api
        registry.advance(api, rnd, "scores_frozen", f"snapshot {snapshot['snapshot_id']}")
        self.stage("release drafted, approved and published")
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()

        def drafted() -> dict[str, Any] | None:  # publishing learns of the snapshot from scoring's events
            r = api.call("POST", "publishing", "/v1/releases", DRAFTER, ok=(201, 404, 409, 503),
                         json={"snapshot_id": snapshot["snapshot_id"], "title": f"SIPAS — benchmark {rnd.tag}"},
                         headers={"Idempotency-Key": f"bench-release-{snapshot['snapshot_id']}"})
            return r.json() if r.status_code == 201 else None

        base = f"/v1/releases/{wait_until(drafted, 'publishing learning of the snapshot', timeout=3600)['release_id']}"
        t_draft = time.perf_counter() - t0
        api.post("publishing", f"{base}/submit", DRAFTER)
        api.call("POST", "publishing", f"{base}/approve", DRAFTER, ok=(403,))  # four eyes: not the drafter
        api.post("publishing", f"{base}/approve", APPROVER)
        published = api.post("publishing", f"{base}/publish", APPROVER, {})
        seconds = time.perf_counter() - t0
        meter.stop()
        if published["status"] != "published":
            raise RuntimeError(f"{base} is {published['status']} after publishing")
        self.timed("Publishing: draft (once publishing knows the snapshot), submit, approve by another officer, "
                   "publish", 1, "release", seconds, meter, note=f"draft accepted after {t_draft:.1f} s")
        registry.advance(api, rnd, "closed", "release published")
        units = api.get("publishing", f"{base}/scores", ORGANISER, params={"level": "national"})["units"]
        return next(u for u in units if u["level"] == "national")

    async def run(self) -> None:
        from sipas_cli.demo import registry
        from sipas_cli.demo.client import INSPECTOR

        await self.ceilings("before")
        fills_before = self.gap_fills()
        t_round = time.perf_counter()
        rnd = self.registry()
        self.sampling(rnd)
        codes = await self.codes(rnd)
        intake = await self.intake(rnd, codes)
        registry.advance(self.api, rnd, "fieldwork_closed", "collection window over")
        accepted = intake["import_accepted"] + intake["online_201"]
        voided_by_review = self.quality(rnd, accepted)
        snapshot = self.scoring(rnd, accepted)
        national = self.publishing(rnd, snapshot)
        self.report.round_wall = time.perf_counter() - t_round
        await self.ceilings("after")
        path = f"/v1/campaigns/{rnd.campaign_id}"
        progress = self.api.get("ballots", f"{path}/progress", INSPECTOR)
        voided = sum(e["voided"] for e in self.api.get("ballots", f"{path}/enumerators", INSPECTOR))
        self.report.reconciliation = intake | {
            "accepted_2xx": accepted, "voided_by_review": voided_by_review, "voided": voided,
            "valid_by_ballots": progress["valid"], "national_ballots": national["ballots"],
            "national_n": national["overall"]["n"], "national_value": national["overall"]["value"],
            "provinces_published": national.get("provinces"),
            "holds": accepted == national["ballots"] + voided and progress["valid"] == accepted,
            "gap_fills": {k: v - fills_before.get(k, 0) for k, v in self.gap_fills().items()}}

    def gap_fills(self) -> dict[str, int]:
        """Per consumer, the events it has taken from a producer's store instead of the stream so far (each
        service's ``sipas_<service>_gap_fills_total``): a healthy round adds none, as nothing is lost on the
        way."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        from sipas_cli.platform import SERVICES

        found: dict[str, int] = {}
        for service in SERVICES:
            text = httpx.get(f"{self.platform.url(service)}/metrics", timeout=30).text
            for family in text_string_to_metric_families(text):
                if family.name == f"sipas_{service}_gap_fills":
                    for sample in family.samples:
                        if sample.name.endswith("_total"):
                            found[sample.labels["consumer"]] = int(sample.value)
        return found


# ---- the report ---------------------------------------------------------------------------------
CEILING_NAMES = {"js_pub": "raw JetStream publish", "js_sub": "raw JetStream pull-consume", "pg_copy": "raw COPY",
                 "pg_insert": "raw batched INSERT", "minimal": "minimal endpoint"}


def _cores(cpu: dict[str, float]) -> str:
    order = ("client", "registry", "sampling", "ballots", "scoring", "publishing", "postgres", "nats-server",
             "others")
    return ", ".join(f"{k} {cpu[k]:.2f}" for k in order if cpu.get(k, 0.0) >= 0.05)


def ceiling(r: Report, key: str) -> Result | None:
    """The higher of the ceiling's two measurements (before and after the round)."""
    found = [x for k, x in r.ceilings.items() if k.split("@")[0] == key]
    return max(found, key=lambda x: x.rate) if found else None


def rate_text(rate: float) -> str:
    return fmt_rate(rate) if math.isnan(rate) or rate >= 10 else f"{rate:.2f}"


def stage_rows(r: Report) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for s in r.stages:
        ceiling_ = ceiling(r, s.ceiling)
        ratio = (f"{s.rate / ceiling_.rate:.2%} of {CEILING_NAMES[s.ceiling]}" if ceiling_ is not None
                 else "n/a (no raw counterpart)")
        rows.append((s.name, f"{s.count:,} {s.unit}", f"{s.seconds:,.1f} s", f"{rate_text(s.rate)} {s.unit}/s",
                     ratio, s.note + ("; " if s.note and s.cpu else "") + (f"cores busy: {_cores(s.cpu)}"
                                                                          if s.cpu else "")))
    return rows


def extrapolated(r: Report) -> tuple[float, list[str]]:
    """Seconds of the round at full scale, each stage's time scaled linearly with what its work grows with (a
    guess), and the stages that grow, with their share."""
    k = {"frame": FULL["frame_rows"] / r.sizes["frame_rows"], "ballots": FULL["ballots"] / r.sizes["ballots"],
         "": 1.0}
    total, parts = 0.0, []
    for s in r.stages:
        seconds = (s.serial if s.serial is not None else s.seconds) * k[s.grows]
        total += seconds
        if s.grows:
            parts.append(f"{s.name.split(':')[0].lower()} {s.name.split(': ', 1)[-1].split(',')[0].split(' (')[0]} "
                         f"{seconds / 3600:,.1f} h")
    return total, parts


def at_full_scale(r: Report) -> bool:
    return r.sizes["frame_rows"] >= FULL["frame_rows"] and r.sizes["ballots"] >= FULL["ballots"]


def full_scale_line(r: Report) -> str:
    if at_full_scale(r):
        return (f"- Full scale (`make bench-national`, {FULL['frame_rows']:,} frame rows and {FULL['ballots']:,} "
                f"ballots): this run, measured ({r.round_wall / 3600:,.2f} h for the round).")
    return (f"- Full scale (`make bench-national`, {FULL['frame_rows']:,} frame rows and {FULL['ballots']:,} "
            f"ballots) was not run for this report (about {extrapolated(r)[0] / 3600:,.1f} h here by the "
            "extrapolation under What this means, not measured).")


def extrapolation(r: Report) -> list[str]:
    if at_full_scale(r):
        return [f"Measured at full scale ({FULL['frame_rows']:,} frame rows, {FULL['ballots']:,} ballots): the "
                f"round took {r.round_wall / 3600:,.2f} h on this machine, nothing extrapolated."]
    total, parts = extrapolated(r)
    return [f"Extrapolated, not measured: at {FULL['frame_rows']:,} frame rows and {FULL['ballots']:,} ballots, "
            f"if every stage kept this run's rate (linear in frame rows or ballots: a small run's fixed costs "
            f"make it too high, work that grows faster than linearly too low), the round would take about "
            f"{total / 3600:,.1f} h on this machine ("
            + "; ".join(parts) + ")."]


def section(r: Report) -> str:
    c, rec, f = r.ceilings, r.reconciliation, r.facts
    out = [SECTION, "",
           "Measured by `bench/national.py` (`make bench-national`; `NATIONAL_ARGS` passes options through). It "
           "starts its own platform in a temporary folder, all five services as processes over embedded "
           "PostgreSQL and NATS as `sipas up` runs them, loads the reference data through the registry's API, "
           "measures the raw ceilings on the same servers, and drives one national round through the public "
           "APIs: 34 provinces import their units; one national campaign; a frame per province streamed from "
           "disk; plans approved by a second person; seeds committed then revealed; a code issued per sampled "
           "unit; ballots back as the postal service's per-province CSV batches and, for a share, online from "
           "concurrent clients; a quality scan with the fabricator's straight-lined ballots voided; scoring "
           "catching up, a refresh and a snapshot; a release drafted, approved by another officer and "
           "published. Inputs are generated before each timed stage starts.",
           "",
           "The codes come from the ballots service's database, not from its sheets API. Codes are credentials and "
           "the service hands them out only printed: `GET /v1/campaigns/{id}/ballot-sheets.pdf` renders an A5 page "
           "per code, so at a million ballots reading them that way would time a million pages of PDF rendering "
           "and the benchmark's PDF reader, not the round. The harness reads `ballots` joined to `sampled_units` "
           "once, outside the timed stages, and checks it against the printed sheets of the agency with the "
           "fewest codes (when it has at most 2,000).",
           "",
           f"- Date: {r.started.strftime('%Y-%m-%d %H:%M UTC')}",
           f"- Command: `{r.command}`",
           f"- Commit measured: {r.commit}",
           f"- Scale: {r.sizes['provinces']} provinces, {f.get('agencies', 0):,} agencies (the campaign's "
           f"`cap_per_unit` {f.get('cap_per_unit', 0):,}), {r.sizes['frame_rows']:,} frame rows, "
           f"{r.sizes['ballots']:,} ballots asked for ({r.sizes['online_share']:.0%} online with "
           f"{r.sizes['online_clients']} clients, the rest imported {r.sizes['import_clients']} files at a time; "
           f"one imported ballot in {r.sizes['void_every']:,} is a fabricator's, straight-lined)",
           f"- Wall time: whole run {r.wall / 60:,.1f} min (platform start {f.get('platform_start', 0):.0f} s, "
           f"frame generation {f.get('frame_generation', 0):.0f} s); the round itself, registry to published "
           f"release, {r.round_wall / 60:,.1f} min",
           f"- Machine: CPUs {r.machine.get('CPUs', '?')}, memory {r.machine.get('Memory', '?')}, PostgreSQL "
           f"{r.machine.get('PostgreSQL', '?')} ({r.machine.get('PostgreSQL settings', '')}), nats-server "
           f"{r.machine.get('nats-server', '?')}; load average when the run started "
           f"{r.machine.get('Load average when the run started (1 min)', '?')}",
           full_scale_line(r),
           "", "### Raw ceilings (same servers, same run)", ""]
    out += md_table(["Ceiling", "Rate", "Details"], ((x.name, f"{fmt_rate(x.rate)} {x.unit}", x.note)
                                                     for x in c.values()), "lrl")
    out += ["", "### Stages", ""]
    out += md_table(["Stage", "Work", "Time", "Rate", "Compared with", "Details"], stage_rows(r), "lrrrll")
    out += ["", "### Peak memory (RSS, sampled every second)", ""]
    order = ["registry", "sampling", "ballots", "scoring", "publishing", "postgres", "nats-server", "client"]
    out += md_table(["Process", "Peak RSS", "During", "Largest single process"], (
        (k if k != "client" else "benchmark client", f"{r.peak[k][0]:,.0f} MiB", r.peak[k][1],
         f"{r.largest[k][0]:,.0f} MiB" if k == "postgres" else "")
        for k in order if k in r.peak), "lrll")
    out += ["", "PostgreSQL's figure sums the RSS of the postmaster and every backend, so shared buffers touched by "
            "several processes count several times: read the largest single process beside it.", ""]
    out += ["### Reconciliation", ""]
    out += [f"- Answered 2xx: {rec.get('accepted_2xx', 0):,} ({rec.get('import_accepted', 0):,} imported rows "
            f"accepted of {rec.get('import_rows', 0):,}, {rec.get('online_201', 0):,} online 201 of "
            f"{rec.get('online', 0):,})",
            f"- Voided: {rec.get('voided', 0):,} (the ballots service's enumerator figures; the inspector voided "
            f"{rec.get('voided_by_review', 0):,} of the {rec.get('planted', 0):,} planted)",
            f"- In the published national figure: {rec.get('national_ballots', 0):,} ballots over "
            f"{rec.get('provinces_published')} provinces (overall n {rec.get('national_n', 0):,}, index "
            f"{rec.get('national_value')})",
            f"- 2xx == published + voided, and the ballots service's `valid` ({rec.get('valid_by_ballots', 0):,}) "
            f"== 2xx: **{'holds' if rec.get('holds') else 'DOES NOT hold'}**",
            "- Events a consumer took from a producer's store instead of the stream (gap fills): "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(rec["gap_fills"].items()) if v) or "none")
            + f" (over {len(rec['gap_fills'])} consumers)" if "gap_fills" in rec else "- Gap fills: not recorded",
            f"- Codes: read from the ballots service's database ({f.get('codes_check', '')}); frame rows "
            f"{f.get('frame_rows_kept', 0):,} kept, {f.get('frame_rows_refused', 0):,} refused of "
            f"{f.get('frame_rows_planted_bad', 0):,} planted bad",
            ""]
    out += comparison(r)
    out += ["### What this means", ""]
    out += [f"- {line}" for line in meaning(r)]
    out += [f"- {line}" for line in extrapolation(r)]
    out.append("")
    return "\n".join(out)


def earlier(path: Path) -> dict[str, Any]:
    """What ``--previous`` keeps of an earlier run's saved figures."""
    old = load(path)
    return {"date": old.started.strftime("%Y-%m-%d %H:%M UTC"), "commit": old.commit.split(",")[0],
            "command": old.command, "rates": {s.name: [s.rate, s.unit] for s in old.stages},
            "ratios": {s.name: s.rate / top.rate for s in old.stages if (top := ceiling(old, s.ceiling)) is not None}}


def comparison(r: Report) -> list[str]:
    if not r.previous:
        return []
    p = r.previous
    rows = []
    for s in r.stages:
        if s.name not in p["rates"]:
            continue
        then, unit = p["rates"][s.name]
        if unit != s.unit:  # counted differently then: not comparable
            continue
        top = ceiling(r, s.ceiling)
        ratios = (f"{p['ratios'][s.name]:.2%} → {s.rate / top.rate:.2%}" if top is not None and s.name in p["ratios"]
                  else "")
        rows.append((s.name, f"{rate_text(then)} {unit}/s", f"{rate_text(s.rate)} {s.unit}/s",
                     f"{s.rate / then:.2f}x" if then else "", ratios))
    out = [f"### Compared with the run of {p['date']} (commit {p['commit']})", "",
           f"That run: `{p['command']}`. Both on this shared machine; the load differed, so read the ratios to the "
           "ceilings of each run beside the rates.", ""]
    out += md_table(["Stage", "Then", "Now", "Now / then", "Ratio to its ceiling, then → now"], rows, "lrrrr")
    return [*out, ""]


def meaning(r: Report) -> list[str]:
    from bench.ballots import HTTP_AIM, IMPORT_AIM
    from bench.sampling import UPLOAD_RATIO_AIM

    lines = []
    for words, key, aim, issue in (("frame upload", "pg_copy", UPLOAD_RATIO_AIM, "the sampling benchmark's"),
                                   ("bulk import", "pg_copy", IMPORT_AIM, "issue 5's"),
                                   ("online submissions", "minimal", HTTP_AIM, "issue 5's")):
        s = next((x for x in r.stages if words in x.name.lower()), None)
        top = ceiling(r, key)
        if s is None or top is None:
            continue
        ratio = s.rate / top.rate
        lines.append(f"{words.capitalize()}: {fmt_rate(s.rate)} {s.unit}/s, {ratio:.2%} of {CEILING_NAMES[key]} "
                     f"({issue} aim of {aim:.0%}: {'met' if ratio >= aim else 'NOT met'}).")
    caught = next((x for x in r.stages if x.ceiling == "js_sub"), None)
    top = ceiling(r, "js_sub")
    intake = r.facts.get("intake_ended", 0.0) - r.facts.get("intake_started", 0.0)
    lag = r.facts.get("scoring_lag", 0.0)
    if caught is not None and top is not None and intake > 0:
        pace = caught.count / intake
        lines.append(f"Intake (import, then online) delivered {fmt_rate(pace)} ballots/s; scoring's tallies applied "
                     f"them at {fmt_rate(caught.rate)} ballots/s from the first intake request until they held them "
                     f"all ({caught.rate / top.rate:.2%} of raw pull-consume). "
                     + (f"They finished {lag:.0f} s after the last intake answer: the tallies fell behind intake "
                        "and set the pace of this part of the round." if lag > 5
                        else "They kept up with intake, which set the pace."))
    rec = r.reconciliation
    lines.append("Reconciliation " + ("holds: every ballot answered 2xx is in the published national figure or "
                                      "was voided, and the ballots service counts the same valid ballots."
                                      if rec.get("holds") else "DOES NOT hold: see the figures above."))
    lines.append("All processes (five services, PostgreSQL, NATS and this client) share one two-core machine with "
                 "other engineers' work (\"others\" in the cores busy: processes outside this run): the ceilings "
                 "were measured before and after the round and each ratio uses the higher; read the ratios rather "
                 "than the rates, and expect noise.")
    return lines


def write_section(path: Path, text: str) -> None:
    """Put the section into ``path``: replace an earlier one, or go before ``## Machine`` (the rest is kept)."""
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n\n"
    start = doc.find(f"\n{SECTION}\n")
    if start >= 0:
        end = doc.find("\n## ", start + len(SECTION) + 2)
        doc = doc[:start + 1] + text + ("\n" + doc[end + 1:] if end >= 0 else "")
    else:
        machine = doc.find("\n## Machine\n")
        doc = (doc[:machine + 1] + text + "\n" + doc[machine + 1:] if machine >= 0
               else doc.rstrip("\n") + "\n\n" + text)
    path.write_text(doc.rstrip("\n") + "\n", encoding="utf-8")
    print(f"wrote the {SECTION[3:]!r} section of {path}")


def save(report: Report, path: Path) -> None:
    """The run's figures as JSON (``--render`` writes the section again from them)."""
    path.write_text(json.dumps(dataclasses.asdict(report), default=str, indent=1), encoding="utf-8")
    print(f"figures saved in {path}")


def load(path: Path) -> Report:
    d = json.loads(path.read_text(encoding="utf-8"))
    d["started"] = dt.datetime.fromisoformat(d["started"])
    d["ceilings"] = {k: Result(**v) for k, v in d["ceilings"].items()}
    d["stages"] = [Stage(**x) for x in d["stages"]]
    d["peak"] = {k: (float(v[0]), str(v[1])) for k, v in d["peak"].items()}
    d["largest"] = {k: (float(v[0]), str(v[1])) for k, v in d["largest"].items()}
    return Report(**d)


# ---- entry point --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.national", description=__doc__.split("\n")[0])
    parser.add_argument("--frame-rows", type=int, default=FULL["frame_rows"],
                        help=f"frame rows over all provinces (default {FULL['frame_rows']:,})")
    parser.add_argument("--ballots", type=int, default=FULL["ballots"],
                        help=f"ballots through intake (default {FULL['ballots']:,})")
    parser.add_argument("--provinces", type=int, default=34, help="provinces in the round (default 34)")
    parser.add_argument("--agencies", type=int, default=4, help="agencies measured per province, 1-4 (default 4)")
    parser.add_argument("--online-share", type=float, default=0.1, help="share of ballots sent online (default 0.1)")
    parser.add_argument("--online-clients", type=int, default=16, help="concurrent online clients (default 16)")
    parser.add_argument("--import-clients", type=int, default=2, help="CSV batches sent at once (default 2)")
    parser.add_argument("--void-every", type=int, default=1000,
                        help="one imported ballot in this many is a fabricator's, straight-lined (default 1000)")
    parser.add_argument("--raw", type=int, default=20000, help="rows/messages of the raw ceilings (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the raw ceilings (default 3)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the generated frames and answers")
    parser.add_argument("--out", type=Path, help="write the National round section into this Markdown file")
    parser.add_argument("--save", type=Path, default=Path(tempfile.gettempdir()) / "sipas-bench-national-last.json",
                        help="keep the run's figures here as JSON (default: in the temporary directory)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="run nothing: write the section again from figures a run saved")
    parser.add_argument("--previous", type=Path, metavar="JSON",
                        help="compare each stage with the figures an earlier run saved")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    previous = earlier(args.previous) if args.previous is not None else {}
    if args.render is not None:
        report = load(args.render)
        report.previous = previous or report.previous
        text = section(report)
        print(text)
        if args.out is not None:
            write_section(args.out, text)
        return 0
    if not 1 <= args.provinces <= 34:
        parser.error("--provinces must be between 1 and 34")
    if not 1 <= args.agencies <= 4:
        parser.error("--agencies must be between 1 and 4 (the units each province registers)")
    if not 0 <= args.online_share <= 1:
        parser.error("--online-share must be between 0 and 1")
    for name in ("frame_rows", "ballots", "online_clients", "import_clients", "raw", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.frame_rows < 2 * args.ballots:
        parser.error("--frame-rows must be at least twice --ballots (a sample is drawn from the frames)")

    quiet_logs()
    command = " ".join(["python -m bench.national", *(argv if argv is not None else sys.argv[1:])])
    report = Report(command=command, started=dt.datetime.now(dt.UTC), commit=head_commit(), sizes={
        "frame_rows": args.frame_rows, "ballots": args.ballots, "provinces": args.provinces,
        "online_share": args.online_share, "online_clients": args.online_clients,
        "import_clients": args.import_clients, "void_every": args.void_every}, previous=previous)
    home = Path(tempfile.mkdtemp(prefix="sipas-bench-national-"))
    home.chmod(0o755)  # PostgreSQL's unprivileged user must reach its folder
    t0 = time.perf_counter()
    bench = National(report, args, home)
    try:
        bench.start()
        assert bench.platform.pg is not None
        from bench.common import machine_facts

        report.machine = machine_facts(bench.platform.pg, home, nats_server=bench.platform.nats,
                                       libraries=LIBRARIES, load=True)
        asyncio.run(bench.run())
    finally:
        bench.stop()
        report.wall = time.perf_counter() - t0
        shutil.rmtree(home, ignore_errors=True)
        save(report, args.save)
    text = section(report)
    print(text)
    if args.out is not None:
        write_section(args.out, text)
    return 0 if report.reconciliation.get("holds") else 1


if __name__ == "__main__":
    sys.exit(main())
