"""Process helpers shared by the embedded servers: stop with a grace period, read log tails."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def process(pid: int | None) -> psutil.Process | None:
    """The live process with this pid, or None (gone, zombie, or never existed)."""
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        # A zombie has exited already; only its parent's wait() is missing.
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except psutil.Error:
        return None


def read_pid(path: Path) -> int | None:
    """First line of a pid file as an int (postmaster.pid and our own nats.pid both start that way)."""
    try:
        return int(path.read_text().splitlines()[0].strip())
    except (OSError, ValueError, IndexError):
        return None


def cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def stop_processes(procs: Iterable[psutil.Process], sig: int, timeout: float) -> None:
    """Send sig, wait up to timeout, then SIGKILL whatever is left and wait for it to be gone."""
    procs = list(procs)
    for proc in procs:
        _signal(proc, sig)
    alive = wait_gone(procs, timeout)
    for proc in alive:
        log.warning("pid %s ignored signal %s for %.0fs; killing it", proc.pid, signal.Signals(sig).name, timeout)
        _signal(proc, signal.SIGKILL)
    wait_gone(alive, timeout=10)


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until the processes have exited; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive:
        alive = [proc for proc in alive if not _exited(proc)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return alive


def _exited(proc: psutil.Process) -> bool:
    try:
        if proc.ppid() == os.getpid():
            # Our own child (also one whose Popen was dropped): waitpid succeeds only once every thread
            # has exited, so its sockets are closed, and it reaps the zombie.
            proc.wait(0)
            return True
        # Someone else's: an orphan's zombie has released everything but lingers until PID 1 reaps it,
        # which in some containers takes seconds.
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        return True


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass  # exited on its own in the meantime: that is what we wanted


def log_tail(path: Path, lines: int = 40) -> str:
    """The end of a server log, for error messages that explain themselves."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])
