"""Where a campaign's figures document is computed, and the state kept between computations.

An :class:`Engine` keeps, per (database, campaign), the measured counted ballots
(:class:`~sipas_scoring.application.measured.Measured`) as of a ballots-stream position, and the units'
memo. A :class:`Request` either carries every counted ballot (``since`` is None: the state is built
anew) or only what changed since ``since`` — the ballots newly counted and the ids no longer counted —
with everything else a document is computed from (tallies, names, dossiers: small, read again every
time). The engine applies a delta only to a state it holds that was made under the same fingerprint
(the campaign's definitions, the other producers' positions, the weights) at a position between
``since`` and ``at``; otherwise, or when the ballots it then holds are not as many as the database
counts, it answers ``document=None`` and the caller sends everything.

The engine runs in the calling process (:class:`LocalRunner`, a thread) or in one spawned process
(:class:`ProcessRunner`) that holds the states: the figures worker uses the latter, so the CPU-bound
computation never takes the interpreter from the service's consumers; only the delta crosses.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import structlog

from sipas_scoring.application.definitions import CampaignBasis
from sipas_scoring.application.measured import Counted, Measured

log = structlog.get_logger(__name__)

Key = tuple[str, str]
STATES_KEPT = 4
"""Campaigns whose measured ballots an engine keeps (a national round's are tens of MB)."""
MEMOS_KEPT = 32


@dataclass
class Context:
    """What a document is computed from besides the counted ballots: read in full every time."""

    by_agency: dict[str, Counter[str]]
    agencies: dict[str, dict[str, Any]]
    adjusted: dict[tuple[str, str], tuple[Fraction | None, int]]
    rated: list[dict[str, Any]]
    provinces: dict[str, str]

    def population(self, strata_seen: set[str]) -> dict[str, int] | None:
        """Strata populations, for the finite population correction only once every stratum's frame size
        is known."""
        population = {f"{d}|{s}": pop for (d, s), (_, pop) in self.adjusted.items()}
        return population if strata_seen <= set(population) else None


@dataclass
class Request:
    key: Key
    basis: CampaignBasis
    context: Context
    fingerprint: Any = None
    at: int | None = None
    """The ballots-stream position the request reflects; None: compute once, keep no state."""
    since: int | None = None
    """None: ``added`` is every counted ballot; else the position of the state the delta applies to."""
    added: list[Counted] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    count: int | None = None
    """How many ballots the database counts (checked after a delta)."""


@dataclass
class Reply:
    document: dict[str, Any] | None
    digest: str = ""
    recomputed: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _State:
    fingerprint: Any
    at: int
    measured: Measured


class Engine:
    """Computes documents and keeps the states (see the module's docstring). Thread-safe."""

    def __init__(self) -> None:
        self._states: OrderedDict[Key, _State] = OrderedDict()
        self._memos: OrderedDict[Key, dict[str, tuple[bytes, dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()

    def run(self, request: Request) -> Reply:
        with self._lock:
            return self._run(request)

    def _run(self, request: Request) -> Reply:
        from sipas_scoring.application.figures import CampaignFigures, digest

        started = time.perf_counter()
        key, basis = request.key, request.basis
        if request.since is None:
            measured = Measured.build(basis, request.added)
            if request.at is not None:  # a one-off computation leaves the state kept alone
                self._states.pop(key, None)
                self._keep(self._states, key, _State(request.fingerprint, request.at, measured), STATES_KEPT)
        else:
            state = self._states.get(key)
            if (state is None or request.at is None or state.fingerprint != request.fingerprint
                    or not request.since <= state.at <= request.at):
                return Reply(None)
            try:
                state.measured.apply(request.added, request.removed)
            except Exception:
                self._states.pop(key, None)
                raise
            if request.count is not None and len(state.measured) != request.count:
                log.warning("figures.state_disagrees", campaign_id=key[1], held=len(state.measured),
                            counted=request.count)
                self._states.pop(key, None)
                return Reply(None)
            state.at = request.at
            self._states.move_to_end(key)
            measured = state.measured
        c = request.context
        figures = CampaignFigures(basis, c.by_agency, measured.counted, c.agencies, c.population(measured.strata_seen),
                                  c.rated, c.provinces, memo=self._memos.get(key), measured=measured)
        document = figures.document()
        self._memos.pop(key, None)
        self._keep(self._memos, key, figures.memo, MEMOS_KEPT)
        return Reply(document, digest(document), figures.recomputed, time.perf_counter() - started)

    @staticmethod
    def _keep(kept: OrderedDict[Key, Any], key: Key, value: Any, limit: int) -> None:
        kept[key] = value  # the most recently computed last
        while len(kept) > limit:
            kept.popitem(last=False)

    def forget(self) -> None:
        with self._lock:
            self._states.clear()
            self._memos.clear()


class Runner:
    """Hands requests to an engine, and remembers what that engine holds (so the caller reads only the
    delta): per key, the position, fingerprint and ballot ids of its state."""

    def __init__(self) -> None:
        self.held: OrderedDict[Key, Held] = OrderedDict()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, asyncio.Lock]] = \
            weakref.WeakKeyDictionary()

    async def run(self, request: Request) -> Reply:
        raise NotImplementedError

    def lock(self, key: Key) -> asyncio.Lock:
        """One computation of a campaign at a time (per event loop: a lock belongs to one)."""
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        found = locks.get(key)
        if found is None:
            found = locks[key] = asyncio.Lock()
        return found

    def keep(self, key: Key, held: Held) -> None:
        self.held.pop(key, None)
        self.held[key] = held
        while len(self.held) > STATES_KEPT:
            self.held.popitem(last=False)


@dataclass
class Held:
    fingerprint: Any
    at: int
    ids: set[str]


class LocalRunner(Runner):
    """The engine in this process, in a thread (the event loop keeps going; the interpreter is shared)."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()

    async def run(self, request: Request) -> Reply:
        return await asyncio.to_thread(self.engine.run, request)


_ENGINE: Engine | None = None  # the spawned process's engine


def _remote(request: Request) -> Reply:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Engine()
    return _ENGINE.run(request)


def _ready() -> int:
    from sipas_scoring.application import figures  # noqa: F401  (imported once, before the first request)
    return 0


class ProcessRunner(Runner):
    """The engine in one spawned process that keeps the states. If that process dies, the next request
    starts another (which holds nothing, so the caller sends everything)."""

    def __init__(self) -> None:
        super().__init__()
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            self.held.clear()
        return self._executor

    async def start(self) -> None:
        """Start the process and import the figures there, before the first refresh needs them."""
        await asyncio.wrap_future(self._pool().submit(_ready))

    async def run(self, request: Request) -> Reply:
        try:
            return await asyncio.wrap_future(self._pool().submit(_remote, request))
        except BrokenProcessPool:
            log.warning("figures.process_lost")
            self._drop()
            raise

    def _drop(self) -> None:
        executor, self._executor = self._executor, None
        self.held.clear()
        if executor is None:
            return
        processes = list(getattr(executor, "_processes", {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(timeout=0.5)
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=2)
                if process.is_alive():
                    process.kill()
                    process.join(timeout=2)

    def close(self) -> None:
        """Stop the process (at once if it is computing: its states are a cache)."""
        self._drop()


def held_after(held: Held | None, fingerprint: Any, at: int | None) -> Held | None:
    """The held state a delta can start from, or None when everything must be sent."""
    if held is None or at is None or held.fingerprint != fingerprint or held.at > at:
        return None
    return held


def fingerprint_of(basis: CampaignBasis, positions: Mapping[str, int], context: Context) -> Any:
    """What a state is valid under besides its ballots: the definitions, the positions of every producer
    but the ballots (units and weights come from sampling), and the weights themselves."""
    return (basis, tuple(sorted((p, v) for p, v in positions.items() if p != "ballots")),
            tuple(sorted(context.adjusted.items())))
