"""The ingest-only dataflow: source → ``ticks`` topic (with heartbeats and gaps) and ``health``.

The first half of the scalable topology (``pairflow ingest``): one process normalises the
exchange feed (recording its raw frames if asked) and publishes it; any number of worker
processes (:mod:`flows.pairs` with ``source = "kafka"``) read the ``ticks`` topic and compute
bars, pairs and alerts. Heartbeats and feed gaps travel as marks among the ticks
(:mod:`connectors.kafka.wire`), so a worker closes quiet windows and refuses gap windows as an
in-process flow would.

::

    source ── TickChunk | Heartbeat | FeedGap ─► ticks topic
             └ Health, DeadLetter ─► health / deadletter topics;  Count ─► tally
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from connectors.kafka import KafkaRecordSink, KafkaTickSink
from connectors.metrics import CountSink, CountTally
from flows.sources import source_of
from pairflow.config import PairflowConfig
from pairflow.metrics import Count
from pairflow.records import DeadLetter, Health


def build_ingest_flow(config: PairflowConfig, tally: CountTally | None = None) -> Dataflow:
    """The ingest-only dataflow for ``config``: the live source to Kafka; no bars are made.

    ``config`` is checked to be a live run with a broker (``ingest_only``).
    """
    flow = Dataflow("pairflow_ingest")
    items = op.input("source", flow, source_of(config))
    is_count = op.branch("split_counts", items, lambda item: isinstance(item, Count))
    is_record = op.branch("split_records", is_count.falses,
                          lambda item: isinstance(item, Health | DeadLetter))
    op.output("tally", is_count.trues, CountSink(tally))
    op.output("kafka", is_record.trues, KafkaRecordSink(
        config.kafka, config.kafka_prefix, partitions=config.kafka_partitions,
        extra_config=config.kafka_client_config, delivery_timeout_s=config.kafka_timeout_s))
    op.output("kafka_ticks", is_record.falses, KafkaTickSink(
        config.kafka, config.kafka_prefix, partitions=config.kafka_partitions,
        extra_config=config.kafka_client_config, delivery_timeout_s=config.kafka_timeout_s,
        form=config.kafka_tick_form))
    return flow
