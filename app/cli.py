"""The ``pairflow`` command line.

Every user mistake (bad flag, bad configuration, missing file, unwritable store) ends as one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import atexit
import gc
import sys
from pathlib import Path
from typing import Annotated

import typer

from app import convert, dashboard, export, ingest, live, scan, worker
from app.console import run_reporting_errors
from app.options import (
    Beta,
    ConfigFile,
    Cooldown,
    EntryZ,
    ExitZ,
    FeeBps,
    Kafka,
    KafkaPrefix,
    KalmanDelta,
    KalmanObsVar,
    Lag,
    Lateness,
    MaxPvalue,
    NetOfCost,
    Notional,
    Pairs,
    Pnl,
    Price,
    RecoveryDir,
    RlsLambda,
    RunSymbols,
    ScanEvery,
    ScanTimeframe,
    ScanWindow,
    SnapshotInterval,
    Store,
    TickForm,
    Timeframes,
    Universe,
    Window,
    Workers,
    analytics_options,
    described,
    scan_options,
    trading_options,
)
from app.runner import RECOVERY_PARTITIONS, ensure_recovery_dir, print_summary, run_flow
from pairflow.config import load_config
from pairflow.errors import ConfigError, InputFileError

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
    symbols: RunSymbols = None,
    timeframes: Timeframes = None,
    pairs: Pairs = None,
    universe: Universe = None,
    scan_timeframe: ScanTimeframe = None,
    scan_window: ScanWindow = None,
    scan_every: ScanEvery = None,
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
    kafka_tick_form: TickForm = None,
    quotes: Annotated[bool, typer.Option(help="Also read the recordings' @bookTicker quotes "
                                         "into quote bars (`quotes` table/topic).")] = False,
    contract_size: Annotated[str | None, typer.Option(help=described(
        "USD per contract of COIN-M symbols, SYMBOL=USD,… (COIN-M trades count contracts; "
        "bars state coins and USD).", "Binance's: 100 for BTC contracts, 10 for others"))
    ] = None,
    max_pvalue: MaxPvalue = None,
    net_of_cost: NetOfCost = False,
    fee_bps: FeeBps = None,
    notional: Notional = None,
    pnl: Pnl = None,
    workers: Workers = 1,
    recovery_dir: RecoveryDir = None,
    snapshot_interval: SnapshotInterval = None,
    config_file: ConfigFile = None,
) -> None:
    """Replay recorded trades through the flow into the store and/or Kafka, then summarise."""
    from connectors.binance.ticker import TOP_PATTERN

    if TOP_PATTERN.match(universe or ""):
        raise ConfigError(f"--universe {universe} ranks the exchange's symbols now: it is for "
                          "`pairflow live`; name the replay's symbols")
    config = load_config(
        {"source": "replay", "files": [str(f) for f in files], "symbols": symbols,
         "timeframes": timeframes, "pairs": pairs, "store": str(store) if store else None,
         "kafka": kafka, "speed": speed, "lateness_s": lateness, "kafka_prefix": kafka_prefix,
         "ticks_to_kafka": ticks_to_kafka or None, "kafka_tick_form": kafka_tick_form,
         "quotes": quotes or None, "contract_sizes": contract_size,
         "recovery_dir": str(recovery_dir) if recovery_dir else None,
         "snapshot_s": snapshot_interval,
         **analytics_options(window, price, lag, entry_z, exit_z, cooldown, beta=beta,
                            kalman_delta=kalman_delta, kalman_obs_var=kalman_obs_var,
                            rls_lambda=rls_lambda),
         **scan_options(universe, scan_timeframe, scan_window, scan_every),
         **trading_options(fee_bps, notional, pnl, max_pvalue, net_of_cost)},
        toml_path=config_file,
    )
    input_errors: list[InputFileError] = []
    totals, elapsed = run_flow(config, workers, show_progress=sys.stderr.isatty(),
                               input_errors=input_errors)
    print_summary(totals, elapsed)
    if input_errors:
        # Everything readable was replayed and stored; the run still fails: a file ended early.
        raise input_errors[0]


live.register(app)
export.register(app)
convert.register(app)
ingest.register(app)
worker.register(app)
dashboard.register(app)
scan.register(app)


def main() -> None:
    """Console entry point (``pairflow``): user errors end as one line and exit code 2."""
    # At exit the interpreter walks every object still alive looking for reference cycles:
    # ~0.15 s after a run that loaded numba. Everything is freed at exit anyway, so once the
    # exit handlers registered later (Kafka flushes, recorders) have run, the survivors leave
    # the collector's view.
    atexit.register(gc.freeze)
    run_reporting_errors(app)


if __name__ == "__main__":
    main()
