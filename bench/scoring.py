"""Benchmark rescoring and freshness of the scoring service against raw ceilings measured in the same run.

    python -m bench.scoring --out docs/performance-scoring.md [--ballots N]   (``make bench`` runs this)

Starts a throwaway embedded PostgreSQL and NATS JetStream (``sipas_cli.stack``) in a temporary
directory, migrates a ``sipas_scoring`` template database and fills its registry reference tables
through the service's own reference projection (the ``sipas-2017`` instrument, the ``share-satisfied``
scheme, ~1,000 agencies over the 34 provinces, one campaign per measurement). Ballots are realistic:
28 answers each (22 criteria, 5 factor items, the overall item) leaning towards satisfied by an
agency-level propensity, a few items not applicable, the feedback factor skipped by a third of
respondents, 0-3 expectations, every ballot from a sampled unit with its stratum's design weight.
Then, in one run:

1. raw ceilings: ``raw_js`` (pipelined publish, pull-consume with explicit ack) and ``raw_pg`` (COPY,
   batched INSERT) from ``bench.common``;
2. rescoring from the projection: N counted ballots COPYed into ``sc_ballots`` (with their
   ``sc_units``), then ``recount()`` (the campaign's tallies in one SQL statement) beside floor scans
   of the same rows; and, at smaller sizes, ``verify(apply)`` (recount and store the tallies) and
   ``load()`` + ``document()`` (every figure with its intervals), to show how they scale;
3. rescoring by replaying the streams: N_replay ``BallotAccepted`` envelopes published to
   ``SIPAS_BALLOTS`` as a relay publishes them, the service started in this process (its app and
   lifespan, as ``conftest.open_api`` does, without the figures worker), caught up, then the tallies
   projection rebuilt with ``consumer.rebuild()``; beside it the same stream pull-consumed raw and
   read with the rebuild's own reader;
4. freshness: ``BallotAccepted`` driven into JetStream at a steady rate by a child process (so the
   service's CPU-bound figures never stall the clock) while the service runs with its figures
   worker; from each event's publish time to the first moment ``sc_figures.positions`` covers it, for a
   province-sized and a national-sized campaign, at two worker intervals;
5. a cProfile of the slowest phase.

Writes a Markdown report (keeping the hand-written sections listed in ``KEPT_SECTIONS``). The servers
are stopped and the directory removed whatever happens. This is a measurement, not a test: nothing
in it asserts on wall-clock time.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import cProfile
import csv
import dataclasses
import datetime as dt
import gc
import importlib
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.backbone import bucket_percentile, histogram_buckets
from bench.ballots import builtin
from bench.common import (
    CpuMeter,
    Phases,
    Result,
    Stack,
    embedded_stack,
    exact_percentile,
    exit_cleanly_on_sigterm,
    fmt_rate,
    machine_facts,
    machine_section,
    md_table,
    profile_table,
    pstats_top,
    quiet_logs,
    raw_js,
    raw_pg,
    result_table,
    statements,
    statements_table,
    verdict,
    write_report,
)

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "data" / "reference"
TEMPLATE = "bench_scoring_template"
RAW_DATABASE = "bench_scoring_raw"
DRAW_ID = "bench-d1"
AGENCIES = 1000
SEED = 2026
FULL_SCALE = 10_000_000
RESCORE_AIM = 60.0           # seconds for 10 million ballots from the projection (issue 6)
REPLAY_AIM = 0.50            # replay >= 50 % of raw JetStream pull-consume (issue 6)
FRESHNESS_AIM = 2.0          # p99 seconds from BallotAccepted to an updated index (issue 6)
INTAKE_RATE = 1000.0         # ballots/s sustained intake of the freshness aim
COPY_BATCH = 50_000          # records per copy_records_to_table call
PUBLISH_BATCH = 500          # envelopes per publish_batch, as Feed and the relay's batches
TICK = 0.01                  # seconds between paced publishes in the freshness drive
POLL = 0.02                  # seconds between the drive's polls of sc_figures
WARMUP_BALLOTS = 20          # published before each freshness drive, not counted
SETTLE_TIMEOUT = 20.0        # seconds the drive waits for the figures to cover the last event
REBUILD_TRIALS = 3              # timed rebuilds; the median is reported, as the raw ceilings report theirs
PROFILE_EVENTS = 2000        # events of the replay's catch-up applied under cProfile
FALLBACK_SECONDS = 30.0      # length of a drive at a lower rate, when the aim's rate was not sustained
KEPT_SECTIONS = ("## Notes",)  # hand-written; carried over when the report is rewritten
LIBRARIES = ("nats-py", "asyncpg", "sqlalchemy", "pydantic", "fastapi")
PG_SETTINGS = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.max": "1000"}
RAW_KEYS = ("js_pub", "js_sub", "pg_copy", "pg_insert")
FRESHNESS_METRIC = "sipas_scoring_freshness_seconds"


# ---- the population: provinces, agencies, ballots -----------------------------------------------
def provinces() -> list[tuple[str, str]]:
    with open(REFERENCE / "provinces-34.csv", encoding="utf-8") as f:
        return [(row["code"], row["name_vi"]) for row in csv.DictReader(f)]


@dataclass(frozen=True)
class AgencySpec:
    agency_id: str
    code: str
    name: str
    province: str
    volume: float        # relative share of the campaign's ballots
    propensity: int      # 0..9: how satisfied its respondents lean (an answer pool)
    weight: Decimal      # design weight of its stratum (frame size / sample size)


def agency_specs(count: int, seed: int) -> list[AgencySpec]:
    """``count`` agencies spread over the 34 provinces by a log-normal size (a few big provinces)."""
    rng = random.Random(seed)
    places = provinces()
    size = [rng.lognormvariate(0.0, 0.5) for _ in places]
    share = [count * s / sum(size) for s in size]
    per = [max(1, int(x)) for x in share]
    for k in sorted(range(len(places)), key=lambda k: per[k] - share[k])[:max(0, count - sum(per))]:
        per[k] += 1
    out = []
    for (code, _name), n in zip(places, per, strict=True):
        for k in range(n):
            kind = ("Phường", "Xã", "Sở")[k % 3]
            out.append(AgencySpec(f"bench-{code}-{k:03d}", f"H{code}.{k + 1:03d}", f"{kind} số {k + 1} ({code})", code,
                                  rng.lognormvariate(0.0, 0.6), rng.randrange(10),
                                  Decimal(rng.choice(["8", "12.5", "20", "25", "40", "62.5"]))))
    return out[:count]


def item_codes() -> tuple[list[str], list[str], str]:
    """(criteria, the factors' overall items, the overall item) of sipas-2017."""
    d = builtin("instrument", "sipas-2017")
    return ([i["code"] for f in d["factors"] for i in f["items"]],
            [f["overall_item"]["code"] for f in d["factors"]], d["overall_item"]["code"])


def codebook() -> Any:
    """The answer codes (``domain.codes``) of sipas-2017, as the tallies projection writes them."""
    from sipas_events.catalogue.registry import InstrumentDefinition
    from sipas_scoring.application.definitions import instrument_of
    from sipas_scoring.domain.codes import Codebook

    return Codebook.of(instrument_of(InstrumentDefinition.model_validate(builtin("instrument", "sipas-2017"))))


class Ballots:
    """Realistic counted ballots, drawn fast from pools of answer sets (one pool per propensity)."""

    POOL = 1000
    BLOCK = 4096

    def __init__(self, agencies: Sequence[AgencySpec], seed: int) -> None:
        rng = random.Random(seed)
        self.agencies = list(agencies)
        criteria, factor_items, overall = item_codes()
        book = codebook()
        feedback = [c for c in criteria if c.startswith("5.")]
        options = [f"E{k}" for k in range(1, 8)]
        self.pools: list[list[tuple[dict[str, int | None], str, list[str], str]]] = []
        for propensity in range(10):
            p = 0.55 + 0.04 * propensity           # chance an answer is satisfied (4 or 5)
            pool = []
            for _ in range(self.POOL):
                skip_feedback = rng.random() < 0.35  # "I gave no feedback": factor 5 not applicable
                answers: dict[str, int | None] = {}
                for code in [*criteria, *factor_items, overall]:
                    if (skip_feedback and (code in feedback or code == "5.0")) or rng.random() < 0.02:
                        answers[code] = None
                    elif rng.random() < p:
                        answers[code] = rng.choice((4, 5, 5) if propensity > 6 else (4, 4, 5))
                    else:
                        answers[code] = rng.choice((1, 2, 3, 3))
                chosen = sorted(rng.sample(options, rng.choice((0, 1, 2, 2, 3, 3))))
                pool.append((answers, json.dumps(answers), chosen, json.dumps(chosen), book.encode(answers, chosen)))
            self.pools.append(pool)
        total = sum(a.volume for a in agencies)
        cumulative, acc = [], 0.0
        for a in agencies:
            acc += a.volume / total
            cumulative.append(acc)
        self._table = [min(bisect.bisect_left(cumulative, (i + 0.5) / 65536), len(agencies) - 1) for i in range(65536)]
        self._seed = seed

    def stream(self, prefix: str, start: int, count: int) -> Iterator[tuple[int, AgencySpec, tuple[Any, ...]]]:
        """(i, agency, (answers, answers JSON, expectations, expectations JSON, answer codes)) for ballots
        start..start+count-1. Ballot i is the same however the ballots are asked for — in one stream or in
        chunks (the sampled units of a drive are copied in chunks, its ballots published from one stream, and
        each ballot's unit must be its own agency's): each block of ``BLOCK`` ballots draws from its own seed."""
        block, draws = -1, ()
        for i in range(start, start + count):
            if i // self.BLOCK != block:
                block = i // self.BLOCK
                bits = random.Random(f"{self._seed}-{prefix}-{block}").getrandbits
                draws = tuple((bits(16), bits(16)) for _ in range(self.BLOCK))
            at, pick = draws[i % self.BLOCK]
            agency = self.agencies[self._table[at]]
            yield i, agency, self.pools[agency.propensity][pick % self.POOL]


def ballot_id(prefix: str, i: int) -> str:
    return f"{prefix}-b{i:08d}"


def unit_id(prefix: str, i: int) -> str:
    return f"{prefix}-u{i:08d}"


CHANNELS = ("paper", "paper", "online", "kiosk")
ACCEPTED_AT = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)
BALLOT_COLUMNS = ["ballot_id", "campaign_id", "unit_id", "agency_id", "province", "stratum", "draw_id", "channel",
                  "answers", "expectations", "status", "accepted_position", "accepted_at", "answer_codes"]
UNIT_COLUMNS = ["unit_id", "campaign_id", "draw_id", "agency_id", "stratum", "design_weight", "status",
                "source_position"]


def ballot_records(maker: Ballots, campaign_id: str, prefix: str, start: int, count: int, first_position: int = 1
                   ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows of ``sc_ballots`` (as the tallies projection writes them) and of ``sc_units`` (as the sample
    projection writes them) for ``count`` counted ballots, the ``i``-th accepted at stream position
    ``first_position + i``."""
    ballots, units = [], []
    for i, a, (_answers, answers_json, _chosen, chosen_json, codes) in maker.stream(prefix, start, count):
        u = unit_id(prefix, i)
        ballots.append((ballot_id(prefix, i), campaign_id, u, a.agency_id, a.province, a.code, DRAW_ID,
                        CHANNELS[i % 4], answers_json, chosen_json, "accepted", first_position + i, ACCEPTED_AT, codes))
        units.append((u, campaign_id, DRAW_ID, a.agency_id, a.code, a.weight, "active", 1))
    return ballots, units


def accepted_event(campaign_id: str, prefix: str, i: int, a: AgencySpec, drawn: tuple[Any, ...]) -> Any:
    from sipas_events.catalogue.ballots import BallotAccepted

    answers, _, chosen, _, _ = drawn
    return BallotAccepted(ballot_id=ballot_id(prefix, i), campaign_id=campaign_id, unit_id=unit_id(prefix, i),
                          agency_id=a.agency_id, stratum=a.code, weight_ref=DRAW_ID, province=a.province,
                          channel=CHANNELS[i % 4], answers=answers, expectations=chosen)


# ---- campaigns and the template database ----------------------------------------------------------
@dataclass(frozen=True)
class CampaignSpec:
    campaign_id: str
    province: str | None          # a province campaign's province; None for a national one

    def members(self, agencies: Sequence[AgencySpec]) -> list[AgencySpec]:
        return [a for a in agencies if self.province is None or a.province == self.province]


def reference_events(agencies: Sequence[AgencySpec], campaigns: Sequence[CampaignSpec]) -> list[Any]:
    from sipas_events.catalogue import registry as reg

    events: list[Any] = [
        reg.InstrumentPublished.model_validate({"instrument_id": "sipas-2017", "instrument_version": 1,
                                                "definition": builtin("instrument", "sipas-2017")}),
        reg.SchemePublished.model_validate({"scheme_id": "share-satisfied", "scheme_version": 1,
                                            "definition": builtin("scheme", "share-satisfied")}),
    ]
    events += [reg.AgencyRegistered(agency_id=a.agency_id, code=a.code, name=a.name, level="commune",
                                    province=a.province, valid_from=dt.date(2025, 7, 1)) for a in agencies]
    for c in campaigns:
        events.append(reg.CampaignOpened.model_validate({
            "campaign_id": c.campaign_id, "name": f"SIPAS 2026 ({c.campaign_id}, benchmark)", "year": 2026,
            "scope": "province" if c.province else "national", "province": c.province,
            "collection_window": {"start": "2026-06-01", "end": "2099-12-31"},
            "frame_window": {"start": "2025-10-01", "end": "2026-05-31"},
            "target_unit_ids": [a.agency_id for a in c.members(agencies)],
            "instrument": {"id": "sipas-2017", "version": 1}, "scheme": {"id": "share-satisfied", "version": 1},
            "retention_until": "2031-12-31"}))
    return events


def prepare_template(pg: Any, events: Sequence[Any]) -> None:
    """A migrated ``sipas_scoring`` database with the reference data, cloned for every measurement. The
    registry's events are applied as its consumer applies them, one transaction each (the registry stream
    stays empty, so the service's registry consumer finds nothing to do)."""
    from sipas_kit import migrations
    from sipas_kit.reference import reference_projection
    from sipas_scoring.adapters.tables import reference

    apply_events = importlib.import_module("conftest").apply_events  # the tests' helper, at the repository root
    pg.create_database(TEMPLATE)
    migrations.upgrade("sipas_scoring", pg.url(TEMPLATE))  # runs its own event loop: not inside ours
    asyncio.run(apply_events(pg.url(TEMPLATE), reference_projection(reference), list(events), "registry"))


def new_database(pg: Any, name: str) -> str:
    pg.drop_database(name)
    pg.psql(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", database=name)
    return str(pg.url(name))


async def copy_ballots(dsn: str, maker: Ballots, campaign_id: str, prefix: str, count: int,
                       start: int = 0, first_position: int = 1) -> tuple[float, float]:
    """COPY ``count`` ballots and their units (positions from ``first_position``, as :func:`ballot_records`);
    returns (seconds in COPY calls, seconds generating rows)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    copying = making = 0.0
    try:
        for first in range(start, start + count, COPY_BATCH):
            t0 = time.perf_counter()
            ballots, units = ballot_records(maker, campaign_id, prefix, first, min(COPY_BATCH, start + count - first),
                                            first_position)
            t1 = time.perf_counter()
            await conn.copy_records_to_table("sc_units", records=units, columns=UNIT_COLUMNS)
            await conn.copy_records_to_table("sc_ballots", records=ballots, columns=BALLOT_COLUMNS)
            copying += time.perf_counter() - t1
            making += t1 - t0
        await conn.execute("ANALYZE sc_ballots")
        await conn.execute("ANALYZE sc_units")
    finally:
        await conn.close()
    return copying, making


# ---- the report's figures -----------------------------------------------------------------------
@dataclass
class Rescore:
    """Rescoring N ballots from the scoring projection (``sc_ballots``)."""

    n: int
    copy_seconds: float = 0.0
    generate_seconds: float = 0.0
    scan_seconds: float = 0.0          # SELECT count(*) of the campaign's counted ballots
    unnest_seconds: float = 0.0        # ... and of their answers unnested with jsonb_each
    unnest_rows: int = 0
    recount_seconds: float = 0.0       # recount(): the campaign's tallies from the answer codes
    recount_keys: int = 0
    jsonb_seconds: float | None = None  # the recount's JSONB path over every ballot (as before migration 0005)
    jsonb_same: bool | None = None     # ... and whether it counted exactly what the codes counted
    recount_ballots: int = 0
    table_mb: float = 0.0
    cpu_recount: dict[str, float] = field(default_factory=dict)
    statements: list[dict[str, Any]] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    plan_n: int = 0


@dataclass
class FiguresRun:
    """``load()`` and ``document()`` of one national campaign of ``n`` ballots."""

    n: int
    agencies: int
    provinces: int
    load_seconds: float
    document_seconds: float
    units: int
    digest: str
    cpu: dict[str, float] = field(default_factory=dict)
    verify_seconds: float = 0.0        # verify(apply=True) over no tallies: recount and store them
    keys: int = 0

    @property
    def seconds(self) -> float:
        return self.load_seconds + self.document_seconds


@dataclass
class Replay:
    """Rescoring N_replay ballots by replaying the ``SIPAS_BALLOTS`` stream."""

    n: int
    envelope_bytes: float = 0.0
    publish_seconds: float = 0.0
    raw_consume_seconds: float = 0.0   # the same stream, pull-consumed with explicit acks, nothing applied
    read_seconds: float = 0.0          # the rebuild's reader (read_stream), nothing decoded
    decode_seconds: float = 0.0        # ... with each envelope validated, as the rebuild does
    catchup_seconds: float = 0.0       # the service's durable consumer, from position 0, live
    rebuild_seconds: float = 0.0       # consumer.rebuild(): truncate, read the stream, apply every event (median)
    rebuild_trials: list[float] = field(default_factory=list)  # each timed rebuild, in order
    reader: str = ""  # how the rebuilds read the stream: "process" or "in-process" (Consumer.rebuild_reader)
    cpu_rebuild: dict[str, float] = field(default_factory=dict)
    cpu_catchup: dict[str, float] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    profile_events: int = 0
    profile_total: float = 0.0
    profile_top: list[dict[str, Any]] = field(default_factory=list)
    rebuild_profile_seconds: float = 0.0  # a second rebuild, under cProfile (not the timed one)
    rebuild_profile_total: float = 0.0
    rebuild_profile_top: list[dict[str, Any]] = field(default_factory=list)
    statements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Freshness:
    """Freshness under sustained intake, for one campaign at one worker interval."""

    label: str
    campaign_id: str
    scope: str
    counted: int                       # ballots already counted before the drive
    agencies: int
    interval: float
    target_rate: float
    seconds: float
    sent: int = 0
    achieved_rate: float = 0.0
    covered: int = 0                   # positions sc_figures covered by the end
    latency: dict[str, float] = field(default_factory=dict)          # publish -> sc_figures covers it
    applied: dict[str, float] = field(default_factory=dict)          # publish -> tallies consumer applied it
    last_applied_after: float = float("nan")   # seconds from the last publish to its application
    last_covered_after: float = float("nan")   # ... to the figures covering it
    refreshes: int = 0
    refresh_seconds: dict[str, float] = field(default_factory=dict)  # the worker's refresh durations
    quiet_refresh: float = float("nan")  # the warm-up's refresh: no backlog competing for the event loop
    histogram: dict[str, float] = field(default_factory=dict)        # sipas_scoring_freshness_seconds
    histogram_count: int = 0
    scores_updated: int = 0
    statements: list[dict[str, Any]] = field(default_factory=list)  # the drive's, by server time
    driver_cpu: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    timeline: list[list[float]] = field(default_factory=list)       # [t, published, applied, covered]
    runs: list[list[float]] = field(default_factory=list)           # [start after the clock, seconds] each refresh
    quiet_wait: float = 0.0            # seconds waited for autovacuum workers to finish before the drive
    error: str = ""

    @property
    def sustained(self) -> bool:
        """The tallies consumer kept up: the last event applied within 5 s of its publication."""
        return (not self.error and self.achieved_rate >= 0.95 * self.target_rate
                and self.last_applied_after < 5.0)


@dataclass
class Report:
    n: int
    command: str
    started: dt.datetime
    agencies: int = AGENCIES
    provinces: int = 34
    results: dict[str, Result] = field(default_factory=dict)
    rescore: Rescore | None = None
    rescore_full: Rescore | None = None
    """The rescoring again at the aim's full size (``FULL_SCALE``), when ``rescore`` is smaller."""
    figures: list[FiguresRun] = field(default_factory=list)
    replay: Replay | None = None
    freshness: list[Freshness] = field(default_factory=list)
    figures_profile: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, str] = field(default_factory=dict)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)
    commit: str = ""
    kept_sections: list[str] = field(default_factory=list)

    def add(self, r: Result) -> Result:
        self.results[r.key] = r
        return r


# ---- 2. rescoring from the projection ------------------------------------------------------------
async def _timed_scalar(conn: Any, sql: str, **params: Any) -> tuple[float, Any]:
    from sqlalchemy import text

    t0 = time.perf_counter()
    value = (await conn.execute(text(sql), params)).scalar()
    return time.perf_counter() - t0, value


async def rescore_projection(url: str, dsn: str, maker: Ballots, n: int, pids: Callable[[], dict[str, list[int]]]
                             ) -> Rescore:
    """COPY ``n`` counted ballots, then recount their campaign's tallies from scratch."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_scoring.application.definitions import definitions
    from sipas_scoring.application.recount import recount

    out = Rescore(n)
    out.copy_seconds, out.generate_seconds = await copy_ballots(dsn, maker, "c-rescore", "r", n)
    await statements(dsn, reset=True)
    engine = create_async_engine(url)
    where = "campaign_id = 'c-rescore' AND status = 'accepted'"
    try:
        async with engine.connect() as conn:
            basis = await definitions.basis(conn, "c-rescore")
            _, pages = await _timed_scalar(conn, "SELECT pg_total_relation_size('sc_ballots')")
            out.table_mb = pages / 2**20
            await _timed_scalar(conn, f"SELECT count(*) FROM sc_ballots WHERE {where}")  # warm the cache
            out.scan_seconds, _ = await _timed_scalar(conn, f"SELECT count(*) FROM sc_ballots WHERE {where}")
            out.unnest_seconds, out.unnest_rows = await _timed_scalar(
                conn, f"SELECT count(*) FROM sc_ballots, jsonb_each(answers) WHERE {where}")
            meter = CpuMeter(pids)
            meter.start()
            t0 = time.perf_counter()
            counted = await recount(conn, basis)
            out.recount_seconds = time.perf_counter() - t0
            meter.stop()
            out.cpu_recount = meter.cores()
            out.recount_keys = len(counted)
            out.recount_ballots = sum(c for (_, k), c in counted.items() if k == "ballots")
            if n <= JSONB_UP_TO:
                t0 = time.perf_counter()
                by_jsonb = await jsonb_recount(conn, basis)
                out.jsonb_seconds = time.perf_counter() - t0
                out.jsonb_same = by_jsonb == counted
    finally:
        await engine.dispose()
    if out.recount_ballots != n:
        raise RuntimeError(f"the recount counted {out.recount_ballots} ballots, expected {n}")
    out.statements = await statements(dsn)
    return out


JSONB_UP_TO = 2_000_000
"""The JSONB path is timed beside the codes up to this many ballots (~50 s a million)."""
NO_TAG = b"\0\0\0\0"
"""A codebook tag no ballot carries: the recount's JSONB statement then covers every ballot."""


async def jsonb_recount(conn: Any, basis: Any) -> dict[tuple[str, str], int]:
    """The recount's JSONB statement over every counted ballot: the recount as it was before the codes."""
    from sipas_scoring.application import recount as module

    instrument = basis.instrument
    await conn.execute(module._RECOUNT_WORK_MEM)
    rows = await conn.execute(module._RECOUNT, {
        "campaign_id": basis.campaign_id, "tag": NO_TAG,
        "factors": json.dumps([{"code": f.code, "items": list(f.items)} for f in instrument.factors]),
        "criteria": list(instrument.criteria),
        "factor_overall": [f.overall_item for f in instrument.factors if f.overall_item]})
    return {(a, k): int(c) for a, k, c in rows}


async def recount_plan(url: str, campaign_id: str) -> list[str]:
    """EXPLAIN ANALYZE of the recount's statement (the codes path), for where the server's time goes."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_scoring.application import recount as module
    from sipas_scoring.application.definitions import definitions
    from sipas_scoring.domain.codes import Codebook

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            book = Codebook.of((await definitions.basis(conn, campaign_id)).instrument)
            await conn.execute(module._RECOUNT_WORK_MEM)
            rows = await conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + module._CODES.text),
                                      {"campaign_id": campaign_id, "tag": book.tag})
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


async def counted_campaign(url: str, dsn: str, maker: Ballots, campaign_id: str, prefix: str, n: int,
                           future: int = 0) -> tuple[float, int]:
    """``n`` counted ballots of a campaign with their tallies (stored by ``verify(apply=True)``, as an
    operator's repair would), and the sampled units of ``future`` ballots still to come. Returns the
    seconds ``verify`` took and the tallies it stored.

    The ballots were accepted before the stream the freshness drives publish (positions ``1 - n`` to 0; the
    drive's are 1, 2, …), as a day's intake follows what was counted before it: with positions of the drive's
    own range, each refresh's read of the ballots changed since its last position found thousands of these
    counted ones too, for nothing, until the drive's positions passed theirs."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_scoring.application.definitions import definitions
    from sipas_scoring.application.recount import verify

    await copy_ballots(dsn, maker, campaign_id, prefix, n, first_position=1 - n)
    if future:
        await copy_units(dsn, maker, campaign_id, "live", future)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            t0 = time.perf_counter()
            checked = await verify(conn, await definitions.basis(conn, campaign_id), apply=True)
            seconds = time.perf_counter() - t0
    finally:
        await engine.dispose()
    return seconds, int(checked["keys"])


async def copy_units(dsn: str, maker: Ballots, campaign_id: str, prefix: str, count: int) -> None:
    """Only the sampled units of ``count`` ballots (drawn before their ballots arrive)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for first in range(0, count, COPY_BATCH):
            _, units = ballot_records(maker, campaign_id, prefix, first, min(COPY_BATCH, count - first))
            await conn.copy_records_to_table("sc_units", records=units, columns=UNIT_COLUMNS)
    finally:
        await conn.close()


async def figures_of(url: str, campaign_id: str, n: int, pids: Callable[[], dict[str, list[int]]],
                     profiler: cProfile.Profile | None = None) -> FiguresRun:
    """The campaign's figures as the worker computes them: ``load()`` (tallies, ballots, weights,
    agencies) then ``CampaignFigures(...).document()``, timed apart; ``profiler`` covers ``document()``."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_scoring.application.definitions import definitions
    from sipas_scoring.application.figures import CampaignFigures, digest, load

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            basis = await definitions.basis(conn, campaign_id)
            meter = CpuMeter(pids)
            meter.start()
            t0 = time.perf_counter()
            loaded = await load(conn, campaign_id)
            t1 = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            document = CampaignFigures(basis, *loaded).document()
            if profiler is not None:
                profiler.disable()
            t2 = time.perf_counter()
            meter.stop()
    finally:
        await engine.dispose()
    units = document["units"]
    return FiguresRun(n, sum(u["level"] == "agency" for u in units), sum(u["level"] == "province" for u in units),
                      t1 - t0, t2 - t1, len(units), digest(document)[:16], meter.cores())


# ---- the service, in this process -----------------------------------------------------------------
@contextlib.asynccontextmanager
async def running_service(url: str, nats_url: str, *, interval: float = 2.0, worker: bool = True) -> Any:
    """The scoring app with its lifespan, as ``conftest.open_api`` starts it; yields its context once
    every consumer is subscribed. ``worker=False`` leaves the figures worker out (a replay measures the
    projection alone)."""
    from sipas_kit.app import create_app
    from sipas_scoring.entrypoints.app import DEFINITION
    from sipas_scoring.settings import ScoringSettings

    settings = ScoringSettings(database_url=url, nats_url=nats_url, log_format="console", log_level="WARNING",
                               scores_interval=interval)
    definition = DEFINITION if worker else dataclasses.replace(DEFINITION, workers=[])
    app = create_app(definition, settings)
    async with app.router.lifespan_context(app):
        ctx = app.state.ctx
        deadline = time.monotonic() + 60
        while len(ctx.consumers) < len(definition.projections) or not all(
                c.ready.is_set() for c in ctx.consumers.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("the scoring service's consumers did not subscribe within 60 s")
            await asyncio.sleep(0.05)
        yield ctx


async def fresh_streams(nats_url: str) -> None:
    """No stream left from an earlier measurement (as ``conftest.open_api`` does before each test)."""
    from sipas_events.bus.jetstream import JetStreamBus

    bus = await JetStreamBus.connect(nats_url, name="bench-reset")
    try:
        for info in await bus._js.streams_info():
            await bus._js.delete_stream(info.config.name)
    finally:
        await bus.close()


def envelope_of(event: Any, position: int, when: dt.datetime | None = None) -> Any:
    """``event`` as the ballots service's relay publishes it (what ``sipas_events.testing.Feed`` builds)."""
    from sipas_events.envelope import Envelope
    from sipas_events.ids import new_id

    return Envelope(id=new_id(), source="/sipas/ballots", type=event.event_type(), subject=f"ballot-{event.ballot_id}",
                    time=when or dt.datetime.now(dt.UTC), data=event.payload(), sequence=1, position=position,
                    correlationid=f"bench-{position}", actor="service:ballots", province=event.province)


async def publish(bus: Any, envelopes: Sequence[Any]) -> int:
    """Publish as a relay does (``Nats-Msg-Id`` = event id); returns the bytes published."""
    from sipas_events.bus.base import OutMessage
    from sipas_events.naming import subject_for

    size = 0
    for start in range(0, len(envelopes), PUBLISH_BATCH):
        messages = [OutMessage(subject_for(e), e.to_json(), f"{e.id}") for e in envelopes[start:start + PUBLISH_BATCH]]
        size += sum(len(m.payload) for m in messages)
        await bus.publish_batch(messages)
    return size


async def connect_bus(nats_url: str, name: str) -> Any:
    from sipas_events.bus.base import StreamConfig
    from sipas_events.bus.jetstream import JetStreamBus
    from sipas_events.naming import PRODUCERS, stream_name, stream_subjects

    bus = await JetStreamBus.connect(nats_url, name=name)
    for producer in PRODUCERS:
        await bus.ensure_stream(StreamConfig(stream_name(producer), stream_subjects(producer)))
    return bus


# ---- 3. rescoring by replaying the streams --------------------------------------------------------
async def raw_consume(nats_url: str, stream: str, n: int) -> float:
    """Pull-consume ``n`` messages of ``stream`` with explicit acks, as ``raw_js`` does, applying nothing."""
    import nats
    from nats.js import api

    from bench.common import FETCH_BATCH

    nc = await nats.connect(nats_url, name="bench-raw-replay")
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("", durable="bench-raw-replay", stream=stream, config=api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT, deliver_policy=api.DeliverPolicy.ALL, max_ack_pending=2048))
        got = 0
        t0 = time.perf_counter()
        while got < n:
            msgs = await sub.fetch(FETCH_BATCH, timeout=5.0)
            for m in msgs:
                await m.ack()
            got += len(msgs)
        await nc.flush()
        seconds = time.perf_counter() - t0
        await sub.unsubscribe()
        await js.delete_consumer(stream, "bench-raw-replay")
    finally:
        await nc.close()
    return seconds


async def read_only(nats_url: str, stream: str, n: int, decode: bool) -> float:
    """The rebuild's reader (``JetStreamBus.read_stream``) over the stream; ``decode``: each envelope
    validated as the rebuild does before applying it."""
    from sipas_events.bus.jetstream import JetStreamBus
    from sipas_events.envelope import Envelope

    bus = await JetStreamBus.connect(nats_url, name="bench-reader")
    try:
        got = 0
        t0 = time.perf_counter()
        async for msg in bus.read_stream(stream):
            if decode:
                Envelope.model_validate_json(msg.data)
            got += 1
        seconds = time.perf_counter() - t0
    finally:
        await bus.close()
    if got != n:
        raise RuntimeError(f"read {got} of {n} messages from {stream}")
    return seconds


async def wait_position(consumer: Any, position: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while consumer.position < position:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{consumer.name} reached {consumer.position} of {position} within {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def replay_streams(stack: Stack, url: str, dsn: str, maker: Ballots, n: int) -> Replay:
    """Publish ``n`` ``BallotAccepted``, measure the raw ways of reading them back, let the service catch
    up (profiled), then time ``consumer.rebuild()`` of the tallies projection."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from sipas_events.naming import stream_name
    from sipas_scoring.application.definitions import definitions
    from sipas_scoring.application.recount import kept, verify

    out = Replay(n)
    stream = stream_name("ballots")
    await fresh_streams(stack.nats.url)
    bus = await connect_bus(stack.nats.url, "bench-replay-feed")
    try:
        envelopes = [envelope_of(accepted_event("c-replay", "p", i, a, drawn), i + 1, ACCEPTED_AT)
                     for i, a, drawn in maker.stream("p", 0, n)]
        t0 = time.perf_counter()
        size = await publish(bus, envelopes)
        out.publish_seconds = time.perf_counter() - t0
        out.envelope_bytes = size / n
        del envelopes
    finally:
        await bus.close()
    out.raw_consume_seconds = await raw_consume(stack.nats.url, stream, n)
    out.read_seconds = await read_only(stack.nats.url, stream, n, decode=False)
    out.decode_seconds = await read_only(stack.nats.url, stream, n, decode=True)

    async with running_service(url, stack.nats.url, worker=False) as ctx:
        consumer = ctx.consumers["tallies"]
        profiler = cProfile.Profile()
        profiler.enable()
        await wait_position(consumer, min(n // 2, PROFILE_EVENTS), 300.0)
        profiler.disable()
        out.profile_events = consumer.position
        out.profile_total, out.profile_top = pstats_top(profiler, 16)
        meter = CpuMeter(stack.pids)
        meter.start()
        t0 = time.perf_counter()
        await wait_position(consumer, n, max(300.0, n / 20))
        out.catchup_seconds = time.perf_counter() - t0
        meter.stop()
        out.cpu_catchup = meter.cores()
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                live = await kept(conn, "c-replay")  # the tallies the live consumer kept, run by run
        finally:
            await engine.dispose()
        meter = CpuMeter(stack.pids)
        for trial in range(REBUILD_TRIALS):
            if trial == REBUILD_TRIALS - 1:  # the statements of one rebuild: the last
                await statements(dsn, reset=True)
            meter.start()
            t0 = time.perf_counter()
            await consumer.rebuild()
            out.rebuild_trials.append(time.perf_counter() - t0)
            meter.stop()
        out.rebuild_seconds = statistics.median(out.rebuild_trials)
        out.reader = consumer.rebuild_reader
        out.cpu_rebuild = meter.cores()
        out.statements = await statements(dsn, limit=6)
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        await consumer.rebuild()
        profiler.disable()
        out.rebuild_profile_seconds = time.perf_counter() - t0
        out.rebuild_profile_total, out.rebuild_profile_top = pstats_top(profiler, 16)
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                counted = (await conn.execute(text(
                    "SELECT count(*) FROM sc_ballots WHERE campaign_id = 'c-replay' AND status = 'accepted'"))).scalar()
                checked = await verify(conn, await definitions.basis(conn, "c-replay"))
                same = await kept(conn, "c-replay") == live
                dead = (await conn.execute(text("SELECT count(*) FROM dead_letters"))).scalar()
        finally:
            await engine.dispose()
        out.checks = {"position": consumer.position, "counted": counted, "ballots_in_tallies": checked["ballots"],
                      "differences_from_recount": checked["difference_count"], "tallies_as_kept_live": same,
                      "dead_letters": dead}
    if (out.checks["counted"] != n or out.checks["differences_from_recount"] or out.checks["position"] != n
            or not same):
        raise RuntimeError(f"the rebuild did not reproduce the ballots: {out.checks}")
    return out


# ---- 4. freshness under sustained intake ----------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    label: str
    campaign: CampaignSpec
    counted: int


class RefreshTimer:
    """Wraps ``scores.store`` (which the figures worker calls by name, after ``scores.compute``) to keep each
    refresh's duration, from the start of its computation to the end of its store; measurement only,
    behaviour unchanged."""

    def __init__(self) -> None:
        self.runs: list[tuple[float, float]] = []   # (wall-clock start, seconds)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from sipas_scoring.application import scores

        original = scores.store

        async def timed(ctx: Any, done: Any) -> dict[str, Any]:
            try:
                return await original(ctx, done)
            finally:
                start = done.started.timestamp()
                self.runs.append((start, time.time() - start))

        scores.store = timed  # type: ignore[assignment]
        try:
            yield
        finally:
            scores.store = original  # type: ignore[assignment]


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    if not samples:
        return {}
    return {"p50": exact_percentile(samples, 0.50), "p95": exact_percentile(samples, 0.95),
            "p99": exact_percentile(samples, 0.99), "max": max(samples), "mean": sum(samples) / len(samples),
            "count": len(samples)}


def figures_process_pids() -> list[int]:
    """The service's figures process: the spawned child of this process that computes the documents."""
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "sipas_scoring.application.figures_engine" in child.cmdline():
                out.append(child.pid)
    return out


async def autovacuum_idle(dsn: str, limit: float = 120.0) -> float:
    """Wait (up to ``limit`` s) until no autovacuum worker runs anywhere on the server — what earlier phases
    left to clean up would otherwise compete with a drive for the two cores — and return the seconds waited."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < limit:
            busy = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
            if not busy:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def freshness_run(stack: Stack, agencies: Sequence[AgencySpec], scenario: Scenario, interval: float,
                        rate: float, seconds: float, index: int) -> Freshness:
    """Counted ballots in place, the service running with its figures worker, and a child process that
    publishes ``BallotAccepted`` at ``rate`` for ``seconds`` and watches ``sc_figures``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    campaign = scenario.campaign
    members = campaign.members(agencies)
    out = Freshness(scenario.label, campaign.campaign_id, "province" if campaign.province else "national",
                    scenario.counted, len(members), interval, rate, seconds)
    name = f"bench_scoring_fresh_{index}"
    url, dsn = new_database(stack.pg, name), stack.pg.dsn(name)
    maker = Ballots(members, SEED + 7)
    expected = WARMUP_BALLOTS + int(rate * seconds * 1.1) + 1000
    await counted_campaign(url, dsn, maker, campaign.campaign_id, "pre", scenario.counted, future=expected)
    await fresh_streams(stack.nats.url)
    out.quiet_wait = await autovacuum_idle(dsn)
    # The service runs in this process, which still holds what earlier phases made: out of the collector's
    # passes, as a service's own start-up heap is (sipas_kit.app freezes that once per process only).
    gc.collect()
    gc.freeze()
    timer = RefreshTimer()
    with tempfile.TemporaryDirectory(prefix="sipas-bench-drive-") as tmp:
        spec, result = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({
            "nats_url": stack.nats.url, "dsn": dsn, "campaign_id": campaign.campaign_id,
            "province": campaign.province, "rate": rate, "seconds": seconds, "expected": expected}))
        await statements(dsn, reset=True)
        with timer.installed():
            async with running_service(url, stack.nats.url, interval=interval) as ctx:
                meter = CpuMeter(lambda: {**stack.pids(), "figures process": figures_process_pids()})
                meter.start()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.scoring", "--child", "drive", "--spec", str(spec),
                    "--result", str(result), cwd=str(REPO))
                code = await proc.wait()
                meter.stop()
                out.cpu = meter.cores()
                out.statements = await statements(dsn, limit=8)
                buckets = histogram_buckets(ctx.metrics.registry, FRESHNESS_METRIC)
                engine = create_async_engine(url)
                try:
                    async with engine.connect() as conn:
                        out.scores_updated = int((await conn.execute(text(
                            "SELECT count(*) FROM event_store WHERE type LIKE '%ScoresUpdated%'"))).scalar_one())
                finally:
                    await engine.dispose()
        if code != 0 or not result.exists():
            out.error = f"the driver exited with {code}"
            return out
        found = json.loads(result.read_text())
    stack.pg.drop_database(name)  # its dead tally versions would be vacuumed during the next drive
    during = [seconds for start, seconds in timer.runs if start >= found["start"]]  # not the warm-up's
    out.runs = [[round(start - found["start"], 3), round(seconds, 3)] for start, seconds in timer.runs]
    out.quiet_refresh = max((seconds for start, seconds in timer.runs if start < found["start"]), default=math.nan)
    out.refreshes = len(during)
    out.refresh_seconds = percentiles(during)
    out.histogram_count = int(buckets.get(math.inf, 0))
    out.histogram = {f"p{int(q * 100)}": bucket_percentile(buckets, q) for q in (0.5, 0.95, 0.99)}
    for key in ("sent", "achieved_rate", "covered", "latency", "applied", "last_applied_after",
                "last_covered_after", "driver_cpu", "timeline", "error"):
        setattr(out, key, found[key])
    return out


# ---- the driver (a child process: the service's CPU-bound figures never stall its clock) ------------
PLACEHOLDER_TIME = b"2000-01-01T00:00:00.000000Z"  # as canonical.format_time writes a time: same length


def prepared_messages(campaign_id: str, ballots: Iterator[tuple[int, AgencySpec, tuple[Any, ...]]], count: int
                      ) -> list[tuple[str, bytes, str]]:
    """(subject, canonical JSON with the placeholder time, message id) of ``count`` ballots' ``BallotAccepted``,
    as :func:`publish` would send them at that time."""
    from sipas_events.naming import subject_for

    placeholder = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    out = []
    for _ in range(count):
        i, a, drawn = next(ballots)
        envelope = envelope_of(accepted_event(campaign_id, "live", i, a, drawn), i + 1, placeholder)
        payload = envelope.to_json()
        if payload.count(PLACEHOLDER_TIME) != 1:
            raise AssertionError("the placeholder time must occur once in a message")
        out.append((subject_for(envelope), payload, f"{envelope.id}"))
    if out:  # the stamped bytes are the envelope's own at the time stamped
        from sipas_events.canonical import format_time
        from sipas_events.envelope import Envelope

        now = dt.datetime.now(dt.UTC)
        first = Envelope.from_json(out[0][1]).model_copy(update={"time": now})
        if out[0][1].replace(PLACEHOLDER_TIME, format_time(now).encode(), 1) != first.to_json():
            raise AssertionError("a stamped message differs from its envelope's JSON")
    return out


async def drive(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncpg

    from sipas_events.bus.base import OutMessage
    from sipas_events.canonical import format_time

    campaign = CampaignSpec(spec["campaign_id"], spec["province"])
    members = campaign.members(agency_specs(AGENCIES, SEED))
    maker = Ballots(members, SEED + 7)
    ballots = maker.stream("live", 0, spec["expected"])
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    bus = await connect_bus(spec["nats_url"], "bench-driver")
    conn = await asyncpg.connect(spec["dsn"])
    published: list[float] = []          # wall-clock time each position was published
    applied: dict[int, float] = {}       # position -> when the tallies consumer's checkpoint first covered it
    covered: dict[int, float] = {}       # position -> when sc_figures first covered it
    state = {"applied": 0, "covered": 0}
    timeline: list[list[float]] = []
    error = ""

    # The driver stands for the ballots service's relay, which runs apart from the scoring service in
    # production: each ballot's message is built before the clock starts (its envelope as canonical JSON, with a
    # placeholder time), and sending stamps the publish time in it, so the driver's own CPU — on the cores the
    # measured service shares here — goes to publishing, not to building events. The bytes are those
    # Envelope.to_json writes for that time (checked on the first message).
    messages = prepared_messages(campaign.campaign_id, ballots, spec["expected"])
    sent_messages = iter(messages)

    async def send(k: int) -> None:
        now = dt.datetime.now(dt.UTC)
        stamp, when = now.timestamp(), format_time(now).encode()
        batch = []
        for _ in range(k):
            subject, template, msg_id = next(sent_messages)
            batch.append(OutMessage(subject, template.replace(PLACEHOLDER_TIME, when, 1), msg_id))
            published.append(stamp)
        for start in range(0, len(batch), PUBLISH_BATCH):
            await bus.publish_batch(batch[start:start + PUBLISH_BATCH])

    async def poll() -> None:
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT (positions->>'ballots')::bigint FROM sc_figures WHERE campaign_id = $1) AS covered,"
                " (SELECT position FROM consumer_checkpoints WHERE consumer = 'scoring-tallies') AS applied",
                campaign.campaign_id)
            now = time.time()
            for key, seen in (("applied", applied), ("covered", covered)):
                upto = min(int(row[key] or 0), len(published))
                for p in range(state[key] + 1, upto + 1):
                    seen[p] = now
                state[key] = max(state[key], upto)
            await asyncio.sleep(POLL)

    async def wait_covered(position: int, timeout: float, key: str = "covered") -> bool:
        deadline = time.monotonic() + timeout
        while state[key] < position:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL)
        return True

    poller = asyncio.create_task(poll())
    try:
        await send(WARMUP_BALLOTS)
        if not await wait_covered(WARMUP_BALLOTS, 120):
            raise TimeoutError("the warm-up ballots were never covered by the figures")
        t0 = time.perf_counter()
        start, cpu0 = time.time(), time.process_time()
        sent = 0
        next_sample = 0.0
        while True:
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
            due = int(rate * elapsed) - sent
            if due > 0:
                await send(due)
                sent += due
            if elapsed >= next_sample:
                timeline.append([round(elapsed, 2), sent, max(0, state["applied"] - WARMUP_BALLOTS),
                                 max(0, state["covered"] - WARMUP_BALLOTS)])
                next_sample += 1.0
            await asyncio.sleep(max(0.0, TICK - (time.perf_counter() - t0 - elapsed)))
        drive_seconds = time.perf_counter() - t0
        last = len(published)
        if not await wait_covered(last, SETTLE_TIMEOUT):
            error = f"the figures covered position {state['covered']} of {last} {SETTLE_TIMEOUT:.0f} s after the drive"
        await wait_covered(last, 5.0, "applied")
        timeline.append([round(time.perf_counter() - t0, 2), sent, state["applied"] - WARMUP_BALLOTS,
                         state["covered"] - WARMUP_BALLOTS])
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await conn.close()
        await bus.close()
    timed = range(WARMUP_BALLOTS + 1, last + 1)
    never = float("inf")  # not reflected before the driver gave up: counted, as the slowest of all
    latency = [covered[p] - published[p - 1] if p in covered else never for p in timed]
    applied_after = [applied[p] - published[p - 1] if p in applied else never for p in timed]
    return {"sent": sent, "achieved_rate": sent / drive_seconds, "covered": sum(p in covered for p in timed),
            "latency": percentiles(latency), "applied": percentiles(applied_after),
            "last_applied_after": applied[last] - published[last - 1] if last in applied else float("inf"),
            "last_covered_after": covered[last] - published[last - 1] if last in covered else float("inf"),
            "driver_cpu": (time.process_time() - cpu0) / max(1e-9, time.time() - start), "timeline": timeline,
            "error": error, "start": start}


def child_main(kind: str, spec_path: Path, result_path: Path) -> int:
    if kind != "drive":
        raise SystemExit(f"unknown child {kind!r}")
    found = asyncio.run(drive(json.loads(spec_path.read_text())))
    result_path.write_text(json.dumps(found))
    return 0


# ---- the run ------------------------------------------------------------------------------------
MEASURED_SOURCES = (
    "services/scoring/src/sipas_scoring/application/recount.py",
    "services/scoring/src/sipas_scoring/application/figures.py",
    "services/scoring/src/sipas_scoring/application/scores.py",
    "services/scoring/src/sipas_scoring/domain/survey.py",
    "services/scoring/src/sipas_scoring/domain/survey_arrays.py",
    "services/scoring/src/sipas_scoring/projections/tallies.py",
    "libs/events/src/sipas_events/consumer.py",
)


def source_state() -> dict[str, str]:
    """Each measured source file's SHA-256 (first 12 digits), and whether it differs from the last commit."""
    import hashlib

    out = {}
    for rel in MEASURED_SOURCES:
        path = REPO / rel
        if not path.exists():
            continue
        state = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        try:
            changed = subprocess.run(["git", "status", "--porcelain", "--", rel], cwd=REPO, capture_output=True,
                                     text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            changed = ""
        out[rel] = state + (" (not committed)" if changed else "")
    return out


def head_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    every = [Scenario("province", CampaignSpec("c-prov", args.province), args.province_ballots),
             Scenario("national", CampaignSpec("c-nat", None), args.national_ballots)]
    return [s for s in every if s.label in args.campaigns]


def campaigns(args: argparse.Namespace) -> list[CampaignSpec]:
    return [CampaignSpec("c-rescore", None), *(CampaignSpec(f"c-fig-{n}", None) for n in args.figures),
            CampaignSpec("c-replay", None), *(s.campaign for s in scenarios(args))]


async def measure(report: Report, stack: Stack, args: argparse.Namespace, agencies: list[AgencySpec]) -> None:
    pg, pids = stack.pg, stack.pids
    phases = Phases()
    report.phase_seconds = phases.seconds
    if "raw" not in args.skip:
        pub, sub = await phases.arun("raw JetStream publish/consume", lambda: raw_js(
            stack.nats.url, args.raw, args.rounds, pids))
        report.add(pub)
        report.add(sub)
        pg.create_database(RAW_DATABASE)
        copy, ins = await phases.arun("raw PostgreSQL COPY/INSERT", lambda: raw_pg(
            pg.dsn(RAW_DATABASE), args.raw, args.rounds, pids))
        report.add(copy)
        report.add(ins)
    maker = Ballots(agencies, SEED)
    name = "bench_scoring_rescore"
    url, dsn = new_database(pg, name), pg.dsn(name)
    if "rescore" not in args.skip:
        report.rescore = await phases.arun(f"rescoring {args.ballots:,} ballots from the projection",
                                           lambda: rescore_projection(url, dsn, maker, args.ballots, pids))
        report.rescore.plan = await phases.arun("recount plan", lambda: recount_plan(url, "c-rescore"))
        report.rescore.plan_n = args.ballots
        if args.full_rescore and args.ballots < FULL_SCALE:  # the aim's own size, measured, not extrapolated
            full = "bench_scoring_rescore_full"
            report.rescore_full = await phases.arun(
                f"rescoring {FULL_SCALE:,} ballots from the projection", lambda: rescore_projection(
                    new_database(pg, full), pg.dsn(full), maker, FULL_SCALE, pids))
            pg.drop_database(full)  # some 8 GB: gone before the next phases
    if "figures" not in args.skip:
        for n in args.figures:
            stored = await phases.arun(f"{n:,} ballots and their tallies", lambda n=n: counted_campaign(
                url, dsn, maker, f"c-fig-{n}", f"f{n}", n))
            report.figures.append(await phases.arun(f"figures of {n:,} ballots", lambda n=n: figures_of(
                url, f"c-fig-{n}", n, pids)))
            report.figures[-1].verify_seconds, report.figures[-1].keys = stored
        profiled = min(args.figures, key=lambda n: abs(n - args.national_ballots))
        profiler = cProfile.Profile()
        run = await phases.arun(f"figures of {profiled:,} ballots, profiled", lambda: figures_of(
            url, f"c-fig-{profiled}", profiled, pids, profiler))
        total, top = pstats_top(profiler, 16)
        report.figures_profile = {"n": profiled, "seconds": run.document_seconds, "total": total, "top": top}
    if "replay" not in args.skip:
        name = "bench_scoring_replay"
        replay_url = new_database(pg, name)
        report.replay = await phases.arun(f"replay of {args.replay:,} events", lambda: replay_streams(
            stack, replay_url, pg.dsn(name), Ballots(agencies, SEED + 3), args.replay))
    if "freshness" not in args.skip:
        for done in ("bench_scoring_rescore", "bench_scoring_replay"):  # measured: nothing left to clean up
            pg.drop_database(done)                                      # may compete with the drives
        index = 0
        for scenario in scenarios(args):
            runs = []
            for interval in args.intervals:
                index += 1
                runs.append(await phases.arun(
                    f"freshness, {scenario.label} campaign, interval {interval:g} s, {args.rate:g}/s",
                    lambda s=scenario, i=interval, k=index: freshness_run(
                        stack, agencies, s, i, args.rate, args.seconds, k)))
            report.freshness += runs
            failing = [f for f in runs if not f.sustained]
            failing = [f for f in failing if lower_rate_can_help(f)]
            if not (args.fallback and failing):
                continue
            lower = min(lower_rate(f, args.rate) for f in failing)
            for f in failing:  # one lower rate for every interval, so that they compare
                index += 1
                report.freshness.append(await phases.arun(
                    f"freshness, {scenario.label} campaign, interval {f.interval:g} s, {lower:g}/s",
                    lambda f=f, s=scenario, r=lower, k=index: freshness_run(
                        stack, agencies, s, f.interval, r, min(args.seconds, FALLBACK_SECONDS), k)))


def report_from(saved: dict[str, Any]) -> Report:
    """A run's report from its saved figures (``sipas-bench-scoring-last.json``), to render it again."""
    out = Report(n=saved["n"], command=saved["command"], started=dt.datetime.fromisoformat(saved["started"]))
    out.results = {k: Result(**v) for k, v in saved["results"].items()}
    out.rescore = Rescore(**saved["rescore"]) if saved["rescore"] else None
    out.rescore_full = Rescore(**saved["rescore_full"]) if saved.get("rescore_full") else None
    out.figures = [FiguresRun(**f) for f in saved["figures"]]
    out.replay = Replay(**saved["replay"]) if saved["replay"] else None
    out.freshness = [Freshness(**f) for f in saved["freshness"]]
    for key in ("agencies", "provinces", "figures_profile", "machine", "phase_seconds", "total_seconds", "sources",
                "commit"):
        setattr(out, key, saved.get(key, getattr(out, key)))
    return out


def lower_rate_can_help(f: Freshness) -> bool:
    """Not if a refresh alone (the warm-up's, with no backlog) already takes longer than the aim: then no
    rate gives fresh figures in time, and the worker holds the event loop most of the time whatever the rate."""
    return f.quiet_refresh < FRESHNESS_AIM


def lower_rate(f: Freshness, rate: float) -> float:
    """A second try for an intake that was not sustained: 60 % of what the tallies consumer applied during
    the drive (the figures worker shares its event loop), in steps of 25 ballots/s."""
    during = [row for row in f.timeline if row[0] <= f.seconds]
    applied = during[-1][2] / max(1.0, during[-1][0]) if during else f.achieved_rate
    return max(25.0, 25 * math.floor(0.6 * min(applied, rate) / 25))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring", description=__doc__.split("\n")[0])
    parser.add_argument("--ballots", type=int, default=1_000_000,
                        help="ballots rescored from the projection (default 1,000,000)")
    parser.add_argument("--no-full-rescore", dest="full_rescore", action="store_false",
                        help=f"no second rescoring at the aim's {FULL_SCALE:,} ballots when --ballots is smaller "
                             "(it adds some 6 minutes and 8 GB of disk for its duration)")
    parser.add_argument("--figures", type=lambda s: sorted({int(x) for x in s.split(",")}),
                        default=[5000, 35_000],
                        help="campaign sizes whose figures are computed (default 5000,35000)")
    parser.add_argument("--replay", type=int, default=200_000, help="events replayed (default 200,000)")
    parser.add_argument("--rate", type=float, default=INTAKE_RATE, help="freshness intake, ballots/s (default 1000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each freshness drive (default 60)")
    parser.add_argument("--intervals", type=lambda s: [float(x) for x in s.split(",")], default=[0.5, 2.0],
                        help="figures worker intervals (default 0.5,2; the service's default is 0.5)")
    parser.add_argument("--province", default="01", help="the province campaign's province (default 01)")
    parser.add_argument("--province-ballots", type=int, default=5000,
                        help="ballots already counted in the province campaign (default 5000)")
    parser.add_argument("--national-ballots", type=int, default=35_000,
                        help="ballots already counted in the national campaign (default 35,000)")
    parser.add_argument("--campaigns", type=lambda s: set(s.split(",")), default={"province", "national"},
                        help="freshness campaigns: province,national (default both)")
    parser.add_argument("--no-fallback", dest="fallback", action="store_false",
                        help="no second drive at a lower rate when the intake was not sustained")
    parser.add_argument("--raw", type=int, default=20_000, help="messages/rows per raw ceiling (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each raw ceiling (default 3)")
    parser.add_argument("--skip", type=lambda s: set(s.split(",")), default=set(),
                        help="phases to leave out: raw,rescore,figures,replay,freshness")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="measure nothing: write the report of a saved run (the raw figures a run leaves)")
    parser.add_argument("--child", choices=["drive"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    if args.child:
        return child_main(args.child, args.spec, args.result)
    if args.render:
        write_report(args.out, report_from(json.loads(args.render.read_text())), markdown, KEPT_SECTIONS)
        return 0
    if args.ballots < 1000 or args.replay < 1000:
        parser.error("--ballots and --replay must be at least 1000")

    quiet_logs()
    command = " ".join(["python -m bench.scoring", *(argv if argv is not None else sys.argv[1:])])
    report = Report(n=args.ballots, command=command, started=dt.datetime.now(dt.UTC))
    report.sources, report.commit = source_state(), head_commit()
    agencies = agency_specs(AGENCIES, SEED)
    report.agencies, report.provinces = len(agencies), len({a.province for a in agencies})
    t_start = time.perf_counter()
    with embedded_stack("sipas-bench-scoring-", pg_settings=PG_SETTINGS) as stack:
        report.machine = machine_facts(stack.pg, stack.root, nats_server=stack.nats, libraries=LIBRARIES, load=True,
                                       pg_settings=("fsync", "synchronous_commit", "shared_buffers", "work_mem",
                                                    "max_parallel_workers_per_gather"))
        print("-- template database ...", flush=True)
        prepare_template(stack.pg, reference_events(agencies, campaigns(args)))
        asyncio.run(measure(report, stack, args, agencies))
    report.total_seconds = time.perf_counter() - t_start
    saved = Path(tempfile.gettempdir()) / "sipas-bench-scoring-last.json"
    saved.write_text(json.dumps(asdict(report), default=str, indent=1))
    print(f"raw figures in {saved}")
    print(markdown(report))
    write_report(args.out, report, markdown, KEPT_SECTIONS)
    return 0


# ---- the report ---------------------------------------------------------------------------------
def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def cores_text(cpu: dict[str, float], client: str = "python") -> str:
    names = {"client": client}
    return ", ".join(f"{names.get(k, k)} {v:.2f}" for k, v in cpu.items() if k != "iowait")


def secs(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "never"
    return f"{x:,.2f} s" if x < 100 else f"{x:,.0f} s"


def aims(report: Report) -> list[tuple[str, str, str, str]]:
    """(aim, measured, how, verdict) of issue 6's three benchmark aims."""
    from sipas_scoring.settings import ScoringSettings

    r, out = report.results, []
    x = report.rescore_full or report.rescore
    if x is not None:
        full = x.recount_seconds * FULL_SCALE / x.n
        measured = x.n >= FULL_SCALE
        out.append((f"Rescoring {FULL_SCALE:,} ballots from the projection < {RESCORE_AIM:.0f} s",
                    f"{secs(x.recount_seconds)} (measured)" if measured else f"~{secs(full)} (extrapolated)",
                    f"`recount()` of {x.n:,} ballots took {secs(x.recount_seconds)}"
                    + ("" if measured else f"; scaled linearly to {FULL_SCALE:,}"),
                    f"**{verdict(full < RESCORE_AIM)}**"))
    y = report.replay
    if y is not None and "js_sub" in r:
        share = rate(y.n, y.rebuild_seconds) / r["js_sub"].rate
        out.append((f"Replaying the streams >= {REPLAY_AIM:.0%} of raw JetStream pull-consume",
                    f"{share:.1%} ({fmt_rate(rate(y.n, y.rebuild_seconds))} events/s)",
                    f"`consumer.rebuild()` of {y.n:,} `BallotAccepted` vs raw pull-consume (2)",
                    f"**{verdict(share >= REPLAY_AIM)}**"))
    for f in report.freshness:
        p99 = f.latency.get("p99", float("inf"))
        how = f"{f.label} campaign ({f.counted:,} ballots counted before), worker every {f.interval:g} s"
        measured = f"{secs(p99)}" + ("" if f.sustained else " (intake not sustained)")
        if f.target_rate == INTAKE_RATE:
            judged = f"**{verdict(f.sustained and p99 < FRESHNESS_AIM)}**"
            default = ScoringSettings.model_fields["scores_interval"].default
            if f.interval != default:  # shown for what the interval costs, not how the service runs
                judged += f" (not the service's interval, {default:g} s: p99 is about the interval plus a refresh)"
            out.append((f"Freshness p99 < {FRESHNESS_AIM:.0f} s at {INTAKE_RATE:,.0f} ballots/s", measured, how,
                        judged))
        else:
            out.append((f"(the same at a lower rate, {f.target_rate:,.0f} ballots/s)", measured, how,
                        "not the aim's rate"))
    return out


def rescore_lines(report: Report) -> list[str]:
    out = [] if report.rescore is None else _rescore_lines(report, report.rescore)
    if report.rescore_full is not None:
        out += _rescore_lines(report, report.rescore_full)
    return out


def _rescore_lines(report: Report, x: Rescore) -> list[str]:
    r = report.results
    copy = r.get("pg_copy")
    raw_copy = copy.rate if copy else float("nan")
    per = rate(x.n, x.recount_seconds)
    out = [f"## Rescoring from the projection ({x.n:,} ballots)", "",
           f"{x.n:,} counted ballots of one national campaign ({report.agencies:,} agencies in {report.provinces} "
           f"provinces) COPYed into `sc_ballots` with their `sc_units` rows ({x.table_mb:,.0f} MiB with indexes), "
           "then the campaign's tallies recomputed from scratch by `recount()`: each agency's answer codes (one byte "
           "an item, `domain.codes`) aggregated by the server and counted with numpy. Each rate is compared with raw "
           "asyncpg COPY (3), which writes the same number of (smaller) rows, and each time with a plain scan of the "
           "same rows; the JSONB statement that was the whole recount before the codes is "
           + ("timed beside it." if x.jsonb_seconds is not None else
              f"not timed at this size (it is up to {JSONB_UP_TO:,} ballots, at some 50 s a million)."), ""]
    rows = [
        ("a", "COPY of the ballots (`sc_ballots` + `sc_units`, indexed)", f"{fmt_rate(rate(x.n, x.copy_seconds))} "
         "ballots/s", secs(x.copy_seconds), f"{rate(x.n, x.copy_seconds) / raw_copy:.0%} of raw COPY (3)",
         f"two rows a ballot, 28 answers as JSONB and as codes; generating the rows took {secs(x.generate_seconds)} "
         "more"),
        ("b", "Scan: `count(*)` of the campaign's counted ballots", f"{fmt_rate(rate(x.n, x.scan_seconds))} rows/s",
         secs(x.scan_seconds), "", "warm cache"),
        ("c", "Unnest floor: `count(*)` of every answer (`jsonb_each`)",
         f"{fmt_rate(rate(x.unnest_rows, x.unnest_seconds))} answers/s", secs(x.unnest_seconds),
         f"{rate(x.n, x.unnest_seconds) / raw_copy:.0%} of raw COPY (3) in ballots/s",
         f"{x.unnest_rows:,} answers; the least any recount from JSONB answers must do"),
        ("d", "**`recount()`**: the campaign's tallies from the answer codes", f"**{fmt_rate(per)} ballots/s**",
         f"**{secs(x.recount_seconds)}**",
         f"{per / raw_copy:.1%} of raw COPY (3); {x.recount_seconds / x.scan_seconds:,.1f}x the scan (b), "
         f"{x.recount_seconds / x.unnest_seconds:.2f}x the unnest floor (c)",
         f"{x.recount_keys:,} tallies; {cores_text(x.cpu_recount)} cores busy"),
    ]
    if x.jsonb_seconds is not None:
        rows.append(("e", "The JSONB statement alone (the recount before the codes)",
                     f"{fmt_rate(rate(x.n, x.jsonb_seconds))} ballots/s", secs(x.jsonb_seconds),
                     f"{x.jsonb_seconds / x.recount_seconds:.1f}x `recount()` (d)",
                     "the same tallies as (d)" if x.jsonb_same else "**DIFFERENT tallies from (d)**"))
    out += md_table(["#", "Measurement", "Rate", "Time", "Compared", "Details"], rows, "llrrll")
    full = x.recount_seconds * FULL_SCALE / x.n
    out += ["", (f"**Measured** at {x.n:,} ballots: `recount()` {secs(full)}, " if x.n >= FULL_SCALE else
                 f"**Extrapolated** (linearly, not measured) to {FULL_SCALE:,} ballots: `recount()` ~{secs(full)}, ")
            + "the JSONB unnest floor alone "
            f"~{secs(x.unnest_seconds * FULL_SCALE / x.n)}. "
            f"Aim < {RESCORE_AIM:.0f} s: **{verdict(full < RESCORE_AIM)}**.",
            ""]
    return out


def figures_lines(report: Report) -> list[str]:
    if not report.figures:
        return []
    out = ["## Figures with intervals (`load()` + `document()`)", "",
           "What the figures worker computes on a campaign's first refresh (later ones reuse the units no change "
           "reached), for national campaigns of "
           "growing size (the same agencies, weights from `sc_units`, tallies in place): `load()` reads tallies, "
           "every counted ballot and its weight, `document()` computes every unit's indices with Wilson and Taylor "
           "intervals (unweighted and weighted), suppression and rank intervals. Before them, each campaign's "
           "tallies were stored by `verify(apply=True)` over empty tallies (the recount, then one COPY of a row per "
           "agency in the campaign's key layout, `adapters/tally_rows.py`), timed too.", ""]
    rows, previous = [], None
    for f in report.figures:
        growth = ""
        if previous is not None:
            e = math.log(f.seconds / previous.seconds) / math.log(f.n / previous.n)
            growth = f"time ~ n^{e:.2f} since {previous.n:,}"
        rows.append((f"{f.n:,}", f"{f.agencies:,} / {f.provinces}", f"{secs(f.verify_seconds)} ({f.keys:,})",
                     secs(f.load_seconds), secs(f.document_seconds), secs(f.seconds), fmt_rate(rate(f.n, f.seconds)),
                     growth, cores_text(f.cpu)))
        previous = f
    out += md_table(["Ballots", "Agencies / provinces", "`verify(apply=True)` (tallies stored)", "`load()`",
                     "`document()`", "Total figures", "Ballots/s", "Scaling", "Cores busy"], rows, "rrrrrrrll")
    last = report.figures[-1]
    out += ["", f"**Extrapolated** (linearly from {last.n:,}, not measured): the figures of a {FULL_SCALE:,}-ballot "
            f"campaign would take ~{secs(last.seconds * FULL_SCALE / last.n)}. Likely pessimistic, as at these sizes "
            "most of the time is per unit rather than per ballot (see the scaling column), but untried: every "
            "counted ballot is held in the worker's memory.", ""]
    return out


def replay_lines(report: Report) -> list[str]:
    y, r = report.replay, report.results
    if y is None:
        return []
    sub = r.get("js_sub")
    raw_sub = sub.rate if sub else float("nan")
    same = rate(y.n, y.raw_consume_seconds)
    rebuild = rate(y.n, y.rebuild_seconds)
    out = [f"## Rescoring by replaying the streams ({y.n:,} events)", "",
           f"{y.n:,} `BallotAccepted` envelopes ({y.envelope_bytes:,.0f} B each on average) published to "
           "`SIPAS_BALLOTS` as the ballots relay publishes them, then read back. The service ran in this process "
           "(app and lifespan as `conftest.open_api` starts them, figures worker left out so that only the projection "
           "is measured; log level WARNING).", ""]
    rows = [
        ("f", "Publish (`publish_batch` of 500, acks awaited)", f"{fmt_rate(rate(y.n, y.publish_seconds))} events/s",
         secs(y.publish_seconds), f"{rate(y.n, y.publish_seconds) / r['js_pub'].rate:.0%} of raw publish (1)"
         if "js_pub" in r else "", "as `sipas_events.testing.Feed` does"),
        ("g", "Raw pull-consume of the same stream, explicit ack", f"{fmt_rate(same)} msgs/s",
         secs(y.raw_consume_seconds), f"{same / raw_sub:.0%} of raw pull-consume (2)", "as (2), on these envelopes"),
        ("h", "The rebuild's reader alone (`read_stream`)", f"{fmt_rate(rate(y.n, y.read_seconds))} msgs/s",
         secs(y.read_seconds), f"{rate(y.n, y.read_seconds) / raw_sub:.0%} of (2)",
         "ephemeral consumer, no acks, batches asked ahead"),
        ("i", "... and each envelope validated (`Envelope.model_validate_json`)",
         f"{fmt_rate(rate(y.n, y.decode_seconds))} msgs/s", secs(y.decode_seconds),
         f"{rate(y.n, y.decode_seconds) / raw_sub:.0%} of (2)", ""),
        ("", "The service's durable consumer catching up (positions "
         f"{y.profile_events + 1:,}-{y.n:,})", f"{fmt_rate(rate(y.n - y.profile_events, y.catchup_seconds))} events/s",
         secs(y.catchup_seconds), f"{rate(y.n - y.profile_events, y.catchup_seconds) / raw_sub:.1%} of (2)",
         f"fetch, apply in runs, ack; {cores_text(y.cpu_catchup)} cores busy"),
        ("j", "**`consumer.rebuild()`** of the tallies projection", f"**{fmt_rate(rebuild)} events/s**",
         f"**{secs(y.rebuild_seconds)}**", f"**{rebuild / raw_sub:.1%} of raw pull-consume (2)**<br>"
         f"{rebuild / same:.1%} of (g)", "truncate, read and prepare ahead"
         + ((" (in a reader process of its own, " + ("\"ended children\" below)" if "ended children" in
                                                      y.cpu_rebuild else "among the \"others\" below)"))
            if y.reader == "process" else "")
         + ", COPY the ballots in runs of 4,000 (one transaction each, tallies owed), then one recount of the "
         "campaign from the answer codes; "
         + (f"the median of {len(y.rebuild_trials)} rebuilds one after another ("
            + ", ".join(f"{secs(t)} = {rate(y.n, t) / raw_sub:.1%}" for t in y.rebuild_trials)
            + "), as each raw ceiling is the median of its rounds; " if len(y.rebuild_trials) > 1 else "")
         + f"{cores_text(y.cpu_rebuild)} cores busy"),
    ]
    out += md_table(["#", "Measurement", "Rate", "Time", "Compared", "Details"], rows, "llrrll")
    c = y.checks
    out += ["", f"Aim >= {REPLAY_AIM:.0%} of raw pull-consume: **{verdict(rebuild / raw_sub >= REPLAY_AIM)}**. "
            f"**Extrapolated** (linearly, not measured): replaying {FULL_SCALE:,} ballots would take "
            f"~{secs(FULL_SCALE / rebuild)} (~{FULL_SCALE / rebuild / 3600:.1f} h).", "",
            f"Checks after the rebuild: consumer position {c['position']:,}, counted ballots {c['counted']:,}, ballots "
            f"in the tallies {c['ballots_in_tallies']:,}, differences from a recount {c['differences_from_recount']}, "
            + ("tallies identical to those the live consumer kept run by run before the rebuild"
               if c.get("tallies_as_kept_live") else "**tallies DIFFERENT from those kept live before the rebuild**")
            + f", dead letters {c['dead_letters']}. Before the rebuild the service caught up on the stream through its "
            f"durable consumer from position 0; its first {y.profile_events:,} events ran under cProfile (the profile "
            "below) and are left out of the catch-up row.", ""]
    return out


def freshness_lines(report: Report) -> list[str]:
    if not report.freshness:
        return []
    out = ["## Freshness under sustained intake", "",
           "The service ran in this process with its figures worker; a child process published `BallotAccepted` "
           f"at a steady rate (every {TICK * 1000:.0f} ms, as one `publish_batch`) and polled `sc_figures` every "
           f"{POLL * 1000:.0f} ms. Latency is from an event's publish time (its envelope's `time`) to the first poll "
           "that found `sc_figures.positions->>'ballots'` at or past its position, i.e. to stored figures — what "
           "the API serves — that reflect it (`ScoresUpdated` is paced apart, at most one per campaign every "
           "`SIPAS_SCORING_SCORES_EVENT_INTERVAL` s, 2 here). \"Applied\" is the same up to "
           "the tallies consumer's checkpoint. Each drive had a database of its own, the earlier phases' databases "
           "were dropped once measured, and a drive began once no autovacuum worker was running (at most "
           f"{max((f.quiet_wait for f in report.freshness), default=0.0):.0f} s waited here): what an earlier phase "
           "left to clean up — the dead versions of a drive's tally and ballot updates — is not the drive's "
           "work. Each campaign already held its counted ballots (with tallies) and the "
           f"sampled units of the ballots to come; {WARMUP_BALLOTS} warm-up ballots were published and reflected "
           "before the clock started; the refresh that reflected them (with no backlog) is the \"refresh alone\". "
           "\"Sustained\": the rate was held and the last event was applied within 5 s of its publication. "
           "\"Reflected\": events the figures covered by the end; the driver waits "
           f"{SETTLE_TIMEOUT:.0f} s after the drive, and an event not reflected by then counts as \"never\" in the "
           "percentiles. When the aim's rate was not sustained, a shorter drive at a lower rate follows (60 % of "
           "what the tallies consumer applied during the first), unless a refresh alone already takes longer than "
           f"the aim ({FRESHNESS_AIM:.0f} s).", ""]
    rows = []
    for f in report.freshness:
        lat, app = f.latency, f.applied
        rows.append((f"{f.label} ({f.counted:,} + {f.sent:,}; {f.agencies:,} agencies)", f"{f.interval:g} s",
                     f"{f.target_rate:,.0f} / {f.achieved_rate:,.0f}", "yes" if f.sustained else "**no**",
                     f"{f.covered:,}",
                     f"{secs(lat.get('p50', math.nan))} / {secs(lat.get('p95', math.nan))} / "
                     f"**{secs(lat.get('p99', math.nan))}** / {secs(lat.get('max', math.nan))}",
                     f"{secs(app.get('p50', math.nan))} / {secs(app.get('p99', math.nan))}",
                     f"{secs(f.quiet_refresh)}; {f.refreshes} / {secs(f.refresh_seconds.get('p50', math.nan))} / "
                     f"{secs(f.refresh_seconds.get('max', math.nan))}",
                     f"<= {secs(f.histogram.get('p50', math.nan))} / <= {secs(f.histogram.get('p99', math.nan))} "
                     f"({f.histogram_count})", f"{f.scores_updated}",
                     cores_text({k: v for k, v in f.cpu.items() if k != "ended children"}, "service")
                     + f", driver process {f.cpu.get('ended children', math.nan):.2f} (while the clock ran "
                     f"{f.driver_cpu:.2f})"
                     + (f"; {f.error}" if f.error else "")))
    out += md_table(["Campaign (counted + sent)", "Worker interval", "Rate target / held", "Sustained", "Reflected",
                     "Publish -> figures p50 / p95 / p99 / max", "Publish -> applied p50 / p99",
                     "Refresh alone; refreshes during the drive / p50 / max",
                     "`sipas_scoring_freshness_seconds` p50 / p99 (count)", "`ScoresUpdated`", "Cores busy"],
                    rows, "llrlrrrrrrl")
    out += ["", "`sipas_scoring_freshness_seconds` is observed once per refresh, from the oldest event not yet "
            "reflected to the commit, so it is the worst staleness of each refresh, in the histogram's buckets "
            "(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60 s).", ""]
    worst = min(report.freshness, key=lambda f: (f.covered / max(1, f.sent), -f.counted))
    if len(worst.timeline) > 2:
        out += [f"Progress of the {worst.label} campaign's drive at {worst.target_rate:,.0f}/s, worker every "
                f"{worst.interval:g} s (seconds after the clock started):", ""]
        step = max(1, len(worst.timeline) // 12)
        shown = worst.timeline[::step] + ([worst.timeline[-1]] if (len(worst.timeline) - 1) % step else [])
        out += md_table(["Seconds", "Published", "Applied to tallies", "Reflected in the figures"],
                        ((f"{t:.0f}", f"{int(p):,}", f"{int(a):,}", f"{int(c):,}") for t, p, a, c in shown), "rrrr")
        out.append("")
    busiest = max(report.freshness, key=lambda f: sum(s["ms"] for s in f.statements), default=None)
    if busiest is not None and busiest.statements:
        out += [f"Statements of the {busiest.label} campaign's drive (worker every {busiest.interval:g} s; the "
                "service's and the driver's), by server time (`pg_stat_statements`):", ""]
        out += statements_table(busiest.statements)
        out.append("")
    return out


def time_goes_lines(report: Report) -> list[str]:
    out = ["## Where the time goes", ""]
    y = report.replay
    if y is not None:
        profiles = [
            (f"**Applying events** (the service's live consumer catching up on its first {y.profile_events:,} "
             f"events, whole process under cProfile, {y.profile_total:.1f} s of profiled time; a rebuild applies "
             "its runs through the projection's rebuild handler instead, below)", y.profile_top, y.profile_total),
            (f"**Rebuilding** (`consumer.rebuild()` of the {y.n:,} events once more after the timed ones, whole "
             f"process under cProfile: {y.rebuild_profile_seconds:.1f} s, {y.rebuild_profile_total:.1f} s of "
             "profiled time)", y.rebuild_profile_top, y.rebuild_profile_total)]
        for title, top, total in profiles:
            if top:
                out += [f"{title}:", "", *profile_table(top, total), ""]
    if y is not None and y.statements:
        out += ["Statements of the rebuild, by server time (`pg_stat_statements`):", ""]
        out += statements_table(y.statements)
        out.append("")
    p = report.figures_profile
    if p:
        out += [f"**`document()` of {p['n']:,} ballots** ({p['seconds']:.1f} s under cProfile):", ""]
        out += profile_table(p["top"], p["total"])
        out.append("")
    x = report.rescore
    if x is not None and x.statements:
        out += ["Statements of the rescoring from the projection, by server time (`pg_stat_statements`):", ""]
        out += statements_table(x.statements[:5])
        out.append("")
    if x is not None and x.plan:
        out += [f"**`recount()`**: the plan of its statement over {x.plan_n:,} ballots (`EXPLAIN (ANALYZE, BUFFERS)`, "
                "main nodes):", "", "```"]
        out += [line for line in x.plan if "->" in line or line.lstrip().startswith(
            ("HashAggregate", "GroupAggregate", "Append", "Sort", "Finalize", "Execution Time", "CTE", "Gather",
             "Partial"))][:40]
        out += ["```", ""]
    return out


def markdown(report: Report) -> str:
    lines: list[str] = []
    add = lines.append
    add("# Scoring performance")
    add("")
    add("Measured by `bench/scoring.py`; reproduce with `make bench` (it runs `python -m bench.scoring --out "
        "docs/performance-scoring.md`; `--ballots N` changes the size of the rescoring, which then runs again at "
        f"the aim's {FULL_SCALE:,} unless `--no-full-rescore`). The benchmark starts its own "
        "throwaway embedded PostgreSQL and NATS JetStream, measures their raw speed, then the scoring service's own "
        "code on the same servers in the same run, and reports the service as a fraction of the raw speed. "
        "Everything runs on one machine: servers, the service and the benchmark client.")
    add("")
    add(f"- Date: {report.started.strftime('%Y-%m-%d %H:%M UTC')}")
    add(f"- Command: `{report.command}`")
    add(f"- Population: {report.agencies:,} agencies over {report.provinces} provinces; instrument `sipas-2017` (22 "
        "criteria, 5 factor items, the overall item), scheme `share-satisfied`; every ballot from a sampled unit with "
        "its stratum's design weight (one stratum per agency); whole run "
        f"{report.total_seconds / 60:.1f} min")
    if report.sources:
        add(f"- Sources measured{f' (at commit `{report.commit}`)' if report.commit else ''}, SHA-256 first 12 "
            "digits: " + ", ".join(f"`{Path(k).name}` {v}" for k, v in report.sources.items()))
    add("")
    found = aims(report)
    if found:
        add("## Aims (issue 6)")
        add("")
        lines += md_table(["Aim", "Measured", "How", "Verdict"], found)
        add("")
    r = report.results
    if r:
        add("## Raw ceilings")
        add("")
        lines += result_table((str(i), r[key]) for i, key in enumerate(RAW_KEYS, 1) if key in r)
        add("")
    lines += rescore_lines(report)
    lines += figures_lines(report)
    lines += replay_lines(report)
    lines += freshness_lines(report)
    lines += time_goes_lines(report)
    add("## What limits")
    add("")
    for paragraph in limits(report):
        add(paragraph)
        add("")
    for kept in report.kept_sections:
        add(kept.rstrip("\n"))
        add("")
    lines += machine_section(report.machine, report.phase_seconds)
    return "\n".join(lines)


def limits(report: Report) -> list[str]:
    out, r = [], report.results
    x = report.rescore_full or report.rescore
    if x is not None:
        full = x.recount_seconds * FULL_SCALE / x.n
        floor = x.unnest_seconds * FULL_SCALE / x.n
        out.append(
            f"**Rescoring from the projection** ({'' if x.n >= FULL_SCALE else '~'}{secs(full)} for {FULL_SCALE:,} "
            f"ballots, {'measured' if x.n >= FULL_SCALE else 'extrapolated'}; aim "
            f"{RESCORE_AIM:.0f} s: {verdict(full < RESCORE_AIM)}). The recount reads each ballot's answer codes "
            "(33 bytes), which the server scans and concatenates per agency (in parallel workers when its planner "
            "chooses to: see the plan above), and numpy counts each agency's block at once; merely unnesting the JSONB "
            f"answers (c) would take ~{secs(floor)} at {FULL_SCALE:,}, "
            f"{floor / max(full, 1e-9):.1f}x the whole recount. What is left is the scan of the table "
            f"({x.table_mb:,.0f} MiB with indexes; the scan (b) alone is {x.scan_seconds / x.recount_seconds:.0%} "
            "of the recount) and the aggregation; ballots without codes (counted before migration 0005) still go "
            "through the JSONB statement, at its speed (e).")
    if report.figures:
        f = next((g for g in report.figures if g.n >= report.figures[-1].n), report.figures[-1])
        first = report.figures[0]
        e = math.log(f.seconds / first.seconds) / math.log(f.n / first.n) if f.n > first.n else float("nan")
        p = report.figures_profile
        text = (f"**Figures with intervals**: {secs(f.seconds)} for {f.n:,} ballots over {f.agencies:,} agencies, "
                f"growing only as n^{e:.2f} from {first.n:,} ballots ({secs(first.seconds)}): the cost is per unit "
                f"({f.units:,} units, each with a Wilson interval per item and a pair of Taylor estimates per factor "
                "and overall, unweighted and weighted, with exact fractions), not per ballot. ")
        if p:
            text += (f"In `document()` of {p['n']:,} ballots (profile above) a first computation spends most of its "
                     "time measuring every ballot (`measured.py`: each answer scored, each row digested, each cell's "
                     "moments summed); the rest is per unit: presenting some 130 numbers a unit (`present_text`), "
                     "the estimates of all units made together (`estimate_arrays`), tallies and Wilson intervals. ")
        text += ("These are full computations, as on a service's first refresh of a campaign; later refreshes keep "
                 "the measured ballots and their moments and read only those accepted or voided since, and reuse the "
                 "rows of the units no change reached (`docs/scoring.md`).")
        out.append(text)
    y = report.replay
    if y is not None and "js_sub" in r:
        rebuild = rate(y.n, y.rebuild_seconds)
        total = sum(s["ms"] for s in y.statements) / 1000
        top = max(y.statements, key=lambda s: s["ms"], default=None)
        top_text = "" if top is None else (
            f" The largest server cost is `{top['query'][:60]}...` ({top['ms'] / y.n:.2f} ms an event, "
            f"{top['ms'] / 1000 / max(total, 1e-9):.0%} of the server time, {top['rows'] / y.n:.0f} rows an event).")
        out.append(
            f"**Replay** ({rebuild / r['js_sub'].rate:.1%} of raw pull-consume; aim {REPLAY_AIM:.0%}: "
            f"{verdict(rebuild / r['js_sub'].rate >= REPLAY_AIM)}). The transport is not the limit: the rebuild's "
            f"reader (batches of 1,000 asked ahead on a plain subscription) read the stream at "
            f"{rate(y.n, y.read_seconds) / r['js_sub'].rate:.0%} of raw pull-consume (h), and at "
            f"{rate(y.n, y.decode_seconds) / r['js_sub'].rate:.0%} validating each envelope (i). A rebuild reads, "
            "validates, decodes and prepares each event (an accepted ballot's answer codes and JSON texts) ahead of "
            + ("its runs, in a process of its own on a stream this long (`sipas_events.rebuild_reader`, which "
               "prepares a share of the batches and leaves the others to the service's process)"
               if y.reader == "process" else "its runs, in a task of the service's process")
            + "; each run of up to 4,000 events COPYs its ballots, writes its inbox rows and owes the "
            f"tallies (one recount at the end; {sum(s['calls'] for s in y.statements):,} statements for {y.n:,} "
            f"events in `pg_stat_statements`): {y.rebuild_seconds / y.n * 1000:.3f} ms an event in all, of which "
            f"{total / y.n * 1000:.3f} ms in the server.{top_text} {REPLAY_AIM:.0%} of raw pull-consume "
            f"({fmt_rate(REPLAY_AIM * r['js_sub'].rate)} events/s here) leaves "
            f"{1000 / (REPLAY_AIM * r['js_sub'].rate):.3f} ms an event for everything. What is left is Python "
            f"({y.cpu_rebuild.get('client', float('nan')):.2f} cores busy in the service's process during the "
            + (f"rebuild, {y.cpu_rebuild['ended children']:.2f} in its reader process" if "ended children" in
               y.cpu_rebuild else "rebuild" + (", its reader process among the others" if y.reader == "process"
                                                else "")) + "): pydantic validating "
            "and decoding each envelope and event, the runs' rows and inbox entries, and the recount at the end "
            "(see the rebuild's profile above), with PostgreSQL and NATS on the same two cores.")
    fresh = [f for f in report.freshness if f.latency]
    if fresh:
        parts = []
        for f in fresh:
            p99 = f.latency.get("p99", float("nan"))
            during = [row for row in f.timeline if row[0] <= f.seconds]
            applied = during[-1][2] / max(1.0, during[-1][0]) if during else float("nan")
            parts.append(f"{f.label} campaign at {f.target_rate:,.0f}/s, worker every {f.interval:g} s: p99 "
                         f"{secs(p99)} ({'sustained' if f.sustained else 'not sustained'}; the consumer applied "
                         f"~{applied:,.0f} events/s during the drive; a refresh alone {secs(f.quiet_refresh)})")
        text = "**Freshness**: " + "; ".join(parts) + ". "
        kept_up = all(f.sustained for f in fresh)
        applied_p99 = max((f.applied.get("p99", float("nan")) for f in fresh if f.applied), default=float("nan"))
        text += ("The tallies consumer keeps up (" + ("every drive sustained" if kept_up else "not every drive "
                 "sustained") + f"; publish to applied p99 at most {secs(applied_p99)}): the figures are what trail. "
                 "They are computed in a process of their own that keeps each campaign's measured ballots and reads "
                 "only the new ones, and each unit's intervals come from moments kept per agency and weight group, so "
                 "a refresh costs what its changed units cost rather than what the campaign holds "
                 "(`docs/scoring.md`). Staleness is then about a refresh plus up to one interval plus the tallies "
                 "consumer's lag. The national campaign's refreshes are the costly ones: a refresh that takes most "
                 "of a second finds new ballots in most of its agencies, so it recomputes most units. The service's "
                 "side of a refresh is small (it reads no tallies — the new ballots' answer codes are their change "
                 "— and stores the document's text as the figures process wrote it, beside the next computation); the "
                 "figures process's own work is most of it: each changed unit's row with its estimates (made for all "
                 "changed units at once, in array passes over one block of their moments, `estimate_arrays`), its "
                 "share figures (from one integer matrix of their tallies), presented figures and digests, on a core "
                 "the consumers, PostgreSQL and the benchmark share")
        national = [f for f in fresh if f.scope == "national"]
        fastest = min((f.interval for f in national), default=None)
        at_fastest = [f for f in national if f.interval == fastest]
        got = [f.cpu["figures process"] for f in at_fastest if "figures process" in f.cpu]
        text += (f", of which it got {max(got):.2f} in the national drive every {fastest:g} s. " if got else ". ")
        if at_fastest and all(f.sustained and f.latency.get("p99", math.inf) < FRESHNESS_AIM for f in at_fastest):
            text += (f"With the worker every {fastest:g} s that keeps the national campaign within the aim, by a "
                     "margin that varies from run to run (see Notes).")
        elif at_fastest:
            text += (f"With the worker every {fastest:g} s the national campaign is not within the aim in this run: "
                     "its refreshes' work would have to shrink further (see Notes).")
        slow = sorted({f.interval for f in fresh if f.interval >= FRESHNESS_AIM})
        if slow:
            text += (f" With the worker every {slow[0]:g} s no campaign can be: an event that arrives as a pass "
                     "begins waits for the next pass, an interval later, so p99 is about the interval plus a "
                     "refresh.")
        out.append(text)
    others = [f.cpu.get("others", 0.0) for f in report.freshness if f.cpu]
    out.append(
        "All of this ran on one two-core machine that other work was using at the same time (the \"others\" cores "
        f"above{f', up to {max(others):.1f} cores during the freshness drives' if others else ''}; load average "
        f"{report.machine.get('Load average when the run started (1 min)', '?')} at the start): PostgreSQL, NATS, "
        "the service and the benchmark share two cores, so the raw ceilings and the service were measured under "
        "the same conditions and the ratios are the figures to compare; the absolute rates are not production "
        "capacity.")
    return out


if __name__ == "__main__":
    sys.exit(main())
