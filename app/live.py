"""The live commands of the ``pairflow`` CLI: ``live``, ``record`` and ``status``.

``register(app)`` adds them to the main typer app (``app/cli.py``). Errors are
:class:`~pairflow.errors.PairflowError` s, printed as one line with exit code 2 by
``app.cli.main``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

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
    Symbols,
    TickForm,
    Timeframes,
    Universe,
    Window,
    Workers,
    analytics_options,
    config_default,
    described,
    scan_options,
    trading_options,
    with_default,
)
from app.runner import print_summary, run_flow
from app.signals import sigterm_interrupts
from pairflow.config import load_config
from pairflow.errors import ConfigError

Market = Annotated[str | None, typer.Option(help=with_default(
    "spot, usdm (USDⓈ-M futures) or cm (COIN-M futures).", "market"))]
WsUrl = Annotated[str | None, typer.Option("--ws-url", help=described(
    "Base WebSocket URL.", "Binance's for the market"))]
RestUrl = Annotated[str | None, typer.Option("--rest-url", help=described(
    "Base REST URL for backfills.", "Binance's for the market"))]
LiveQuotes = Annotated[bool, typer.Option(help="Also subscribe each symbol's @bookTicker (and "
                                          "a futures perpetual's @markPrice@1s) on its "
                                          "trades' connection.")]
Duration = Annotated[float | None, typer.Option(help=described("Stop after this many seconds.",
                                                               "until Ctrl-C"))]


def live(
    symbols: RunSymbols = None,
    pairs: Pairs = None,
    universe: Universe = None,
    scan_timeframe: ScanTimeframe = None,
    scan_window: ScanWindow = None,
    scan_every: ScanEvery = None,
    timeframes: Timeframes = None,
    market: Market = None,
    ws_url: WsUrl = None,
    rest_url: RestUrl = None,
    store: Store = None,
    kafka: Kafka = None,
    kafka_prefix: KafkaPrefix = None,
    duration: Duration = None,
    record: Annotated[Path | None, typer.Option("--record", help="Also record raw frames "
                                                "into this directory.")] = None,
    ticks_to_kafka: Annotated[bool, typer.Option("--ticks-to-kafka", help="Publish "
                                                 "normalised ticks to Kafka.")] = False,
    kafka_tick_form: TickForm = None,
    quotes: LiveQuotes = False,
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
    fee_bps: FeeBps = None,
    notional: Notional = None,
    pnl: Pnl = None,
    max_pvalue: MaxPvalue = None,
    net_of_cost: NetOfCost = False,
    recovery_dir: RecoveryDir = None,
    snapshot_interval: SnapshotInterval = None,
    workers: Workers = 1,
    config_file: ConfigFile = None,
) -> None:
    """Run the flow on live Binance trades into the store and/or Kafka.

    Gaps are backfilled over REST; --duration, Ctrl-C or SIGTERM stop it with everything
    flushed. With --quotes, quote bars go to the `quotes` table/topic too.
    """
    from connectors.recorder import close_all_recorders

    universe = _top_universe(universe, market, rest_url)
    config = load_config(
        {"source": "live", "symbols": symbols, "pairs": pairs, "timeframes": timeframes,
         "market": market, "ws_url": ws_url, "rest_url": rest_url,
         "store": str(store) if store else None, "kafka": kafka, "kafka_prefix": kafka_prefix,
         "duration_s": duration,
         "record_dir": str(record) if record else None,
         "ticks_to_kafka": ticks_to_kafka or None, "kafka_tick_form": kafka_tick_form,
         "quotes": quotes or None, "lateness_s": lateness,
         "recovery_dir": str(recovery_dir) if recovery_dir else None,
         "snapshot_s": snapshot_interval,
         **analytics_options(window, price, lag, entry_z, exit_z, cooldown, beta=beta,
                            kalman_delta=kalman_delta, kalman_obs_var=kalman_obs_var,
                            rls_lambda=rls_lambda),
         **scan_options(universe, scan_timeframe, scan_window, scan_every),
         **trading_options(fee_bps, notional, pnl, max_pvalue, net_of_cost)},
        toml_path=config_file)
    try:
        totals, elapsed = run_flow(config, workers, show_progress=False)
    finally:
        # Ctrl-C / SIGTERM end the flow without closing its partitions: close the recorders
        # here so their gzip files are complete.
        close_all_recorders()
    print_summary(totals, elapsed)


def _top_universe(universe: str | None, market: str | None,
                  rest_url: str | None) -> str | None:
    """``top:K`` as the K symbols of largest 24 h quote volume now; any other value as given."""
    from connectors.binance.ticker import TOP_PATTERN, top_symbols

    top = TOP_PATTERN.match(universe or "")
    if top is None:
        return universe
    from connectors.binance.settings import LiveSettings

    market = market or config_default("market")
    settings = LiveSettings.from_env(market=market, rest_url=rest_url)
    return ",".join(top_symbols(settings.base_rest_url, market, int(top.group(1))))


def record(
    symbols: Symbols,
    out: Annotated[Path, typer.Option("--out", help="Directory for the recordings.")],
    market: Market = None,
    ws_url: WsUrl = None,
    duration: Duration = None,
    stream_kind: Annotated[str | None, typer.Option("--stream", help=described(
        "trade or aggTrade.", "trade on spot, aggTrade on usdm"))] = None,
    quotes: LiveQuotes = False,
) -> None:
    """Record raw Binance frames (``<recv_ns> <frame>`` lines, hourly gzip files), nothing else.

    Reconnects on its own; Ctrl-C or SIGTERM close the files cleanly.
    """
    import asyncio  # here: a replay's start-up does not pay for it

    from connectors.binance.settings import LiveSettings
    from connectors.recorder import FrameRecorder

    config = load_config({"source": "live", "symbols": symbols, "market": market,
                          "ws_url": ws_url, "duration_s": duration})
    settings = LiveSettings.from_env(market=config.market, ws_url=config.ws_url,
                                     stream_kind=stream_kind, quotes=quotes or None)
    recorder = FrameRecorder(out, f"binance-{settings.market}")
    sigterm_interrupts()
    try:
        asyncio.run(_record(config.symbols, settings, recorder, config.duration_s))
    except KeyboardInterrupt:
        typer.echo("interrupted: recording closed", err=True)
    finally:
        recorder.close()
    typer.echo(f"recorded {recorder.frames} frames into {len(recorder.paths)} file(s) in {out}")


async def _record(symbols, settings, recorder, duration_s: float | None) -> None:
    """Write every frame of the symbols' streams until ``duration_s`` (None: until stopped)."""
    import asyncio

    from connectors.binance.supervisor import ConnectionSupervisor

    supervisor = ConnectionSupervisor(f"record-{settings.market}", settings.stream_url(symbols),
                                      settings.supervision, recorder.write)
    supervisor.start()
    try:
        if duration_s is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration_s)
    finally:
        await supervisor.close()


def status(
    store: Annotated[Path, typer.Option(help="SQLite store written by `pairflow live`.")],
) -> None:
    """Print the latest health record of every live stream."""
    from rich.console import Console
    from rich.table import Table

    from connectors.store import StoreReader
    from pairflow.records import us_to_iso

    latest = {row["stream"]: row for row in StoreReader(store).latest_per("health", "stream")}
    if not latest:
        raise ConfigError(f"no health records in {store}: is `pairflow live` writing to it?")
    now_us = time.time_ns() // 1000
    table = Table(title=f"live streams ({store})")
    for name in ("stream", "connected", "updated", "last msg age s", "msgs/s", "reconnects",
                 "gaps", "backfilled", "unrecovered", "lat p50 ms", "lat p99 ms", "skew ms",
                 "event"):
        table.add_column(name)

    def fmt(value) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    for stream, row in sorted(latest.items()):
        table.add_row(stream, "yes" if row["connected"] else "NO",
                      f"{us_to_iso(row['ts'])} ({(now_us - row['ts']) / 1e6:.0f} s ago)",
                      fmt(row["last_message_age_s"]), fmt(row["messages_per_s"]),
                      fmt(row["reconnects"]), fmt(row["gaps_found"]),
                      fmt(row["trades_backfilled"]), fmt(row["gaps_unrecovered"]),
                      fmt(row["latency_p50_ms"]), fmt(row["latency_p99_ms"]),
                      fmt(row["clock_skew_ms"]), fmt(row["event"]))
    Console(width=200).print(table)


def register(app: typer.Typer) -> None:
    """Add the ``live``, ``record`` and ``status`` commands to ``app``."""
    app.command()(live)
    app.command()(record)
    app.command()(status)
