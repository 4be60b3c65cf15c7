"""Kafka sink, publisher, tick source and broker runner against a real Apache Kafka broker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import bytewax.operators as op
import msgspec
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from connectors.kafka import (
    TICK_DEAD_STAGE,
    KafkaRecordSink,
    KafkaTickSink,
    KafkaTickSource,
    delivery_stats,
    ensure_topics,
    record_key,
    topic_for,
)
from connectors.kafka.wire import encode_batches
from pairflow.errors import SinkError
from pairflow.metrics import Count
from pairflow.records import RECORD_TYPES, DeadLetter, Tick, from_dict, schema_version
from pairflow.ticks import FeedGap, Heartbeat, TickChunk
from tests.kafka_helpers import TickPublisher, consume_records, published_ticks
from tests.test_schemas import sample_records, validator

pytestmark = pytest.mark.kafka


def make_ticks(n: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> list[Tick]:
    t0 = 1_723_075_200_000_000
    return [
        Tick(
            symbol=symbols[i % len(symbols)],
            trade_id=1_000 + i,
            price=100.0 + i / 100,
            qty=0.5,
            ts=t0 + i * 1_000,
            recv_ts=t0 + i * 1_000 + 700,
            buyer_is_maker=i % 3 == 0,
            source="replay",
            first_trade_id=1_000 + i,
            last_trade_id=1_000 + i,
        )
        for i in range(n)
    ]


def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {t: len(meta.topics[t].partitions) for t in topics if t in meta.topics}


def test_broker_answers(kafka_broker: Any) -> None:
    meta = AdminClient({"bootstrap.servers": kafka_broker.bootstrap}).list_topics(timeout=10)
    assert [b.id for b in meta.brokers.values()] == [1]
    assert kafka_broker.bootstrap.startswith("127.0.0.1:")


def test_sink_in_a_flow_delivers_every_record(kafka_broker: Any, unique_prefix: str) -> None:
    records = sample_records() * 3  # repeats: one key's records must keep their order
    sink = KafkaRecordSink(kafka_broker.bootstrap, unique_prefix, partitions=2)
    before = delivery_stats.delivered
    flow = Dataflow("kafka_sink")
    op.output("out", op.input("in", flow, TestingSource(records)), sink)
    run_main(flow)

    assert sink.stats.delivered == len(records)
    assert sink.stats.failed == 0
    assert delivery_stats.delivered - before >= len(records)
    for kind, cls in RECORD_TYPES.items():
        expected = [r for r in records if r.kind == kind]
        got = consume_records(kafka_broker.bootstrap, topic_for(kind, unique_prefix), cls)
        assert len(got) == len(expected), kind
        check = validator(kind)
        for key, value in got:
            assert value["v"] == schema_version(kind)
            check.validate(value)
            assert key == record_key(from_dict(cls, value))
        # Same records, same per-key order (keys are per-partition ordered).
        for key in {record_key(r) for r in expected}:
            want = [r for r in expected if record_key(r) == key]
            assert [from_dict(cls, v) for k, v in got if k == key] == want


def test_topics_created_with_partitions_even_in_a_race(
    kafka_broker: Any, unique_prefix: str
) -> None:
    topics = [f"{unique_prefix}race{i}" for i in range(3)]
    errors: list[BaseException] = []

    def create() -> None:
        try:
            ensure_topics(kafka_broker.bootstrap, topics, partitions=4)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert partition_counts(kafka_broker.bootstrap, topics) == dict.fromkeys(topics, 4)

    sink = KafkaRecordSink(kafka_broker.bootstrap, unique_prefix, partitions=5)
    sink.build("out", 0, 1).close()
    assert partition_counts(kafka_broker.bootstrap, sink.topics) == dict.fromkeys(sink.topics, 5)


def test_sink_rejects_what_it_cannot_route(kafka_broker: Any, unique_prefix: str) -> None:
    part = KafkaRecordSink(kafka_broker.bootstrap, unique_prefix).build("out", 0, 1)
    with pytest.raises(SinkError, match="not a pairflow record"):
        part.write_batch([{"symbol": "BTCUSDT"}])
    part.close()
    part.close()  # a second close is harmless


def test_unreachable_broker_fails_fast_not_hangs(unique_prefix: str) -> None:
    dead = "127.0.0.1:9"  # discard port: nothing listens
    flow = Dataflow("kafka_dead")
    sink = KafkaRecordSink(dead, unique_prefix, delivery_timeout_s=2)
    op.output("out", op.input("in", flow, TestingSource(sample_records())), sink)
    started = time.monotonic()
    with pytest.raises(Exception) as info:  # noqa: PT011 - bytewax may wrap our SinkError
        run_main(flow)
    assert time.monotonic() - started < 20
    assert "cannot reach Kafka at 127.0.0.1:9" in _chain_text(info.value)


def _chain_text(exc: BaseException | None) -> str:
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " <- ".join(parts)


def test_delivery_failure_is_raised_by_write_or_close(
    kafka_broker_factory: Any, unique_prefix: str
) -> None:
    broker = kafka_broker_factory(num_partitions=1)
    sink = KafkaRecordSink(broker.bootstrap, unique_prefix, delivery_timeout_s=2)
    part = sink.build("out", 0, 1)
    part.write_batch(sample_records()[:2])
    part.close()
    assert sink.stats.delivered == 2

    part = sink.build("out", 0, 1)
    queued_at_close = sink.build("out", 0, 1)
    broker.stop()
    started = time.monotonic()
    part.write_batch(sample_records())  # queued: the broker is away
    while sink.stats.failed == 0 and time.monotonic() - started < 15:
        time.sleep(0.1)  # delivery reports are served by the producer's next poll
        part._producer.poll(0)
    assert time.monotonic() - started < 15, "a delivery timeout of 2 s never fired"
    with pytest.raises(SinkError, match="failed to deliver.*Message timed out"):
        part.write_batch(sample_records())
    # The failure was raised and ends the run; Bytewax then closes the partition while
    # unwinding, where raising again would abort the process: close releases quietly.
    part.close()
    part.close()  # a second close is a no-op
    assert sink.stats.failed == len(sample_records())

    # Records still queued at a close that was not preceded by a failure: close raises.
    queued_at_close.write_batch(sample_records())
    with pytest.raises(SinkError, match="failed to deliver|undelivered"):
        queued_at_close.close()


def test_publisher_failure_is_raised_by_close(
    kafka_broker_factory: Any, unique_prefix: str
) -> None:
    broker = kafka_broker_factory(num_partitions=1)
    publisher = TickPublisher(broker.bootstrap, unique_prefix, delivery_timeout_s=2)
    publisher.publish_many(make_ticks(5))
    publisher.flush(10)
    broker.stop()
    publisher.publish_many(make_ticks(5))
    started = time.monotonic()
    with pytest.raises(SinkError, match="failed to deliver"):
        publisher.close()
    assert time.monotonic() - started < 15
    assert (publisher.stats.delivered, publisher.stats.failed) == (5, 5)
    publisher.close()  # second close: no-op


def test_both_tick_forms_and_marks_round_trip_with_dead_letters(
    kafka_broker: Any, unique_prefix: str
) -> None:
    """Per-tick and batch messages in any mix read back in order; bad ones of either form (and
    bad marks) become dead letters naming their offsets."""
    ticks = make_ticks(300, ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    topic = topic_for("tick", unique_prefix)
    batch_header = [("pairflow-kind", b"ticks")]
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    with TickPublisher(kafka_broker.bootstrap, unique_prefix, partitions=2) as publisher:
        publisher.publish_many(ticks[:100])
        publisher.flush()
        for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):  # the middle third as batches
            chunk = TickChunk.from_ticks(symbol, "replay",
                                         [t for t in ticks[100:200] if t.symbol == symbol])
            for value in encode_batches(chunk, ticks_per_message=7):
                producer.produce(topic, key=symbol, value=value, headers=batch_header)
        assert producer.flush(10) == 0
        for tick in ticks[200:]:
            publisher.publish(tick)
    assert publisher.stats.delivered == 200

    good_batch = json.loads(encode_batches(TickChunk.from_ticks("BTCUSDT", "replay", ticks[:1]))[0])
    bad = [  # (header, value)
        (None, b"{not json"), (None, b'{"v": 2, "symbol": "BTCUSDT"}'),
        (None, b'{"v": 1, "symbol": "BTCUSDT"}'),
        (batch_header, json.dumps({**good_batch, "qty": [0.5, 0.5]}).encode()),
        (batch_header, json.dumps({**good_batch, "price": [-1.0]}).encode()),
        (batch_header, b'{"kind":"ticks"'),
        ([("pairflow-kind", b"heartbeat")], b'{"kind":"heartbeat","v":1,"symbol":"BTCUSDT"}'),
    ]
    for headers, value in bad:
        producer.produce(topic, key=b"BTCUSDT", value=value, headers=headers)
    assert producer.flush(10) == 0

    out = _read_ticks_topic(kafka_broker.bootstrap, unique_prefix)
    got_ticks = [t for r in out if isinstance(r, TickChunk) for t in r.ticks()]
    dead = [r for r in out if isinstance(r, DeadLetter)]
    # At the end of the topic each partition closes the bars of the symbols it carried.
    ends = [r for r in out if isinstance(r, Heartbeat)]
    assert ends and all(h.final for h in ends)
    assert {h.symbol for h in ends} == {t.symbol for t in ticks}
    assert len(got_ticks) == len(ticks) and len(dead) == len(bad)
    # A poll makes one chunk per symbol, whatever the messages' form.
    assert sum(isinstance(r, TickChunk) for r in out) < 20
    for symbol in {t.symbol for t in ticks}:  # per-symbol order survives partitioning
        assert [t for t in got_ticks if t.symbol == symbol] == [
            t for t in ticks if t.symbol == symbol
        ]
    assert sorted(d.raw for d in dead) == sorted(v.decode() for _, v in bad)
    assert {d.stage for d in dead} == {TICK_DEAD_STAGE}
    # Each names its origin: the topic, partition and offset it was read at.
    assert all(f"(topic {topic} partition " in d.reason and " offset " in d.reason for d in dead)
    assert all(re.fullmatch(rf"{re.escape(topic)}/\d+@\d+", d.origin) for d in dead)
    assert len({d.origin for d in dead}) == len(dead)
    offsets = sorted(int(d.origin.rsplit("@", 1)[1]) for d in dead)
    partition_of_btc = {int(d.origin.split("/")[1].split("@")[0]) for d in dead}
    assert len(partition_of_btc) == 1  # all keyed BTCUSDT: the last messages of its partition
    assert offsets == list(range(offsets[0], offsets[0] + len(bad)))
    reasons = " | ".join(d.reason for d in dead)
    assert "malformed" in reasons and "$.v" in reasons and "missing required field" in reasons
    assert "bad_batch: columns of different lengths" in reasons
    assert "bad_batch: Expected `float` > 0.0 - at `$.price[0]`" in reasons
    assert "bad_mark" in reasons


def _read_ticks_topic(bootstrap: str, prefix: str, batch_size: int = 10_000) -> list[Any]:
    out: list[Any] = []
    flow = Dataflow("kafka_ticks")
    source = KafkaTickSource(bootstrap, prefix, tail=False, batch_size=batch_size)
    op.output("out", op.input("in", flow, source), TestingSink(out))
    run_main(flow)
    items = [item for item in out if not isinstance(item, Count)]
    counted = sum(item.value for item in out if isinstance(item, Count))
    assert counted == sum(len(item) for item in items if isinstance(item, TickChunk))
    return items


@pytest.mark.parametrize("form", ["batch", "tick"])
def test_chunks_and_marks_round_trip_in_order(kafka_broker: Any, unique_prefix: str,
                                              form: str) -> None:
    """What an ingest publishes (chunks, heartbeats, gaps) a worker reads back, in order."""
    ticks = make_ticks(3_000, ("BTCUSDT", "ETHUSDT"))
    by_symbol = {s: [t for t in ticks if t.symbol == s] for s in ("BTCUSDT", "ETHUSDT")}
    sent: list[Any] = []
    for start in range(0, 1_500, 500):
        for symbol, its in by_symbol.items():
            sent.append(TickChunk.from_ticks(symbol, "live", [
                replace(t, source="live") for t in its[start:start + 500]]))
            sent.append(Heartbeat(symbol, its[start + 499].ts + 1))
    sent.insert(3, FeedGap("ETHUSDT", 5, 9, "backfill refused"))
    sent.append(Heartbeat("BTCUSDT", 0, final=True))
    flow = Dataflow("ingest")
    sink = KafkaTickSink(kafka_broker.bootstrap, unique_prefix, partitions=2, form=form)
    op.output("out", op.input("in", flow, TestingSource(sent, batch_size=4)), sink)
    run_main(flow)
    # Six chunks of 500 ticks: six batch messages, or a message per tick; and eight marks.
    assert (sink.stats.delivered, sink.stats.failed) == (
        (6 if form == "batch" else len(ticks)) + 8, 0)

    topic = topic_for("tick", unique_prefix)
    raw = [value for _, value in consume_records(kafka_broker.bootstrap, topic)]
    assert sum(value.get("kind") in {"heartbeat", "gap"} for value in raw) == 8
    assert all(value.get("kind") == ("ticks" if form == "batch" else None)
               for value in raw if value.get("kind") not in {"heartbeat", "gap"})
    published = published_ticks(raw)  # each value validated against its schema
    assert sorted(v["trade_id"] for v in published) == [t.trade_id for t in ticks]

    # Small poll batches, so marks fall between chunks and order is tested across batches.
    out = _read_ticks_topic(kafka_broker.bootstrap, unique_prefix, batch_size=300)
    for symbol in by_symbol:
        def unpacked(items: list[Any], symbol: str = symbol) -> list[Any]:
            flat: list[Any] = []
            for item in items:
                if getattr(item, "symbol", None) != symbol:
                    continue
                flat.extend(item.ticks() if isinstance(item, TickChunk) else [item])
            return flat

        expected = unpacked(sent)
        got = unpacked(out)
        if symbol == "ETHUSDT":  # the end of the topic closes its bars
            expected.append(Heartbeat(symbol, 0, final=True))
        assert got[:len(expected)] == expected, symbol
        assert all(h == Heartbeat(symbol, 0, final=True) for h in got[len(expected):])


def test_every_record_arrives_across_a_broker_restart(
    kafka_broker_factory: Any, unique_prefix: str
) -> None:
    broker = kafka_broker_factory(num_partitions=2)
    ticks = make_ticks(600)
    publisher = TickPublisher(broker.bootstrap, unique_prefix, delivery_timeout_s=60)
    publisher.publish_many(ticks[:200])
    publisher.flush(10)

    broker.stop()
    publisher.publish_many(ticks[200:400])  # queued while the broker is away
    time.sleep(3)
    broker.start()  # same port, same data
    publisher.publish_many(ticks[400:])
    publisher.close()
    assert (publisher.stats.delivered, publisher.stats.failed) == (600, 0)

    got = consume_records(broker.bootstrap, topic_for("tick", unique_prefix), Tick)
    ids = Counter(value["trade_id"] for _, value in got)
    assert len(got) == len(ticks)  # idempotent producer: retries left no duplicates
    assert set(ids) == {t.trade_id for t in ticks}
    assert all(key == value["symbol"] for key, value in got)


def test_consume_records_edge_cases(kafka_broker: Any, unique_prefix: str) -> None:
    with pytest.raises(ValueError, match="not found"):
        consume_records(kafka_broker.bootstrap, unique_prefix + "missing", timeout_s=5)
    ensure_topics(kafka_broker.bootstrap, [unique_prefix + "empty"], partitions=2)
    assert consume_records(kafka_broker.bootstrap, unique_prefix + "empty", timeout_s=5) == []
    with TickPublisher(kafka_broker.bootstrap, unique_prefix) as publisher:
        publisher.publish(make_ticks(1)[0])
    with pytest.raises(ValueError, match="is not a DeadLetter"):
        consume_records(kafka_broker.bootstrap, topic_for("tick", unique_prefix), DeadLetter)
    [(key, value)] = consume_records(kafka_broker.bootstrap, topic_for("tick", unique_prefix))
    assert key == "BTCUSDT"
    assert msgspec.json.decode(msgspec.json.encode(value)) == value


class _EndlessTicks(StatelessSourcePartition[Tick]):
    def __init__(self, count_path: Path) -> None:
        self._count_path = count_path
        self._batches = 0

    def next_batch(self) -> list[Tick]:
        base = make_ticks(100)
        batch = [replace(t, trade_id=self._batches * 100 + i) for i, t in enumerate(base)]
        self._batches += 1
        self._count_path.write_text(str(self._batches * 100))  # upper bound of what was emitted
        time.sleep(0.02)
        return batch


class _EndlessSource(DynamicSource[Tick]):
    def __init__(self, count_path: Path) -> None:
        self._count_path = count_path

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _EndlessTicks:
        return _EndlessTicks(self._count_path)


def endless_flow(bootstrap: str, prefix: str, count_path: str) -> Dataflow:
    """Entry point for `python -m bytewax.run` in the SIGTERM test: ticks until stopped.

    As the application entry of that run it maps SIGTERM to ``KeyboardInterrupt``, as
    ``flows.pairs:flow`` does (a sink installs no signal handler).
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    flow = Dataflow("endless")
    # A long linger keeps records queued in the producer, so only a flush at exit delivers them.
    sink = KafkaRecordSink(bootstrap, prefix, extra_config={"linger.ms": 5000})
    op.output("out", op.input("in", flow, _EndlessSource(Path(count_path))), sink)
    return flow


def _emitted(count_path: Path) -> int:
    try:
        return int(count_path.read_text() or 0)
    except FileNotFoundError:
        return 0


def test_sigterm_flushes_queued_records(
    kafka_broker: Any, unique_prefix: str, tmp_path: Path
) -> None:
    count_path = tmp_path / "emitted"
    entry = f"tests.test_kafka_connectors:endless_flow({kafka_broker.bootstrap!r}, "
    entry += f"{unique_prefix!r}, {str(count_path)!r})"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", entry],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while _emitted(count_path) < 2_000:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the flow emitted nothing in 60 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    emitted = _emitted(count_path)
    got = consume_records(kafka_broker.bootstrap, topic_for("tick", unique_prefix))
    ids = [value["trade_id"] for _, value in got]
    assert len(ids) == len(set(ids))
    # Everything but (at most) the batch SIGTERM interrupted inside the source was delivered.
    assert emitted - 100 <= len(ids) <= emitted


def test_broker_command_runs_in_foreground_and_stops_on_sigterm(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "tests.kafka_broker", "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(tmp_path / "data")],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until ready (or the process ends)
        assert "ready: bootstrap 127.0.0.1:" in first, first + proc.stdout.read()
        bootstrap = first.rsplit(" ", 1)[-1].strip()
        meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert list(meta.brokers) == [1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "data" / "logs" / "meta.properties").is_file()  # data kept
