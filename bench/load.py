"""A service under load: start it as its own process, drive it over HTTP, sample it with py-spy.

The HTTP client is deliberately small (pre-built HTTP/1.1 requests on keep-alive asyncio connections,
closed loop), so that its own cost stays well below the server's and the rates are the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import exact_percentile

REPO = Path(__file__).resolve().parent.parent


# ---- requests -----------------------------------------------------------------------------------
def http_request(method: str, path: str, body: bytes, headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> bytes:
    head = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Load:
    """One run of requests: per request the send and done times (perf_counter), status and body."""

    concurrency: int
    sent: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.sent)

    @property
    def seconds(self) -> float:
        return max(self.done) - min(self.sent) if self.sent else float("nan")

    @property
    def latencies(self) -> list[float]:
        return [d - s for s, d in zip(self.sent, self.done, strict=True)]

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for s in self.status:
            out[s] = out.get(s, 0) + 1
        return out


def figures(loads: Sequence[Load]) -> dict[str, Any]:
    """Rate over the runs' summed time, latency percentiles over all their requests, each run's rate."""
    lat = [x for load in loads for x in load.latencies]
    statuses: dict[int, int] = {}
    for load in loads:
        for code, count in load.statuses().items():
            statuses[code] = statuses.get(code, 0) + count
    n, seconds = sum(x.n for x in loads), sum(x.seconds for x in loads)
    return {"n": n, "seconds": seconds, "rate": n / seconds, "p50": exact_percentile(lat, 0.5),
            "p95": exact_percentile(lat, 0.95), "p99": exact_percentile(lat, 0.99), "max": max(lat),
            "concurrency": loads[0].concurrency, "statuses": statuses, "round_rates": [x.n / x.seconds for x in loads]}


def share(items: Sequence[bytes], i: int, k: int) -> Sequence[bytes]:
    """The ``i``-th of ``k`` consecutive slices of ``items`` (the last takes the remainder)."""
    size = len(items) // k
    return items[i * size:(i + 1) * size if i < k - 1 else len(items)]


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status, length = int(head[9:12]), 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, (await reader.readexactly(length) if length else b"")


async def http_load(port: int, requests: Sequence[bytes], concurrency: int, keep_bodies: bool = True) -> Load:
    """Send ``requests`` over ``concurrency`` keep-alive connections, each sending its next request when the
    previous answer has arrived."""
    load = Load(concurrency)
    n = len(requests)
    load.sent, load.done, load.status = [0.0] * n, [0.0] * n, [0] * n
    load.bodies = [b""] * n
    cursor = iter(range(n))

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        try:
            for i in cursor:
                load.sent[i] = time.perf_counter()
                load.status[i], body = await _exchange(reader, writer, requests[i])
                load.done[i] = time.perf_counter()
                if keep_bodies:
                    load.bodies[i] = body
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(min(concurrency, n))))
    return load


# ---- processes ----------------------------------------------------------------------------------
def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return False


async def wait_ready(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])  # noqa: ASYNC240 (a failure)
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {log}\n{tail}")
        if await asyncio.to_thread(_answers_200, url):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- py-spy -------------------------------------------------------------------------------------
def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


@contextlib.asynccontextmanager
async def sampled(pid: int, path: Path, rate: int = 200) -> AsyncIterator[bool]:
    """py-spy records ``pid`` (every thread, only while it runs) into ``path`` as collapsed stacks, while the
    block runs; yields False (and records nothing) if py-spy is not installed."""
    spy = py_spy()
    if spy is None:
        yield False
        return
    proc = start([spy, "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(path), "--nonblocking"],
                 dict(os.environ), path.with_suffix(".log"))
    try:
        await asyncio.sleep(1.0)  # py-spy attaches
        yield True
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its samples on Ctrl-C
        await asyncio.to_thread(proc.wait, 60)


# Layers, from the leaf of a sampled stack upwards: the deepest frame in one of these places says whose
# code was running (a leaf in asyncio or a builtin counts for the caller that owns it).
LAYERS = (
    ("asyncpg (driver, protocol)", ("asyncpg/",)),
    ("SQLAlchemy (statement building, compiling, cache keys, results)", ("sqlalchemy/",)),
    ("pydantic (models, validation, serialisation)", ("pydantic/", "pydantic_core/")),
    ("logging (structlog, JSON lines)", ("structlog/", "/logging/")),
    ("NATS client", ("/nats/",)),
    ("HTTP stack (uvicorn, Starlette, FastAPI)", ("uvicorn/", "starlette/", "fastapi/")),
    ("event store, relay, consumers (`sipas_events`)", ("sipas_events/",)),
    ("service and kit code (`sipas_<service>`, `sipas_kit`)", ("sipas_",)),
)
REST = "asyncio, greenlet and the rest"
IDLE = ("Condition.wait", "Event.wait", "Queue.get")  # a thread that waits: py-spy cannot always tell
Part = tuple[str, tuple[str, ...], tuple[str, ...]]   # label, path fragments, function names (any if empty)


def _frame(text: str) -> tuple[str, str]:
    """``func (path:line)`` -> (func, path)."""
    func, _, where = text.rpartition(" (")
    return func, where.rstrip(")").rsplit(":", 1)[0]


def _layer(frames: list[tuple[str, str]]) -> str:
    for _, path in reversed(frames):
        for name, marks in LAYERS:
            if any(m in path for m in marks):
                return name
    return REST


def _part(frames: list[tuple[str, str]], parts: Sequence[Part]) -> str:
    for name, paths, funcs in parts:
        if any(any(x in path for x in paths) and (not funcs or func.rsplit(".", 1)[-1] in funcs)
               for func, path in frames):  # py-spy names methods Class.method
            return name
    return "other"


def _short_path(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def collapsed_profile(raw: str, parts: Sequence[Part]) -> dict[str, Any]:
    """Aggregate py-spy's collapsed stacks: samples by layer (who owns the leaf), by part of the work (the first
    of ``parts`` with a frame anywhere on the stack), and by leaf function. Samples of threads waiting for work
    are counted apart and left out."""
    total = idle = 0
    layers: dict[str, int] = {}
    by_part: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if " (" in f]
        if frames and frames[-1][0] in IDLE:
            idle += n
            continue
        if not frames:
            frames = [("(no Python frame)", "")]
        total += n
        leaf = f"{frames[-1][0]} ({_short_path(frames[-1][1])})"
        for table, key in ((layers, _layer(frames)), (by_part, _part(frames, parts)), (leaves, leaf)):
            table[key] = table.get(key, 0) + n
    return {"samples": total, "idle_thread_samples": idle, "layers": layers, "parts": by_part,
            "leaves": sorted(leaves.items(), key=lambda kv: -kv[1])[:15]}
