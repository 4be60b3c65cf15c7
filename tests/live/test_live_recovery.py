"""A live run killed with SIGKILL and restarted on its recovery directory: the feed's trades
all arrive once (backfilled from the snapshot's trade ids) and the bars equal a clean replay."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.binance_server import BinanceTestServer, Faults, Tape
from tests.live.harness import (
    FAST_ENV,
    SYMBOLS,
    TIMEFRAMES,
    assert_bars_equal,
    bars_of,
    comparable,
    replay_bars,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.live, pytest.mark.timeout(180)]
SPEED = 4.0


def _live(server: BinanceTestServer, store: Path, recovery: Path, duration_s: float):
    command = [sys.executable, "-m", "pairflow.cli", "live", "--symbols", ",".join(SYMBOLS),
               "--timeframes", TIMEFRAMES, "--store", str(store), "--ws-url", server.ws_url,
               "--rest-url", server.rest_url, "--duration", f"{duration_s:.1f}",
               "--recovery-dir", str(recovery), "--snapshot-interval", "1"]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **FAST_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_during_a_live_run_then_resume_loses_and_doubles_nothing(tmp_path):
    tape = Tape.load(start_s=200.0, length_s=60.0)
    reference = replay_bars(tmp_path, tape)
    tape_s = (tape.last_ms - tape.first_ms) / 1000 / SPEED
    store, recovery = tmp_path / "live.db", tmp_path / "recovery"
    with BinanceTestServer(tape, SPEED, Faults()) as server:
        first = _live(server, store, recovery, tape_s + 30)
        _wait_for_bars(store, first)
        time.sleep(random.Random(7).uniform(1.0, 4.0))  # a random point of the run
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        partial = bars_of(store)
        # The tape plays on while the flow is down; the restart backfills what it missed.
        second = _live(server, store, recovery, tape_s)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr
    assert 0 < len(partial) < len(reference)
    assert_bars_equal(comparable(bars_of(store), tape), comparable(reference, tape))


def _wait_for_bars(store: Path, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if store.exists() and bars_of(store):
            return
        time.sleep(0.2)
    raise AssertionError("the live run wrote no bar")
