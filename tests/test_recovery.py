"""Crash and resume: a replay killed with SIGKILL and restarted on its recovery directory ends
with exactly the store content of an uninterrupted run, and with Kafka topics that hold the same
records once a consumer deduplicates them by key + time, as docs/kafka.md tells it to."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import bars_written, kafka_deduplicated, store_records, wait_for_bars

ROOT = Path(__file__).resolve().parents[1]
TAPE = sorted(str(p) for p in (ROOT / "pairflow" / "data").glob("*.gz"))
TABLES = ("bars", "pairs", "alerts", "deadletter")


def _replay_command(store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", "replay", *TAPE,
            "--symbols", "BTCUSDT,ETHUSDT", "--pairs", "BTCUSDT/ETHUSDT",
            "--timeframes", "1s,1m", "--window", "60", "--store", str(store), *extra]


def _content(store: Path) -> dict[str, list]:
    return store_records(store, TABLES)






@pytest.mark.kafka
def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(
        tmp_path, kafka_broker, unique_prefix):
    clean = tmp_path / "clean.db"
    subprocess.run(_replay_command(clean, "--kafka", kafka_broker.bootstrap, "--kafka-prefix",
                                   f"{unique_prefix}clean."),
                   check=True, cwd=ROOT, capture_output=True)

    crashed = tmp_path / "crashed.db"
    recovery = tmp_path / "recovery"
    # Paced at 40x real time the 11-minute tape takes ~16 s; snapshots every second.
    command = _replay_command(crashed, "--speed", "40", "--recovery-dir", str(recovery),
                              "--snapshot-interval", "1", "--kafka", kafka_broker.bootstrap,
                              "--kafka-prefix", f"{unique_prefix}crashed.")
    rng = random.Random(20240808)
    kills = 0
    for delay_s in (rng.uniform(3, 6), rng.uniform(2, 5)):
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for_bars(crashed, process, above=bars_written(crashed), run_may_end=True)
        time.sleep(delay_s)  # a random point of the run, not a synchronisation
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
    assert kills == 2, "the run ended before it could be killed"
    partial = _content(crashed)
    assert 0 < len(partial["bars"]) < len(_content(clean)["bars"])

    finished = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120)
    assert finished.returncode == 0, finished.stderr.decode()
    assert _content(crashed) == _content(clean)
    # The paper P&L resumes from the pair state's snapshot too: the same round trips and summary.
    paper = store_records(clean, ("trades", "pnl"))
    assert paper["trades"] and store_records(crashed, ("trades", "pnl")) == paper
    # Kafka: at-least-once. The records made after the last snapshot before each kill went out
    # again after the restart; deduplicated, the topics equal the uninterrupted run's, which
    # has no repeats, and the store.
    uninterrupted, none = kafka_deduplicated(kafka_broker.bootstrap, f"{unique_prefix}clean.",
                                             TABLES)
    resumed, repeats = kafka_deduplicated(kafka_broker.bootstrap, f"{unique_prefix}crashed.",
                                          TABLES)
    assert none == 0
    assert resumed == uninterrupted == _content(clean)
    print(f"{repeats} repeated records dropped by key + time")
