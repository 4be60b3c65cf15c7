"""Command-line options shared by ``pairflow replay``, ``live`` and ``record``.

One spelling and one help text for each option, whichever command takes it. The options that
set a configuration value default to ``None`` (not given), so that a ``PAIRFLOW_*`` variable or
the TOML file can still set it; their help shows the effective default, read from
:class:`~pairflow.config.PairflowConfig`, the one place defaults are written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pairflow.config import PairflowConfig

_CONFIG_DEFAULTS = {field.name: field.default for field in dataclasses.fields(PairflowConfig)}


def config_default(name: str) -> Any:
    """The default of one :class:`~pairflow.config.PairflowConfig` field."""
    return _CONFIG_DEFAULTS[name]


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{item[0]}={_shown(item[1])}" if isinstance(item, tuple) else str(item)
                        for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def described(text: str, default: str) -> str:
    """Help text ending in ``[default: …]`` for an option whose default is described in words.

    Typer reads help as rich markup, where a bare ``[default: …]`` is a style tag that vanishes;
    the brackets are escaped so the default is shown, dimmed like the defaults typer shows.
    """
    return f"{text} [dim]{escape(f'[default: {default}]')}[/dim]"


def with_default(text: str, field: str) -> str:
    """Help text ending in the configuration field's default, e.g. ``[default: 300]``."""
    return described(text, _shown(config_default(field)))


Symbols = Annotated[str, typer.Option("--symbols", help="Comma-separated symbols, e.g. "
                                      "BTCUSDT,ETHUSDT.")]
RunSymbols = Annotated[str | None, typer.Option("--symbols", help="Comma-separated symbols, "
                                                 "e.g. BTCUSDT,ETHUSDT (the universe's are "
                                                 "added).")]
Timeframes = Annotated[str | None, typer.Option(help=with_default(
    "Comma-separated bar timeframes.", "timeframes"))]
Pairs = Annotated[str | None, typer.Option(help="Comma-separated pairs Y/X, e.g. "
                                           "BTCUSDT/ETHUSDT (Y is regressed on X).")]
Store = Annotated[Path | None, typer.Option(help="SQLite store to write (created if absent).")]
Kafka = Annotated[str | None, typer.Option("--kafka", help="Kafka bootstrap servers, e.g. "
                                           "127.0.0.1:9092.")]
KafkaPrefix = Annotated[str | None, typer.Option(help=with_default("Kafka topic prefix.",
                                                                   "kafka_prefix"))]
TickForm = Annotated[str | None, typer.Option("--kafka-tick-form", help=with_default(
    "Ticks to Kafka as batch (a symbol's ticks per message, as columns) or tick (one per "
    "message).",
    "kafka_tick_form"))]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML configuration file "
                                                 "(flags and PAIRFLOW_* override it).")]
RecoveryDir = Annotated[Path | None, typer.Option(help="Bytewax recovery directory: snapshot "
                                                "state there and resume from it after a crash.")]
SnapshotInterval = Annotated[float | None, typer.Option(help=with_default(
    "Seconds between snapshots.", "snapshot_s"))]
Window = Annotated[str | None, typer.Option(help=with_default(
    "Bars in the rolling window: one number, or per timeframe as 1s=300,1m=120,5m=48.",
    "window"))]
Price = Annotated[str | None, typer.Option(help=with_default("Price transform: log or raw.",
                                                             "price"))]
Lag = Annotated[str | None, typer.Option(help=with_default(
    "ADF/EG lag policy: aic, bic or a fixed lag.", "lag"))]
EntryZ = Annotated[float | None, typer.Option("--entry-z", help=with_default(
    "Alert entry |z|.", "entry_z"))]
ExitZ = Annotated[float | None, typer.Option("--exit-z", help=with_default(
    "Alert exit |z|.", "exit_z"))]
Beta = Annotated[str | None, typer.Option(help=with_default(
    "Hedge ratio the z-score and alerts follow: ols, kalman or rls.", "beta"))]
KalmanDelta = Annotated[float | None, typer.Option(help=with_default(
    "Kalman state noise delta: alpha and beta take random-walk steps of variance "
    "delta / (1 - delta) per bar.",
    "kalman_delta"))]
KalmanObsVar = Annotated[float | None, typer.Option(help=described(
    "Kalman observation variance.", "the first window's OLS residual variance"))]
RlsLambda = Annotated[float | None, typer.Option(help=with_default(
    "RLS forgetting factor in (0, 1].", "rls_lambda"))]
Cooldown = Annotated[int | None, typer.Option(help=with_default(
    "Bars after an exit with no new entry.", "cooldown_bars"))]
Lateness = Annotated[float | None, typer.Option(help=with_default(
    "Seconds a trade may arrive after its window ends.", "lateness_s"))]
Universe = Annotated[str | None, typer.Option(help=(
    "Comma-separated symbols whose every pair A/B is scanned (A before B in this order) to "
    "the `scan` table and topic; each gets bars. Live: top:K for the K symbols of largest "
    "24 h quote volume when the run starts."))]
ScanTimeframe = Annotated[str | None, typer.Option(help=with_default(
    "Timeframe of the universe scan (one of --timeframes).", "scan_timeframe"))]
ScanWindow = Annotated[int | None, typer.Option(help=with_default(
    "Aligned bars in each scanned pair's window.", "scan_window"))]
ScanEvery = Annotated[int | None, typer.Option(help=with_default(
    "Bars between universe scans.", "scan_every"))]
FeeBps = Annotated[str | None, typer.Option("--fee-bps", help=with_default(
    "Taker fee per market in bps, MARKET=BPS pairs (markets not named keep theirs), for the "
    "executable spread and the paper P&L.", "fee_bps"))]
Notional = Annotated[float | None, typer.Option(help=with_default(
    "Leg Y's notional per paper trade of the alert rule, in the quote currency.", "notional"))]
Pnl = Annotated[bool | None, typer.Option("--pnl/--no-pnl", help=with_default(
    "Paper-trade each pair's alerts (taker fills at the quotes, else the closes; fees; "
    "funding) to the `trades` and `pnl` tables/topics.", "pnl"))]
MaxPvalue = Annotated[float | None, typer.Option(help=(
    "Alert an entry only while the pair's Engle-Granger p-value is below this (its universe "
    "q-value when both legs are in --universe)."))]
NetOfCost = Annotated[bool, typer.Option("--net-of-cost", help=(
    "Alert an entry only when the expected reversion to the exit threshold beats the "
    "round-trip cost at the quotes (needs --quotes)."))]
Workers = Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker threads.")]


def analytics_options(window: str | None, price: str | None, lag: str | None,
                      entry_z: float | None, exit_z: float | None,
                      cooldown: int | None, *, beta: str | None = None,
                      kalman_delta: float | None = None, kalman_obs_var: float | None = None,
                      rls_lambda: float | None = None) -> dict[str, Any]:
    """The statistics and alert flags as configuration keys (``None``: not given)."""
    return {"window": window, "price": price, "lag": lag, "entry_z": entry_z,
            "exit_z": exit_z, "cooldown_bars": cooldown, "beta": beta,
            "kalman_delta": kalman_delta, "kalman_obs_var": kalman_obs_var,
            "rls_lambda": rls_lambda}


def trading_options(fee_bps: str | None, notional: float | None, pnl: bool | None,
                    max_pvalue: float | None, net_of_cost: bool) -> dict[str, Any]:
    """The fee, paper P&L and entry-gate flags as configuration keys (``None``: not given)."""
    return {"fee_bps": fee_bps, "notional": notional, "pnl": pnl, "max_pvalue": max_pvalue,
            "net_of_cost": net_of_cost or None}


def scan_options(universe: str | None, scan_timeframe: str | None, scan_window: int | None,
                 scan_every: int | None) -> dict[str, Any]:
    """The universe scan flags as configuration keys (``None``: not given)."""
    return {"universe": universe, "scan_timeframe": scan_timeframe,
            "scan_window": scan_window, "scan_every": scan_every}
