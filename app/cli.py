"""The ``pairflow`` command line.

Every user mistake (bad flag, bad configuration, missing file, unwritable store) ends as one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from app import dashboard, live
from app.console import run_reporting_errors
from app.options import (
    Beta,
    ConfigFile,
    Cooldown,
    EntryZ,
    ExitZ,
    Kafka,
    KafkaPrefix,
    KalmanDelta,
    KalmanObsVar,
    Lag,
    Lateness,
    Pairs,
    Price,
    RecoveryDir,
    RlsLambda,
    SnapshotInterval,
    Store,
    Symbols,
    Timeframes,
    Window,
    Workers,
    analytics_options,
    described,
)
from app.runner import RECOVERY_PARTITIONS, ensure_recovery_dir, print_summary, run_flow
from pairflow.config import load_config
from pairflow.errors import ConfigError
from pairflow.records import iso_to_us, write_csv

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Real-time pair analytics for crypto markets: Binance trades → bars → hedge ratios, "
    "z-scores, cointegration tests and alerts, to SQLite and Kafka.",
)


@app.command("init-recovery")
def init_recovery(
    directory: Annotated[Path, typer.Argument(help="Directory for the recovery partitions.")],
    partitions: Annotated[int, typer.Option(
        min=1, help="Partitions: at least the most workers any run on this directory will use.",
    )] = RECOVERY_PARTITIONS,
) -> None:
    """Create Bytewax recovery partitions (what `python -m bytewax.recovery DIR N` does)."""
    if any(directory.glob("part-*.sqlite3")):
        raise ConfigError(f"{directory} already holds recovery partitions; their number is fixed")
    ensure_recovery_dir(str(directory), partitions)
    typer.echo(f"{partitions} recovery partitions in {directory}")


@app.command()
def replay(
    files: Annotated[list[Path], typer.Argument(help="Recordings (gzip or plain), "
                                                "data.binance.vision CSV/zip, or tick NDJSON; "
                                                "any order, may overlap.")],
    symbols: Symbols,
    timeframes: Timeframes = None,
    pairs: Pairs = None,
    store: Store = None,
    kafka: Kafka = None,
    speed: Annotated[str | None, typer.Option(help=described(
        "max, realtime or a multiple N of real time.", "max"))] = None,
    lateness: Lateness = None,
    window: Window = None,
    price: Price = None,
    lag: Lag = None,
    entry_z: EntryZ = None,
    exit_z: ExitZ = None,
    cooldown: Cooldown = None,
    beta: Beta = None,
    kalman_delta: KalmanDelta = None,
    kalman_obs_var: KalmanObsVar = None,
    rls_lambda: RlsLambda = None,
    kafka_prefix: KafkaPrefix = None,
    ticks_to_kafka: Annotated[bool, typer.Option(help="Also publish the normalised ticks to "
                                                 "the `ticks` topic (needs --kafka).")] = False,
    workers: Workers = 1,
    recovery_dir: RecoveryDir = None,
    snapshot_interval: SnapshotInterval = None,
    config_file: ConfigFile = None,
) -> None:
    """Replay recorded trades through the flow into the store and/or Kafka, then summarise."""
    config = load_config(
        {"source": "replay", "files": [str(f) for f in files], "symbols": symbols,
         "timeframes": timeframes, "pairs": pairs, "store": str(store) if store else None,
         "kafka": kafka, "speed": speed, "lateness_s": lateness, "kafka_prefix": kafka_prefix,
         "ticks_to_kafka": ticks_to_kafka or None,
         "recovery_dir": str(recovery_dir) if recovery_dir else None,
         "snapshot_s": snapshot_interval,
         **analytics_options(window, price, lag, entry_z, exit_z, cooldown, beta=beta,
                            kalman_delta=kalman_delta, kalman_obs_var=kalman_obs_var,
                            rls_lambda=rls_lambda)},
        toml_path=config_file,
    )
    totals, elapsed = run_flow(config, workers, show_progress=sys.stderr.isatty())
    print_summary(totals, elapsed)


@app.command()
def export(
    store: Annotated[Path, typer.Option(help="SQLite store written by replay/live.")],
    kind: Annotated[str, typer.Option(help="bars, pairs, alerts or deadletter.")],
    out: Annotated[str, typer.Option(help="CSV file to write, or - for stdout.")],
    symbol: Annotated[str | None, typer.Option(help="Only this symbol (bars).")] = None,
    pair: Annotated[str | None, typer.Option(help="Only this pair Y/X (pairs, alerts).")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Only this timeframe.")] = None,
    start: Annotated[str | None, typer.Option(help="From this ISO-8601 time (inclusive).")] = None,
    end: Annotated[str | None, typer.Option(help="Until this ISO-8601 time (exclusive).")] = None,
) -> None:
    """Export stored records as CSV: a header of the record's fields, times in ISO-8601 UTC."""
    from connectors.store import TABLES, StoreReader

    if kind not in TABLES:
        raise ConfigError(f"unknown kind {kind!r}: choose bars, pairs, alerts or deadletter")
    if symbol and pair:
        raise ConfigError("give --symbol or --pair, not both")
    where: dict[str, Any] = {}
    if symbol:
        if kind != "bars":
            raise ConfigError("--symbol filters bars; use --pair for pairs and alerts")
        where["symbol"] = symbol.upper()
    if pair:
        if kind not in ("pairs", "alerts"):
            raise ConfigError("--pair filters pairs and alerts; use --symbol for bars")
        where["pair"] = pair.upper()
    if timeframe:
        if kind == "deadletter":
            raise ConfigError("dead letters have no timeframe")
        where["timeframe"] = timeframe
    try:
        time_range = (iso_to_us(start) if start else None, iso_to_us(end) if end else None)
    except ValueError as error:
        raise ConfigError(f"--start/--end must be ISO-8601 times: {error}") from error
    rows = StoreReader(store).query(kind, where, time_range)
    handle = sys.stdout if out == "-" else _open_out(out)
    try:
        write_csv(handle, TABLES[kind].record, rows)
    finally:
        if handle is not sys.stdout:
            handle.close()


def _open_out(path: str):
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from error


live.register(app)
dashboard.register(app)


def main() -> None:
    """Console entry point (``pairflow``): user errors end as one line and exit code 2."""
    run_reporting_errors(app)


if __name__ == "__main__":
    main()
