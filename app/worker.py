"""``pairflow worker``: one process of the worker cluster that reads the ``ticks`` topic.

The same dataflow as ``python -m bytewax.run flows.pairs:flow -i N -a ADDRS`` with
``source = "kafka"``: each process reads its share of the topic's partitions (ticks, heartbeats
and feed gaps of the symbols keyed there) and makes bars, pairs and alerts.
"""

from __future__ import annotations

from typing import Annotated

import typer

from app.options import (
    ConfigFile,
    Cooldown,
    EntryZ,
    ExitZ,
    KafkaPrefix,
    Lag,
    Lateness,
    Pairs,
    Price,
    RecoveryDir,
    SnapshotInterval,
    Store,
    Symbols,
    Timeframes,
    Window,
    analytics_options,
)
from app.runner import print_summary, run_flow
from pairflow.config import load_config
from pairflow.errors import ConfigError


def worker(
    symbols: Symbols,
    kafka: Annotated[str, typer.Option("--kafka", help="Kafka bootstrap servers, e.g. "
                                       "127.0.0.1:9092.")],
    pairs: Pairs = None,
    timeframes: Timeframes = None,
    store: Store = None,
    kafka_prefix: KafkaPrefix = None,
    follow: Annotated[bool, typer.Option(help="Keep reading new ticks; --no-follow stops at "
                                         "the topic's current end.")] = True,
    process_id: Annotated[int, typer.Option("--process-id", "-i", min=0, help="This process's "
                                            "index in --addresses.")] = 0,
    addresses: Annotated[str | None, typer.Option("--addresses", "-a", help="host:port of every "
                                                  "worker process, ;-separated, the same "
                                                  "list for all.")] = None,
    lateness: Lateness = None,
    window: Window = None,
    price: Price = None,
    lag: Lag = None,
    entry_z: EntryZ = None,
    exit_z: ExitZ = None,
    cooldown: Cooldown = None,
    recovery_dir: RecoveryDir = None,
    snapshot_interval: SnapshotInterval = None,
    config_file: ConfigFile = None,
) -> None:
    """Make bars, pairs and alerts from the Kafka ticks topic, as one of N worker processes.

    Start one per process with the same --addresses and its own --process-id; the ticks
    topic's partitions are shared among them (more processes than partitions idle).
    """
    peers = [a.strip() for a in (addresses or "").split(";") if a.strip()]
    if peers and process_id >= len(peers):
        raise ConfigError(f"--process-id {process_id} is not an index of the {len(peers)} "
                          "--addresses")
    if not peers and process_id:
        raise ConfigError("--process-id needs --addresses of every worker process")
    config = load_config(
        {"source": "kafka", "kafka": kafka, "kafka_prefix": kafka_prefix,
         "kafka_follow": follow, "symbols": symbols, "pairs": pairs,
         "timeframes": timeframes, "store": str(store) if store else None,
         "lateness_s": lateness, "recovery_dir": str(recovery_dir) if recovery_dir else None,
         "snapshot_s": snapshot_interval,
         **analytics_options(window, price, lag, entry_z, exit_z, cooldown)},
        toml_path=config_file)
    totals, elapsed = run_flow(config, 1, show_progress=False,
                               process_id=process_id if peers else None,
                               addresses=peers or None)
    print_summary(totals, elapsed)


def register(app: typer.Typer) -> None:
    """Add the ``worker`` command to ``app``."""
    app.command()(worker)
