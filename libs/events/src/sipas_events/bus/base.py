"""The transport contract. Two implementations: JetStream (real) and in-memory (tests, dev).

The contract test suite (``tests/contract``) runs against both, so code written against this
interface behaves the same on either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutMessage:
    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishResult:
    stream: str
    seq: int
    duplicate: bool


@dataclass(frozen=True)
class StreamConfig:
    name: str
    subjects: list[str]
    replicas: int = 1
    duplicate_window: float = 120.0   # seconds during which a repeated Nats-Msg-Id is dropped
    max_age: float = 0.0              # 0 keeps messages forever


@dataclass(frozen=True)
class ConsumerConfig:
    durable: str
    stream: str
    ack_wait: float = 30.0
    max_ack_pending: int = 2048
    filter_subject: str | None = None


class Delivery(Protocol):
    """One delivered message; ack after the effect has committed."""

    @property
    def data(self) -> bytes: ...
    @property
    def subject(self) -> str: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def stream_seq(self) -> int: ...
    @property
    def num_delivered(self) -> int: ...
    @property
    def num_pending(self) -> int: ...
    async def ack(self) -> None: ...
    async def nak(self, delay: float | None = None) -> None: ...
    async def term(self) -> None: ...


class Subscription(Protocol):
    async def fetch(self, batch: int, timeout: float) -> Sequence[Delivery]:
        """Up to ``batch`` messages; an empty list when none arrived within ``timeout``."""
        ...


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


class Bus(Protocol):
    url: str | None
    """Where another process of ours reaches the same bus (a rebuild's reader process); None: nowhere (in memory)."""

    async def ensure_stream(self, config: StreamConfig) -> None: ...
    async def publish_batch(self, messages: Sequence[OutMessage]) -> list[PublishResult]:
        """Publish pipelined, in order; return when every message is stored (or raise)."""
        ...
    async def subscribe(self, config: ConsumerConfig) -> Subscription: ...
    def read_stream(self, stream: str, subject: str | None = None, start_seq: int = 1) -> AsyncIterator[StoredMessage]:
        """Every message currently in a stream from ``start_seq``, then stop (no waiting)."""
        ...
    async def stream_size(self, stream: str) -> int:
        """How many messages ``stream`` holds now."""
        ...
    async def close(self) -> None: ...


class BusUnavailable(Exception):
    """The transport cannot be reached right now; retry later."""
