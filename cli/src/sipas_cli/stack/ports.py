"""Local TCP port helpers for the embedded stack."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

LOCALHOST = "127.0.0.1"


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux default; macOS uses 49152-65535, which this also avoids


def _candidate_ranges() -> list[range]:
    """Port ranges outside the kernel's ephemeral range.

    A port picked "for later" must not be one the kernel may hand out as the local end of an outgoing
    connection in the meantime (a service connecting to PostgreSQL), or the later bind fails with
    EADDRINUSE. So pick from the registered range below the ephemeral one (or above it).
    """
    low, high = _ephemeral_range()
    ranges = [range(max(10000, 1024), low - 64)] if low - 64 > 10000 else []
    if high < 65535 - 1000:
        ranges.append(range(high + 1, 65535 - 64))
    return ranges or [range(20000, 30000)]


def free_port_block(count: int = 1, host: str = LOCALHOST, attempts: int = 200) -> int:
    """The first of `count` consecutive ports that nobody listens on, outside the ephemeral range."""
    rng = random.SystemRandom()
    ranges = _candidate_ranges()
    for _ in range(attempts):
        span = rng.choice(ranges)
        base = rng.randrange(span.start, span.stop - count)
        if not any(port_in_use(base + i, host) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports found after {attempts} attempts")


def free_port(host: str = LOCALHOST) -> int:
    """A port nobody listens on right now, outside the ephemeral range (another process could still take it)."""
    return free_port_block(1, host)


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """True when something already listens on host:port.

    SO_REUSEADDR makes the bind ignore sockets lingering in TIME_WAIT after a restart, the same way
    PostgreSQL and nats-server bind, so only a live listener counts as "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def wait_port_free(port: int, host: str = LOCALHOST, timeout: float = 5.0) -> bool:
    """Wait for a listener to go away (a server we just stopped may close its socket a moment late)."""
    deadline = time.monotonic() + timeout
    while port_in_use(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
