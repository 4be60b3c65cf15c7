"""Telling an input file's layout from its first line (never from its name alone)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from connectors.replay.files import first_lines
from pairflow.errors import ConfigError, InputFileError
from pairflow.records import SYMBOL_TEXT, exchange_time_us
from pairflow.timeframes import timeframe_us

#: ``recording``: recorder lines; ``ticks``: tick NDJSON; ``*_csv``: data.binance.vision
#: dumps (trades, aggTrades, klines) and generic OHLCV candles; ``*_parquet``: pairflow's own
#: tick and bar columns.
Layout = Literal["recording", "ticks", "trades_csv", "aggtrades_csv", "klines_csv",
                 "ohlcv_csv", "ticks_parquet", "bars_parquet"]
#: Layouts whose rows are candles (bars), not ticks.
CANDLE_LAYOUTS = frozenset({"klines_csv", "ohlcv_csv", "bars_parquet"})

_CSV_NAME = re.compile(f"^({SYMBOL_TEXT})-(trades|aggTrades|[0-9]+[smhdwM]|1mo)-", re.IGNORECASE)
_OHLCV_HEADER = ["open_time", "open", "high", "low", "close", "volume"]
_KLINES_HEADER = ["open_time", "open", "high", "low", "close", "volume", "close_time",
                  "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore"]
#: COIN-M klines name the coin volumes where the others have quote volumes.
_COINM_KLINES_HEADER = ["open_time", "open", "high", "low", "close", "volume", "close_time",
                        "base_volume", "count", "taker_buy_volume", "taker_buy_base_volume",
                        "ignore"]
_TRADES_HEADER = ["id", "price", "qty", "quote_qty", "time", "is_buyer_maker"]
#: COIN-M trades carry the coin quantity where the others carry the quote quantity.
_COINM_TRADES_HEADER = ["id", "price", "qty", "base_qty", "time", "is_buyer_maker"]
_AGG_HEADER = ["agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id",
               "transact_time", "is_buyer_maker"]


@dataclass(frozen=True, slots=True)
class InputFile:
    """An input file, its layout and what it knows before being read."""

    path: Path
    layout: Layout
    first_key: int  # receive time (µs) of its first line, for ordering files
    symbol: str | None = None  # CSV dumps hold one symbol, named in the file name
    columns: int = 0  # fields per CSV row
    header: bool = False  # whether a CSV's first line names its columns
    interval: str | None = None  # candles' timeframe, from a candle CSV's file name


def inspect_file(path: str | Path) -> InputFile:
    """Tell a file's layout from its first line.

    Raises:
        InputFileError: when the file is missing, unreadable, empty or of no known layout.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"input file {path} does not exist")
    with open(path, "rb") as probe:
        if probe.read(4) == b"PAR1":
            # Imported here: pyarrow.parquet costs half a second of start-up.
            from connectors.replay.parquet import first_time, parquet_kind

            layout = parquet_kind(path)
            column = "recv_ts" if layout == "ticks_parquet" else "end"
            return InputFile(path, layout, first_time(path, column))
    lines = first_lines(path, 2)
    if not lines:
        raise InputFileError(f"input file {path} is empty")
    line = lines[0]
    head, _, rest = line.partition(b" ")
    if head.isdigit() and rest.startswith(b"{"):
        return InputFile(path, "recording", int(head) // 1000)
    if line.startswith(b"{"):
        return _inspect_ticks(path, line)
    return _inspect_csv(path, lines)


def _inspect_ticks(path: Path, line: bytes) -> InputFile:
    try:
        tick = msgspec.json.decode(line)
        return InputFile(path, "ticks", int(tick["recv_ts"]))
    except (msgspec.DecodeError, KeyError, TypeError, ValueError) as error:
        raise InputFileError(
            f"{path}: a JSON-lines file must hold pairflow ticks (symbol, trade_id, …, "
            f"recv_ts): {error}"
        ) from error


def _inspect_csv(path: Path, lines: list[bytes]) -> InputFile:
    fields = lines[0].decode("utf-8", "replace").split(",")
    match = _CSV_NAME.match(path.name)
    if match is None:
        raise InputFileError(
            f"{path}: not a recording (`<ns> <frame>` lines) nor pairflow ticks; for a CSV "
            "name it SYMBOL-trades-DATE.csv, SYMBOL-aggTrades-DATE.csv or (candles) "
            "SYMBOL-INTERVAL-DATE.csv, e.g. BTCUSDT-1m-2024-08-08.csv"
        )
    symbol, kind = match.group(1).upper(), match.group(2)
    has_header = not fields[0].strip().lstrip("-").isdigit()
    if kind.lower() in ("trades", "aggtrades"):
        layout = _csv_layout(fields, has_header)
    else:
        layout = _candle_layout(path, fields, has_header, kind)
    if layout is None:
        raise InputFileError(f"{path}: CSV columns {fields} are neither trades nor aggTrades")
    data = lines[1:] if has_header else lines
    first = _csv_first_time(data[0].decode("utf-8", "replace").split(","), layout) if data else 0
    return InputFile(path, layout, first, symbol, len(fields), has_header,
                     kind if layout in CANDLE_LAYOUTS else None)


def _candle_layout(path: Path, fields: list[str], has_header: bool, interval: str) -> Layout:
    try:
        timeframe_us(interval)
    except ConfigError:
        raise InputFileError(
            f"{path}: {interval} candles are not supported: bars are aligned to the epoch, so "
            "the interval must be whole seconds, minutes, hours or days (1s … 1d)") from None
    names = [f.strip().lower() for f in fields]
    if len(names) == len(_KLINES_HEADER) and (
            not has_header or names in (_KLINES_HEADER, _COINM_KLINES_HEADER)):
        return "klines_csv"
    if len(names) == len(_OHLCV_HEADER) and (not has_header or names == _OHLCV_HEADER):
        return "ohlcv_csv"
    raise InputFileError(
        f"{path}: CSV columns {fields} are neither klines ({','.join(_KLINES_HEADER)}) nor "
        f"OHLCV ({','.join(_OHLCV_HEADER)})")


def _csv_layout(fields: list[str], has_header: bool) -> Layout | None:
    names = [f.strip().lower() for f in fields]
    if has_header:
        if names[: len(_AGG_HEADER)] == _AGG_HEADER:
            return "aggtrades_csv"
        if names[: len(_TRADES_HEADER)] in (_TRADES_HEADER, _COINM_TRADES_HEADER):
            return "trades_csv"
        return None
    # Spot trades have 7 columns (…, time, is_buyer_maker, is_best_match), futures trades 6;
    # aggTrades 8 (spot) or 7 (futures) with a time, not a flag, in column 6.
    if len(names) in (6, 7) and names[5] in ("true", "false"):
        return "trades_csv"
    if len(names) in (7, 8) and names[6] in ("true", "false"):
        return "aggtrades_csv"
    return None


def _csv_first_time(fields: list[str], layout: Layout) -> int:
    column = {"trades_csv": 4, "aggtrades_csv": 5}.get(layout, 0)
    try:
        return exchange_time_us(int(fields[column]))
    except ValueError:
        return 0
