"""Where a campaign's figures document is computed, and the state kept between computations.

An :class:`Engine` keeps, per (database, campaign), the measured counted ballots
(:class:`~sipas_scoring.application.measured.Measured`) and the agencies' tallies as of a ballots-stream
position, and the units' memo. A :class:`Request` either carries every counted ballot and every tally
(``since`` is None: the state is built anew) or only what changed since ``since`` — the ballots newly
counted, the ids no longer counted, and the tallies' change as those ballots' answer codes
(:class:`TallyDeltas`; an agency with a changed ballot without codes has its tallies read again) — with
everything else a document is computed from (weights, dossiers, province names: small, read again every
time). The engine applies a delta only to a state it holds that was made under the same fingerprint (the
campaign's definitions, the other producers' positions, the weights, the tallies' revision) at the very
position ``since`` — a state that moved on since (a reply the caller never saw: a refresh cancelled, or
failing after the engine replied) would count the delta's ballots' tallies twice; otherwise it answers
``text=None`` and the caller sends everything.

The reply is the document as canonical JSON text (what is stored and hashed, as it is), its digest, the
province it covers and how many counted ballots the state holds — the caller counts the database's meanwhile
and, when the two disagree, discards the document and sends everything. The dictionary never crosses, and
its rows' parts may be shared between documents (see :mod:`~sipas_scoring.application.figures`).

The engine runs in the calling process (:class:`LocalRunner`, a thread) or in one spawned process
(:class:`ProcessRunner`) that holds the states: the figures worker uses the latter, so the CPU-bound
computation never takes the interpreter from the service's consumers; only the delta and the text cross.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import sys
import threading
import time
import weakref
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import structlog

from sipas_events import frames
from sipas_scoring.application.definitions import CampaignBasis
from sipas_scoring.application.measured import Batch, Counted, Measured
from sipas_scoring.domain.codes import Codebook

log = structlog.get_logger(__name__)

Key = tuple[str, str]
STATES_KEPT = 4
"""Campaigns whose measured ballots an engine keeps (a national round's are tens of MB)."""
MEMOS_KEPT = 32


@dataclass
class Context:
    """What a document is computed from besides the counted ballots. In a delta (:attr:`Request.retallied`)
    ``by_agency`` and ``agencies`` hold only the agencies re-read; the rest is read in full every time."""

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
    added: Batch | list[Counted] = field(default_factory=Batch)
    removed: list[str] = field(default_factory=list)
    retallied: list[str] = field(default_factory=list)
    """In a delta: the agencies whose tallies were read again (those ``context.by_agency`` lacks have none
    now); every other agency's tallies are the state's, changed by ``deltas``."""
    deltas: TallyDeltas = field(default_factory=lambda: TallyDeltas())
    """In a delta: per agency, the answer codes of its ballots newly counted and no longer counted."""


@dataclass
class TallyDeltas:
    """Per agency, the answer codes of the ballots that came (``plus``) and went (``minus``): their
    tallies (:meth:`Codebook.tallies`) are the change of the agency's tallies."""

    plus: dict[str, list[bytes]] = field(default_factory=dict)
    minus: dict[str, list[bytes]] = field(default_factory=dict)

    def add(self, agency_id: str, codes: bytes, counted: bool) -> None:
        (self.plus if counted else self.minus).setdefault(agency_id, []).append(codes)

    def agencies(self) -> list[str]:
        return sorted({*self.plus, *self.minus})

    def without(self, agency_ids: set[str]) -> TallyDeltas:
        """The deltas of every other agency (those of ``agency_ids`` are read again instead)."""
        return TallyDeltas({a: c for a, c in self.plus.items() if a not in agency_ids},
                           {a: c for a, c in self.minus.items() if a not in agency_ids})

    @staticmethod
    def _changes(book: Codebook, codes: dict[str, list[bytes]], agencies: list[str]) -> list[dict[str, int]]:
        """Per agency of ``agencies``, the tallies of its ``codes`` (every agency's counted at once)."""
        owners = [k for k, agency_id in enumerate(agencies) for _ in codes.get(agency_id, ())]
        rows = np.frombuffer(b"".join(c for agency_id in agencies for c in codes.get(agency_id, ())),
                             dtype=np.uint8).reshape(len(owners), book.width)
        return book.tallies_of(rows, np.array(owners, dtype=np.int64), len(agencies))

    def apply(self, book: Codebook, by_agency: dict[str, Counter[str]],
              carried: Carried | None = None) -> list[str]:
        """Change ``by_agency`` in place; returns the agencies left with no tallies (removed from it). With
        ``carried``, the digests and sums kept beside the old tallies objects follow each change."""
        emptied = []
        agencies = self.agencies()
        changes = {1: self._changes(book, self.plus, agencies), -1: self._changes(book, self.minus, agencies)}
        # id(old object) -> (old object: held, so no new object takes its id meanwhile; new object; net change)
        moved: dict[int, tuple[Counter[str], Counter[str], dict[str, int]]] = {}
        for k, agency_id in enumerate(agencies):
            # A new object (tallies are never changed in place: digests are kept beside the object they were
            # made of), copied at C speed; only the keys the change names are visited in Python.
            old = by_agency.get(agency_id)
            bag: Counter[str] = Counter(old or {})
            get = bag.get
            came, went = changes[1][k], changes[-1][k]
            if not went and all(count > 0 for count in came.values()):  # ballots only came (most agencies):
                net = came  # every count grows, none reaches zero
                dict.update(bag, {tally: get(tally, 0) + count for tally, count in came.items()})  # set, not add
            else:
                net = {}
                for sign, found in ((1, came), (-1, went)):
                    for tally, count in found.items():
                        bag[tally] = get(tally, 0) + sign * count
                        net[tally] = net.get(tally, 0) + sign * count
                for tally in net:
                    count = bag[tally]
                    if count < 0:
                        raise ValueError(f"the tallies of agency {agency_id} would go negative")
                    if not count:
                        del bag[tally]
            if bag:
                by_agency[agency_id] = bag
                if old is not None:
                    moved[id(old)] = (old, bag, net)
                    if carried is not None:
                        carried.digest(agency_id, old, bag, self.plus.get(agency_id, ()),
                                       self.minus.get(agency_id, ()))
            else:
                by_agency.pop(agency_id, None)
                emptied.append(agency_id)
        if carried is not None:
            carried.sums(moved)
        return emptied


@dataclass
class Carried:
    """What the engine keeps beside the agencies' tallies objects, carried to the new objects a change makes
    (:meth:`TallyDeltas.apply`) instead of being made again from whole tallies: an agency's digest chains
    the old one with the change (equal digests still mean equal tallies: equal starts and equal changes),
    and a province's sum takes its changed agencies' changes."""

    tally_digests: dict[str, tuple[Counter[str], bytes]]
    tally_sums: dict[str, tuple[tuple[Counter[str], ...], Counter[str]]]

    def digest(self, agency_id: str, old: Counter[str], new: Counter[str], plus: Sequence[bytes],
               minus: Sequence[bytes]) -> None:
        """The change is the answer codes of the ballots that came and went (their tallies are the change), in
        a canonical order: writing them is cheaper than writing the tallies they change."""
        found = self.tally_digests.get(agency_id)
        if found is not None and found[0] is old:
            change = b"%d:%d:%s%s" % (len(plus), len(minus), b"".join(sorted(plus)), b"".join(sorted(minus)))
            self.tally_digests[agency_id] = (new, hashlib.sha256(b"changed" + found[1] + change).digest())

    def sums(self, moved: dict[int, tuple[Counter[str], Counter[str], dict[str, int]]]) -> None:
        for key, (objects, total) in list(self.tally_sums.items()):
            if not any(id(o) in moved for o in objects):
                continue
            summed = Counter(total)
            get = summed.get
            for o in objects:
                found = moved.get(id(o))
                if found is not None:
                    for tally, count in found[2].items():
                        summed[tally] = get(tally, 0) + count
            self.tally_sums[key] = (tuple(moved[id(o)][1] if id(o) in moved else o for o in objects), +summed)


@dataclass
class Reply:
    text: str | None
    """The document as canonical JSON; None: the delta could not be applied (send everything)."""
    digest: str = ""
    province: str | None = None
    recomputed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    held: int = 0
    """How many counted ballots the state the document was computed from holds (the caller checks it against
    the database's count, see :func:`~sipas_scoring.application.figures._checked`)."""


@dataclass
class _State:
    fingerprint: Any
    at: int
    measured: Measured
    by_agency: dict[str, Counter[str]]
    agencies: dict[str, dict[str, Any]]
    tally_digests: dict[str, tuple[Counter[str], bytes]] = field(default_factory=dict)
    """Agencies' tally digests, each beside the tallies object it was made of (see
    :meth:`~sipas_scoring.application.figures.CampaignFigures._tally_digest`)."""
    tally_sums: dict[str, tuple[tuple[Counter[str], ...], Counter[str]]] = field(default_factory=dict)
    """Provinces' summed tallies, each beside the agencies' tallies objects it was summed from."""


class Engine:
    """Computes documents and keeps the states (see the module's docstring). Thread-safe."""

    def __init__(self) -> None:
        self._states: OrderedDict[Key, _State] = OrderedDict()
        self._memos: OrderedDict[Key, tuple[dict[str, Any], dict[str, Any]]] = OrderedDict()  # rows, texts
        self._lock = threading.Lock()

    def run(self, request: Request) -> Reply:
        with self._lock:
            return self._run(request)

    def _run(self, request: Request) -> Reply:
        from sipas_scoring.application.figures import CampaignFigures, province_of

        started = time.perf_counter()
        key, basis, c = request.key, request.basis, request.context
        tally_digests: dict[str, tuple[Counter[str], bytes]] = {}
        tally_sums: dict[str, tuple[tuple[Counter[str], ...], Counter[str]]] = {}
        if request.since is None:
            measured = Measured.build(basis, request.added)
            by_agency, agencies = c.by_agency, c.agencies
            if request.at is not None:  # a one-off computation leaves the state kept alone
                self._states.pop(key, None)
                self._keep(self._states, key, _State(request.fingerprint, request.at, measured, dict(by_agency),
                                                     dict(agencies), tally_digests, tally_sums), STATES_KEPT)
        else:
            state = self._states.get(key)
            if (state is None or request.at is None or state.fingerprint != request.fingerprint
                    or state.at != request.since or request.at < request.since):
                return Reply(None)
            try:
                state.measured.apply(request.added, request.removed)
                for agency_id in request.retallied:
                    state.by_agency.pop(agency_id, None)
                    state.agencies.pop(agency_id, None)
                state.by_agency.update(c.by_agency)
                carried = Carried(state.tally_digests, state.tally_sums)
                for agency_id in request.deltas.apply(Codebook.of(basis.instrument), state.by_agency, carried):
                    state.agencies.pop(agency_id, None)
                state.agencies.update({a: info for a, info in c.agencies.items() if a in state.by_agency})
            except Exception:
                self._states.pop(key, None)
                raise
            state.at = request.at
            self._states.move_to_end(key)
            measured, by_agency, agencies = state.measured, state.by_agency, state.agencies
            tally_digests, tally_sums = state.tally_digests, state.tally_sums
            for gone in tally_digests.keys() - by_agency.keys():
                del tally_digests[gone]
        memo, texts = self._memos.get(key, (None, None))
        figures = CampaignFigures(basis, by_agency, None, agencies, c.population(measured.strata_seen),
                                  c.rated, c.provinces, memo=memo, measured=measured, texts=texts,
                                  tally_digests=tally_digests, tally_sums=tally_sums)
        text, document = figures.text()
        self._memos.pop(key, None)
        self._keep(self._memos, key, (figures.memo, figures.texts), MEMOS_KEPT)
        return Reply(text, hashlib.sha256(text.encode()).hexdigest(), province_of(document), figures.recomputed,
                     time.perf_counter() - started, len(measured))

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


class ProcessRunner(Runner):
    """The engine in a child process (``python -m sipas_scoring.application.figures_engine``) that keeps the
    states; requests and replies cross its stdin and stdout as length-prefixed pickles, one at a time. The
    child leaves when its stdin closes — when :meth:`close` closes it, or when the service dies however it
    dies — so it never outlives the service. If it is lost, the next request starts another (which holds
    nothing, so the caller sends everything)."""

    def __init__(self) -> None:
        super().__init__()
        self._process: asyncio.subprocess.Process | None = None
        self._turn = asyncio.Lock()
        self._closing = False

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the process and import the figures there, before the first refresh needs them."""
        await self._exchange(None)

    async def run(self, request: Request) -> Reply:
        reply = await self._exchange(request)
        assert isinstance(reply, Reply)
        return reply

    async def _exchange(self, request: Request | None) -> Any:
        async with self._turn:
            if self._process is None or self._process.returncode is not None:
                self.held.clear()
                self._closing = False
                self._process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "sipas_scoring.application.figures_engine",
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            process = self._process
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(frames.encode(request))
                await process.stdin.drain()
                status, value = await frames.aread(process.stdout)
            except (OSError, asyncio.IncompleteReadError) as exc:
                if not self._closing:
                    log.warning("figures.process_lost", error=repr(exc)[:200])
                await self._stop()
                raise RuntimeError("the figures process was lost") from exc
            except BaseException:
                await self._stop()  # cancelled half-way: the stream is out of step, start afresh next time
                raise
        if status == "error":
            raise RuntimeError(f"the figures process failed: {value}")
        return value

    async def _stop(self) -> None:
        process, self._process = self._process, None
        self.held.clear()
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert process.stdin is not None
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 2.0)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 2.0)

    async def close(self) -> None:
        """Stop the process (at once if it is computing or still starting: its states are a cache)."""
        self._closing = True
        process = self._process
        if process is not None and process.returncode is None and self._turn.locked():
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await self._stop()


def serve() -> None:
    """The child's loop: a request in, a reply out, until stdin closes. Logs go to stderr; stdout carries
    only replies."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer
    engine = Engine()
    gc.disable()  # collections run between requests, after the reply (see _settle_garbage), never during one
    from sipas_scoring.application import figures  # noqa: F401  (imported once, before the first request)

    served = 0
    while True:
        more, request = frames.read(requests)
        if not more:
            return
        try:
            out: tuple[str, Any] = ("ok", None if request is None else engine.run(request))
        except Exception as exc:
            out = ("error", repr(exc)[:2000])
        frames.write(replies, out)
        served += 1
        _settle_garbage(served)


FULL_COLLECTION_EVERY = 50
"""Requests between two full collections of the child's garbage (see :func:`_settle_garbage`)."""


def _settle_garbage(served: int) -> None:
    """What outlives a request — the kept states, memos and shared figures: hundreds of thousands of objects
    — is long-lived by design. Frozen after each request (:func:`gc.freeze`), it is no longer traversed by
    later collections (which otherwise took 10 to 20 % of a national refresh, more as the state grew). The
    child runs with automatic collection off (:func:`serve`): refcounting frees a request's garbage as ever
    (a refresh leaves no cycles: a collection of the young after each one found nothing, yet took 3-5 % of
    the process's time in a national drive, traversing the tens of thousands of rows, figures and texts it
    keeps), so what a request made is frozen as it is. Every ``FULL_COLLECTION_EVERY`` requests a full
    collection runs over everything, after the reply is written, so a cycle is still reclaimed."""
    if served % FULL_COLLECTION_EVERY == 0:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def held_after(held: Held | None, fingerprint: Any, at: int | None) -> Held | None:
    """The held state a delta can start from, or None when everything must be sent."""
    if held is None or at is None or held.fingerprint != fingerprint or held.at > at:
        return None
    return held


def fingerprint_of(basis: CampaignBasis, positions: Mapping[str, int],
                   adjusted: Mapping[tuple[str, str], tuple[Fraction | None, int]], revision: str | None) -> Any:
    """What a state is valid under besides its ballots: the definitions, the positions of every producer
    but the ballots (units and weights come from sampling; names from the registry), the weights themselves,
    and the tallies' revision (a recount replaced them)."""
    return (basis, tuple(sorted((p, v) for p, v in positions.items() if p != "ballots")),
            tuple(sorted(adjusted.items())), revision)


if __name__ == "__main__":
    from sipas_scoring.application.figures_engine import serve as _serve  # the module's own classes, not __main__'s

    _serve()
