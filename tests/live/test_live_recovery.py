"""A live run killed with SIGKILL and restarted on its recovery directory: the feed's trades
all arrive once (backfilled from the snapshot's trade ids), the bars equal a clean replay, and
the Kafka topics, deduplicated by key + time, hold exactly the store's records."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from tests.binance_server import BinanceTestServer, Faults, Tape
from tests.helpers import kafka_deduplicated, store_records, wait_for_bars
from tests.kafka_helpers import consume_records
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


def _live(server: BinanceTestServer, store: Path, recovery: Path, duration_s: float,
          kafka: tuple[str, str]):
    command = [sys.executable, "-m", "app.cli", "live", "--symbols", ",".join(SYMBOLS),
               "--timeframes", TIMEFRAMES, "--store", str(store), "--ws-url", server.ws_url,
               "--rest-url", server.rest_url, "--duration", f"{duration_s:.1f}",
               "--recovery-dir", str(recovery), "--snapshot-interval", "1",
               "--kafka", kafka[0], "--kafka-prefix", kafka[1]]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **FAST_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.kafka
def test_sigkill_during_a_live_run_then_resume_loses_and_doubles_nothing(
        tmp_path, kafka_broker, unique_prefix):
    kafka = (kafka_broker.bootstrap, unique_prefix)
    tape = Tape.load(start_s=200.0, length_s=60.0)
    reference = replay_bars(tmp_path, tape)
    tape_s = (tape.last_ms - tape.first_ms) / 1000 / SPEED
    store, recovery = tmp_path / "live.db", tmp_path / "recovery"
    with BinanceTestServer(tape, SPEED, Faults()) as server:
        first = _live(server, store, recovery, tape_s + 30, kafka)
        wait_for_bars(store, first, timeout_s=60)
        time.sleep(random.Random(7).uniform(1.0, 4.0))  # a random point of the run
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        partial = bars_of(store)
        # The tape plays on while the flow is down; the restart backfills what it missed.
        second = _live(server, store, recovery, tape_s, kafka)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 0, stderr
    assert 0 < len(partial) < len(reference)
    assert_bars_equal(comparable(bars_of(store), tape), comparable(reference, tape))
    # Kafka got every bar, some twice (the ones made after the last snapshot before the kill):
    # deduplicated by key + end they are exactly the store's.
    from_kafka, _ = kafka_deduplicated(kafka_broker.bootstrap, unique_prefix, ["bars"])
    assert from_kafka == store_records(store, ["bars"])
    # Feed health reaches its topic too, in the published schema, from both runs.
    schema = json.loads((ROOT / "schemas" / "health.schema.json").read_text())
    health = consume_records(kafka_broker.bootstrap, f"{unique_prefix}health")
    for _, value in health:
        jsonschema.validate(value, schema)
    assert {value["symbol"] for _, value in health} == set(SYMBOLS)

