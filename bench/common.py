"""What the benchmarks share: the throwaway embedded stack, the raw ceilings of PostgreSQL and JetStream,
CPU metering, machine facts, phase timing, profiles and the Markdown report.

Each benchmark (``bench.backbone``, ``bench.sampling``, ``bench.ballots``) measures its own code against
raw ceilings taken on the same servers in the same run; the pieces they all need live here so that
every report means the same thing by "cores busy", "raw COPY" or "median of 3 rounds".
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Pids = Callable[[], dict[str, list[int]]]

PAYLOAD_BYTES = 600
RAW_STREAM = "BENCH_RAW"
RAW_SUBJECT = "bench.raw.AgencyRegistered.01"
INSERT_BATCH = 500        # rows per executemany batch in the raw batched INSERT
FETCH_BATCH = 256         # raw pull-consume batch


# ---- results and formatting ---------------------------------------------------------------------
@dataclass
class Result:
    key: str
    name: str
    count: int
    seconds: float
    unit: str = "events/s"
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def median_result(key: str, name: str, n: int, times: list[float], unit: str, note: str) -> Result:
    """A ceiling from several rounds: the median time, with the spread of the rates in the note."""
    ordered = sorted(times)
    median = statistics.median(ordered)
    if len(times) > 1:
        note += f"; median of {len(times)} rounds ({n / ordered[-1]:,.0f}-{n / ordered[0]:,.0f} {unit})"
    return Result(key, name, n, median, unit, note)


def fmt_rate(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "> 60 000 ms"
    return f"{x * 1000:,.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def exact_percentile(samples: Sequence[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def thin(points: Sequence[T], about: int) -> list[T]:
    """About ``about`` evenly spaced points of a timeline, always with its last."""
    step = max(1, len(points) // about)
    shown = list(points[::step])
    if points and shown[-1] != points[-1]:
        shown.append(points[-1])
    return shown


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> list[str]:
    """A Markdown table as lines; ``align`` has one letter a column, ``r`` for right-aligned (default left)."""
    align = align.ljust(len(header), "l")
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return out


def md_section(title: str, lines: Iterable[str], bullets: bool = False) -> list[str]:
    """A ``## title`` section: the heading, a blank line, the lines (as a bulleted list if asked), a blank line."""
    return [f"## {title}", "", *(f"- {line}" if bullets else line for line in lines), ""]


def result_table(rows: Iterable[tuple[str, Result]]) -> list[str]:
    """Numbered measurements with their rate, time and details (how a benchmark lists its raw ceilings)."""
    return md_table(["#", "Measurement", "Rate", "Time", "Details"], (
        (label, x.name, f"{fmt_rate(x.rate)} {x.unit}", f"{x.seconds:.2f} s", x.note) for label, x in rows), "llrrl")


def md_cell(text: str, limit: int = 110) -> str:
    """Code text for a table cell: pipes escaped, cut to ``limit`` characters."""
    text = text.replace("|", "\\|")
    return "`" + (text if len(text) <= limit else text[:limit - 3] + "...") + "`"


# ---- the payload of the raw ceilings ------------------------------------------------------------
def payload(size: int = PAYLOAD_BYTES) -> bytes:
    """A JSON-looking payload of exactly ``size`` bytes (roughly the shape of an envelope)."""
    head = b'{"specversion":"1.0","type":"vn.gov.sipas.registry.AgencyRegistered.v1","data":{"x":"'
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def body_text(size: int = PAYLOAD_BYTES) -> str:
    return payload(size).decode()


# ---- CPU ----------------------------------------------------------------------------------------
def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    import psutil

    out: dict[int, float] = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (for PostgreSQL: the postmaster, its backends, walwriter...)."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root.pid, *(c.pid for c in root.children(recursive=True))]
    except psutil.Error:
        return []


def server_pid(server: Any) -> int:
    """The pid of an embedded server's main process (0 if it is not running)."""
    proc = getattr(server, "_proc", None)
    return int(proc.pid) if proc is not None else 0


def server_pids(pg: Any, nats_server: Any = None) -> dict[str, list[int]]:
    """Pids of the postmaster and its children, and of nats-server if there is one."""
    found: dict[str, list[int]] = {"postgres": process_tree(server_pid(pg)) if server_pid(pg) else []}
    if nats_server is not None:
        found["nats-server"] = [server_pid(nats_server)] if server_pid(nats_server) else []
    return found


def _ended_children_seconds() -> float:
    """CPU seconds of this process's children that have ended and been waited for."""
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


class CpuMeter:
    """Cores kept busy on average, over the timed blocks, by this process ("client"), by each kind of
    process that ``pids`` names (servers), by this process's children that ended during a block ("ended
    children": e.g. a rebuild's reader process; a child still running is not counted there), and by
    everything else on the machine ("others")."""

    def __init__(self, pids: Pids) -> None:
        self._pids = pids
        self.wall = 0.0
        self.busy: dict[str, float] = {}   # core-seconds of the client and each named kind, summed over blocks
        self.others = 0.0
        self.iowait = 0.0

    def start(self) -> None:
        import psutil

        self._cpu0 = {k: cpu_seconds(v) for k, v in self._pids().items()}
        self._ended0 = _ended_children_seconds()
        self._sys0 = psutil.cpu_times()
        self._load0 = os.getloadavg()[0]
        self._py0, self._t0 = time.process_time(), time.perf_counter()

    def stop(self) -> dict[str, float]:
        """This block's figures: cores busy per kind, ``others`` and ``iowait``, its ``wall`` seconds and the
        1-minute load average before and after."""
        import psutil

        wall = time.perf_counter() - self._t0
        used = {"client": time.process_time() - self._py0}
        now = self._pids()
        for kind in [*self._cpu0, *(k for k in now if k not in self._cpu0)]:
            before = self._cpu0.get(kind, {})
            after = cpu_seconds(sorted(set(now.get(kind, [])) | set(before)))
            used[kind] = sum(t - before.get(p, 0.0) for p, t in after.items())
        ended = _ended_children_seconds() - self._ended0
        if ended > 0.01:
            used["ended children"] = ended
        s0, s1 = self._sys0, psutil.cpu_times()
        machine = sum(getattr(s1, k) - getattr(s0, k) for k in s1._fields
                      if k not in ("idle", "iowait", "guest", "guest_nice"))
        others = max(0.0, machine - sum(used.values()))
        iowait = getattr(s1, "iowait", 0.0) - getattr(s0, "iowait", 0.0)
        self.wall += wall
        for k, v in used.items():
            self.busy[k] = self.busy.get(k, 0.0) + v
        self.others += others
        self.iowait += iowait
        per = max(wall, 1e-9)
        return {"wall": wall, **{k: v / per for k, v in used.items()}, "others": others / per,
                "iowait": iowait / per, "load_before": self._load0, "load_after": os.getloadavg()[0]}

    def cores(self) -> dict[str, float]:
        """Cores busy on average over all the blocks: the client, each kind, others."""
        if self.wall <= 0:
            return {}
        return {**{k: v / self.wall for k, v in self.busy.items()}, "others": self.others / self.wall}

    def text(self, *kinds: str) -> str:
        if self.wall <= 0:
            return ""
        parts = [f"{k} {self.busy.get(k, 0.0) / self.wall:.2f}" for k in ("client", *kinds)]
        return "cores busy: " + ", ".join(parts)


# ---- raw ceilings -------------------------------------------------------------------------------
async def raw_js(url: str, n: int, rounds: int, pids: Pids) -> tuple[Result, Result]:
    """Pipelined publish of ``n`` messages into a fresh file stream, then pull-consume them all."""
    import nats
    import nats.js.errors
    from nats.js import api

    data = payload()
    pub_times: list[float] = []
    sub_times: list[float] = []
    ack_floors: list[int] = []
    pub_cpu, sub_cpu = CpuMeter(pids), CpuMeter(pids)
    nc = await nats.connect(url, name="bench-raw")
    try:
        js = nc.jetstream(publish_async_max_pending=8192)  # as JetStreamBus does
        for round_no in range(rounds):
            try:
                await js.delete_stream(RAW_STREAM)
            except nats.js.errors.NotFoundError:
                pass
            await js.add_stream(api.StreamConfig(
                name=RAW_STREAM, subjects=["bench.raw.>"], storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS, num_replicas=1,
            ))
            pub_cpu.start()
            t0 = time.perf_counter()
            futures = [await js.publish_async(RAW_SUBJECT, data) for _ in range(n)]
            acks = await asyncio.gather(*futures)
            pub_times.append(time.perf_counter() - t0)
            pub_cpu.stop()
            info = await js.stream_info(RAW_STREAM)
            if info.state.messages != n or len(acks) != n:
                raise RuntimeError(f"raw publish stored {info.state.messages} of {n} messages")

            durable = f"bench-raw-{round_no}"
            sub = await js.pull_subscribe(
                "bench.raw.>", durable=durable, stream=RAW_STREAM,
                config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT,
                                          deliver_policy=api.DeliverPolicy.ALL, max_ack_pending=2048),
            )
            got = 0
            sub_cpu.start()
            t0 = time.perf_counter()
            while got < n:
                msgs = await sub.fetch(FETCH_BATCH, timeout=5.0)
                for m in msgs:
                    await m.ack()
                got += len(msgs)
            await nc.flush()
            sub_times.append(time.perf_counter() - t0)
            sub_cpu.stop()
            await asyncio.sleep(0.1)
            ack_floors.append((await js.consumer_info(RAW_STREAM, durable)).ack_floor.stream_seq)
            await sub.unsubscribe()
        await js.delete_stream(RAW_STREAM)
    finally:
        await nc.close()
    return (
        median_result("js_pub", "JetStream pipelined publish (`publish_async`, all acks awaited)", n, pub_times,
                      "msgs/s", f"{PAYLOAD_BYTES} B payload, file storage, max 8192 in flight, no headers; "
                      f"{pub_cpu.text('nats-server')}"),
        median_result("js_sub", "JetStream pull-consume, explicit ack", n, sub_times, "msgs/s",
                      f"durable, fetch {FETCH_BATCH}, `msg.ack()` each; ack floor after each round "
                      f"{min(ack_floors):,} of {n:,} or more; {sub_cpu.text('nats-server')}"),
    )


async def raw_pg(dsn: str, n: int, rounds: int, pids: Pids) -> tuple[Result, Result]:
    """asyncpg COPY of ``n`` rows, then batched INSERTs of ``n`` rows, into (id uuid, body text) tables."""
    import asyncpg

    body = body_text()
    copy_times: list[float] = []
    insert_times: list[float] = []
    copy_cpu, insert_cpu = CpuMeter(pids), CpuMeter(pids)
    conn = await asyncpg.connect(dsn)
    try:
        for table in ("bench_copy", "bench_insert"):
            await conn.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, body text NOT NULL)")
        for _ in range(rounds):
            await conn.execute("TRUNCATE bench_copy, bench_insert")
            records = [(uuid.uuid4(), body) for _ in range(n)]
            copy_cpu.start()
            t0 = time.perf_counter()
            await conn.copy_records_to_table("bench_copy", records=records, columns=["id", "body"])
            copy_times.append(time.perf_counter() - t0)
            copy_cpu.stop()

            records = [(uuid.uuid4(), body) for _ in range(n)]
            insert_cpu.start()
            t0 = time.perf_counter()
            for start in range(0, n, INSERT_BATCH):
                async with conn.transaction():
                    await conn.executemany("INSERT INTO bench_insert (id, body) VALUES ($1, $2)",
                                           records[start:start + INSERT_BATCH])
            insert_times.append(time.perf_counter() - t0)
            insert_cpu.stop()
            for table in ("bench_copy", "bench_insert"):
                count = await conn.fetchval(f"SELECT count(*) FROM {table}")
                if count != n:
                    raise RuntimeError(f"{table} holds {count} rows, expected {n}")
        for table in ("bench_copy", "bench_insert"):
            await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    return (
        median_result("pg_copy", "asyncpg COPY (`copy_records_to_table`)", n, copy_times, "rows/s",
                      f"one COPY, table (id uuid primary key, body text), {PAYLOAD_BYTES} B body; "
                      f"{copy_cpu.text('postgres')}"),
        median_result("pg_insert", "asyncpg batched INSERT (`executemany`)", n, insert_times, "rows/s",
                      f"batches of {INSERT_BATCH}, one transaction each, same table shape; "
                      f"{insert_cpu.text('postgres')}"),
    )


# ---- the stack ----------------------------------------------------------------------------------
@dataclass
class Stack:
    root: Path
    pg: Any                # sipas_cli.stack.EmbeddedPostgres
    nats: Any = None       # sipas_cli.stack.EmbeddedNats, when asked for

    def pids(self) -> dict[str, list[int]]:
        return server_pids(self.pg, self.nats)


def exit_cleanly_on_sigterm() -> None:
    """A benchmark stopped with SIGTERM (``kill``, ``timeout``) leaves as on Ctrl-C: through its ``finally``
    blocks, which stop the servers and services it started and remove their folders. Without this the
    default action ends the process at once and leaves them running."""
    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def quiet_logs() -> None:
    """The services log through structlog; keep their info lines out of the benchmark's output."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


@contextlib.contextmanager
def embedded_stack(prefix: str, *, nats: bool = True, pg_settings: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """A throwaway PostgreSQL (and NATS JetStream) in a temporary directory, stopped and removed whatever
    happens."""
    from sipas_cli.stack import EmbeddedNats, EmbeddedPostgres, free_port

    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)  # PostgreSQL's unprivileged user must reach files the benchmark leaves there
    stack = Stack(root, EmbeddedPostgres(root / "pg", port=free_port(), settings=pg_settings))
    if nats:
        stack.nats = EmbeddedNats(root / "nats", port=free_port(), monitor_port=free_port())
    try:
        print(f"-- starting PostgreSQL{' and NATS' if nats else ''} in {root} ...", flush=True)
        stack.pg.start()
        if stack.nats is not None:
            stack.nats.start()
        yield stack
    finally:
        for server in (stack.nats, stack.pg):
            if server is None:
                continue
            try:
                server.stop()
            except Exception as exc:
                print(f"warning: could not stop {type(server).__name__}: {exc!r}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)


class Phases:
    """Times the named phases of a run (printed as they start, kept for the report's machine section)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], T]) -> T:
        print(f"-- {name} ...", flush=True)
        t0 = time.perf_counter()
        out = fn()
        self.seconds[name] = time.perf_counter() - t0
        return out

    async def arun(self, name: str, fn: Callable[[], Awaitable[T]]) -> T:
        print(f"-- {name} ...", flush=True)
        t0 = time.perf_counter()
        out = await fn()
        self.seconds[name] = time.perf_counter() - t0
        return out


# ---- machine facts ------------------------------------------------------------------------------
def fs_type(path: Path) -> str:
    """Filesystem type of the mount holding ``path`` (tmpfs would make fsync free)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def machine_facts(pg: Any, data_dir: Path, *, nats_server: Any = None, libraries: Sequence[str] = (),
                  pg_settings: Sequence[str] = ("fsync", "synchronous_commit", "shared_buffers"),
                  pg_note: str = "", load: bool = False) -> dict[str, str]:
    """CPU, memory, OS, Python, the servers' versions and settings, client libraries, data directory."""
    facts: dict[str, str] = {}
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts["CPUs"] = f"{os.cpu_count()}" + (f" ({model})" if model else "")
    try:
        import psutil

        facts["Memory"] = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except Exception:
        pass
    if load:
        facts["Load average when the run started (1 min)"] = f"{os.getloadavg()[0]:.2f}"
    facts["OS"] = platform.platform()
    facts["Python"] = f"{platform.python_version()} ({platform.python_implementation()})"
    try:
        facts["PostgreSQL"] = pg.psql("SHOW server_version").strip()
    except Exception as exc:
        facts["PostgreSQL"] = f"unknown ({exc})"
    settings = []
    for name in pg_settings:
        try:
            settings.append(f"{name}={pg.psql(f'SHOW {name}').strip()}")
        except Exception:
            pass
    facts["PostgreSQL settings"] = ", ".join(settings) + (f" ({pg_note})" if pg_note else "")
    if nats_server is not None:
        try:
            with urllib.request.urlopen(f"{nats_server.monitor_url}/varz", timeout=5) as resp:
                varz = json.loads(resp.read())
            facts["nats-server"] = f"{varz.get('version', '?')} (go {varz.get('go', '?')})"
        except Exception as exc:
            facts["nats-server"] = f"unknown ({exc})"
        facts["JetStream sync"] = (
            "sync_interval: always" if nats_server.sync_always else "default (periodic fsync, not per message)")
    versions = []
    for dist in libraries:
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    facts["Client libraries"] = ", ".join(versions)
    facts["Data directory"] = f"{data_dir} ({fs_type(data_dir)}; removed after the run)"
    return facts


def machine_section(machine: Mapping[str, str], phase_seconds: Mapping[str, float], seconds_format: str = ".1f",
                    ) -> list[str]:
    """The report's closing ``## Machine`` section."""
    out = ["## Machine", ""]
    out += [f"- {k}: {v}" for k, v in machine.items()]
    out.append("- Phase durations: " + ", ".join(f"{k} {v:{seconds_format}} s" for k, v in phase_seconds.items()))
    out.append("")
    return out


# ---- server-side statements -------------------------------------------------------------------
async def statements(dsn: str, reset: bool = False, limit: int = 8) -> list[dict[str, Any]]:
    """This database's statements by server time (``pg_stat_statements``); or reset the counters."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return []
        rows = await conn.fetch(
            "SELECT calls, total_exec_time, rows, temp_blks_written, query FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            f"AND query NOT ILIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC LIMIT {int(limit)}")
        return [{"calls": r["calls"], "ms": r["total_exec_time"], "rows": r["rows"],
                 "temp_mb": r["temp_blks_written"] * 8192 / 2**20, "query": " ".join(r["query"].split())}
                for r in rows]
    finally:
        await conn.close()


def statements_table(rows: list[dict[str, Any]]) -> list[str]:
    return md_table(["Statement", "Calls", "Server s", "Rows", "Temp written"], (
        (md_cell(s["query"]), f"{s['calls']:,}", f"{s['ms'] / 1000:.1f}", f"{s['rows']:,}", f"{s['temp_mb']:,.0f} MiB")
        for s in rows), "lrrrr")


# ---- profiles -----------------------------------------------------------------------------------
def pstats_top(profile: Any, limit: int = 14) -> tuple[float, list[dict[str, Any]]]:
    """Total seconds of a cProfile run and its functions with the most own time."""
    import pstats

    stats = pstats.Stats(profile)
    total = float(stats.total_tt)  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"where": short_location(filename, line, func), "calls": nc, "tottime": tt, "cumtime": ct})
    rows.sort(key=lambda r: -r["tottime"])
    return total, rows[:limit]


def short_location(filename: str, line: int, func: str) -> str:
    if filename == "~":
        return func
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({func})"


def profile_table(rows: list[dict[str, Any]], total: float) -> list[str]:
    return md_table(["Function", "Calls", "Own s", "Share", "Cumulative s"], (
        (md_cell(x["where"], 90), f"{x['calls']:,}", f"{x['tottime']:.2f}", f"{x['tottime'] / total:.0%}",
         f"{x['cumtime']:.2f}") for x in rows), "lrrrr")


# ---- the report ---------------------------------------------------------------------------------
def kept_sections(previous: str, headings: Sequence[str]) -> list[str]:
    """The hand-written sections (``headings``) of a previous report, each up to the next heading."""
    out = []
    for heading in headings:
        start = previous.find(f"\n{heading}\n")
        if start < 0:
            continue
        end = previous.find("\n## ", start + len(heading) + 2)
        out.append(previous[start + 1:end if end >= 0 else len(previous)])
    return out


def write_report(path: Path | None, report: Any, render: Callable[[Any], str], headings: Sequence[str]) -> None:
    """Write ``render(report)`` to ``path``, carrying over the hand-written sections of the report it replaces
    (into ``report.kept_sections``)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        report.kept_sections = kept_sections(path.read_text(), headings)
    path.write_text(render(report))
    print(f"wrote {path}")
