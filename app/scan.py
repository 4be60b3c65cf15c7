"""``pairflow scan``: every pair of a universe over recorded data, to CSV or Parquet.

The input is read by the replay readers. Candles (klines and OHLCV CSV, pairflow bar Parquet)
are resampled to the scan timeframe when it is a multiple of theirs (a bar's close is the last
candle's close); trades (recordings, data.binance.vision dumps, tick NDJSON or Parquet) are
made into bars of the scan timeframe by the flow's own bar builder (same lateness, quiet bars
and gaps as ``pairflow replay``). The closes are laid on the timeframe grid and scanned by
:class:`~pairflow.universe.UniverseScan` holding the whole input, so every pair's window is
exact however long a leg's gaps. Rows are written as each scan time completes.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from app.options import ConfigFile, Lag, Price, described
from pairflow.config import load_settings
from pairflow.errors import ConfigError, InputFileError
from pairflow.universe import ScanSettings

_STAGE = "scan"
_FIELDS = {f for f in ScanSettings.__dataclass_fields__}


def _default(text: str, field: str) -> str:
    """Help text ending in the scan setting's default (written once, in ScanSettings)."""
    return described(text, str(getattr(ScanSettings, field)))


def register(app: typer.Typer) -> None:
    """Add the ``scan`` command to the ``pairflow`` app."""

    @app.command()
    def scan(
        files: Annotated[list[Path], typer.Argument(help="Candles (klines or OHLCV CSV named "
                                                    "SYMBOL-INTERVAL-….csv, bar Parquet) or "
                                                    "trades (recordings, dumps, ticks).")],
        out: Annotated[Path, typer.Option(help="Output: FILE.csv or FILE.parquet.")],
        universe: Annotated[str | None, typer.Option(help=described(
            "Comma-separated symbols in pair order.", "every symbol of the files, "
            "alphabetical"))] = None,
        timeframe: Annotated[str | None, typer.Option(help=_default(
            "Scan timeframe (a multiple of the candles').", "scan_timeframe"))] = None,
        window: Annotated[int | None, typer.Option(help=_default(
            "Aligned bars in each pair's window.", "scan_window"))] = None,
        every: Annotated[int | None, typer.Option(help=_default(
            "Bars between scan times.", "scan_every"))] = None,
        vr_lag: Annotated[int | None, typer.Option(help=_default(
            "Variance ratio lag.", "vr_lag"))] = None,
        hurst_max_lag: Annotated[int | None, typer.Option(help=_default(
            "Largest lag of the Hurst fit.", "hurst_max_lag"))] = None,
        price: Price = None,
        lag: Lag = None,
        config_file: ConfigFile = None,
    ) -> None:
        """Scan every pair of a universe over recorded data: one row per pair per scan time."""
        settings = scan_settings(
            {"universe": universe, "scan_timeframe": timeframe, "scan_window": window,
             "scan_every": every, "vr_lag": vr_lag, "hurst_max_lag": hurst_max_lag,
             "price": price, "lag": lag}, config_file)
        check_out(out)
        rows = run_scan(files, settings, show_progress=sys.stderr.isatty())
        written = write_rows(out, rows)
        typer.echo(f"{written} rows to {out}", err=True)


def scan_settings(given: dict[str, Any], config_file: Path | None) -> ScanSettings:
    """The scan's settings: flags over ``PAIRFLOW_*`` over the TOML file's scan keys.

    Raises:
        ConfigError: an unreadable TOML file or a setting out of bounds.
    """
    table: dict[str, Any] = {}
    if config_file is not None:
        try:
            with open(config_file, "rb") as handle:
                table = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"cannot read config file {config_file}: {error.strerror}") \
                from error
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {config_file} is not valid TOML: {error}") \
                from error
    # the file configures other commands too: only the scan's keys apply here
    return load_settings(ScanSettings, env_prefix="PAIRFLOW_",
                         table={k: v for k, v in table.items() if k in _FIELDS},
                         given=given, where=str(config_file))


def run_scan(files: list[Path], settings: ScanSettings,
             show_progress: bool = False) -> Iterator[dict[str, Any]]:
    """Read the candles (now), then every pair's row at every scan time, in time order.

    Raises:
        InputFileError: a file that is missing or not candles, candles whose timeframe does
            not divide the scan's, a universe symbol without candles.
    """
    from pairflow.universe import UniverseScan

    symbols, ends, closes = read_grid(files, settings)
    engine = UniverseScan(symbols, settings, capacity=max(closes.shape[1],
                                                          settings.scan_window))
    return _scan_rows(engine, ends, closes, show_progress)


def _scan_rows(engine, ends: np.ndarray, closes: np.ndarray,
               show_progress: bool) -> Iterator[dict[str, Any]]:
    columns = range(closes.shape[1])
    progress = _progress(len(columns)) if show_progress and len(columns) > 10_000 else None
    try:
        for column in columns:
            for frame in engine.push(int(ends[column]), closes[:, column]):
                yield from frame.rows()
            if progress is not None and column % 1000 == 0:
                progress.update(progress.task_ids[0], completed=column)
    finally:
        if progress is not None:
            progress.stop()


def _progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn("scan"), BarColumn(), MofNCompleteColumn(), transient=True)
    progress.add_task("scan", total=total)
    progress.start()
    return progress


def read_grid(files: list[Path], settings: ScanSettings
              ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The universe, the bar ends with any bar, and closes (symbol × end, NaN: no bar)."""
    from connectors.replay import inspect_file
    from connectors.replay.formats import CANDLE_LAYOUTS

    specs = [inspect_file(path) for path in files]
    universe = settings.universe
    if not universe:
        if any(spec.symbol is None for spec in specs):
            raise ConfigError("recordings, tick files and bar Parquet may hold any symbols: "
                              "name the universe with --universe")
        universe = tuple(sorted({spec.symbol for spec in specs if spec.symbol}))
    wanted = frozenset(universe)
    specs = [spec for spec in specs if spec.symbol is None or spec.symbol in wanted]
    candles = [spec for spec in specs if spec.layout in CANDLE_LAYOUTS]
    ticks = [spec for spec in specs if spec.layout not in CANDLE_LAYOUTS]
    bars = _read_closes(candles, wanted, settings.scan_timeframe)
    for symbol, (ends, closes) in _tick_closes(ticks, wanted, settings.scan_timeframe).items():
        if symbol in bars:
            raise InputFileError(f"{symbol} comes both as candles and as trades: give one")
        bars[symbol] = (ends, closes)
    missing = [s for s in universe if s not in bars]
    if missing:
        raise InputFileError(f"no bars of universe symbol(s) {missing} in the input")
    all_ends = np.unique(np.concatenate([ends for ends, _ in bars.values()]))
    closes = np.full((len(universe), all_ends.size), np.nan)
    for row, symbol in enumerate(universe):
        ends, values = bars[symbol]
        closes[row, np.searchsorted(all_ends, ends)] = values
    return universe, all_ends, closes


def _read_closes(specs: list, symbols: frozenset[str],
                 timeframe: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each symbol's bar ends and closes on the scan timeframe (last candle of each bar)."""
    from connectors.replay.blocks import CandleBlock
    from connectors.replay.readers import file_blocks
    from pairflow.timeframes import timeframe_us as length_us

    timeframe_us = length_us(timeframe)
    pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    dead = 0
    for spec in specs:
        for block in file_blocks(spec, symbols, _STAGE, [0]):
            dead += len(block.dead)
            if not isinstance(block, CandleBlock) or not block.symbol or not block.keys.size:
                continue
            if timeframe_us % block.length:
                raise InputFileError(
                    f"{spec.path}: {block.timeframe} candles do not make {timeframe} bars: "
                    "the scan timeframe must be a multiple of the candles'")
            pieces.setdefault(block.symbol, []).append((block.keys, block.values[:, 3]))
    if dead:
        typer.echo(f"{dead} bad candle rows skipped", err=True)
    out = {}
    for symbol, parts in pieces.items():
        ends = np.concatenate([e for e, _ in parts])
        closes = np.concatenate([c for _, c in parts])
        order = np.argsort(ends, kind="stable")
        ends, closes = ends[order], closes[order]
        bar_ends = -(-ends // timeframe_us) * timeframe_us
        last = np.append(bar_ends[1:] != bar_ends[:-1], True)  # last candle of each bar
        out[symbol] = (bar_ends[last], closes[last])
    return out


def check_out(path: Path) -> None:
    """Fail before any work when ``--out`` cannot be written.

    Raises:
        ConfigError: an extension other than ``.csv`` / ``.parquet``, or a missing directory.
    """
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(f"--out {path}: name a .csv or .parquet file")
    if not path.parent.is_dir():
        raise ConfigError(f"--out {path}: directory {path.parent} does not exist")


def _tick_closes(specs: list, symbols: frozenset[str],
                 timeframe: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each symbol's bar ends and closes, built from trades as ``pairflow replay`` does."""
    if not specs:
        return {}
    from connectors.replay import MergedReplay
    from connectors.replay.readers import BLOCK_LINES
    from pairflow.bars import BarBuilder
    from pairflow.config import PairflowConfig
    from pairflow.ticks import Heartbeat

    lateness_us = round(PairflowConfig.lateness_s * 1_000_000)
    builders = {s: BarBuilder(s, [timeframe], lateness_us) for s in symbols}
    bars: dict[str, list] = {s: [] for s in symbols}
    replay = MergedReplay(specs, symbols, stage=_STAGE)
    dead = 0
    while not replay.exhausted:
        batch = replay.read(BLOCK_LINES)
        dead += len(batch.dead)
        for chunk in batch.chunks:
            bars[chunk.symbol] += builders[chunk.symbol].update(chunk).bars
    if dead:
        typer.echo(f"{dead} bad lines or late trades skipped", err=True)
    for symbol, builder in builders.items():
        bars[symbol] += builder.heartbeat(Heartbeat(symbol, 0, final=True)).bars
    return {s: (np.array([b.end for b in made], np.int64), np.array([b.close for b in made]))
            for s, made in bars.items() if made}


def write_rows(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    """Write scan rows to ``path`` (``.csv`` or ``.parquet``); return how many.

    Raises:
        ConfigError: an unknown extension or an unwritable path.
    """
    check_out(path)
    if path.suffix.lower() == ".csv":
        return _write_csv(path, rows)
    from connectors.exports import write_parquet
    from pairflow.records import ScanRecord

    return write_parquet(path, ScanRecord, rows)


def _counted(rows: Iterator[dict[str, Any]], count: list[int]) -> Iterator[dict[str, Any]]:
    for row in rows:
        count[0] += 1
        yield row


def _write_csv(path: Path, rows: Iterator[dict[str, Any]]) -> int:
    from pairflow.records import ScanRecord, write_csv

    count = [0]
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            write_csv(handle, ScanRecord, _counted(rows, count))
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from error
    return count[0]
