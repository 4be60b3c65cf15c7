"""Kafka sinks and sources of pairflow records (confluent-kafka, JSON values with ``"v": 1``).

Topics, under a configurable prefix (default ``pairflow.``), and their keys (the record's
``key`` property; a tick's is its symbol):

- ``ticks``: ticks of one symbol as columns (tick batches, the default) or one
  :class:`~pairflow.records.Tick` per message, and heartbeat / gap marks, key ``symbol``
  (:mod:`~connectors.kafka.wire`);
- ``bars``: :class:`~pairflow.records.Bar`, key ``SYMBOL|timeframe``;
- ``pairs``: :class:`~pairflow.records.PairStats`, key ``Y/X|timeframe``;
- ``alerts``: :class:`~pairflow.records.Alert`, key ``Y/X``;
- ``deadletter``: :class:`~pairflow.records.DeadLetter`, key ``stage``;
- ``health``: :class:`~pairflow.records.Health`, key ``stream``.

One module per job: :mod:`~connectors.kafka.topics` (names and keys),
:mod:`~connectors.kafka.admin` (creating topics), :mod:`~connectors.kafka.producer` (the
delivering producer, its counters and the flush at exit), :mod:`~connectors.kafka.sink`
(:class:`KafkaRecordSink`), :mod:`~connectors.kafka.wire` (the ``ticks`` topic's message forms),
:mod:`~connectors.kafka.ticksink` (:class:`KafkaTickSink`) and :mod:`~connectors.kafka.source`
(:class:`KafkaTickSource`).
Import the public names from this package.

Across a restart of the flow, Bytewax replays from its last snapshot, so the topics are
at-least-once and consumers dedupe by key + ``ts`` (records are deterministic).
"""

from connectors.kafka.admin import REACH_TIMEOUT_S, ensure_topics
from connectors.kafka.producer import DeliveryStats, delivery_stats, flush_all
from connectors.kafka.sink import KafkaRecordSink
from connectors.kafka.source import TICK_DEAD_STAGE, KafkaTickSource
from connectors.kafka.ticksink import KafkaTickSink
from connectors.kafka.topics import DEFAULT_PREFIX, TOPIC_SUFFIXES, record_key, topic_for

__all__ = [
    "DEFAULT_PREFIX",
    "REACH_TIMEOUT_S",
    "TICK_DEAD_STAGE",
    "TOPIC_SUFFIXES",
    "DeliveryStats",
    "KafkaRecordSink",
    "KafkaTickSink",
    "KafkaTickSource",
    "delivery_stats",
    "ensure_topics",
    "flush_all",
    "record_key",
    "topic_for",
]
