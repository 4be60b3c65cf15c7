"""``pairflow ingest``: the ingest half of the scalable topology.

Normalises the live Binance feed (recording raw frames if asked) and publishes ticks,
per-symbol heartbeats, declared feed gaps and stream health to Kafka; nothing else. Workers
(``pairflow worker``) read the ``ticks`` topic and make bars, pairs and alerts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.live import Duration, Market, RestUrl, WsUrl
from app.options import ConfigFile, KafkaPrefix, Symbols, TickForm, with_default
from app.runner import print_summary, run_flow
from pairflow.config import load_config

Partitions = Annotated[int | None, typer.Option(help=with_default(
    "Partitions of the topics if created: the most worker processes that share the work.",
    "kafka_partitions"))]


def ingest(
    symbols: Symbols,
    kafka: Annotated[str, typer.Option("--kafka", help="Kafka bootstrap servers, e.g. "
                                       "127.0.0.1:9092.")],
    kafka_prefix: KafkaPrefix = None,
    kafka_partitions: Partitions = None,
    kafka_tick_form: TickForm = None,
    market: Market = None,
    ws_url: WsUrl = None,
    rest_url: RestUrl = None,
    duration: Duration = None,
    record: Annotated[Path | None, typer.Option("--record", help="Also record raw frames "
                                                "into this directory.")] = None,
    config_file: ConfigFile = None,
) -> None:
    """Publish live Binance trades, heartbeats, feed gaps and health to Kafka, nothing else.

    Workers (`pairflow worker`) read the ticks topic and make bars, pairs and alerts; gaps
    are backfilled over REST here. --duration, Ctrl-C or SIGTERM stop it with everything
    flushed.
    """
    from connectors.recorder import close_all_recorders

    config = load_config(
        {"source": "live", "ingest_only": True, "symbols": symbols, "market": market,
         "ws_url": ws_url, "rest_url": rest_url, "kafka": kafka, "kafka_prefix": kafka_prefix,
         "kafka_partitions": kafka_partitions, "kafka_tick_form": kafka_tick_form,
         "duration_s": duration,
         "record_dir": str(record) if record else None},
        toml_path=config_file)
    try:
        totals, elapsed = run_flow(config, 1, show_progress=False)
    finally:
        close_all_recorders()  # a stop signal skips the partitions' close: finish the gzip files
    print_summary(totals, elapsed)


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command to ``app``."""
    app.command()(ingest)
