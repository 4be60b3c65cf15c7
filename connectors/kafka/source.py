"""The flow's tick input from the ``ticks`` topic; bad messages become dead letters.

Bytewax's ``KafkaSource`` does the reading, inside :class:`KafkaTickSource`, because it reads
assigned partitions and keeps offsets in Bytewax's recovery state rather than a consumer group.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import msgspec
from bytewax.connectors.kafka import KafkaError as BytewaxKafkaError
from bytewax.connectors.kafka import KafkaSource, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING

from connectors.kafka.admin import ensure_topics
from connectors.kafka.logs import librdkafka_log, log_consumer_error
from connectors.kafka.topics import DEFAULT_PREFIX, topic_for
from pairflow.records import SCHEMA_VERSION, DeadLetter, Tick
from pairflow.ticks import Heartbeat

logger = logging.getLogger(__name__)

#: ``DeadLetter.stage`` of tick messages that could not be decoded.
TICK_DEAD_STAGE: Final = "kafka_ticks"


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
        config = {"error_cb": log_consumer_error, "logger": librdkafka_log, **self.extra_config}
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
