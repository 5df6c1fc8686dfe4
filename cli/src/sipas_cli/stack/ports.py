"""Local TCP port helpers for the embedded stack."""

from __future__ import annotations

import socket
import time

LOCALHOST = "127.0.0.1"


def free_port(host: str = LOCALHOST) -> int:
    """A port nobody listens on right now (the kernel picks it; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


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
