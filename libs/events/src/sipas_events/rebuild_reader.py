"""A rebuild's reader in a process of its own: it reads the producer's stream, validates and decodes each
envelope and has the projection prepare each event (:attr:`Projection.rebuild_prepare`), and hands the
consumer batches it only has to apply.

Reading, validating and preparing was half of a rebuild's time in the service's process, which the runs
spend the other half of; in a process of its own it runs on another core at the same time
(``docs/performance-scoring.md``). What crosses the pipe must be cheap to unpickle — a pydantic model takes
longer to unpickle than to validate — so each event crosses as a flat tuple: its envelope's bytes (for a
dead letter or a fallback to the handlers), the fields of its :class:`~sipas_events.envelope.Stamp`, and what
the projection prepared, plain data by contract. An envelope the child could not validate, an event it
could not decode or prepare, or one the projection has no handler for crosses as its bytes alone, and the
consumer treats it as it always did.

The child is ``python -m sipas_events.rebuild_reader``; the consumer writes it one frame (the spec) on its
stdin and reads frames from its stdout (:mod:`sipas_events.frames`): ``("batch", [...])`` many times, then
``("end", None)`` or ``("error", text)``. It reads from the start of the stream to its last message when
it began, as :meth:`JetStreamBus.read_stream` does, and stops when its stdout closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any, BinaryIO

from sipas_events import frames
from sipas_events.bus.base import BusUnavailable
from sipas_events.envelope import Envelope, Stamp

BATCH = 500
"""Events a frame carries."""
SHARE = 0.6
"""The part of the batches the child prepares; it sends the others as bytes, which the consumer validates,
decodes and prepares itself. The runs leave the consumer's process idle for half its time or more, and the
child, which also reads, is the slower of the two when it prepares everything (measured, see the Notes of
``docs/performance-scoring.md``); sharing the work keeps both busy."""

Element = bytes | tuple[Any, ...]
"""An event as the child sends it: its envelope's bytes, or (bytes, id as an int, type, time, position,
correlation id, event name, prepared)."""


def ref_of(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a module-level function, for the child to import."""
    if "<" in fn.__qualname__:
        raise ValueError(f"{fn.__qualname__} is not a module-level function")
    return f"{fn.__module__}:{fn.__qualname__}"


def _load(ref: str) -> Callable[..., Any]:
    module, _, name = ref.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found  # type: ignore[no-any-return]


def stamped(element: tuple[Any, ...]) -> tuple[Stamp, None, Any, bytes]:
    """A prepared element as the consumer reads ahead: its stamp, no event (decoded from the bytes if a
    handler needs it), what was prepared, the envelope's bytes."""
    raw, id_int, type_, time, position, correlationid, name, prepared = element
    return Stamp(uuid.UUID(int=id_int), type_, time, position, correlationid, name), None, prepared, raw


async def read_in_process(url: str, stream: str, prepare: Callable[..., Any], handled: set[str],
                          context: Any, name: str) -> AsyncGenerator[list[Element], None]:
    """The stream's events in batches, read and prepared by a child process; raises
    :class:`BusUnavailable` if the child fails or is lost (the rebuild then stops as if NATS had)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipas_events.rebuild_reader", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(frames.encode({"url": url, "stream": stream, "prepare": ref_of(prepare),
                                           "handled": sorted(handled), "context": context, "name": name,
                                           "batch": BATCH, "share": SHARE}))
        await process.stdin.drain()
        while True:
            try:
                kind, value = await frames.aread(process.stdout)
            except asyncio.IncompleteReadError:
                raise BusUnavailable(f"the reader process of {stream} was lost") from None
            if kind == "end":
                return
            if kind == "error":
                raise BusUnavailable(f"the reader process of {stream} failed: {value}")
            yield value
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), 5.0)


def element(data: bytes, handled: set[str], prepare: Callable[..., Any], context: Any,
            decode: Callable[[Envelope], Any]) -> Element:
    """One message as the child sends it (see :data:`Element`)."""
    try:
        env = Envelope.model_validate_json(data)
        if env.position is None or env.event_name not in handled:
            return data
        prepared = prepare(decode(env), env, context)
    except Exception:
        return data  # the consumer meets the problem again, and treats it as it always did
    if prepared is None:
        return data
    return (data, env.id.int, env.type, env.time, env.position, env.correlationid, env.event_name, prepared)


async def _serve(spec: dict[str, Any], out: BinaryIO) -> None:
    from sipas_events.bus.jetstream import JetStreamBus
    from sipas_events.catalogue import CATALOGUE

    prepare = _load(spec["prepare"])  # importing its module registers the projection's events
    handled, context, share, size = set(spec["handled"]), spec["context"], spec["share"], spec["batch"]
    bus = await JetStreamBus.connect(spec["url"], spec["name"])
    try:
        batch: list[Element] = []
        sent = 0
        ours = share >= 1  # whether the child prepares the batch being filled (batches spread evenly)
        async for msg in bus.read_stream(spec["stream"]):
            batch.append(element(msg.data, handled, prepare, context, CATALOGUE.decode) if ours else msg.data)
            if len(batch) >= size:
                frames.write(out, ("batch", batch))
                batch, sent = [], sent + 1
                ours = int((sent + 1) * share) > int(sent * share)
        if batch:
            frames.write(out, ("batch", batch))
        frames.write(out, ("end", None))
    finally:
        await bus.close()


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")  # frames only on the real stdout; anything printed goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    more, spec = frames.read(sys.stdin.buffer)
    if not more:
        return
    try:
        asyncio.run(_serve(spec, out))
    except BrokenPipeError:
        return  # the consumer stopped reading (the rebuild ended or failed): nothing to tell
    except Exception as exc:
        with contextlib.suppress(BrokenPipeError):
            frames.write(out, ("error", repr(exc)[:2000]))


if __name__ == "__main__":
    main()
