"""Kafka sinks and sources of pairflow records (confluent-kafka, JSON values with ``"v": 1``).

Topics, under a configurable prefix (default ``pairflow.``), and their keys (the record's
``key`` property; a tick's is its symbol):

- ``ticks``: :class:`~pairflow.records.Tick`, key ``symbol``;
- ``bars``: :class:`~pairflow.records.Bar`, key ``SYMBOL|timeframe``;
- ``pairs``: :class:`~pairflow.records.PairStats`, key ``Y/X|timeframe``;
- ``alerts``: :class:`~pairflow.records.Alert`, key ``Y/X``;
- ``deadletter``: :class:`~pairflow.records.DeadLetter`, key ``stage``;
- ``health``: :class:`~pairflow.records.Health`, key ``stream``.

Delivery: every producer here is idempotent (``enable.idempotence``, ``acks=all``), counts
delivery reports and keeps the first failure, which the next write or the final flush raises
as :class:`~pairflow.errors.SinkError`: a record is delivered or the caller hears about it,
never silently lost. Across a restart of the flow, Bytewax replays from its last snapshot, so
the topics are at-least-once and consumers dedupe by key + ``ts`` (records are deterministic).

Bytewax's own ``KafkaSink`` is not used: it has no delivery callback and flushes every batch
(ENGINE.md). Its ``KafkaSource`` is, inside :class:`KafkaTickSource`, because it reads
assigned partitions and keeps offsets in Bytewax's recovery state rather than a consumer group.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

import msgspec
from bytewax.connectors.kafka import KafkaError as BytewaxKafkaError
from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import KafkaError as ConfluentKafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from pairflow.errors import SinkError
from pairflow.records import SCHEMA_VERSION, DeadLetter, Tick, to_json
from pairflow.ticks import Heartbeat

logger = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "pairflow."
#: Topic name (after the prefix) of each record ``kind``.
TOPIC_SUFFIXES: Final[dict[str, str]] = {
    "tick": "ticks",
    "bar": "bars",
    "pair": "pairs",
    "alert": "alerts",
    "deadletter": "deadletter",
    "health": "health",
}
#: ``DeadLetter.stage`` of tick messages that could not be decoded.
TICK_DEAD_STAGE: Final = "kafka_ticks"


def topic_for(kind: str, topic_prefix: str = DEFAULT_PREFIX) -> str:
    """The topic of records of ``kind`` (``"bar"`` -> ``"pairflow.bars"``).

    Raises:
        SinkError: ``kind`` is not a record kind pairflow publishes.
    """
    try:
        return topic_prefix + TOPIC_SUFFIXES[kind]
    except KeyError:
        msg = f"no Kafka topic for record kind {kind!r}; known kinds: {sorted(TOPIC_SUFFIXES)}"
        raise SinkError(msg) from None


def record_key(record: Any) -> str:
    """The Kafka key of a record: its ``key`` property, or the symbol of a tick."""
    key = getattr(record, "key", None)
    if key is None and getattr(record, "kind", None) == "tick":
        key = record.symbol
    if not isinstance(key, str):
        msg = f"record {type(record).__name__} has no string `key` to use as its Kafka key"
        raise SinkError(msg)
    return key


# -- delivery accounting -------------------------------------------------------------------


@dataclass
class DeliveryStats:
    """Thread-safe delivery counters of one or more producers.

    Attributes:
        delivered: Records the broker acknowledged (``acks=all``).
        failed: Records whose delivery report carried an error.
        first_error: Text of the first failure, or ``None``.
    """

    delivered: int = 0
    failed: int = 0
    first_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_delivered(self, n: int = 1) -> None:
        """Count ``n`` acknowledged records."""
        with self._lock:
            self.delivered += n

    def add_failed(self, error: str) -> None:
        """Count one failed record and keep the first error text."""
        with self._lock:
            self.failed += 1
            if self.first_error is None:
                self.first_error = error


#: Totals of every producer in this process (sinks and publishers), for metrics and the CLI.
delivery_stats = DeliveryStats()

#: Producers not yet closed; flushed at interpreter exit so a Ctrl-C / SIGTERM (which Bytewax
#: ends without calling ``close`` on sinks) still delivers what was queued.
_open_producers: weakref.WeakSet[_DeliveringProducer] = weakref.WeakSet()


def flush_all(timeout_s: float = 30.0) -> int:
    """Flush every open producer of this process; returns the records still undelivered.

    The CLI calls this on shutdown; it also runs at interpreter exit. Never raises.
    """
    remaining = 0
    for producer in list(_open_producers):
        try:
            remaining += producer.flush(timeout_s)
        except Exception:  # noqa: BLE001 - shutdown path: report, keep flushing the others
            logger.exception("flushing a Kafka producer at shutdown failed")
    if remaining:
        logger.error("kafka records undelivered at shutdown: %d", remaining)
    return remaining


atexit.register(flush_all)


def install_sigterm_handler() -> bool:
    """Turn SIGTERM into ``KeyboardInterrupt`` if nobody handles SIGTERM yet.

    Bytewax stops a dataflow cleanly on ``KeyboardInterrupt``; the default SIGTERM action kills
    the process before queued records are flushed. Only the main thread can install handlers,
    and a handler the application installed is left alone.

    Returns:
        Whether a handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return False

    def _raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise_interrupt)
    return True


class _LibrdkafkaLog:
    """Routes librdkafka's own log lines to ``logging`` at DEBUG.

    At its default level librdkafka logs each refused reconnect (every ~100 ms while a broker
    restarts) as an error on stderr. What matters reaches the caller anyway: failed deliveries
    through delivery reports, fatal errors through ``error_cb``.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger(f"{__name__}.librdkafka")

    def log(self, level: int, msg: str, *args: object) -> None:
        self._logger.debug(msg, *args)


_librdkafka_log = _LibrdkafkaLog()


def producer_config(
    bootstrap: str, extra_config: dict[str, Any] | None = None, delivery_timeout_s: float = 120.0
) -> dict[str, Any]:
    """The librdkafka configuration of pairflow's producers; ``extra_config`` overrides it.

    Args:
        bootstrap: ``host:port[,host:port…]`` of the brokers.
        extra_config: More librdkafka settings (security, batching, …).
        delivery_timeout_s: How long a record may wait for an acknowledgement (including
            retries while the broker is away) before its delivery fails.
    """
    if delivery_timeout_s <= 0:
        msg = f"delivery_timeout_s must be positive, got {delivery_timeout_s}"
        raise SinkError(msg)
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "client.id": "pairflow",
        # Idempotence: broker-side dedup of retries, per-partition order kept.
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        # librdkafka always builds its bundled lz4 (zstd is optional), and every client reads it.
        "compression.type": "lz4",
        "message.timeout.ms": int(delivery_timeout_s * 1000),
    }
    config.update(extra_config or {})
    return config


class _DeliveringProducer:
    """A confluent-kafka ``Producer`` with counted delivery reports and a sticky first failure."""

    def __init__(self, config: dict[str, Any], stats: DeliveryStats, what: str) -> None:
        self._what = what
        self._stats = stats
        self._failure: str | None = None
        self._closed = False
        self._timeout_s = config.get("message.timeout.ms", 300_000) / 1000
        self._producer = Producer(config, logger=_librdkafka_log, error_cb=self._on_error)
        _open_producers.add(self)

    def _on_error(self, err: ConfluentKafkaError) -> None:
        # Transport errors (broker away) are retried by librdkafka until message.timeout.ms;
        # only a fatal error (idempotence violated) means records can no longer be delivered.
        if err.fatal():
            self._fail(f"fatal producer error: {err.str()}")
        else:
            logger.debug("kafka producer error what=%s err=%s", self._what, err.str())

    def _fail(self, text: str) -> None:
        if self._failure is None:
            self._failure = text
        self._stats.add_failed(text)
        delivery_stats.add_failed(text)

    def _on_delivery(self, err: ConfluentKafkaError | None, msg: Any) -> None:
        if err is None:
            self._stats.add_delivered()
            delivery_stats.add_delivered()
        else:
            self._fail(f"topic={msg.topic()} key={msg.key()!r}: {err.str()}")

    def raise_if_failed(self) -> None:
        """Raise the first delivery failure, if any (it stays raised: nothing is skipped)."""
        if self._failure is not None:
            msg = (
                f"Kafka {self._what} failed to deliver a record ({self._stats.failed} failed so "
                f"far): {self._failure}"
            )
            raise SinkError(msg)

    def produce(self, topic: str, key: str, value: bytes) -> None:
        """Queue one record; waits for room while librdkafka's queue is full."""
        if self._closed:
            msg = f"Kafka {self._what} is closed"
            raise SinkError(msg)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:
                # Queue full: serve delivery reports to make room, never drop the record.
                self._producer.poll(0.1)
                self.raise_if_failed()
            except KafkaException as exc:
                msg = f"Kafka {self._what} cannot produce to {topic!r}: {exc.args[0].str()}"
                raise SinkError(msg) from exc

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve pending delivery reports."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait for outstanding records; returns how many are still undelivered."""
        if self._closed:
            return 0
        timeout = self._timeout_s + 5 if timeout_s is None else timeout_s
        return int(self._producer.flush(timeout))

    def abandon(self) -> None:
        """Release without waiting, after a failure was reported.

        Queued records are dropped by this producer: the run ends with the error, and a
        resumed run sends them again.
        """
        self._closed = True
        _open_producers.discard(self)
        self._producer.purge()

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and release; raises :class:`SinkError` if anything was not delivered.

        A second call does nothing.
        """
        if self._closed:
            return
        remaining = self.flush(timeout_s)
        self._closed = True
        _open_producers.discard(self)
        if remaining:
            self._fail(f"{remaining} records still undelivered after the final flush")
        self.raise_if_failed()


# -- topics --------------------------------------------------------------------------------


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 3,
    extra_config: dict[str, Any] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create the topics that do not exist yet, with ``partitions`` partitions each.

    Safe to call from several workers at once: "already exists" is success. A topic that
    exists with another partition count is kept as it is (and logged).

    Raises:
        SinkError: the brokers cannot be reached or refuse to create a topic.
    """
    if partitions < 1:
        msg = f"partitions must be at least 1, got {partitions}"
        raise SinkError(msg)
    admin = AdminClient({**_admin_config(bootstrap, extra_config), "logger": _librdkafka_log})
    wanted = list(dict.fromkeys(topics))
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        msg = f"cannot reach Kafka at {bootstrap} to check topics {wanted}: {exc.args[0].str()}"
        raise SinkError(msg) from exc
    missing = []
    for topic in wanted:
        meta = existing.get(topic)
        if meta is None or meta.error is not None:
            missing.append(topic)
        elif len(meta.partitions) != partitions:
            logger.info(
                "kafka topic exists topic=%s partitions=%d configured=%d",
                topic, len(meta.partitions), partitions,
            )  # fmt: skip
    if not missing:
        return
    new = [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing]
    futures = admin.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
    for topic, future in futures.items():
        try:
            future.result()
            logger.info("kafka topic created topic=%s partitions=%d", topic, partitions)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == ConfluentKafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another worker or process won the race
            msg = f"cannot create Kafka topic {topic!r} on {bootstrap}: {err.str()}"
            raise SinkError(msg) from exc
    # Creation returns before every broker's metadata has the topic; wait for it, so a consumer
    # listing partitions right after (KafkaTickSource) does not see "unknown topic".
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        if all(_ready(topics.get(t)) for t in missing):
            return
        if time.monotonic() > deadline:
            msg = f"Kafka topics {missing} were created but do not show up in metadata"
            raise SinkError(msg)
        time.sleep(0.05)


def _ready(meta: Any) -> bool:
    return (
        meta is not None
        and meta.error is None
        and bool(meta.partitions)
        and all(p.leader >= 0 for p in meta.partitions.values())
    )


def _admin_config(bootstrap: str, extra_config: dict[str, Any] | None) -> dict[str, Any]:
    # The AdminClient rejects producer- and consumer-only settings that callers put in
    # extra_config; it needs only where the brokers are and how to reach them.
    shared = ("security.", "sasl.", "ssl.", "socket.", "client.", "broker.", "metadata.")
    config = {k: v for k, v in (extra_config or {}).items() if k.startswith(shared) or k == "debug"}
    return {"bootstrap.servers": bootstrap, **config}


# -- sink ----------------------------------------------------------------------------------


class _KafkaRecordPartition(StatelessSinkPartition[Any]):
    def __init__(self, producer: _DeliveringProducer, topic_prefix: str) -> None:
        self._producer = producer
        self._prefix = topic_prefix

    def write_batch(self, items: list[Any]) -> None:
        try:
            self._producer.raise_if_failed()
            for record in items:
                kind = getattr(record, "kind", None)
                if kind is None:
                    msg = f"KafkaRecordSink got {type(record).__name__}, not a pairflow record"
                    raise SinkError(msg)
                topic = topic_for(kind, self._prefix)
                self._producer.produce(topic, record_key(record), to_json(record))
            # Serve delivery reports without waiting, so failures surface at the next batch.
            self._producer.poll(0)
            self._producer.raise_if_failed()
        except SinkError:
            self._failed = True
            raise

    def close(self) -> None:
        if getattr(self, "_failed", False):
            # The failure has been raised and ends the run; Bytewax closes the partition while
            # unwinding, when raising again would abort the process.
            self._producer.abandon()
        else:
            self._producer.close()


class KafkaRecordSink(DynamicSink[Any]):
    """Publish any pairflow record to its topic, keyed as the design says.

    Each worker owns one idempotent producer (``acks=all``); records go to
    ``topic_prefix + TOPIC_SUFFIXES[record.kind]`` with key ``record.key`` and value
    ``pairflow.records.to_json(record)``. Delivery reports are counted in :attr:`stats` and in
    the module's :data:`delivery_stats`; the first failed delivery is raised as
    :class:`~pairflow.errors.SinkError` by the next batch or by ``close``. Topics are created
    with ``partitions`` partitions when the sink is built, if absent.

    Guarantee: at-least-once. Records are flushed when the dataflow ends (``close``) and at
    interpreter exit (Ctrl-C, or SIGTERM, which this sink maps to ``KeyboardInterrupt`` when
    the application has not installed a SIGTERM handler of its own).

    Args:
        bootstrap: ``host:port[,…]`` of the brokers.
        topic_prefix: Prepended to every topic name.
        partitions: Partitions of topics this sink creates.
        extra_config: librdkafka settings added to (and overriding) pairflow's.
        delivery_timeout_s: How long a record may stay unacknowledged (broker away, retries)
            before its delivery fails.
    """

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str = DEFAULT_PREFIX,
        partitions: int = 3,
        extra_config: dict[str, Any] | None = None,
        delivery_timeout_s: float = 120.0,
    ) -> None:
        if not bootstrap:
            msg = "KafkaRecordSink needs a bootstrap address like 127.0.0.1:9092"
            raise SinkError(msg)
        if partitions < 1:
            msg = f"partitions must be at least 1, got {partitions}"
            raise SinkError(msg)
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.partitions = partitions
        self.extra_config = dict(extra_config or {})
        self.delivery_timeout_s = delivery_timeout_s
        self._config = producer_config(bootstrap, self.extra_config, delivery_timeout_s)
        #: Delivery counters of all this sink's workers.
        self.stats = DeliveryStats()
        install_sigterm_handler()

    @property
    def topics(self) -> list[str]:
        """Every topic this sink may write."""
        return [self.topic_prefix + suffix for suffix in TOPIC_SUFFIXES.values()]

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _KafkaRecordPartition:
        """Create missing topics and this worker's producer."""
        ensure_topics(
            self.bootstrap,
            self.topics,
            self.partitions,
            extra_config=self.extra_config,
            timeout_s=min(30.0, self.delivery_timeout_s),
        )
        producer = _DeliveringProducer(
            dict(self._config), self.stats, what=f"sink {step_id} (worker {worker_index})"
        )
        return _KafkaRecordPartition(producer, self.topic_prefix)


# -- publisher -----------------------------------------------------------------------------


class TickPublisher:
    """Publish ticks to the ``ticks`` topic (key ``symbol``) outside a dataflow.

    Used by ``pairflow ingest`` / ``pairflow live --ticks-to-kafka``, so ingestion and analytics
    scale apart. Same producer and delivery semantics as :class:`KafkaRecordSink`.

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
        self._producer = _DeliveringProducer(
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


# -- source --------------------------------------------------------------------------------


def _now_us() -> int:
    return time.time_ns() // 1000


def decode_tick(value: bytes | None) -> Tick:
    """Parse a ``ticks`` message value into a :class:`~pairflow.records.Tick`, checking types.

    Raises:
        ValueError: the value is empty, not JSON, of another schema version, or not a tick.
    """
    if not value:
        msg = "empty message value"
        raise ValueError(msg)
    try:
        data = msgspec.json.decode(value)
    except msgspec.DecodeError as exc:
        msg = f"not JSON: {exc}"
        raise ValueError(msg) from exc
    if not isinstance(data, dict):
        msg = f"expected a JSON object, got {type(data).__name__}"
        raise ValueError(msg)
    version = data.pop("v", None)
    if version != SCHEMA_VERSION:
        msg = f"schema version v={version!r}, expected {SCHEMA_VERSION}"
        raise ValueError(msg)
    try:
        return msgspec.convert(data, Tick)
    except msgspec.ValidationError as exc:
        msg = f"not a tick: {exc}"
        raise ValueError(msg) from exc


def _message_to_record(item: Any) -> Tick | DeadLetter | None:
    if isinstance(item, KafkaSourceMessage):
        try:
            return decode_tick(item.value)
        except ValueError as exc:
            raw = (item.value or b"").decode("utf-8", errors="replace")
            where = f"partition {item.partition} offset {item.offset}"
            return DeadLetter(TICK_DEAD_STAGE, f"bad_tick: {exc} ({where})", raw, _now_us())
    if isinstance(item, BytewaxKafkaError):
        err = item.err
        if err.retriable():
            logger.warning("kafka tick source transient error err=%s", err.str())
            return None
        raw = (item.msg.value or b"").decode("utf-8", errors="replace")
        return DeadLetter(TICK_DEAD_STAGE, f"consumer_error: {err.str()}", raw, _now_us())
    msg = f"unexpected item from KafkaSource: {type(item).__name__}"
    raise TypeError(msg)


class _KafkaTickPartition(StatefulSourcePartition[Tick | DeadLetter | Heartbeat, int | None]):
    def __init__(self, inner: StatefulSourcePartition[Any, int | None]) -> None:
        self._inner = inner
        self._symbols: set[str] = set()
        self._ended = False

    def next_batch(self) -> list[Tick | DeadLetter | Heartbeat]:
        if self._ended:
            raise StopIteration
        try:
            batch = self._inner.next_batch()
        except StopIteration:
            # End of the topic (tail=False): close the open bars of this partition's symbols,
            # as a replay does at the end of its files. Ticks are keyed by symbol, so no other
            # partition carries them.
            self._ended = True
            return [Heartbeat(symbol, 0, final=True) for symbol in sorted(self._symbols)]
        out = []
        for item in batch:
            record = _message_to_record(item)
            if record is not None:
                out.append(record)
                if isinstance(record, Tick):
                    self._symbols.add(record.symbol)
        return out

    def next_awake(self) -> Any:
        return self._inner.next_awake()

    def snapshot(self) -> int | None:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class KafkaTickSource(FixedPartitionedSource[Tick | DeadLetter, int | None]):
    """Read :class:`~pairflow.records.Tick` records from the ``ticks`` topic.

    The unit of parallelism is the Kafka partition (ticks are keyed by symbol, so one symbol's
    ticks stay in order in one partition). Partitions are assigned, not subscribed: there is no
    consumer group, and each partition's next offset is Bytewax resume state, so with recovery
    enabled a restarted flow continues where its last snapshot was (at-least-once; exactly-once
    up to the sinks' idempotence). A message that is not a valid tick becomes a
    :class:`~pairflow.records.DeadLetter` with stage ``kafka_ticks`` instead of stopping the
    flow.

    Args:
        bootstrap: ``host:port[,…]`` of the brokers.
        topic_prefix: Prepended to ``ticks``.
        tail: Keep waiting for new ticks (``True``), or end at the end of the topic (tests,
            batch reprocessing).
        partitions: Partitions of the topic if this source creates it.
        starting_offset: Where a partition without resume state starts
            (``confluent_kafka.OFFSET_BEGINNING`` or ``OFFSET_END``).
        batch_size: Most messages per partition per poll.
        extra_config: librdkafka consumer settings.
    """

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str = DEFAULT_PREFIX,
        *,
        tail: bool = True,
        partitions: int = 3,
        starting_offset: int = OFFSET_BEGINNING,
        batch_size: int = 1000,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic_for("tick", topic_prefix)
        self.partitions = partitions
        self.extra_config = dict(extra_config or {})
        config = {"error_cb": _log_consumer_error, "logger": _librdkafka_log, **self.extra_config}
        self._inner = KafkaSource(
            [bootstrap],
            [self.topic],
            tail=tail,
            starting_offset=starting_offset,
            add_config=config,
            batch_size=batch_size,
            raise_on_errors=False,
        )

    def list_parts(self) -> list[str]:
        """One part per partition of the ``ticks`` topic (created first if absent)."""
        ensure_topics(self.bootstrap, [self.topic], self.partitions, self.extra_config)
        return self._inner.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _KafkaTickPartition:
        """Open one partition at its resume offset (or ``starting_offset``)."""
        return _KafkaTickPartition(self._inner.build_part(step_id, for_part, resume_state))


def _log_consumer_error(err: ConfluentKafkaError) -> None:
    # Without an error callback librdkafka would hand transport errors (broker restarting)
    # to consume() as messages; they are retried anyway, so log them instead.
    logger.warning("kafka consumer error err=%s", err.str())


def kafka_tick_source(
    bootstrap: str,
    topic_prefix: str = DEFAULT_PREFIX,
    *,
    tail: bool = True,
    partitions: int = 3,
    batch_size: int = 1000,
    extra_config: dict[str, Any] | None = None,
) -> KafkaTickSource:
    """The flow's tick input from Kafka; see :class:`KafkaTickSource`."""
    return KafkaTickSource(
        bootstrap,
        topic_prefix,
        tail=tail,
        partitions=partitions,
        batch_size=batch_size,
        extra_config=extra_config,
    )


# -- reading back --------------------------------------------------------------------------


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
    from pairflow.records import from_dict

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"pairflow-read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "error_cb": _log_consumer_error,
        },
        logger=_librdkafka_log,
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is None or meta.error is not None:
            msg = f"Kafka topic {topic!r} not found on {bootstrap}"
            raise ValueError(msg)
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for part in meta.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, part), timeout=timeout_s
            )
            if high > low:
                starts[part], ends[part] = low, high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in sorted(ends)])
        got: dict[int, list[tuple[int, str | None, dict[str, Any]]]] = {p: [] for p in ends}
        pending = set(ends)
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                done = {p: len(v) for p, v in got.items()}
                msg = f"reading {topic!r} did not reach the end in {timeout_s} s: {done} of {ends}"
                raise TimeoutError(msg)
            for msg_ in consumer.consume(500, 0.2):
                if msg_.error() is not None:
                    continue
                part, offset = msg_.partition(), msg_.offset()
                if part not in pending or offset >= ends[part]:
                    continue
                value = msgspec.json.decode(msg_.value())
                if cls is not None:
                    try:
                        from_dict(cls, value)
                    except (TypeError, ValueError) as exc:
                        raise ValueError(
                            f"{topic} partition {part} offset {offset} is not a "
                            f"{cls.__name__}: {exc}"
                        ) from exc
                key = msg_.key()
                got[part].append((offset, None if key is None else key.decode(), value))
                if offset + 1 >= ends[part]:
                    pending.discard(part)
        return [(key, value) for p in sorted(got) for _, key, value in got[p]]
    finally:
        consumer.close()
