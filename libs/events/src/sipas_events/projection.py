"""A projection: the tables a service keeps of another service's events, and its handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from sipas_events.envelope import Envelope, Stamp

Handler = Callable[[AsyncConnection, Any, Envelope], Awaitable[None]]
RunHandler = Callable[[AsyncConnection, Sequence[tuple[Any, Envelope]]], Awaitable[None]]
RebuildHandler = Callable[[AsyncConnection, Sequence[tuple[Any, Envelope | Stamp]]], Awaitable[None]]
Hook = Callable[[AsyncConnection], Awaitable[None]]
Prepare = Callable[[Any, Any, Any], Any]
ContextHook = Callable[[AsyncConnection], Awaitable[Any]]


@dataclass
class Projection:
    """``handlers`` maps an event name (``AgencyRegistered``) to ``on_<event>(conn, event, envelope)``.

    Handlers receive the event decoded to its latest catalogue version and must be idempotent
    upserts that depend only on the event (its data, time and ids), so a rebuild reproduces them.

    ``run_handler`` (optional, set with :meth:`on_run`) applies a whole contiguous run of events at
    once — the events not applied before, in position order, each decoded with its envelope — so a
    projection can write a run set-based (a few statements a run instead of a few an event). It must
    leave exactly the state the per-event handlers would leave applying the same events one by one,
    which stay required: when the run handler raises (a bad event, or ``NotReady``), the consumer
    undoes what it wrote and applies the run through the handlers, which find the event at fault;
    dead letters are replayed through them too.

    ``rebuild_handler`` (optional, :meth:`on_rebuild_run`) applies runs instead of ``run_handler``
    while the projection is rebuilt from its stream: it may leave out state derived from the rows it
    writes (counts, sums) provided it records, in the same transaction, that the state is owed — the
    projection's own business — and ``rebuilt`` (:meth:`after_rebuild`), called once in a transaction
    after the replay, derives it. A rebuild interrupted before ``rebuilt`` leaves the owed state to
    the projection's handlers (which must settle what is owed before they add to it).

    ``rebuild_prepare`` (optional, :meth:`prepare_for_rebuild`) is called by a rebuild's reader on each
    event it decoded, as ``prepare(event, envelope, context)``, ahead of the event's run and outside any
    transaction: what it returns (not None) is what ``rebuild_handler`` receives in place of the event
    (the per-event handlers always get the event). It is for the work a run would do on each event alone
    (validating, serialising, encoding), which the reader then does while the runs wait on PostgreSQL.
    It must be a module-level function that touches no database and returns plain picklable data (tuples,
    strings, bytes; no models): on a long stream the reader runs in a process of its own
    (:mod:`sipas_events.rebuild_reader`), which imports the function by name and sends what it returns
    across a pipe. ``context`` is what ``rebuild_context`` (optional, :meth:`context_for_rebuild`)
    returned once at the start of the rebuild (picklable too; None without it). If ``prepare`` raises or
    returns None, the event goes to ``rebuild_handler`` as it is. While a projection is rebuilt, the
    envelopes ``rebuild_handler`` receives beside prepared events may be :class:`sipas_events.envelope.Stamp`
    (``id``, ``type``, ``time``, ``position``, ``correlationid``, ``event_name``: no data, the prepared
    event stands for it).
    """

    name: str
    producer: str
    tables: Sequence[Table]
    handlers: dict[str, Handler] = field(default_factory=dict)
    run_handler: RunHandler | None = None
    rebuild_handler: RebuildHandler | None = None
    rebuilt: Hook | None = None
    rebuild_prepare: Prepare | None = None
    rebuild_context: ContextHook | None = None

    def on(self, event_name: str) -> Callable[[Handler], Handler]:
        def wrap(fn: Handler) -> Handler:
            self.handlers[event_name] = fn
            return fn

        return wrap

    def on_run(self, fn: RunHandler) -> RunHandler:
        self.run_handler = fn
        return fn

    def on_rebuild_run(self, fn: RebuildHandler) -> RebuildHandler:
        self.rebuild_handler = fn
        return fn

    def after_rebuild(self, fn: Hook) -> Hook:
        self.rebuilt = fn
        return fn

    def prepare_for_rebuild(self, fn: Prepare) -> Prepare:
        self.rebuild_prepare = fn
        return fn

    def context_for_rebuild(self, fn: ContextHook) -> ContextHook:
        self.rebuild_context = fn
        return fn
