"""The Kafka sink of pairflow records: every record to its topic, under its key.

Bytewax's own ``KafkaSink`` is not used: it has no delivery callback and flushes every batch
(ENGINE.md).
"""

from __future__ import annotations

from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.kafka.admin import ensure_topics
from connectors.kafka.producer import DeliveringProducer, DeliveryStats, producer_config
from connectors.kafka.topics import DEFAULT_PREFIX, TOPIC_SUFFIXES, record_key, topic_for
from pairflow.errors import SinkError
from pairflow.records import to_json


class ProducerPartition(StatelessSinkPartition[Any]):
    """A sink partition over one :class:`DeliveringProducer`: the delivery protocol.

    The first failed delivery is raised by the next batch (or by ``close``); a partition whose
    failure was raised abandons its queue at ``close`` instead of raising again. Subclasses say
    only how a batch's items are produced (:meth:`produce_items`).
    """

    def __init__(self, producer: DeliveringProducer) -> None:
        self._producer = producer
        self._failed = False

    def produce_items(self, items: list[Any]) -> None:
        """Hand the batch's items to the producer."""
        raise NotImplementedError

    def write_batch(self, items: list[Any]) -> None:
        """Produce a batch; raise the first failed delivery seen so far."""
        try:
            self._producer.raise_if_failed()
            self.produce_items(items)
            # Serve delivery reports without waiting, so failures surface at the next batch.
            self._producer.poll(0)
            self._producer.raise_if_failed()
        except SinkError:
            self._failed = True
            raise

    def close(self) -> None:
        """Flush what is queued, or abandon it after a raised failure."""
        if self._failed:
            # The failure has been raised and ends the run; Bytewax closes the partition while
            # unwinding, when raising again would abort the process.
            self._producer.abandon()
        else:
            self._producer.close()


class _KafkaRecordPartition(ProducerPartition):
    def __init__(self, producer: DeliveringProducer, topic_prefix: str) -> None:
        super().__init__(producer)
        self._prefix = topic_prefix

    def produce_items(self, items: list[Any]) -> None:
        for record in items:
            kind = getattr(record, "kind", None)
            if kind is None:
                msg = f"KafkaRecordSink got {type(record).__name__}, not a pairflow record"
                raise SinkError(msg)
            topic = topic_for(kind, self._prefix)
            self._producer.produce(topic, record_key(record), to_json(record))


class KafkaRecordSink(DynamicSink[Any]):
    """Publish any pairflow record to its topic, keyed as the design says.

    Each worker owns one idempotent producer (``acks=all``); records go to
    ``topic_prefix + TOPIC_SUFFIXES[record.kind]`` with key ``record.key`` and value
    ``pairflow.records.to_json(record)``. Delivery reports are counted in :attr:`stats` and in
    :data:`~connectors.kafka.producer.delivery_stats`; the first failed delivery is raised as
    :class:`~pairflow.errors.SinkError` by the next batch or by ``close``. Topics are created
    with ``partitions`` partitions when the sink is built, if absent.

    Guarantee: at-least-once. Records are flushed when the dataflow ends (``close``) and at
    interpreter exit (:func:`~connectors.kafka.producer.flush_all`), which covers a stop by
    Ctrl-C, or by SIGTERM where the application maps it to ``KeyboardInterrupt`` (the
    ``pairflow`` CLI and ``flows.pairs:flow`` do; a sink installs no signal handler).

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
        producer = DeliveringProducer(
            dict(self._config), self.stats, what=f"sink {step_id} (worker {worker_index})"
        )
        return _KafkaRecordPartition(producer, self.topic_prefix)
