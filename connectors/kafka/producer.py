"""The delivering producer: counted delivery reports, a sticky first failure, flushed at exit.

Every producer here is idempotent (``enable.idempotence``, ``acks=all``), counts deliveries
and keeps the first failure, which the next write or the final flush raises as
:class:`~pairflow.errors.SinkError`: a record is delivered or the caller hears about it, never
silently lost. librdkafka reports only failed deliveries (``delivery.report.only.error``): a
Python callback per acknowledged record would cost more than encoding it, so acknowledged
records are counted as those that left the queue without a failure report.

The delivery timeout bounds the whole wait for a broker that went away: librdkafka's own
``message.timeout.ms`` fires late while the partition leader is unreachable (tens of seconds
past it, measured), so the producer also fails when records have waited that long without a
single delivery report.

Waits (queue full, flush) run in short slices, so a stop signal's ``KeyboardInterrupt`` is
raised within :data:`WAIT_SLICE_S` instead of after librdkafka's blocking call returns.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.kafka.logs import librdkafka_log
from pairflow.errors import SinkError

logger = logging.getLogger(__name__)

#: Longest single blocking call into librdkafka; Python runs signal handlers between calls.
WAIT_SLICE_S: Final = 0.2
#: How long a flush waits past the delivery timeout: librdkafka fails timed-out records on a
#: periodic scan, so their reports come a little after the timeout itself.
REPORT_GRACE_S: Final = 5.0
#: Most records in one producer's local queue (librdkafka ``queue.buffering.max.messages``).
QUEUE_MESSAGES: Final = 500_000
#: Most bytes in it (``queue.buffering.max.kbytes``; librdkafka's default is 1 GiB): tick
#: batches are ~180 kB each, so a broker that falls behind would otherwise grow the process
#: by a gigabyte. Set above what QUEUE_MESSAGES per-tick messages take (≤ 400 B each), so for
#: them the count binds first and :meth:`DeliveringProducer.produce_values`' batch call is never
#: refused half-way; records produced one by one wait for room either way.
QUEUE_KBYTES: Final = 256 * 1024
#: Records handed to librdkafka per batch call.
BATCH_MESSAGES: Final = 10_000


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
_open_producers: weakref.WeakSet[DeliveringProducer] = weakref.WeakSet()


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
        # Measured with bench/kafka_path.py: lz4 and a short linger keep the producer ahead of
        # the replay; longer lingers or zstd were slower on this machine. librdkafka always
        # builds its bundled lz4, and every client reads it.
        "linger.ms": 5,
        "compression.type": "lz4",
        "delivery.report.only.error": True,
        "queue.buffering.max.messages": QUEUE_MESSAGES,
        "queue.buffering.max.kbytes": QUEUE_KBYTES,
        "message.timeout.ms": int(delivery_timeout_s * 1000),
    }
    config.update(extra_config or {})
    return config


class DeliveringProducer:
    """A confluent-kafka ``Producer`` with counted delivery reports and a sticky first failure.

    Args:
        config: librdkafka settings, usually from :func:`producer_config`.
        stats: Counters of the owner (a sink's workers share one).
        what: Names the owner in error messages (``sink kafka (worker 0)``).
    """

    def __init__(self, config: dict[str, Any], stats: DeliveryStats, what: str) -> None:
        self._what = what
        self._stats = stats
        self._failure: str | None = None
        self._closed = False
        self._timeout_s = config.get("message.timeout.ms", 300_000) / 1000
        self._queue_limit = int(config.get("queue.buffering.max.messages", 100_000))
        self._slice = min(BATCH_MESSAGES, self._queue_limit)
        #: Last delivery, or when records started waiting for one (monotonic seconds).
        self._progress_at = time.monotonic()
        #: Records handed to librdkafka, and those of them counted delivered or failed.
        self._queued = 0
        self._settled = 0
        self._producer = Producer(config, logger=librdkafka_log, error_cb=self._on_error)
        _open_producers.add(self)

    def _on_error(self, err: KafkaError) -> None:
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

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        # Called for failures only (delivery.report.only.error).
        self._settled += 1
        self._fail(f"topic={msg.topic()} key={msg.key()!r}: {err.str() if err else 'unknown'}")

    def _count_delivered(self) -> None:
        """Count as delivered the records that left librdkafka's queue without a failure.

        Failure reports are served by ``poll``/``flush`` before this runs, so a record no
        longer in the queue was either reported failed (counted then) or acknowledged.
        """
        delivered = self._queued - len(self._producer) - self._settled
        if delivered > 0:
            self._settled += delivered
            self._progress_at = time.monotonic()
            self._stats.add_delivered(delivered)
            delivery_stats.add_delivered(delivered)

    def _fail_if_stalled(self) -> None:
        """Fail the waiting records if they waited the delivery timeout without any delivery."""
        self._producer.poll(0)  # serve failure reports that arrived meanwhile
        self._count_delivered()
        waiting = len(self._producer)
        if waiting and time.monotonic() - self._progress_at > self._timeout_s:
            self._fail_waiting(
                f"no delivery report for {self._timeout_s:g} s while {waiting} records wait "
                "(the brokers are unreachable)"
            )

    def _fail_waiting(self, text: str) -> None:
        """Give up on every waiting record; ``text`` is the failure unless one came first."""
        if self._failure is None:
            self._failure = text
        # Each purged record is reported (and counted) as failed, as a timed-out one would be.
        self._producer.purge()
        self._producer.flush(WAIT_SLICE_S)

    def raise_if_failed(self) -> None:
        """Raise the first delivery failure, if any (it stays raised: nothing is skipped).

        Records that waited the delivery timeout without a single delivery report (the broker
        is gone) are such a failure.
        """
        self._fail_if_stalled()
        if self._failure is not None:
            msg = (
                f"Kafka {self._what} failed to deliver a record ({self._stats.failed} failed so "
                f"far): {self._failure}"
            )
            raise SinkError(msg)

    def _start_wait(self) -> None:
        if self._closed:
            msg = f"Kafka {self._what} is closed"
            raise SinkError(msg)
        if len(self._producer) == 0:
            self._progress_at = time.monotonic()  # nothing was waiting: the wait starts now

    def _make_room(self) -> None:
        """Queue full: wait a slice for deliveries to make room, never drop a record."""
        self._producer.poll(WAIT_SLICE_S)
        self.raise_if_failed()

    def produce(self, topic: str, key: str, value: bytes,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue one record; waits for room while librdkafka's queue is full."""
        self._start_wait()
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers,
                                       on_delivery=self._on_delivery)
                self._queued += 1
                return
            except BufferError:
                self._make_room()
            except KafkaException as exc:
                msg = f"Kafka {self._what} cannot produce to {topic!r}: {exc.args[0].str()}"
                raise SinkError(msg) from exc

    def produce_values(self, topic: str, key: str, values: list[bytes]) -> None:
        """Queue many records of one key, in order, handing each slice over in one C call.

        Same guarantees as :meth:`produce`. A slice is handed over only when the queue has
        room for all of it: librdkafka's batch call skips a record it cannot queue and goes on
        with the next, which would reorder the partition.
        """
        self._start_wait()
        for start in range(0, len(values), self._slice):
            part = values[start:start + self._slice]
            while len(self._producer) + len(part) > self._queue_limit:
                self._make_room()
            messages = [{"key": key, "value": value} for value in part]
            try:
                queued = self._producer.produce_batch(topic, messages,
                                                      on_delivery=self._on_delivery)
            except KafkaException as exc:
                msg = f"Kafka {self._what} cannot produce to {topic!r}: {exc.args[0].str()}"
                raise SinkError(msg) from exc
            self._queued += queued
            if queued < len(messages):
                refused = next(m["_error"] for m in messages if "_error" in m)
                msg = f"Kafka {self._what} cannot produce to {topic!r}: {refused.str()}"
                raise SinkError(msg)

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve pending failure reports and count deliveries."""
        self._producer.poll(timeout_s)
        self._count_delivered()

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait for outstanding records; returns how many are still undelivered.

        Args:
            timeout_s: Longest wait; by default the delivery timeout (``message.timeout.ms``)
                plus :data:`REPORT_GRACE_S`, by which every record is delivered or failed.
                The wait ends early at the first failed delivery, or when records waited
                the delivery timeout without any delivery report (the brokers are gone).
        """
        if self._closed:
            return 0
        wait_s = self._timeout_s + REPORT_GRACE_S if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        while True:
            remaining = int(self._producer.flush(min(WAIT_SLICE_S, _left(deadline))))
            self._fail_if_stalled()
            # A failure ends the wait: the caller raises it, later records change nothing.
            if remaining == 0 or _left(deadline) == 0 or self._failure is not None:
                return len(self._producer)

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
            self._fail_waiting(f"{remaining} records still undelivered after the final flush")
        self.raise_if_failed()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
