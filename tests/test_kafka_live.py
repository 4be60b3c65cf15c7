"""Live trades through Kafka: the ingest → ``ticks`` topic → worker processes topology.

A live run against the local Binance server, with a feed gap the client must declare, makes
its bars, pairs and alerts in process while publishing what its bar step reads (ticks,
heartbeats, the gap) to the ``ticks`` topic; two ``pairflow worker`` processes reading the
topic make exactly the same records. ``pairflow ingest`` publishes the same kinds of message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bytewax.testing import run_main

from connectors.metrics import CountTally
from flows.pairs import build_flow
from pairflow.config import load_config
from tests.binance_server import BinanceTestServer, Faults, Tape
from tests.helpers import free_ports, store_records
from tests.kafka_helpers import consume_records, published_ticks
from tests.live.harness import (
    FAST_ENV,
    SYMBOLS,
    assert_bars_equal,
    bars_of,
    comparable,
    env,
    replay_bars,
)

pytestmark = [pytest.mark.kafka, pytest.mark.live]

ROOT = Path(__file__).resolve().parents[1]
SPEED = 40.0
PAIRS = "BTCUSDT/ETHUSDT"
#: Two partitions: BTCUSDT and ETHUSDT hash to different ones, so each worker owns a symbol.
PARTITIONS = "2"
TABLES = {"bars": "bar", "pairs": "pair", "alerts": "alert"}


@pytest.fixture(scope="module")
def tape() -> Tape:
    return Tape.load(start_s=200.0, length_s=80.0)


def _workers(bootstrap: str, prefix: str, store: Path, *extra: str) -> None:
    """Two `pairflow worker` processes of one cluster over the ticks topic, to its end.

    A worker that fails leaves the other one retrying its connection forever, so both are
    watched together; a cluster that fails to form (a worker could not listen on its port: the
    free ports picked here may be taken by another process meanwhile) is started once more on
    fresh ports, and a second failure reports both workers' output.
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    for attempt in range(2):
        addresses = ";".join(f"127.0.0.1:{port}" for port in free_ports(2))
        logs = [store.with_name(f"{store.stem}-worker{i}-{attempt}.log") for i in range(2)]
        procs = []
        for i, log in enumerate(logs):
            with log.open("w") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "app.cli", "worker", "--symbols", ",".join(SYMBOLS),
                     "--kafka", bootstrap, "--kafka-prefix", prefix, "--no-follow", "--store",
                     str(store), "-i", str(i), "-a", addresses, *extra],
                    cwd=ROOT, env={**clean, "PAIRFLOW_KAFKA_PARTITIONS": PARTITIONS},
                    stdout=out, stderr=subprocess.STDOUT, text=True))
        deadline = time.monotonic() + 180
        try:
            while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                if any(p.poll() not in (None, 0) for p in procs):
                    break  # one failed: the other would wait for it forever
                time.sleep(0.2)
        finally:
            for p in procs:
                p.kill()
                p.wait()
        codes = [p.returncode for p in procs]
        if codes == [0, 0]:
            return
        outputs = [log.read_text() for log in logs]
        if attempt == 0 and "Address already in use" in "".join(outputs):
            continue
        raise AssertionError(f"workers ended with {codes}: {outputs}")


def test_workers_fed_by_kafka_make_the_live_flows_records(tmp_path, tape, kafka_broker,
                                                          unique_prefix):
    # Cut off at tape 20 s, REST forgets at 30 s: the client declares a feed gap, and no bar
    # is made for a window inside it, in process or through Kafka.
    faults = Faults(events=[(20.0, "refuse", 0.5), (30.0, "forget", None)])
    duration = (tape.last_ms - tape.first_ms) / 1000 / SPEED + 3.0
    analytics = {"pairs": PAIRS, "window": 10, "entry_z": 1.0, "exit_z": 0.3}
    with BinanceTestServer(tape, SPEED, faults) as server:
        config = load_config({
            "source": "live", "symbols": ",".join(SYMBOLS), "timeframes": "1s,1m",
            "ws_url": server.ws_url, "rest_url": server.rest_url, "duration_s": duration,
            "store": str(tmp_path / "live.db"), "kafka": kafka_broker.bootstrap,
            "kafka_prefix": unique_prefix, "kafka_partitions": PARTITIONS,
            "ticks_to_kafka": True, **analytics}, env={})
        tally = CountTally()
        with env(FAST_ENV):
            run_main(build_flow(config, tally))
    totals = tally.totals()
    assert totals["feed_gaps_declared"] >= 1, totals

    marks = [v for _, v in consume_records(kafka_broker.bootstrap, f"{unique_prefix}ticks")
             if v["kind"] != "ticks"]
    kinds = {m["kind"] for m in marks}
    assert kinds == {"heartbeat", "gap"}, kinds
    assert sum(not m["final"] for m in marks if m["kind"] == "heartbeat") > 10

    _workers(kafka_broker.bootstrap, unique_prefix, tmp_path / "workers.db",
             "--timeframes", "1s,1m", "--pairs", PAIRS, "--window", "10", "--entry-z", "1.0",
             "--exit-z", "0.3")
    live = store_records(tmp_path / "live.db", TABLES)
    workers = store_records(tmp_path / "workers.db", TABLES)
    assert live["bars"] and live["pairs"] and live["alerts"]
    for table in TABLES:
        assert workers[table] == live[table], table


def test_ingest_command_publishes_ticks_marks_and_health(tmp_path, tape, kafka_broker,
                                                         unique_prefix):
    duration = (tape.last_ms - tape.first_ms) / 1000 / SPEED + 3.0
    with BinanceTestServer(tape, SPEED, Faults()) as server:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "ingest", "--symbols", ",".join(SYMBOLS),
             "--kafka", kafka_broker.bootstrap, "--kafka-prefix", unique_prefix,
             "--kafka-partitions", PARTITIONS, "--ws-url", server.ws_url, "--rest-url",
             server.rest_url, "--duration", str(duration)],
            cwd=ROOT, env={**clean, **FAST_ENV}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    published = consume_records(kafka_broker.bootstrap, f"{unique_prefix}ticks")
    assert all(key == value["symbol"] for key, value in published)
    # The default form: batches of ticks among the marks.
    assert {value.get("kind") for _, value in published} <= {"ticks", "heartbeat", "gap"}
    ticks = published_ticks(value for _, value in published)  # schemas validated
    assert len(ticks) == len(tape.trades)
    assert consume_records(kafka_broker.bootstrap, f"{unique_prefix}health")
    # Nothing but ticks, marks and health: no bars were made.
    assert not consume_records(kafka_broker.bootstrap, f"{unique_prefix}bars", timeout_s=5)

    _workers(kafka_broker.bootstrap, unique_prefix, tmp_path / "workers.db",
             "--timeframes", "1s,1m")
    got = bars_of(tmp_path / "workers.db")
    assert_bars_equal(comparable(got, tape), comparable(replay_bars(tmp_path, tape), tape),
                      exact=True)
