"""Benchmark the ballots service's intake against raw ceilings measured in the same run.

    python -m bench.ballots --out docs/performance-ballots.md        (what ``make bench`` runs)

Starts a throwaway embedded PostgreSQL and NATS JetStream (``bench.common.embedded_stack``), migrates a
``sipas_ballots`` database and seeds it the way the ballots integration tests do (``conftest.apply_events``):
the registry's instrument, scheme and campaign through the service's reference projection, then a
drawn sample (``SampleDrawn`` in parts of 1,000 units) through its sample projection, which issues one
ballot code per unit. Then, in one run:

- raw ceilings: JetStream pipelined publish and pull-consume, asyncpg COPY and batched INSERT (the
  same as ``bench.backbone``), single-row INSERTs committed one by one from as many connections as
  the HTTP clients, and COPY of rows shaped like ``accepted_ballots`` and ``online_ratings``;
- a minimal FastAPI app (its own uvicorn process, one POST endpoint that validates the same JSON body
  with pydantic and INSERTs one row through an asyncpg pool): the ceiling of "HTTP + one row";
- the ballots service as its own process (``python -m sipas_ballots``, as ``sipas up`` runs it):
  online submissions (``POST /v1/submissions``) from concurrent keep-alive clients, HTTP latency
  and the time until each ``BallotAccepted`` reached JetStream (a core NATS subscription on the
  stream's subject); one bulk import (``POST /v1/campaigns/{id}/ballot-imports``, CSV); batches of
  online-766 ratings (``POST /v1/campaigns/{id}/online-ratings``);
- where the time goes: CPU of each process, ``pg_stat_statements`` for the statements per
  submission, and a shorter run of the service under cProfile.

The HTTP client, the process handling and the py-spy sampling are in ``bench.load``; the raw ceilings,
the stack and the report helpers in ``bench.common``. This is a measurement, not a test: nothing in it
asserts on wall-clock time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.common import (
    CpuMeter,
    Phases,
    Result,
    Stack,
    embedded_stack,
    exact_percentile,
    exit_cleanly_on_sigterm,
    fmt_ms,
    fmt_rate,
    machine_facts,
    machine_section,
    md_section,
    md_table,
    process_tree,
    quiet_logs,
    raw_js,
    raw_pg,
    result_table,
    statements,
    statements_table,
    verdict,
    write_report,
)
from bench.load import (
    Load,
    Part,
    collapsed_profile,
    http_load,
    http_request,
    sampled,
    share,
    start,
    stop,
    wait_ready,
)
from bench.load import figures as figures_of

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "data" / "reference"
DATABASE = "sipas_ballots"
RAW_DATABASE = "bench_ballots_raw"
PROVINCE = "01"
CAMPAIGN_ID = "c-bench-ballots"
AGENCY_CODE = "H01.001"
PART = 1000                  # units per SampleDrawn part, as sampling publishes them
WARMUP = 200                 # requests before each timed HTTP run, not counted
SOURCE_SYSTEM = "bench-portal-01"
HTTP_AIM = 0.25              # online intake >= 25 % of the minimal FastAPI endpoint (issue 5)
IMPORT_AIM = 0.40            # bulk import >= 40 % of raw COPY (issue 5)
PG_SETTINGS = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.max": "1000"}
KEPT_SECTIONS = ("## Notes",)  # hand-written; carried over when the report is rewritten
LIBRARIES = ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "asyncpg", "nats-py")


# ---- seeding ------------------------------------------------------------------------------------
def builtin(kind: str, ident: str) -> dict[str, Any]:
    from sipas_cli.registry_client import builtin_definition

    return builtin_definition(kind, ident, REFERENCE)


def items() -> list[str]:
    return [i["code"] for f in builtin("instrument", "sipas-2017")["factors"] for i in f["items"]]


def reference_events() -> list[Any]:
    from sipas_events.catalogue import registry as reg

    return [
        reg.InstrumentPublished.model_validate({"instrument_id": "sipas-2017", "instrument_version": 1,
                                                "definition": builtin("instrument", "sipas-2017")}),
        reg.SchemePublished.model_validate({"scheme_id": "share-satisfied", "scheme_version": 1,
                                            "definition": builtin("scheme", "share-satisfied")}),
        reg.CampaignOpened.model_validate({
            "campaign_id": CAMPAIGN_ID, "name": "Đo lường mức độ hài lòng 2026 (benchmark)", "year": 2026,
            "scope": "province", "province": PROVINCE,
            "collection_window": {"start": "2026-01-01", "end": "2099-12-31"},
            "frame_window": {"start": "2025-10-01", "end": "2025-12-31"}, "target_unit_ids": ["bench-a1"],
            "instrument": {"id": "sipas-2017", "version": 1}, "scheme": {"id": "share-satisfied", "version": 1},
            "retention_until": "2100-01-01"}),
    ]


def sample_events(units: int) -> list[Any]:
    from sipas_events.catalogue import sampling as smp

    def unit(i: int) -> Any:
        return smp.SampledUnit(unit_id=f"u{i:07d}", agency_id="bench-a1", agency_code=AGENCY_CODE, stratum=AGENCY_CODE,
                               weight=Decimal("2.5"))

    parts = (units + PART - 1) // PART
    return [smp.SampleDrawn(
        draw_id="bench-d1", campaign_id=CAMPAIGN_ID, province=PROVINCE, frame_digest="0" * 64,
        seed_commitment="1" * 64, seed="2" * 32, algorithm_version="v1", part=p + 1, parts=parts,
        units=[unit(i) for i in range(p * PART, min(units, (p + 1) * PART))]) for p in range(parts)]


async def seed(url: str, units: int) -> Result:
    """Reference data, then the sample, applied exactly as the service's consumers would (the tests' helper)."""
    from sipas_ballots.adapters.tables import reference
    from sipas_ballots.projections.sample import projection as sample
    from sipas_kit.reference import reference_projection

    apply_events = importlib.import_module("conftest").apply_events  # the tests' helper, at the repository root
    await apply_events(url, reference_projection(reference), reference_events(), "registry")
    drawn = sample_events(units)
    t0 = time.perf_counter()
    await apply_events(url, sample, drawn, "sampling")
    return Result("issue", "Issuance: `SampleDrawn` through the sample projection (one ballot and one `BallotIssued` "
                  "per unit)", units, time.perf_counter() - t0, "ballots/s",
                  f"{len(drawn)} parts of up to {PART:,} units, one transaction each, as the consumer applies them")


async def scalar(dsn: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def issued_codes(dsn: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return [r["code"] for r in await conn.fetch("SELECT code FROM ballots ORDER BY unit_id")]
    finally:
        await conn.close()


# ---- workloads ----------------------------------------------------------------------------------
def answers(rng: random.Random, codes: Sequence[str]) -> dict[str, int]:
    return {c: rng.randint(2, 5) for c in codes}


def submission_bodies(codes: Sequence[str], seed_: int) -> list[bytes]:
    rng, names = random.Random(seed_), items()
    return [json.dumps({"code": c, "campaign_id": CAMPAIGN_ID, "answers": answers(rng, names),
                        "expectations": rng.sample(["E1", "E2", "E3", "E4", "E5", "E6", "E7"], 2)},
                       ensure_ascii=False).encode() for c in codes]


def import_csv(codes: Sequence[str], seed_: int) -> bytes:
    rng, names = random.Random(seed_), items()
    lines = [",".join(["code", *names, "expectations"])]
    for c in codes:
        a = answers(rng, names)
        lines.append(",".join([c, *(str(a[n]) for n in names), " ".join(rng.sample(["E1", "E3", "E5", "E7"], 2))]))
    return ("\n".join(lines) + "\n").encode()


def rating_batches(total: int, batch: int, seed_: int) -> list[bytes]:
    rng = random.Random(seed_)
    out = []
    for first in range(0, total, batch):
        batch_items = [{"source_system": SOURCE_SYSTEM, "dossier_id": f"HS-{i:09d}", "agency_code": AGENCY_CODE,
                        "completed_on": f"2026-{rng.randint(6, 9):02d}-{rng.randint(1, 28):02d}",
                        "rated_unsatisfied": rng.random() < 0.05, "complained": rng.random() < 0.01,
                        "overdue": rng.random() < 0.03} for i in range(first, min(total, first + batch))]
        out.append(json.dumps({"items": batch_items}).encode())
    return out


def service_env(stack: Stack, port: int) -> dict[str, str]:
    """The environment ``sipas up`` gives the ballots service (``Platform.service_env``), on this stack."""
    from sipas_cli.platform import SERVICES, Platform
    from sipas_cli.stack import free_port

    platform = Platform(stack.root, ports={s: (port if s == "ballots" else free_port()) for s in SERVICES})
    platform.pg, platform.nats = stack.pg, stack.nats
    return platform.service_env("ballots")


def minimal_app(dsn: str) -> Any:
    """The ceiling of "HTTP + one row": a FastAPI POST that validates the submission's JSON shape with pydantic
    and INSERTs one row through an asyncpg pool (as large as the service's SQLAlchemy pool)."""
    import asyncpg
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict

    class Body(BaseModel):
        model_config = ConfigDict(extra="forbid")
        code: str
        campaign_id: str
        answers: dict[str, int | None]
        expectations: list[str] = []
        channel: str = "online"

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=20)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    async def post(body: Body, request: Request) -> JSONResponse:
        row_id = uuid.uuid4()
        await request.app.state.pool.execute(
            "INSERT INTO minimal_submissions (id, code, answers) VALUES ($1, $2, $3)", row_id, body.code,
            json.dumps(body.answers))
        return JSONResponse({"id": str(row_id)}, 201)

    # The annotations are text here (``from __future__ import annotations``) and FastAPI resolves text in the
    # module's globals, where this function's local Body and Request are not: without the real classes it took
    # them for two required query parameters and answered every request 422.
    post.__annotations__ = {"body": Body, "request": Request, "return": JSONResponse}
    app.post("/v1/submissions", status_code=201)(post)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_minimal(dsn: str, port: int) -> int:
    import uvicorn

    uvicorn.run(minimal_app(dsn), host="127.0.0.1", port=port, log_config=None, access_log=False)  # as the kit's runner
    return 0


# ---- JetStream ----------------------------------------------------------------------------------
class Arrivals:
    """A core NATS subscription on one event's subject of the ballots stream: when each event arrived."""

    def __init__(self, nc: Any, event: str, key: Callable[[dict[str, Any]], str]) -> None:
        self.nc, self.subject, self.key = nc, f"sipas.ballots.{event}.>", key
        self.at: dict[str, float] = {}
        self.sub: Any = None

    async def __aenter__(self) -> Arrivals:
        async def seen(msg: Any) -> None:
            self.at.setdefault(self.key(json.loads(msg.data)["data"]), time.perf_counter())

        self.sub = await self.nc.subscribe(self.subject, cb=seen, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self.nc.flush()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sub.unsubscribe()

    async def wait(self, count: int, timeout: float, keys: Sequence[str] = ()) -> float:
        """Seconds waited for ``count`` events, or for the events of all ``keys`` (all of them must come)."""
        t0 = time.perf_counter()
        while len(self.at) < count or any(k not in self.at for k in keys):
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"only {len(self.at)} of {max(count, len(keys))} events on {self.subject} "
                                   f"after {timeout:.0f}s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - t0


async def wait_relay(js: Any, dsn: str, timeout: float = 300.0) -> int:
    """Wait until the relay has published every stored event of the ballots service (its backlog)."""
    deadline = time.monotonic() + timeout
    stored = int(await scalar(dsn, "SELECT count(*) FROM event_store"))
    while True:
        with contextlib.suppress(Exception):
            if (await js.stream_info("SIPAS_BALLOTS")).state.messages >= stored:
                return stored
        if time.monotonic() > deadline:
            raise TimeoutError("the relay did not publish the ballots service's backlog")
        await asyncio.sleep(0.2)


# ---- raw ceilings specific to intake ------------------------------------------------------------
async def raw_commits(dsn: str, n: int, concurrency: int, pids: Callable[[], dict[str, list[int]]]) -> Result:
    """Single-row INSERTs, each its own transaction (one fsync'd commit each), from ``concurrency`` connections."""
    import asyncpg

    body = json.dumps(answers(random.Random(1), items()))
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    try:
        await pool.execute("CREATE TABLE bench_one (id uuid PRIMARY KEY, code text NOT NULL, answers jsonb NOT NULL)")
        cursor = iter(range(n))

        async def worker() -> None:
            async with pool.acquire() as conn:
                for i in cursor:
                    await conn.execute("INSERT INTO bench_one (id, code, answers) VALUES ($1, $2, $3)",
                                       uuid.uuid4(), f"C{i}", body)

        meter = CpuMeter(pids)
        meter.start()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
        meter.stop()
        if await pool.fetchval("SELECT count(*) FROM bench_one") != n:
            raise RuntimeError("bench_one is missing rows")
        await pool.execute("DROP TABLE bench_one")
    finally:
        await pool.close()
    return Result("pg_commit", f"asyncpg single-row INSERT, one commit each, {concurrency} connections", n, seconds,
                  "rows/s", f"table (id uuid primary key, code text, answers jsonb), the submission's answers as "
                  f"jsonb; {meter.text('postgres')}")


ACCEPTED_COLUMNS = ["ballot_id", "campaign_id", "unit_id", "channel", "answers", "expectations", "entered_by",
                    "entry_seconds", "accepted_at", "voided"]
RATING_COLUMNS = ["source_system", "dossier_id", "campaign_id", "agency_code", "completed_on", "rated_unsatisfied",
                  "complained", "overdue", "batch_id"]


def accepted_records(n: int) -> list[tuple[Any, ...]]:
    body = json.dumps(answers(random.Random(2), items()))
    now = dt.datetime.now(dt.UTC)
    return [(str(uuid.uuid4()), CAMPAIGN_ID, f"u{i:07d}", "import", body, '["E1", "E3"]', "clerk-01@bench", None, now,
             False) for i in range(n)]


def rating_records(n: int) -> list[tuple[Any, ...]]:
    day = dt.date(2026, 7, 1)
    return [(SOURCE_SYSTEM, f"HS-{i:09d}", CAMPAIGN_ID, AGENCY_CODE, day, False, False, False, "batch")
            for i in range(n)]


async def raw_copy(dsn: str, key: str, like: str, columns: list[str], records: list[tuple[Any, ...]], keyed: bool,
                   pids: Callable[[], dict[str, list[int]]]) -> Result:
    """One COPY of ``records`` into a scratch table with ``like``'s columns (and its keys and indexes if ``keyed``)."""
    import asyncpg

    table = f"raw_{key}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {table}; "
                           f"CREATE TABLE {table} (LIKE {like}{' INCLUDING ALL' if keyed else ''})")
        await conn.execute("CHECKPOINT")
        meter = CpuMeter(pids)
        meter.start()
        t0 = time.perf_counter()
        await conn.copy_records_to_table(table, records=records, columns=columns)
        seconds = time.perf_counter() - t0
        meter.stop()
        if await conn.fetchval(f"SELECT count(*) FROM {table}") != len(records):
            raise RuntimeError(f"{table} is missing rows")
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    shape = f"`LIKE {like} INCLUDING ALL` (its primary key and indexes)" if keyed else f"`LIKE {like}` (no indexes)"
    return Result(key, f"asyncpg COPY of {like}-shaped rows into {shape}", len(records), seconds, "rows/s",
                  f"one COPY, autocommit; {meter.text('postgres')}")


# ---- the run ------------------------------------------------------------------------------------
@dataclass
class Report:
    command: str
    started: dt.datetime
    sizes: dict[str, int]
    results: dict[str, Result] = field(default_factory=dict)
    minimal: dict[str, Any] = field(default_factory=dict)
    online: dict[str, Any] = field(default_factory=dict)
    bulk: dict[str, Any] = field(default_factory=dict)
    ratings: dict[str, Any] = field(default_factory=dict)
    statements: list[dict[str, Any]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    kept_sections: list[str] = field(default_factory=list)

    def add(self, r: Result) -> Result:
        self.results[r.key] = r
        return r


class Bench:
    def __init__(self, report: Report, stack: Stack, args: argparse.Namespace) -> None:
        self.report, self.stack, self.args = report, stack, args
        self.phases = Phases()
        report.phase_seconds = self.phases.seconds
        self.url, self.dsn = stack.pg.url(DATABASE), stack.pg.dsn(DATABASE)
        self.service: subprocess.Popen[bytes] | None = None
        self.minimal: subprocess.Popen[bytes] | None = None

    def pids(self) -> dict[str, list[int]]:
        found = self.stack.pids()
        for kind, proc in (("service", self.service), ("minimal", self.minimal)):
            if proc is not None and proc.poll() is None:
                found[kind] = process_tree(proc.pid)
        return found

    async def run(self, codes: list[str]) -> None:
        a, r = self.args, self.report
        online_codes, rest = codes[:WARMUP + a.submissions], codes[WARMUP + a.submissions:]
        import_codes, profile_codes = rest[:a.import_rows], rest[a.import_rows:]
        await self.raw_ceilings()
        import nats

        nc = await nats.connect(self.stack.nats.url, name="bench-ballots")
        try:
            js = nc.jetstream()
            port, minimal_port = _free_port(), _free_port()
            env = service_env(self.stack, port)
            log = self.stack.root / "ballots.log"
            self.minimal = await self.start_minimal(minimal_port)
            self.service = start([sys.executable, "-m", "sipas_ballots"], env, log)
            try:
                await wait_ready(self.service, f"http://127.0.0.1:{port}/readyz", log)
                await self.phases.arun("relay publishes the issued ballots", lambda: wait_relay(js, self.dsn))
                r.minimal, r.online = await self.phases.arun("online submissions and the minimal endpoint, in turn",
                                                             lambda: self.http_rounds(nc, minimal_port, port,
                                                                                      online_codes))
                stop(self.minimal)
                self.minimal = None
                r.bulk = await self.phases.arun("bulk import", lambda: self.bulk(nc, port, import_codes))
                r.ratings = await self.phases.arun("online-766 ratings", lambda: self.ratings(nc, port))
                if a.profile_submissions > 0:
                    r.profile = await self.phases.arun("profile (py-spy)", lambda: self.profiled(port, profile_codes))
            finally:
                for proc in (self.minimal, self.service):
                    if proc is not None:
                        stop(proc)
                self.service = self.minimal = None
            r.minimal["rows"] = int(await scalar(self.stack.pg.dsn(RAW_DATABASE),
                                                 "SELECT count(*) FROM minimal_submissions"))
            r.checks = await self.checks(js)
        finally:
            await nc.close()

    async def raw_ceilings(self) -> None:
        a, r, pg = self.args, self.report, self.stack.pg
        pub, sub = await self.phases.arun("raw JetStream", lambda: raw_js(self.stack.nats.url, a.raw, a.rounds,
                                                                          self.pids))
        r.add(pub)
        r.add(sub)
        copy, ins = await self.phases.arun("raw COPY/INSERT", lambda: raw_pg(pg.dsn(RAW_DATABASE), a.raw, a.rounds,
                                                                             self.pids))
        r.add(copy)
        r.add(ins)
        r.add(await self.phases.arun("raw single-row commits", lambda: raw_commits(
            pg.dsn(RAW_DATABASE), a.raw // 4, a.concurrency, self.pids)))
        records = accepted_records(a.import_rows)
        r.add(await self.phases.arun("raw COPY accepted_ballots", lambda: raw_copy(
            self.dsn, "copy_accepted", "accepted_ballots", ACCEPTED_COLUMNS, records, False, self.pids)))
        r.add(await self.phases.arun("raw COPY accepted_ballots, keyed", lambda: raw_copy(
            self.dsn, "copy_accepted_keyed", "accepted_ballots", ACCEPTED_COLUMNS, records, True, self.pids)))
        r.add(await self.phases.arun("raw COPY online_ratings", lambda: raw_copy(
            self.dsn, "copy_ratings", "online_ratings", RATING_COLUMNS, rating_records(a.ratings), True, self.pids)))

    async def start_minimal(self, port: int) -> subprocess.Popen[bytes]:
        dsn = self.stack.pg.dsn(RAW_DATABASE)
        await scalar(dsn, "CREATE TABLE minimal_submissions (id uuid PRIMARY KEY, code text NOT NULL, "
                          "answers jsonb NOT NULL)")
        log = self.stack.root / "minimal.log"
        proc = start([sys.executable, "-m", "bench.ballots", "--serve-minimal", dsn, "--port", str(port)],
                     os.environ | {"PYTHONUNBUFFERED": "1"}, log)
        await wait_ready(proc, f"http://127.0.0.1:{port}/healthz", log)
        return proc

    async def http_rounds(self, nc: Any, minimal_port: int, port: int, codes: list[str],
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The minimal endpoint and the service, loaded in turn for ``rounds`` rounds each, so that other work on
        the machine weighs on both alike; each round's ratio is the service's rate over the minimal one's."""
        a = self.args
        c, k = a.concurrency, a.rounds
        service = [http_request("POST", "/v1/submissions", b) for b in submission_bodies(codes, 4)]
        minimal = [http_request("POST", "/v1/submissions", b)
                   for b in submission_bodies([f"MIN{i:08d}" for i in range(WARMUP + a.minimal_requests)], 3)]
        await http_load(minimal_port, minimal[:WARMUP], c, keep_bodies=False)
        await http_load(port, service[:WARMUP], c, keep_bodies=False)
        await statements(self.dsn, reset=True)
        minimal_cpu, service_cpu = CpuMeter(self.pids), CpuMeter(self.pids)
        minimal_loads: list[Load] = []
        service_loads: list[Load] = []
        async with Arrivals(nc, "BallotAccepted", lambda d: d["ballot_id"]) as arrivals:
            for i in range(k):
                minimal_cpu.start()
                minimal_loads.append(await http_load(minimal_port, share(minimal[WARMUP:], i, k), c, False))
                minimal_cpu.stop()
                service_cpu.start()
                service_loads.append(await http_load(port, share(service[WARMUP:], i, k), c))
                service_cpu.stop()
            accepted = [[json.loads(b)["ballot_id"] for b, s in zip(x.bodies, x.status, strict=True) if s == 201]
                        for x in service_loads]
            waited = await arrivals.wait(0, timeout=120, keys=[b for ids in accepted for b in ids])
        self.report.statements = await statements(self.dsn, limit=20)
        to_js = [arrivals.at[b] - x.sent[j] for x, ids in zip(service_loads, accepted, strict=True)
                 for j, b in enumerate(ids)]
        js_seconds = sum(max(arrivals.at[b] for b in ids) - min(x.sent)
                         for x, ids in zip(service_loads, accepted, strict=True) if ids)
        n_accepted = sum(len(ids) for ids in accepted)
        ratios = [s.n / s.seconds / (m.n / m.seconds) for s, m in zip(service_loads, minimal_loads, strict=True)]
        return (figures_of(minimal_loads) | {"cpu": minimal_cpu.cores()},
                figures_of(service_loads) | {
                    "cpu": service_cpu.cores(), "accepted": n_accepted, "ratios": ratios,
                    "js_seconds": js_seconds, "js_rate": n_accepted / js_seconds,
                    "js_p50": exact_percentile(to_js, 0.5), "js_p99": exact_percentile(to_js, 0.99),
                    "js_after_last_response": waited})

    async def bulk(self, nc: Any, port: int, codes: list[str]) -> dict[str, Any]:
        from sipas_kit.auth import DevIdentity

        token = DevIdentity(self.stack.root / "keys").mint("clerk-01@bench", "clerk", PROVINCE)
        body = import_csv(codes, 5)
        request = http_request("POST", f"/v1/campaigns/{CAMPAIGN_ID}/ballot-imports?filename=ballots.csv", body,
                               {"Authorization": f"Bearer {token}"}, "text/csv")
        async with Arrivals(nc, "BallotAccepted", lambda d: d["ballot_id"]) as arrivals:
            meter = CpuMeter(self.pids)
            meter.start()
            load = await http_load(port, [request], 1)
            meter.stop()
            answer = json.loads(load.bodies[0])
            await arrivals.wait(answer.get("accepted", 0), timeout=300)
        last = max(arrivals.at.values()) if arrivals.at else float("nan")
        seconds = load.seconds
        return {"rows": len(codes), "bytes": len(body), "status": load.status[0], "seconds": seconds,
                "rate": len(codes) / seconds, "accepted": answer.get("accepted"), "rejected": answer.get("rejected"),
                "js_seconds": last - load.sent[0], "js_rate": len(codes) / (last - load.sent[0]), "cpu": meter.cores()}

    async def ratings(self, nc: Any, port: int) -> dict[str, Any]:
        from sipas_kit.auth import DevIdentity

        a = self.args
        token = DevIdentity(self.stack.root / "keys").mint("service:portal-01", "service")
        batches = rating_batches(a.ratings, a.rating_batch, 6)
        requests = [http_request("POST", f"/v1/campaigns/{CAMPAIGN_ID}/online-ratings", b,
                                 {"Authorization": f"Bearer {token}"}) for b in batches]
        async with Arrivals(nc, "OnlineRatingsRecorded", lambda d: d["batch_id"]) as arrivals:
            meter = CpuMeter(self.pids)
            meter.start()
            load = await http_load(port, requests, a.rating_clients)
            meter.stop()
            await arrivals.wait(len(batches), timeout=120)
        recorded = sum(json.loads(b).get("recorded", 0) for b in load.bodies)
        last = max(arrivals.at.values())
        return figures_of([load]) | {"rows": a.ratings, "batch": a.rating_batch, "batches": len(batches),
                                 "recorded": recorded, "statuses": load.statuses(), "cpu": meter.cores(),
                                 "row_rate": a.ratings / load.seconds,
                                 "js_rate": a.ratings / (last - min(load.sent))}

    async def profiled(self, port: int, codes: list[str]) -> dict[str, Any]:
        """py-spy samples the running service over a run of online submissions (if py-spy is installed)."""
        if self.service is None:
            return {}
        path = self.stack.root / "ballots.pyspy"
        requests = [http_request("POST", "/v1/submissions", b) for b in submission_bodies(codes, 7)]
        await http_load(port, requests[:WARMUP], self.args.concurrency, keep_bodies=False)
        async with sampled(self.service.pid, path) as sampling:
            load = await http_load(port, requests[WARMUP:], self.args.concurrency, keep_bodies=False)
        if not sampling or not path.exists():
            return {}
        kept = Path(tempfile.gettempdir()) / "sipas-bench-ballots-last.pyspy"
        shutil.copyfile(path, kept)  # for a flame graph (flamegraph.pl, speedscope); the run's directory goes
        print(f"py-spy samples in {kept}")
        return {"n": load.n, "rate": load.n / load.seconds, "raw": str(kept)} | collapsed_profile(path.read_text(),
                                                                                               PARTS)

    async def checks(self, js: Any) -> dict[str, Any]:
        q = {"accepted_ballots": "SELECT count(*) FROM accepted_ballots",
             "rejected submissions": "SELECT count(*) FROM submissions WHERE outcome = 'rejected'",
             "BallotAccepted events": "SELECT count(*) FROM event_store WHERE type LIKE '%BallotAccepted%'",
             "online_ratings": "SELECT count(*) FROM online_ratings",
             "stored events": "SELECT count(*) FROM event_store"}
        out: dict[str, Any] = {k: int(await scalar(self.dsn, sql)) for k, sql in q.items()}
        with contextlib.suppress(Exception):
            await wait_relay(js, self.dsn, timeout=60)
        out["events on JetStream (SIPAS_BALLOTS)"] = (await js.stream_info("SIPAS_BALLOTS")).state.messages
        return out


def _free_port() -> int:
    from sipas_cli.stack import free_port

    return free_port()


# ---- the profile --------------------------------------------------------------------------------
# Parts of the work: the first part (in this order) with a frame anywhere on the stack wins. SQLAlchemy runs
# its synchronous core in a greenlet whose frames do not link back to the coroutine that awaits it, so a
# sample inside a statement's execution may show none of the service's frames ("a statement, caller unseen").
PARTS: tuple[Part, ...] = (
    ("relay: sequence and publish events", ("sipas_events/relay.py",), ()),
    ("consumers (idle polling)", ("sipas_events/consumer.py",), ()),
    ("`EventStore.append`: envelope, canonical JSON, hash, INSERT", ("sipas_events/store.py",), ("append",)),
    ("`intake.campaign_facts`: campaign rules (instrument and scheme cached per process)", ("intake.py",),
     ("campaign_facts", "_definition")),
    ("`intake.submit`: the rest (one read: ballot locked, unit, campaign; validation; one write)", ("intake.py",),
     ("submit",)),
    ("kit audit trail: the request's row after the answer, sealing", ("sipas_kit/audit.py",), ()),
    ("`run_command`: transaction begin/commit, pool", ("sipas_kit/http.py",), ("run_command",)),
    ("a statement inside SQLAlchemy's greenlet (caller unseen)", ("sqlalchemy/",), ()),
    ("request parsing and validation, response (FastAPI, pydantic)", ("fastapi/",), ()),
    ("request log line and metrics (kit middleware)", ("sipas_kit/http.py",), ("correlate",)),
    ("HTTP protocol and middleware plumbing (uvicorn, Starlette)", ("uvicorn/", "starlette/"), ()),
)
# ---- output -------------------------------------------------------------------------------------
RAW_ORDER = ("js_pub", "js_sub", "pg_copy", "pg_insert", "pg_commit", "copy_accepted", "copy_accepted_keyed",
             "copy_ratings")


def _rates(rates: Sequence[float]) -> str:
    return ", ".join(fmt_rate(x) for x in rates)


def _cpu(cpu: dict[str, float]) -> str:
    """Cores busy; of the two servers under test only the one that worked (the other idles beside it)."""
    order = ("client", "service", "minimal", "postgres", "nats-server", "others")
    idle = {k for k in ("service", "minimal") if cpu.get(k, 0.0) < 0.01}
    return "cores busy: " + ", ".join(f"{k} {cpu[k]:.2f}" for k in order if k in cpu and k not in idle)


def figures(r: Report) -> dict[str, float]:
    x = r.results
    f = {"online": r.online["rate"], "minimal": r.minimal["rate"], "bulk": r.bulk["rate"],
         "ratings": r.ratings["row_rate"]}
    f["online/minimal"] = statistics.median(r.online["ratios"])  # round by round: other load weighs on both alike
    f["online/commit"] = f["online"] / x["pg_commit"].rate
    f["online_js/js_pub"] = r.online["js_rate"] / x["js_pub"].rate
    f["minimal/commit"] = f["minimal"] / x["pg_commit"].rate
    f["bulk/copy"] = f["bulk"] / x["copy_accepted"].rate
    f["bulk/copy_keyed"] = f["bulk"] / x["copy_accepted_keyed"].rate
    f["bulk/insert"] = f["bulk"] / x["pg_insert"].rate
    f["ratings/copy"] = f["ratings"] / x["copy_ratings"].rate
    f["ratings/insert"] = f["ratings"] / x["pg_insert"].rate
    return f


def print_summary(r: Report) -> None:
    f = figures(r)
    print()
    for key in RAW_ORDER:
        x = r.results[key]
        print(f"{x.name[:90]:<92}{fmt_rate(x.rate):>10} {x.unit}")
    m, o = r.minimal, r.online
    print(f"minimal FastAPI POST + one INSERT       {fmt_rate(m['rate'])} req/s, p50 {fmt_ms(m['p50'])}, "
          f"p99 {fmt_ms(m['p99'])}")
    print(f"POST /v1/submissions (online)           {fmt_rate(o['rate'])} req/s, p50 {fmt_ms(o['p50'])}, "
          f"p99 {fmt_ms(o['p99'])} = {f['online/minimal']:.1%} of minimal (aim >= {HTTP_AIM:.0%}: "
          f"{verdict(f['online/minimal'] >= HTTP_AIM)})")
    print(f"  ... to BallotAccepted on JetStream    {fmt_rate(o['js_rate'])} ballots/s, p50 {fmt_ms(o['js_p50'])}, "
          f"p99 {fmt_ms(o['js_p99'])}")
    print(f"bulk import                             {fmt_rate(r.bulk['rate'])} rows/s = {f['bulk/copy']:.2%} of raw "
          f"COPY (aim >= {IMPORT_AIM:.0%}: {verdict(f['bulk/copy'] >= IMPORT_AIM)})")
    print(f"online-766 ratings                      {fmt_rate(r.ratings['row_rate'])} rows/s = "
          f"{f['ratings/copy']:.1%} of raw COPY")


def markdown(r: Report) -> str:
    f, x, s = figures(r), r.results, r.sizes
    m, o, b, g = r.minimal, r.online, r.bulk, r.ratings
    lines: list[str] = []
    add = lines.append
    add("# Ballots performance: online intake, bulk import and online-766 ratings")
    add("")
    add("Measured by `bench/ballots.py` (a benchmark, not a test). Reproduce with `make bench` (it runs "
        "`python -m bench.ballots --out docs/performance-ballots.md` after the backbone and sampling benchmarks; "
        "`--submissions`, `--import-rows`, `--ratings` and `--concurrency` change the sizes). The benchmark starts "
        "its own throwaway embedded PostgreSQL and NATS JetStream, migrates a `sipas_ballots` database, seeds it as "
        "the ballots integration tests do (`conftest.apply_events`: instrument, scheme and campaign through the "
        "reference projection, then a drawn sample through the sample projection, which issues the ballots), "
        "measures the raw ceilings, then runs a minimal FastAPI app and the ballots service each as its own uvicorn "
        "process (the service exactly as `sipas up` starts it) and drives them over HTTP from the benchmark "
        "process. Everything shares one machine.")
    add("")
    add(f"- Date: {r.started.strftime('%Y-%m-%d %H:%M UTC')}")
    add(f"- Command: `{r.command}`")
    add(f"- Sizes: {s['units']:,} ballots issued; {s['submissions']:,} online submissions from {s['concurrency']} "
        f"concurrent keep-alive clients (after {WARMUP} not counted); one import of {s['import_rows']:,} keyed "
        f"ballots; {s['ratings']:,} online-766 ratings in batches of {s['rating_batch']:,} from "
        f"{s['rating_clients']} clients; raw ceilings over {s['raw']:,} rows/messages")
    add(f"- Whole run {r.total_seconds / 60:.1f} min")
    add("")
    add("## Results")
    add("")
    add("Raw ceilings, measured in this run:")
    add("")
    lines += result_table((str(i), x[k]) for i, k in enumerate(RAW_ORDER, 1))
    add("")
    add("The ballots service and its HTTP ceiling:")
    add("")
    rows = [
        ("9", "Minimal FastAPI POST + one INSERT (its own uvicorn process, asyncpg pool of 10-20)",
         f"{fmt_rate(m['rate'])} req/s", f"p50 {fmt_ms(m['p50'])}, p99 {fmt_ms(m['p99'])}",
         f"{m['n']:,} requests in {len(m['round_rates'])} rounds ({_rates(m['round_rates'])} req/s), "
         f"{m['concurrency']} clients; {_cpu(m['cpu'])}"),
        ("10", "**`POST /v1/submissions`** (online channel), 201 = committed", f"**{fmt_rate(o['rate'])} ballots/s**",
         f"p50 {fmt_ms(o['p50'])}, p95 {fmt_ms(o['p95'])}, p99 {fmt_ms(o['p99'])}",
         f"{o['n']:,} requests in {len(o['round_rates'])} rounds ({_rates(o['round_rates'])} ballots/s), "
         f"{o['concurrency']} clients, statuses {o['statuses']}; {_cpu(o['cpu'])}"),
        ("10e", "... to `BallotAccepted` on JetStream (relay in the service process)",
         f"{fmt_rate(o['js_rate'])} ballots/s", f"p50 {fmt_ms(o['js_p50'])}, p99 {fmt_ms(o['js_p99'])}",
         f"first request sent to last event seen; the last came {o['js_after_last_response']:.2f} s after the last "
         "response"),
        ("11", "**Bulk import** (`POST .../ballot-imports`, one CSV)", f"**{fmt_rate(b['rate'])} rows/s**",
         f"{b['seconds']:.1f} s for the request",
         f"{b['rows']:,} rows ({b['bytes'] / 2**20:.1f} MiB), status {b['status']}, accepted {b['accepted']:,}, "
         f"rejected {b['rejected']}; {_cpu(b['cpu'])}"),
        ("11e", "... to the last `BallotAccepted` on JetStream", f"{fmt_rate(b['js_rate'])} rows/s",
         f"{b['js_seconds']:.1f} s", ""),
        ("12", "**online-766 ratings** (`POST .../online-ratings`)", f"**{fmt_rate(g['row_rate'])} rows/s**",
         f"p50 {fmt_ms(g['p50'])}, p99 {fmt_ms(g['p99'])} a batch",
         f"{g['batches']} batches of {g['batch']:,}, {g['concurrency']} clients, recorded {g['recorded']:,}, statuses "
         f"{g['statuses']}; to the last `OnlineRatingsRecorded` on JetStream {fmt_rate(g['js_rate'])} rows/s; "
         f"{_cpu(g['cpu'])}"),
        ("13", x["issue"].name, f"{fmt_rate(x['issue'].rate)} {x['issue'].unit}", f"{x['issue'].seconds:.1f} s",
         x["issue"].note),
    ]
    lines += md_table(["#", "Measurement", "Rate", "Latency / time", "Details"], rows, "llrrl")
    add("")
    add("Ratios and the aims of issue 5:")
    add("")
    ratios = [
        ("10 / 9", "online intake / minimal FastAPI + one INSERT (median of the rounds' ratios: "
         + ", ".join(f"{x:.1%}" for x in r.online["ratios"]) + ")", f"**{f['online/minimal']:.1%}**",
         f">= {HTTP_AIM:.0%}: **{verdict(f['online/minimal'] >= HTTP_AIM)}**"),
        ("10 / 5", "online intake / raw single-row commits", f"{f['online/commit']:.1%}", ""),
        ("9 / 5", "minimal FastAPI / raw single-row commits (what HTTP costs)", f"{f['minimal/commit']:.1%}", ""),
        ("10e / 1", "online intake to JetStream / raw pipelined publish", f"{f['online_js/js_pub']:.2%}", ""),
        ("11 / 6", "bulk import / raw COPY of `accepted_ballots` rows", f"**{f['bulk/copy']:.2%}**",
         f">= {IMPORT_AIM:.0%}: **{verdict(f['bulk/copy'] >= IMPORT_AIM)}**"),
        ("11 / 7", "bulk import / raw COPY, keyed like `accepted_ballots`", f"{f['bulk/copy_keyed']:.2%}",
         "(for comparison)"),
        ("11 / 4", "bulk import / raw batched INSERT", f"{f['bulk/insert']:.2%}", "(for comparison)"),
        ("12 / 8", "online-766 / raw COPY into `online_ratings`' shape, keyed", f"{f['ratings/copy']:.1%}",
         "no aim set"),
        ("12 / 4", "online-766 / raw batched INSERT", f"{f['ratings/insert']:.1%}", ""),
    ]
    lines += md_table(["Rows", "Ratio", "Value", "Aim"], ratios, "llrl")
    add("")
    add("How each figure was taken:")
    add("")
    for line in method(r):
        add(f"- {line}")
    add("")
    add("Checks after the runs: " + ", ".join(f"{k} {v:,}" for k, v in r.checks.items()) + ".")
    add("")
    lines += md_section("Where the time goes", where_time_goes(r, f))
    lines += md_section("What this means", meaning(r, f), bullets=True)
    for kept in r.kept_sections:
        add(kept.rstrip("\n"))
        add("")
    lines += machine_section(r.machine, r.phase_seconds)
    return "\n".join(lines)


def method(r: Report) -> list[str]:
    s = r.sizes
    return [
        "1-4: as in `bench/backbone.py` (median of the rounds; `bench/common.py` holds the code). 5: "
        f"{s['raw'] // 4:,} single-row INSERTs, each committed on its own (fsync on, synchronous_commit on, so group "
        f"commit is what lets {s['concurrency']} connections beat one). 6-8: one `copy_records_to_table` of exactly "
        "the rows the service writes for the same input (answers as jsonb), into a scratch table of the real "
        "table's columns, timed to its return.",
        f"9, 10, 12: a small asyncio HTTP/1.1 client in the benchmark process keeps {s['concurrency']} keep-alive "
        "connections busy, each sending its next pre-built request when the previous answer arrives (closed "
        "loop), so the rate is what the server sustains at that concurrency; latency is from writing the request "
        f"to reading the whole answer. {WARMUP} requests warm each server up first and are not counted. 9 and 10 run "
        f"in turn, {s['rounds']} rounds each (both servers up throughout), so that other work on the machine weighs "
        "on both alike; the ratio 10 / 9 is the median of the rounds' ratios. Both servers "
        "are uvicorn with uvloop and httptools, one process, access log off; the minimal app parses the same JSON "
        "body with a pydantic model and INSERTs one row. The service runs with its defaults (pool 10 + 10 "
        "overflow, JSON logs at INFO to a file).",
        "10: online respondents (no token: the code is the credential), every ballot valid, each code once. 201 "
        "is returned after `run_command` commits, so every counted ballot is durable. 10e: a core NATS "
        "subscription on `sipas.ballots.BallotAccepted.>` in the benchmark process notes when each event arrives; "
        "latency is per ballot from its request to its event.",
        f"11: one request with a CSV of {s['import_rows']:,} rows (code, the 22 items, expectations) by a clerk of "
        "province 01; the service parses and validates the whole file, locks its codes in one statement, writes "
        "ballot statuses, accepted ballots, submission records and one event per row set-based (unnest INSERTs in "
        "chunks of 2,000 rows) in one transaction, and answers with the per-row report. 11e: "
        "until the last `BallotAccepted` was seen on JetStream.",
        f"12: batches of {s['rating_batch']:,} items (source system, dossier, agency, date, three flags) by a service "
        "token; each batch is one transaction and one `OnlineRatingsRecorded` event.",
        "13: seeding, not an aim: the ballots service's own sample projection applying `SampleDrawn`.",
        "CPU: cores kept busy on average during the timed run by the benchmark process (client), the ballots "
        "service process (service) or the minimal app (minimal), PostgreSQL, nats-server, and everything else on "
        "the machine (others).",
    ]


def where_time_goes(r: Report, f: dict[str, float]) -> list[str]:
    o, n = r.online, r.online["n"]
    out = [f"**Per online submission** ({o['rate']:,.0f}/s with {o['concurrency']} clients): "
           f"{_cpu(o['cpu'])}. Per submission that is about "
           f"{o['cpu'].get('service', 0) / o['rate'] * 1e6:,.0f} us of the service's CPU, "
           f"{o['cpu'].get('postgres', 0) / o['rate'] * 1e6:,.0f} us of PostgreSQL's and "
           f"{o['cpu'].get('client', 0) / o['rate'] * 1e6:,.0f} us of the benchmark client's; the minimal app needed "
           f"{r.minimal['cpu'].get('minimal', 0) / r.minimal['rate'] * 1e6:,.0f} us of its own CPU per request.", ""]
    if r.statements:
        txn = {st["query"]: st["calls"] for st in r.statements if st["query"] in ("BEGIN", "COMMIT", "ROLLBACK")}
        calls = sum(st["calls"] for st in r.statements if st["query"] not in txn)
        out += [f"Statements the service ran during the {n:,} timed submissions (`pg_stat_statements`, top "
                f"{len(r.statements)} by server time): {calls / n:.1f} a submission, the relay's included, plus "
                + ", ".join(f"{v / n:.1f} {k}" for k, v in txn.items()) + ":", ""]
        out += statements_table(r.statements)
        out.append("")
    p = r.profile
    if p and p.get("samples"):
        share = p["samples"]
        out += [f"py-spy sampled the service process 200 times a second over {p['n']:,} more online submissions "
                f"({p['rate']:,.0f}/s while sampled), only while it ran ({share:,} samples; "
                f"{p['idle_thread_samples']:,} more of idle worker threads left out). By the part of the work on the "
                "stack:", ""]
        out += md_table(["Part", "Share of samples"], (
            (k, f"{v / share:.0%}") for k, v in sorted(p["parts"].items(), key=lambda kv: -kv[1])), "lr")
        out += ["", "By whose code was running (the deepest frame in a known package):", ""]
        out += md_table(["Layer", "Share of samples"], (
            (k, f"{v / share:.0%}") for k, v in sorted(p["layers"].items(), key=lambda kv: -kv[1])), "lr")
        out += ["", "Leaf functions with the most samples:", ""]
        out += md_table(["Function", "Share of samples"], ((f"`{k}`", f"{v / share:.1%}") for k, v in p["leaves"]),
                        "lr")
    elif r.sizes.get("profile"):
        out.append("(No profile: py-spy is not installed. `pip install py-spy` into the virtualenv to get one.)")
    return out


def meaning(r: Report, f: dict[str, float]) -> list[str]:
    o, m, b = r.online, r.minimal, r.bulk
    service_us = o["cpu"].get("service", 0) / o["rate"] * 1e6
    minimal_us = m["cpu"].get("minimal", 0) / m["rate"] * 1e6
    out = [
        f"Online intake ran at {f['online/minimal']:.1%} of the minimal FastAPI endpoint, so the aim of "
        f"{HTTP_AIM:.0%} is {verdict(f['online/minimal'] >= HTTP_AIM)}. The service process was the busy one "
        f"({o['cpu'].get('service', 0):.2f} of a core) while PostgreSQL used {o['cpu'].get('postgres', 0):.2f}: a "
        f"submission costs the service about {service_us:,.0f} us of CPU against {minimal_us:,.0f} us for the "
        "minimal endpoint, so one process is bound by its own Python work per ballot, not by the database or the "
        "transport.",
        f"Bulk import ran at {f['bulk/copy']:.2%} of raw COPY of the same rows, so the aim of {IMPORT_AIM:.0%} is "
        f"{verdict(f['bulk/copy'] >= IMPORT_AIM)}: {fmt_rate(b['rate'])} rows/s, "
        f"{b['rate'] / o['rate']:.0f} times the online rate with {o['concurrency']} concurrent clients; the service "
        f"spent about {b['cpu'].get('service', 0) * b['seconds'] / b['rows'] * 1e6:,.0f} us of CPU a row and "
        f"PostgreSQL about {b['cpu'].get('postgres', 0) * b['seconds'] / b['rows'] * 1e6:,.0f} us (the raw COPY "
        f"needs {1e6 / r.results['copy_accepted'].rate:,.0f} us a row in all). At this rate 50,000 keyed ballots "
        f"take about {50_000 / b['rate']:.0f} s.",
        f"online-766 batches ran at {fmt_rate(r.ratings['row_rate'])} rows/s ({f['ratings/copy']:.1%} of raw COPY): "
        "one validation pass, one multi-row INSERT and one event per batch, so the per-row cost is small and "
        "the daily peaks of hundreds of ratings per second in DESIGN.md are far below it.",
        "Every figure comes from one two-core machine running PostgreSQL, NATS, the server under test and the "
        "benchmark client together, with other work on it at the same time (\"others\" in the CPU figures and "
        "the load average below). Treat the rates as relative costs on this machine, not as capacity.",
    ]
    return out


# ---- main ---------------------------------------------------------------------------------------
def prepare(stack: Stack, units: int) -> Result:
    from sipas_kit import migrations

    stack.pg.create_database(DATABASE)
    stack.pg.create_database(RAW_DATABASE)
    migrations.upgrade("sipas_ballots", stack.pg.url(DATABASE))  # runs its own event loop: not inside ours
    stack.pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database=DATABASE)
    return asyncio.run(seed(stack.pg.url(DATABASE), units))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ballots", description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=4000, help="timed online submissions (default 4000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent HTTP clients (default 16)")
    parser.add_argument("--minimal-requests", type=int, default=10000,
                        help="timed requests to the minimal FastAPI app (default 10000)")
    parser.add_argument("--import-rows", type=int, default=5000, help="rows of the bulk import (default 5000)")
    parser.add_argument("--ratings", type=int, default=50000, help="online-766 ratings (default 50000)")
    parser.add_argument("--rating-batch", type=int, default=1000, help="ratings per request (default 1000)")
    parser.add_argument("--rating-clients", type=int, default=2, help="concurrent rating clients (default 2)")
    parser.add_argument("--profile-submissions", type=int, default=1500,
                        help="online submissions sampled by py-spy, if installed (default 1500; 0 skips it)")
    parser.add_argument("--raw", type=int, default=20000, help="rows/messages of the raw ceilings (default 20000)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of raw ceilings 1-4 and of the HTTP runs 9-10 (default 3)")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--serve-minimal", metavar="DSN", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    if args.serve_minimal:
        return serve_minimal(args.serve_minimal, args.port)
    for name in ("submissions", "concurrency", "minimal_requests", "import_rows", "ratings", "rating_batch",
                 "rating_clients", "raw", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    quiet_logs()
    command = " ".join(["python -m bench.ballots", *(argv if argv is not None else sys.argv[1:])])
    profile_units = WARMUP + args.profile_submissions if args.profile_submissions > 0 else 0
    units = WARMUP + args.submissions + args.import_rows + profile_units
    report = Report(command=command, started=dt.datetime.now(dt.UTC), sizes={
        "units": units, "submissions": args.submissions, "concurrency": args.concurrency,
        "import_rows": args.import_rows, "ratings": args.ratings, "rating_batch": args.rating_batch,
        "rating_clients": args.rating_clients, "raw": args.raw, "profile": args.profile_submissions,
        "rounds": args.rounds})
    t_start = time.perf_counter()
    with embedded_stack("sipas-bench-ballots-", pg_settings=PG_SETTINGS) as stack:
        report.machine = machine_facts(stack.pg, stack.root, nats_server=stack.nats, libraries=LIBRARIES, load=True,
                                       pg_note="the embedded stack's; pg_stat_statements loaded")
        bench = Bench(report, stack, args)
        report.add(bench.phases.run(f"migrate and issue {units:,} ballots", lambda: prepare(stack, units)))
        codes = asyncio.run(issued_codes(stack.pg.dsn(DATABASE)))
        asyncio.run(bench.run(codes))
    report.total_seconds = time.perf_counter() - t_start
    print_summary(report)
    write_report(args.out, report, markdown, KEPT_SECTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
