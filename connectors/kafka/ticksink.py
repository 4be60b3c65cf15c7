"""The ``ticks`` topic's writer: columnar chunks out as tick batches, marks as marks.

What an ingest publishes for the workers (``--ticks-to-kafka``, ``pairflow ingest``): each
:class:`~pairflow.ticks.TickChunk` as batch messages of up to
:data:`~connectors.kafka.wire.TICKS_PER_MESSAGE` ticks as columns (or, in the per-tick form,
one message per tick, encoded a column at a time and handed to librdkafka a slice at a time),
and each :class:`~pairflow.ticks.Heartbeat` / :class:`~pairflow.ticks.FeedGap` as a mark
message (:mod:`connectors.kafka.wire`), all keyed by symbol so a symbol's marks follow its
ticks in one partition.
"""

from __future__ import annotations

from typing import Any

from bytewax.outputs import DynamicSink

from connectors.kafka.admin import ensure_topics
from connectors.kafka.producer import DeliveringProducer, DeliveryStats, producer_config
from connectors.kafka.sink import ProducerPartition
from connectors.kafka.topics import DEFAULT_PREFIX, topic_for
from connectors.kafka.wire import KIND_HEADER, TICKS_KIND, encode_batches, encode_mark, encode_ticks
from pairflow.config import KafkaTickForm
from pairflow.errors import SinkError
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

TickOut = TickChunk | Heartbeat | FeedGap


_BATCH_HEADERS = [(KIND_HEADER, TICKS_KIND)]


class _TickSinkPartition(ProducerPartition):
    def __init__(self, producer: DeliveringProducer, topic: str, form: KafkaTickForm) -> None:
        super().__init__(producer)
        self._topic = topic
        self._batches = form == "batch"

    def produce_items(self, items: list[TickOut]) -> None:
        for item in items:
            if isinstance(item, TickChunk) and self._batches:
                for value in encode_batches(item):
                    self._producer.produce(self._topic, item.symbol, value,
                                           headers=_BATCH_HEADERS)
            elif isinstance(item, TickChunk):
                self._producer.produce_values(self._topic, item.symbol, encode_ticks(item))
            elif isinstance(item, Heartbeat | FeedGap):
                kind, value = encode_mark(item)
                self._producer.produce(self._topic, item.symbol, value,
                                       headers=[(KIND_HEADER, kind.encode())])
            else:
                msg = f"KafkaTickSink got {type(item).__name__}, not ticks or a mark"
                raise SinkError(msg)


class KafkaTickSink(DynamicSink[TickOut]):
    """Publish tick chunks, heartbeats and feed gaps to the ``ticks`` topic, keyed by symbol.

    Chunks go out as batch messages by default; ``form="tick"`` publishes one message per tick
    for consumers that want per-tick records (ghost ids, which have no per-tick form, are then
    dropped).

    Delivery as :class:`~connectors.kafka.KafkaRecordSink`: one idempotent producer
    (``acks=all``) per worker, the first failed delivery raised as
    :class:`~pairflow.errors.SinkError` by the next batch or by ``close``, everything queued
    flushed at the end and at interpreter exit.

    Args:
        bootstrap: ``host:port[,…]`` of the brokers.
        topic_prefix: Prepended to ``ticks``.
        partitions: Partitions of the topic if this sink creates it.
        extra_config: librdkafka settings added to (and overriding) pairflow's.
        delivery_timeout_s: How long a record may stay unacknowledged before its delivery
            fails.
        form: ``batch`` (a symbol's run of ticks per message, as columns) or ``tick`` (one
            tick per message).
    """

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str = DEFAULT_PREFIX,
        partitions: int = 3,
        extra_config: dict[str, Any] | None = None,
        delivery_timeout_s: float = 120.0,
        form: KafkaTickForm = "batch",
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic_for("tick", topic_prefix)
        self.partitions = partitions
        self.extra_config = dict(extra_config or {})
        self._config = producer_config(bootstrap, self.extra_config, delivery_timeout_s)
        self._delivery_timeout_s = delivery_timeout_s
        self.form = form
        #: Delivery counters of all this sink's workers.
        self.stats = DeliveryStats()

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TickSinkPartition:
        """Create the topic if absent and this worker's producer."""
        ensure_topics(self.bootstrap, [self.topic], self.partitions,
                      extra_config=self.extra_config,
                      timeout_s=min(30.0, self._delivery_timeout_s))
        producer = DeliveringProducer(dict(self._config), self.stats,
                                      what=f"sink {step_id} (worker {worker_index})")
        return _TickSinkPartition(producer, self.topic, self.form)
