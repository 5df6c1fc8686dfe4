"""Length-prefixed pickles over a pipe to and from a child process of our own.

A child that does CPU-bound work beside a service (the scoring figures, a rebuild's reader) talks to its
parent over its stdin and stdout: each message is 8 bytes of length, big-endian, then a pickle. Both ends
are this code base's own processes over a private pipe, so the pickles are trusted.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any, BinaryIO

_HEAD = 8


def encode(value: Any) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(_HEAD, "big") + body


def write(out: BinaryIO, value: Any) -> None:
    """One frame, flushed (the child's side)."""
    out.write(encode(value))
    out.flush()


def read(source: BinaryIO) -> tuple[bool, Any]:
    """One frame, blocking (the child's side): (False, None) when the pipe closed before a whole frame."""
    head = source.read(_HEAD)
    if len(head) < _HEAD:
        return False, None
    body = source.read(int.from_bytes(head, "big"))
    return True, pickle.loads(body)  # noqa: S301  (our parent, a private pipe)


async def aread(reader: asyncio.StreamReader) -> Any:
    """One frame (the parent's side); ``asyncio.IncompleteReadError`` if the child's pipe closed."""
    size = int.from_bytes(await reader.readexactly(_HEAD), "big")
    return pickle.loads(await reader.readexactly(size))  # noqa: S301  (our own child, a private pipe)
