"""The benchmarks leave through their ``finally`` blocks when stopped with SIGTERM, so the PostgreSQL, NATS and
services they started are stopped and their folders removed (``bench.common.exit_cleanly_on_sigterm``)."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_a_benchmark_stopped_with_sigterm_runs_its_cleanup(tmp_path):
    marker = tmp_path / "cleaned"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, time
        from bench.common import exit_cleanly_on_sigterm
        exit_cleanly_on_sigterm()
        try:
            print("started", flush=True)
            time.sleep(60)
        finally:
            pathlib.Path({str(marker)!r}).write_text("stopped the stack")
    """)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "started"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 128 + signal.SIGTERM  # not after its minute of sleep
    assert marker.read_text() == "stopped the stack"
