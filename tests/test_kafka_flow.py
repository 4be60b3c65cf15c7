"""The whole flow against a real Kafka broker: the replay of the real tape lands in Kafka with
valid schemas and the same records as the SQLite run, and scale-out changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import typer
import yaml
from bytewax.testing import cluster_main, run_main

from app.cli import app
from connectors.kafka import REACH_TIMEOUT_S, TOPIC_SUFFIXES
from connectors.store import StoreReader
from flows.pairs import build_flow
from pairflow.config import load_config
from pairflow.records import schema_version
from tests.helpers import free_ports, store_records, wait_for_bars
from tests.kafka_helpers import consume_records, published_ticks, wait_for_kafka_client

ROOT = Path(__file__).resolve().parents[1]
TAPE = sorted(str(p) for p in (ROOT / "pairflow" / "data").glob("*.gz"))
SCHEMAS = ROOT / "schemas"
TABLES = {"bars": "bar", "pairs": "pair", "alerts": "alert", "deadletter": "deadletter"}


def _config(tmp_path: Path, name: str, **extra):
    return load_config({"source": "replay", "files": TAPE, "symbols": "BTCUSDT,ETHUSDT",
                        "pairs": "BTCUSDT/ETHUSDT,ETHUSDT/BTCUSDT", "timeframes": "1s,1m",
                        "window": 60, "entry_z": 2.0, "exit_z": 0.5,
                        "store": str(tmp_path / f"{name}.db"), **extra}, env={})


def _store_rows(path: Path) -> dict[str, list[tuple]]:
    return store_records(path, TABLES)


@pytest.mark.kafka
def test_replay_into_kafka_equals_the_store_and_matches_the_schemas(
        tmp_path, kafka_broker, unique_prefix):
    config = _config(tmp_path, "both", kafka=kafka_broker.bootstrap, kafka_prefix=unique_prefix)
    run_main(build_flow(config))
    stored = _store_rows(tmp_path / "both.db")
    assert stored["bars"] and stored["pairs"] and stored["alerts"]
    for table, kind in TABLES.items():
        schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
        consumed = consume_records(kafka_broker.bootstrap, f"{unique_prefix}{table}")
        for key, value in consumed:
            jsonschema.validate(value, schema)
            assert value["v"] == schema_version(kind)
            if kind == "bar":
                assert key == f"{value['symbol']}|{value['timeframe']}"
            elif kind == "pair":
                assert key == f"{value['pair']}|{value['timeframe']}"
            elif kind == "alert":
                assert key == value["pair"]
        from_kafka = sorted((tuple(sorted((k, v) for k, v in value.items() if k != "v"))
                             for _, value in consumed), key=repr)
        assert from_kafka == stored[table], table


@pytest.mark.kafka
def test_ticks_through_kafka_give_the_same_bars_and_pairs(tmp_path, kafka_broker,
                                                         unique_prefix):
    """Ingestion and analytics apart: ticks published to `ticks`, the flow reading them back."""
    run_main(build_flow(_config(tmp_path, "direct")))
    run_main(build_flow(_config(tmp_path, "ingest", kafka=kafka_broker.bootstrap,
                                kafka_prefix=unique_prefix, ticks_to_kafka=True)))
    published = consume_records(kafka_broker.bootstrap, f"{unique_prefix}ticks")
    assert all(key == value["symbol"] for key, value in published)
    marks = [value for _, value in published if value.get("kind") != "ticks"]
    # The replay's heartbeats travel with its ticks: here only the final one per symbol.
    assert sorted((m["kind"], m["symbol"], m["final"]) for m in marks) == [
        ("heartbeat", "BTCUSDT", True), ("heartbeat", "ETHUSDT", True)]
    # Ticks go as batches by default, each a bounded run of one symbol's ticks.
    ticks = published_ticks(value for _, value in published)
    assert len(ticks) == 19_904 + 14_515
    assert len(published) - len(marks) < len(ticks) / 1_000
    run_main(build_flow(_config(tmp_path, "from_kafka", source="kafka", files=None,
                                kafka=kafka_broker.bootstrap, kafka_prefix=f"{unique_prefix}",
                                kafka_follow=False)))
    direct = _store_rows(tmp_path / "direct.db")
    from_kafka = _store_rows(tmp_path / "from_kafka.db")
    assert from_kafka["bars"] == direct["bars"]
    assert from_kafka["pairs"] == direct["pairs"]
    assert from_kafka["alerts"] == direct["alerts"]


def test_one_worker_two_workers_and_two_processes_give_the_same_records(tmp_path):
    run_main(build_flow(_config(tmp_path, "one")))
    cluster_main(build_flow(_config(tmp_path, "two")), [], 0, worker_count_per_proc=2)
    one = _store_rows(tmp_path / "one.db")
    assert one == _store_rows(tmp_path / "two.db")
    env = {"PAIRFLOW_SOURCE": "replay", "PAIRFLOW_FILES": ",".join(TAPE),
           "PAIRFLOW_SYMBOLS": "BTCUSDT,ETHUSDT",
           "PAIRFLOW_PAIRS": "BTCUSDT/ETHUSDT,ETHUSDT/BTCUSDT", "PAIRFLOW_TIMEFRAMES": "1s,1m",
           "PAIRFLOW_WINDOW": "60", "PAIRFLOW_STORE": str(tmp_path / "procs.db")}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}, **env}
    # Two processes of one cluster, as `python -m bytewax.run -i/-a` deploys them, on free
    # ports (a fixed pair would meet any other cluster on this machine).
    addresses = ";".join(f"127.0.0.1:{port}" for port in free_ports(2))
    procs = [subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.pairs:flow",
                               "-i", str(i), "-a", addresses], cwd=ROOT, env=env)
             for i in range(2)]
    try:
        assert [p.wait(timeout=180) for p in procs] == [0, 0]
    finally:
        for p in procs:
            p.kill()
    assert one == _store_rows(tmp_path / "procs.db")


def test_every_compose_service_command_is_one_the_cli_accepts():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"kafka", "ingest", "worker-0", "worker-1", "dashboard"} <= set(services)
    cli = typer.main.get_command(app)
    workers = [name for name in services if name.startswith("worker-")]
    for name in ("ingest", *workers, "dashboard"):
        service = services[name]
        command = service["command"]
        env = {k: str(v) for k, v in service.get("environment", {}).items()}
        if command[0] == "python":
            # `python -m bytewax.run flows.pairs:flow` builds the flow from PAIRFLOW_* settings;
            # the workers are the processes of one cluster, each at its index in one list.
            assert command[1:4] == ["-m", "bytewax.run", "flows.pairs:flow"]
            index, addresses = int(command[command.index("-i") + 1]), command[-1]
            assert command[-2] == "-a" and addresses.split(";")[index].startswith(name)
            assert len(addresses.split(";")) == len(workers)
            assert load_config(env=env).source == "kafka"
        else:
            assert command[0] == "pairflow"
            with cli.make_context("pairflow", list(command[1:])) as context:
                sub = cli.get_command(context, command[1])
                assert sub is not None, command
                sub.make_context(command[1], list(command[2:]), parent=context)


def _cli_replay(store: Path, bootstrap: str, prefix: str, *extra: str,
                env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "replay", *TAPE, "--symbols", "BTCUSDT,ETHUSDT",
         "--pairs", "BTCUSDT/ETHUSDT", "--timeframes", "1s,1m", "--window", "60",
         "--store", str(store), "--kafka", bootstrap, "--kafka-prefix", prefix, *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})})


@pytest.mark.kafka
def test_a_broker_down_for_a_while_loses_nothing(tmp_path, kafka_broker_factory, unique_prefix):
    broker = kafka_broker_factory()
    # Paced at 50x the 11-minute tape takes ~13 s; the broker is away for ~5 s of it.
    process = _cli_replay(tmp_path / "store.db", broker.bootstrap, unique_prefix,
                          "--speed", "50")
    # Under way (topics made, records flowing) before the outage: on a busy machine the
    # start-up alone may outlast any fixed delay.
    wait_for_bars(tmp_path / "store.db", process)
    broker.stop()
    time.sleep(5)
    broker.start()
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr
    stored = _store_rows(tmp_path / "store.db")
    for table in ("bars", "pairs", "alerts"):
        consumed = consume_records(broker.bootstrap, f"{unique_prefix}{table}")
        unique = {json.dumps(value, sort_keys=True) for _, value in consumed}
        # At-least-once: a retried batch may repeat; by key + ts every record is there once.
        assert len(unique) == len(stored[table]), table
        from_kafka = sorted((tuple(sorted((k, v) for k, v in json.loads(u).items() if k != "v"))
                             for u in unique), key=repr)
        assert from_kafka == stored[table], table


#: What a run may take past a Kafka bound to stop: librdkafka's timeout scan (~1 s), Bytewax
#: unwinding, the interpreter's exit, all slowed by a busy machine.
SHUTDOWN_MARGIN_S = 15




@pytest.mark.kafka
def test_a_broker_that_never_comes_back_ends_the_run_with_one_line(
        tmp_path, kafka_broker_factory, unique_prefix):
    broker = kafka_broker_factory()
    timeout_s = 6
    store = tmp_path / "store.db"
    process = _cli_replay(store, broker.bootstrap, unique_prefix, "--speed", "50",
                          env={"PAIRFLOW_KAFKA_TIMEOUT_S": str(timeout_s)})
    try:
        wait_for_bars(store, process)  # the run is writing (to Kafka as well): lose the broker
        outage = time.monotonic()
        broker.stop()
        _, stderr = process.communicate(timeout=120)
        ended = time.monotonic()
    finally:
        process.kill()
    assert process.returncode == 2, stderr
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: Kafka sink") and "Traceback" not in stderr, stderr
    # The delivery timeout bounds the whole wait, counted from the outage.
    assert ended - outage < timeout_s + SHUTDOWN_MARGIN_S


def test_an_unreachable_broker_at_start_fails_with_one_line_within_the_reach_bound(tmp_path):
    process = _cli_replay(tmp_path / "store.db", "127.0.0.1:9", "t.")  # discard port: no one
    try:
        waiting = wait_for_kafka_client(process)
        _, stderr = process.communicate(timeout=120)
        ended = time.monotonic()
    finally:
        process.kill()
    assert process.returncode == 2, stderr
    assert stderr.splitlines() == [  # no blank line before it, nothing after
        f"error: cannot reach Kafka at 127.0.0.1:9 within {REACH_TIMEOUT_S:g} s to check topics "
        f"{['t.' + suffix for suffix in TOPIC_SUFFIXES.values()]}: "
        "Failed to get metadata: Local: Broker transport failure"], stderr
    assert REACH_TIMEOUT_S <= ended - waiting < REACH_TIMEOUT_S + SHUTDOWN_MARGIN_S


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_while_waiting_for_kafka_is_honoured_at_once(tmp_path, signum):
    process = _cli_replay(tmp_path / "store.db", "127.0.0.1:9", "t.")
    try:
        wait_for_kafka_client(process)
        time.sleep(0.5)  # inside the wait for the brokers
        asked = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
        ended = time.monotonic()
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "stopped: everything processed so far is written" in stderr
    # Before the reach bound would have ended the wait on its own, whatever the machine's load.
    assert ended - asked < REACH_TIMEOUT_S, stderr


@pytest.mark.kafka
def test_sigterm_to_the_bytewax_run_entry_flushes_kafka(tmp_path, kafka_broker, unique_prefix):
    """`python -m bytewax.run flows.pairs:flow` has no CLI: its entry hook maps SIGTERM."""
    store = tmp_path / "store.db"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")},
           "PAIRFLOW_SOURCE": "replay", "PAIRFLOW_FILES": ",".join(TAPE),
           "PAIRFLOW_SYMBOLS": "BTCUSDT,ETHUSDT", "PAIRFLOW_TIMEFRAMES": "1s",
           "PAIRFLOW_SPEED": "30", "PAIRFLOW_STORE": str(store),
           "PAIRFLOW_KAFKA": kafka_broker.bootstrap, "PAIRFLOW_KAFKA_PREFIX": unique_prefix}
    process = subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.pairs:flow"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for_bars(store, process)
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != -signal.SIGTERM, stderr  # not killed by the default action
    stored = {json.dumps(row, sort_keys=True) for row in StoreReader(store).query("bars")}
    consumed = {json.dumps({k: v for k, v in value.items() if k != "v"}, sort_keys=True)
                for _, value in consume_records(kafka_broker.bootstrap, f"{unique_prefix}bars")}
    # Both sinks get the same batches; the interrupt may fall between the two writes of the
    # last one, so the two differ by at most that batch.
    assert consumed and consumed <= stored
    assert len(stored) - len(consumed) <= 200
