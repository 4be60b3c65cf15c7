"""Test helpers around Kafka: publish ticks outside a dataflow, read a whole topic back.

Both use the product's own pieces (the delivering producer, the topic names), so what they
show about delivery holds for the sink too.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from jsonschema import Draft202012Validator

from connectors.kafka import DEFAULT_PREFIX, DeliveryStats, ensure_topics, topic_for
from connectors.kafka.logs import librdkafka_log, log_consumer_error
from connectors.kafka.producer import DeliveringProducer, producer_config
from pairflow.errors import SinkError
from pairflow.records import Tick, from_dict, to_json

_SCHEMAS = {name: Draft202012Validator(json.loads(
    (Path(__file__).resolve().parents[1] / "schemas" / f"{name}.schema.json").read_text()))
    for name in ("tick", "tickbatch", "mark")}


class TickPublisher:
    """Publish ticks to the ``ticks`` topic (key ``symbol``) outside a dataflow.

    Tests use it to fill the ``ticks`` topic and to watch the delivering producer across
    broker faults; same producer and delivery semantics as the product's ``KafkaRecordSink``.

    Example:
        >>> with TickPublisher("127.0.0.1:9092") as pub:  # doctest: +SKIP
        ...     pub.publish(tick)

    Args:
        bootstrap: ``host:port[,…]`` of the brokers.
        topic_prefix: Prepended to ``ticks``.
        extra_config: librdkafka settings added to (and overriding) pairflow's.
        partitions: Partitions of the ``ticks`` topic if this creates it.
        delivery_timeout_s: How long a tick may stay unacknowledged before delivery fails.
    """

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str = DEFAULT_PREFIX,
        extra_config: dict[str, Any] | None = None,
        partitions: int = 3,
        delivery_timeout_s: float = 120.0,
    ) -> None:
        self.topic = topic_for("tick", topic_prefix)
        ensure_topics(
            bootstrap,
            [self.topic],
            partitions,
            extra_config=extra_config,
            timeout_s=min(30.0, delivery_timeout_s),
        )
        #: Delivery counters of this publisher.
        self.stats = DeliveryStats()
        self._producer = DeliveringProducer(
            producer_config(bootstrap, extra_config, delivery_timeout_s), self.stats, "publisher"
        )

    def publish(self, tick: Tick) -> None:
        """Queue one tick (non-blocking unless the local queue is full).

        Raises:
            SinkError: an earlier tick failed to deliver.
        """
        self._producer.produce(self.topic, tick.symbol, to_json(tick))
        self._producer.poll(0)
        self._producer.raise_if_failed()

    def publish_many(self, ticks: Iterable[Tick]) -> int:
        """Queue many ticks; returns how many."""
        n = 0
        for tick in ticks:
            self._producer.produce(self.topic, tick.symbol, to_json(tick))
            n += 1
        self._producer.poll(0)
        self._producer.raise_if_failed()
        return n

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued tick is acknowledged.

        Raises:
            SinkError: a tick failed, or some are still unacknowledged after ``timeout_s``.
        """
        remaining = self._producer.flush(timeout_s)
        self._producer.raise_if_failed()
        if remaining:
            msg = f"Kafka publisher: {remaining} ticks still unacknowledged after flush"
            raise SinkError(msg)

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and release; raises :class:`SinkError` if a tick was not delivered."""
        self._producer.close(timeout_s)

    def __enter__(self) -> TickPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def consume_records(
    bootstrap: str,
    topic: str,
    cls: type | None = None,
    timeout_s: float = 30.0,
) -> list[tuple[str | None, dict[str, Any]]]:
    """Read a topic from the beginning to its current end, as ``(key, JSON object)`` pairs.

    Assigns every partition at its beginning (no consumer group, nothing committed) and stops
    when each has reached the high watermark it had at the start. Pairs come partition by
    partition, in offset order within each.

    Args:
        bootstrap: ``host:port[,…]`` of the brokers.
        topic: Full topic name, e.g. ``pairflow.bars``.
        cls: When given, each value must build a record of this class
            (``pairflow.records.from_dict``); a value that does not raises ``ValueError``.
        timeout_s: Give up (``TimeoutError``) if the end is not reached in time.

    Returns:
        ``(key, value)`` for every message; the value includes ``"v"``.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"pairflow-read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "error_cb": log_consumer_error,
        },
        logger=librdkafka_log,
    )
    try:
        ranges = _offset_ranges(consumer, bootstrap, topic, timeout_s)
        if not ranges:
            return []
        got = _read_ranges(consumer, topic, ranges, cls, timeout_s)
        return [(key, value) for p in sorted(got) for _, key, value in got[p]]
    finally:
        consumer.close()


def _offset_ranges(
    consumer: Consumer, bootstrap: str, topic: str, timeout_s: float
) -> dict[int, tuple[int, int]]:
    """``partition -> (low, high)`` watermarks of the partitions holding messages."""
    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None:
        msg = f"Kafka topic {topic!r} not found on {bootstrap}"
        raise ValueError(msg)
    ranges = {}
    for part in meta.partitions:
        low, high = _watermarks(consumer, TopicPartition(topic, part), timeout_s)
        if high > low:
            ranges[part] = (low, high)
    return ranges


#: Errors of a partition whose leader is still being elected or announced.
_SETTLING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.UNKNOWN_TOPIC_OR_PART)


def _watermarks(consumer: Consumer, partition: TopicPartition, timeout_s: float) -> tuple[int, int]:
    """A partition's watermarks, asked again while a new topic's leader is still taking over."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=timeout_s)
        except KafkaException as exc:
            if exc.args[0].code() not in _SETTLING or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


_Read = dict[int, list[tuple[int, str | None, dict[str, Any]]]]


def _read_ranges(
    consumer: Consumer,
    topic: str,
    ranges: dict[int, tuple[int, int]],
    cls: type | None,
    timeout_s: float,
) -> _Read:
    """Every message of ``ranges``, per partition, as ``(offset, key, value)``."""
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in sorted(ranges)])
    got: _Read = {p: [] for p in ranges}
    pending = set(ranges)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            done = {p: len(v) for p, v in got.items()}
            ends = {p: high for p, (_, high) in ranges.items()}
            msg = f"reading {topic!r} did not reach the end in {timeout_s} s: {done} of {ends}"
            raise TimeoutError(msg)
        for message in consumer.consume(500, 0.2):
            part, offset = message.partition(), message.offset()
            if message.error() is not None or part not in pending or offset >= ranges[part][1]:
                continue
            got[part].append((offset, *_key_value(message, cls)))
            if offset + 1 >= ranges[part][1]:
                pending.discard(part)
    return got


def _key_value(message: Message, cls: type | None) -> tuple[str | None, dict[str, Any]]:
    value = msgspec.json.decode(message.value())
    if cls is not None:
        try:
            from_dict(cls, value)
        except (TypeError, ValueError) as exc:
            msg = (
                f"{message.topic()} partition {message.partition()} offset {message.offset()} "
                f"is not a {cls.__name__}: {exc}"
            )
            raise ValueError(msg) from exc
    key = message.key()
    return None if key is None else key.decode(), value


def wait_for_kafka_client(process: subprocess.Popen, timeout_s: float = 120.0) -> float:
    """Wait until ``process`` runs a librdkafka thread; returns when (``time.monotonic()``).

    librdkafka names its threads ``rdk:…``: one exists from the moment the process made its
    first Kafka client, which is when a wait on the brokers can begin. Linux only (``/proc``).

    Raises:
        AssertionError: the process ended, or made no Kafka client within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    tasks = Path(f"/proc/{process.pid}/task")
    while process.poll() is None and time.monotonic() < deadline:
        for comm in tasks.glob("*/comm"):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                if comm.read_text().startswith("rdk:"):
                    return time.monotonic()
        time.sleep(0.02)
    msg = f"no Kafka client in process {process.pid} (exit code {process.poll()})"
    raise AssertionError(msg)


#: The tick columns of a batch value (``schemas/tickbatch.schema.json``).
BATCH_COLUMNS = ("trade_id", "price", "qty", "ts", "recv_ts", "buyer_is_maker",
                 "first_trade_id", "last_trade_id")


def published_ticks(values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ticks of ``ticks`` topic values in order, as per-tick values: batches unfolded, marks
    left out; each validated against its schema first."""
    ticks: list[dict[str, Any]] = []
    for value in values:
        kind = value.get("kind")
        if kind is None:
            _SCHEMAS["tick"].validate(value)
            ticks.append(value)
        elif kind == "ticks":
            _SCHEMAS["tickbatch"].validate(value)
            # Plain trades leave out the ids they cover: their own.
            value = {"first_trade_id": value["trade_id"], "last_trade_id": value["trade_id"],
                     **value}
            assert len({len(value[name]) for name in BATCH_COLUMNS}) == 1, value
            ticks.extend({"v": 1, "symbol": value["symbol"], "source": value["source"],
                          **dict(zip(BATCH_COLUMNS, row, strict=True))}
                         for row in zip(*(value[name] for name in BATCH_COLUMNS), strict=True))
        else:
            _SCHEMAS["mark"].validate(value)
    return ticks
