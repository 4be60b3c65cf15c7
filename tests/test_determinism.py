"""The statistics are the same to the bit in every process: whether the compiled kernels were
just compiled or loaded from numba's cache (a restart, a second worker process) must not change
a record, or a cluster's processes and a resumed run disagree in the last digits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every field of every result over the real 1 s closes, as exact hex floats.
_RUN = """
import dataclasses
import sys
sys.path.insert(0, "tests/analytics")
from analytics_oracle import load_real_bars
from pairflow.analytics import EstimatorSettings, run_history
bars = load_real_bars()
for window in (60, 300):
    for result in run_history(EstimatorSettings(window=window), bars.btc, bars.eth):
        fields = dataclasses.astuple(result)
        print(" ".join(v.hex() if isinstance(v, float) else repr(v) for v in fields))
"""


def test_fresh_compiled_and_cached_kernels_give_identical_bits(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), "PATH": "/usr/bin:/bin"}

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", _RUN], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    compiled = run()  # empty cache: every kernel compiled in this process
    assert any((tmp_path / "numba-cache").rglob("*.nbc"))
    cached = run()  # the same kernels loaded from the cache
    assert compiled.count("\n") > 1000  # two windows over ~11 minutes of 1 s bars
    assert compiled == cached
