"""Graceful shutdown: SIGINT or SIGTERM stop a run with exit 0, the store committed and Kafka
flushed; what reached Kafka is exactly what reached the store."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.store import StoreReader
from tests.helpers import wait_for_bars
from tests.kafka_helpers import consume_records

ROOT = Path(__file__).resolve().parents[1]
TAPE = sorted(str(p) for p in (ROOT / "pairflow" / "data").glob("*.gz"))


def _paced_replay(store: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "replay", *TAPE, "--symbols", "BTCUSDT,ETHUSDT",
         "--timeframes", "1s", "--speed", "30", "--store", str(store), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)




@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_ends_the_run_cleanly(tmp_path, signum):
    store = tmp_path / "store.db"
    process = _paced_replay(store)
    wait_for_bars(store, timeout_s=60)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "stopped: everything processed so far is written" in stderr
    assert "ticks" in stdout  # the summary of what was done
    assert "Traceback" not in stderr
    connection = sqlite3.connect(store)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 0 < connection.execute("SELECT COUNT(*) FROM bars").fetchone()[0] < 1302


@pytest.mark.kafka
def test_sigterm_flushes_kafka(tmp_path, kafka_broker, unique_prefix):
    store = tmp_path / "store.db"
    process = _paced_replay(store, "--kafka", kafka_broker.bootstrap,
                            "--kafka-prefix", unique_prefix)
    wait_for_bars(store, timeout_s=60)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    stored = {json.dumps(row, sort_keys=True) for row in StoreReader(store).query("bars")}
    consumed = {json.dumps({k: v for k, v in value.items() if k != "v"}, sort_keys=True)
                for _, value in consume_records(kafka_broker.bootstrap, f"{unique_prefix}bars")}
    # Both sinks get the same batches; the interrupt may fall between the two writes of the
    # last one, so the two differ by at most that batch.
    assert consumed and consumed <= stored
    assert len(stored) - len(consumed) <= 200
