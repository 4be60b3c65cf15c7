"""The flow's input from the ``ticks`` topic: columnar chunks, marks and dead letters.

Each poll of a partition (about ``batch_size`` ticks, in batch messages or one tick per
message, in any mix) becomes one :class:`~pairflow.ticks.TickChunk` per symbol run, made by
one typed decode per message form (:mod:`connectors.kafka.wire`); heartbeat and gap marks
become the :class:`~pairflow.ticks.Heartbeat` / :class:`~pairflow.ticks.FeedGap` the ingest
published, in their place among the symbol's ticks. The partition is read by a plain
``confluent_kafka.Consumer`` (assigned, no consumer group); its next offset is Bytewax resume
state.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from connectors.kafka.admin import REACH_TIMEOUT_S, ensure_topics, list_partitions
from connectors.kafka.logs import librdkafka_log, log_consumer_error
from connectors.kafka.topics import DEFAULT_PREFIX, topic_for
from connectors.kafka.wire import KIND_HEADER, TICKS_KIND, TICKS_PER_MESSAGE, decode_poll
from pairflow.metrics import Count
from pairflow.records import DeadLetter
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

logger = logging.getLogger(__name__)

#: ``DeadLetter.stage`` of ``ticks`` messages that could not be decoded.
TICK_DEAD_STAGE: Final = "kafka_ticks"
#: How long an idle partition sleeps before polling again: bounds the added latency.
IDLE_POLL: Final = timedelta(milliseconds=5)

TickItem = TickChunk | Heartbeat | FeedGap | DeadLetter | Count


def _now_us() -> int:
    return time.time_ns() // 1000


def _kind(headers: list[tuple[str, bytes | None]] | None) -> bytes | None:
    """The ``pairflow-kind`` header's value, ``None`` for a tick in the per-tick form."""
    return dict(headers).get(KIND_HEADER) if headers else None


def _dead(message: Message, reason: str) -> DeadLetter:
    """A dead letter naming the message's origin (topic, partition, offset)."""
    where = f"topic {message.topic()} partition {message.partition()} offset {message.offset()}"
    raw = (message.value() or b"").decode("utf-8", errors="replace")
    return DeadLetter(TICK_DEAD_STAGE, f"{reason} ({where})", raw, _now_us(),
                      f"{message.topic()}/{message.partition()}@{message.offset()}")


class _TickPartition(StatefulSourcePartition[TickItem, int]):
    """One partition of the ``ticks`` topic; the snapshot is the next offset to read."""

    def __init__(self, config: dict[str, Any], topic: str, index: int, offset: int,
                 batch_size: int) -> None:
        self._consumer = Consumer(config)
        # Assigned before it knows the partition's leader, the consumer waits a fixed 500 ms
        # to look the start offset up (measured: an empty partition's end was read after
        # 0.61 s, 0.17-0.27 s with the topic's metadata asked for first).
        try:
            self._consumer.list_topics(topic, timeout=REACH_TIMEOUT_S)
        except KafkaException as exc:  # the consumer finds the leader itself, only later
            logger.debug("kafka tick source metadata not ready err=%s", exc)
        self._consumer.assign([TopicPartition(topic, index, offset)])
        self._offset = offset
        self._batch_size = batch_size
        #: Ticks per tick-carrying message lately: how many messages a poll asks for.
        self._ticks_per_message = TICKS_PER_MESSAGE
        self._symbols: set[str] = set()
        self._ended = False
        self._idle = False

    def next_batch(self) -> list[TickItem]:
        if self._ended:
            raise StopIteration
        messages = self._consumer.consume(max(1, self._batch_size // self._ticks_per_message), 0)
        self._idle = not messages
        out: list[TickItem] = []
        errors = list(map(Message.error, messages))
        if any(errors):
            # An error event's offset is not a message's: only messages move the offset.
            for message, err in zip(messages, errors, strict=True):
                if err is not None:
                    self._on_error(message, err, out)
            messages = [m for m, err in zip(messages, errors, strict=True) if err is None]
        if messages:
            self._offset = messages[-1].offset() + 1
            self._decode(messages, out)
        if self._ended:
            # End of the topic (no tail): close the open bars of the symbols this partition
            # carried, as a replay does at the end of its files. Ticks are keyed by symbol, so
            # no other partition carries them.
            out.extend(Heartbeat(symbol, 0, final=True) for symbol in sorted(self._symbols))
        return out

    def _decode(self, messages: list[Message], out: list[TickItem]) -> None:
        """Ticks, batches and marks of one poll, in one decode per form."""
        headers = list(map(Message.headers, messages))
        kinds = ([_kind(h) for h in headers] if any(headers) else [None] * len(messages))
        items, bad = decode_poll(list(map(Message.value, messages)), kinds)
        ticks = sum(len(item) for item in items if isinstance(item, TickChunk))
        carriers = sum(kind is None or kind == TICKS_KIND for kind in kinds)
        if ticks and carriers:
            self._ticks_per_message = max(1, ticks // carriers)
        out.extend(items)
        out.append(Count("ticks_read", ticks))
        self._symbols.update(item.symbol for item in items)
        out.extend(_dead(messages[b.index], b.reason) for b in bad)

    def _on_error(self, message: Message, err: KafkaError, out: list[TickItem]) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            self._ended = True
        elif err.retriable():
            logger.warning("kafka tick source transient error err=%s", err.str())
        else:
            out.append(_dead(message, f"consumer_error: {err.str()}"))

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + IDLE_POLL if self._idle else None

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class KafkaTickSource(FixedPartitionedSource[TickItem, int]):
    """Read the ``ticks`` topic as columnar chunks of ticks, heartbeats and feed gaps.

    Both tick forms are read, in any mix: batch messages (many ticks of one symbol as columns)
    and one tick per message.

    Each batch also carries a ``Count("ticks_read", n)`` for the run's totals.

    The unit of parallelism is the Kafka partition (ticks and marks are keyed by symbol, so one
    symbol's messages stay in order in one partition). Partitions are assigned, not subscribed:
    there is no consumer group, and each partition's next offset is Bytewax resume state, so
    with recovery enabled a restarted flow continues where its last snapshot was
    (at-least-once; exactly-once up to the sinks' idempotence). A message that is not a valid
    tick, batch or mark becomes a :class:`~pairflow.records.DeadLetter` with stage ``kafka_ticks``
    naming its topic, partition and offset, instead of stopping the flow.

    Args:
        bootstrap: ``host:port[,…]`` of the brokers.
        topic_prefix: Prepended to ``ticks``.
        tail: Keep waiting for new ticks (``True``), or end at the end of the topic (tests,
            batch reprocessing).
        partitions: Partitions of the topic if this source creates it.
        starting_offset: Where a partition without resume state starts
            (``confluent_kafka.OFFSET_BEGINNING`` or ``OFFSET_END``).
        batch_size: Ticks per partition per poll, about: a poll asks for as many messages as
            carried that many ticks lately (one decode per poll and form).
        extra_config: librdkafka client settings (security, fetch sizes, …).
    """

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str = DEFAULT_PREFIX,
        *,
        tail: bool = True,
        partitions: int = 3,
        starting_offset: int = OFFSET_BEGINNING,
        batch_size: int = 10_000,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic_for("tick", topic_prefix)
        self.partitions = partitions
        self.tail = tail
        self.starting_offset = starting_offset
        self.batch_size = batch_size
        self.extra_config = dict(extra_config or {})

    def list_parts(self) -> list[str]:
        """One part per partition of the ``ticks`` topic (created first if absent).

        Parts are named ``"{index}-{topic}"``, as Bytewax's ``KafkaSource`` names them, so
        recovery state written by earlier versions resumes.
        """
        ensure_topics(self.bootstrap, [self.topic], self.partitions, self.extra_config)
        indexes = list_partitions(self.bootstrap, self.topic, self.extra_config)
        return [f"{index}-{self.topic}" for index in indexes]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _TickPartition:
        """Open one partition at its resume offset (or ``starting_offset``)."""
        index, topic = for_part.split("-", 1)
        if topic != self.topic:
            msg = f"recovery state is for topic {topic!r}, this flow reads {self.topic!r}"
            raise ValueError(msg)
        config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": "pairflow-unused",  # required by librdkafka; partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": not self.tail,
            # The broker holds a fetch at the end of the partition this long: new ticks end it
            # at once, so it only delays noticing the end (measured: an empty topic's end took
            # 1.05 s to read with librdkafka's 500 ms, 0.69 s with 100 ms).
            "fetch.wait.max.ms": 100,
            "error_cb": log_consumer_error,
            "logger": librdkafka_log,
            **self.extra_config,
        }
        offset = self.starting_offset if resume_state is None else resume_state
        return _TickPartition(config, topic, int(index), offset, self.batch_size)
