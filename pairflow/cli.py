"""The ``pairflow`` command line.

Every user mistake (bad flag, bad configuration, missing file, unwritable store) ends as one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from pairflow.cli_options import (
    ConfigFile,
    Cooldown,
    EntryZ,
    ExitZ,
    Kafka,
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
    Workers,
    analytics_options,
)
from pairflow.config import PairflowConfig, load_config
from pairflow.errors import ConfigError, PairflowError, SinkError
from pairflow.records import iso_to_us, write_csv

if not os.environ.get("PAIRFLOW_DEBUG"):
    # A step that raises makes Bytewax's Rust core panic; its backtrace says nothing to a user,
    # who gets the cause as one line instead (PAIRFLOW_DEBUG=1 shows everything).
    os.environ["RUST_BACKTRACE"] = "0"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Real-time pair analytics for crypto markets: Binance trades → bars → hedge ratios, "
    "z-scores, cointegration tests and alerts, to SQLite and Kafka.",
)


def _run_flow(config: PairflowConfig, workers: int, show_progress: bool) -> tuple[Counter, float]:
    """Run the flow in this process to its end; return its counters and elapsed seconds."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from connectors.metrics import CountTally
    from flows.pairs import build_flow

    tally = CountTally()
    progress = None
    task = None
    if show_progress:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("replay"), BarColumn(), DownloadColumn(),
                            TimeElapsedColumn(), transient=True)
        task = progress.add_task("replay", total=None)

    def on_progress(done: float, total: float) -> None:
        if progress is not None:
            progress.update(task, completed=done, total=total or None)

    flow = build_flow(config, tally, on_progress if show_progress else None)
    recovery = {}
    if config.recovery_dir:
        recovery = {"recovery_config": RecoveryConfig(ensure_recovery_dir(config.recovery_dir)),
                    "epoch_interval": timedelta(seconds=config.snapshot_s)}
    # SIGTERM behaves like Ctrl-C: Bytewax stops at once and sinks have committed every
    # finished batch; nothing is half-written.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.perf_counter()
    try:
        if progress is not None:
            progress.start()
        with _without_engine_panics():
            cli_main(flow, workers_per_process=workers, **recovery)
    except Exception as error:
        # Bytewax wraps what a step raised (and Ctrl-C / SIGTERM as KeyboardInterrupt); a
        # user-facing cause (store full, broker gone, a stop signal) is handled as itself.
        cause = _cause(error, (PairflowError, KeyboardInterrupt))
        if isinstance(cause, KeyboardInterrupt):
            _stop()
        elif cause is not None:
            raise cause from None
        else:
            raise
    except KeyboardInterrupt:
        _stop()
    finally:
        if progress is not None:
            progress.stop()
    return tally.totals(), time.perf_counter() - started


#: What Bytewax's Rust core prints when a step raises; the cause is reported as one line.
_PANIC_LINES = ("thread '", "Box<dyn Any>", "note: run with `RUST_BACKTRACE")


@contextlib.contextmanager
def _without_engine_panics() -> Iterator[None]:
    """Forward everything written to fd 2 meanwhile, except the engine's panic report."""
    if os.environ.get("PAIRFLOW_DEBUG"):
        yield
        return
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(os.dup(original), "wb", 0) as out:
            for line in pipe:
                text = line.decode("utf-8", "replace")
                if not text.startswith(_PANIC_LINES):
                    out.write(line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last writer: the thread drains and ends
        os.close(original)
        thread.join(timeout=5)


def _cause(error: BaseException, kinds: tuple[type, ...]) -> BaseException | None:
    """The first exception of one of ``kinds`` in an exception's chain of causes, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kinds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


#: Recovery partitions made by default: the most workers (threads × processes) a resumed run
#: may use; the count can never change for a recovery directory.
RECOVERY_PARTITIONS = 4


def ensure_recovery_dir(path: str, partitions: int = RECOVERY_PARTITIONS) -> Path:
    """The recovery directory, with its partitions created on first use.

    Raises:
        ConfigError: when the directory cannot be created.
    """
    from bytewax.recovery import init_db_dir

    directory = Path(path)
    if not any(directory.glob("part-*.sqlite3")):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            init_db_dir(directory, partitions)
        except OSError as error:
            raise ConfigError(f"cannot create recovery directory {directory}: {error}") from error
    return directory


@app.command("init-recovery")
def init_recovery(
    directory: Annotated[Path, typer.Argument(help="Directory for the recovery partitions.")],
    partitions: Annotated[int, typer.Option(min=1, help="Partitions: at least the most workers "
                                            "any run on this directory will use.")] = 4,
) -> None:
    """Create Bytewax recovery partitions (what `python -m bytewax.recovery DIR N` does)."""
    if any(directory.glob("part-*.sqlite3")):
        raise ConfigError(f"{directory} already holds recovery partitions; their number is fixed")
    ensure_recovery_dir(str(directory), partitions)
    typer.echo(f"{partitions} recovery partitions in {directory}")


def _print_summary(totals: Counter, elapsed: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="replay summary", show_header=False, box=None)
    ticks = totals["ticks_read"] - totals["duplicates"] - totals["dead:late"]
    rows = [("frames read", totals["frames"])]
    rows += [(f"  skipped {k.partition(':')[2]}", v) for k, v in sorted(totals.items())
             if k.startswith("skipped:")]
    rows += [("ticks", totals["ticks_read"]), ("duplicates dropped", totals["duplicates"]),
             ("late trades", totals["dead:late"]), ("ticks in bars", ticks)]
    rows += [(f"bars {k.partition(':')[2]}", v) for k, v in sorted(totals.items())
             if k.startswith("bars:")]
    rows += [("pair records", totals["pairs"]), ("alerts", totals["alerts"])]
    dead = {k.partition(":")[2]: v for k, v in totals.items() if k.startswith("dead:")}
    rows += [("dead letters", sum(dead.values()))]
    rows += [(f"  {reason}", v) for reason, v in sorted(dead.items())]
    rows += [("elapsed", f"{elapsed:.2f} s"),
             ("ticks/s", f"{totals['ticks_read'] / elapsed:,.0f}" if elapsed > 0 else "-")]
    for name, value in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else value)
    Console().print(table)


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
    speed: Annotated[str | None, typer.Option(help="max, realtime or a multiple N of real "
                                              "time [default: max].")] = None,
    lateness: Lateness = None,
    window: Window = None,
    price: Price = None,
    lag: Lag = None,
    entry_z: EntryZ = None,
    exit_z: ExitZ = None,
    cooldown: Cooldown = None,
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
         **analytics_options(window, price, lag, entry_z, exit_z, cooldown)},
        toml_path=config_file,
    )
    totals, elapsed = _run_flow(config, workers, show_progress=sys.stderr.isatty())
    _print_summary(totals, elapsed)


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


def _register_commands() -> None:
    """Add the live-feed and dashboard commands, which live beside their subsystems."""
    from pairflow import cli_dashboard, cli_live

    cli_live.register(app)
    cli_dashboard.register(app)


_register_commands()


def _exit_now(signum: int, frame: Any) -> None:
    os._exit(128 + signum)


def _stop() -> None:
    """A stop was asked (Ctrl-C, SIGTERM): flush what Kafka producers hold, then carry on.

    Every finished batch is already committed to the store; a second signal exits at once
    without waiting for the flush.

    Raises:
        SinkError: when records could not be delivered to Kafka.
    """
    signal.signal(signal.SIGINT, _exit_now)
    signal.signal(signal.SIGTERM, _exit_now)
    kafka = sys.modules.get("connectors.kafka")
    undelivered = kafka.flush_all() if kafka is not None else 0
    if undelivered:
        raise SinkError(f"stopped with {undelivered} Kafka records undelivered")
    typer.echo("stopped: everything processed so far is written", err=True)


def main() -> None:
    """Console entry point: run the app, turning user errors into one line and exit 2.

    Usage errors are the command-line parser's own (usage line, message, exit 2).
    """
    try:
        app()
    except PairflowError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
