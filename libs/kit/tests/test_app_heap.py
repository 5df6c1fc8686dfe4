"""A service moves what start-up made out of the collector's generations once, when it is up."""

import subprocess
import sys

SCRIPT = """
import gc
from sipas_kit import app

assert gc.get_freeze_count() == 0
kept = [[i] for i in range(1000)]  # containers the collector tracks, alive at start-up
assert id(kept[0]) in {id(o) for o in gc.get_objects()}
app._freeze_startup_heap()
frozen = gc.get_freeze_count()
assert frozen >= 1000, frozen
walked = {id(o) for o in gc.get_objects()}  # what a collection walks: no longer these
assert not any(id(k) in walked for k in kept)
app._freeze_startup_heap()  # a second start-up in the same process freezes nothing more
assert gc.get_freeze_count() == frozen
print("ok", frozen)
"""


def test_the_start_up_heap_is_frozen_once_per_process():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
