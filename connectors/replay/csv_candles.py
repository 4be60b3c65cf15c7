"""Candles as input: data.binance.vision klines and generic OHLCV CSV, read as bars.

A candle is a bar already made, so it goes to the pair step directly (no ticks). Layouts:

- *klines CSV* (data.binance.vision, any interval including spot ``1s``; header or not; ms or
  µs times): ``open_time, open, high, low, close, volume, close_time, quote_volume, count,
  taker_buy_volume, taker_buy_quote_volume, ignore``;
  COIN-M klines count contracts (``volume``, ``taker_buy_volume``) and put the coin volumes in
  the quote columns (``base_volume``, ``taker_buy_base_volume``); their bars state coins and
  USD like the other markets' (:mod:`pairflow.contracts`): ``volume`` the coin volume,
  ``quote_volume`` contracts × the contract size, ``taker_buy_volume`` the taker-buy coin volume;
- *OHLCV CSV*: header ``open_time,open,high,low,close,volume`` (``open_time`` in ms, the
  candle's start); quote volume, trade count and taker-buy volume are unknown, so null.

The symbol and the interval come from the file name, ``SYMBOL-INTERVAL-….csv`` (as
data.binance.vision names klines). A missing candle is not invented: it is a gap of that leg,
and the pair step waits for the next end both legs have. Blocks are parsed by Arrow into typed
columns; a block with a bad row is checked row by row, each bad row a dead letter with its line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from connectors.replay.blocks import CandleBlock
from connectors.replay.csv_blocks import (
    CSV_BLOCK_BYTES,
    column,
    csv_lines,
    dead_letter,
    read_typed,
    split_by_width,
    without_header,
)
from connectors.replay.files import TextBlock, iter_blocks
from connectors.replay.formats import InputFile
from pairflow.records import DeadLetter, exchange_time_us
from pairflow.timeframes import timeframe_us

#: Columns read: open_time, open, high, low, close, volume, then (klines only) quote volume,
#: trade count and taker-buy volume.
_KLINE_COLUMNS = (0, 1, 2, 3, 4, 5, 7, 8, 9)
#: The same of COIN-M klines: base (coin) volume, contracts (× the contract size: USD), trade
#: count and taker-buy base volume.
_COINM_KLINE_COLUMNS = (0, 1, 2, 3, 4, 7, 5, 8, 10)
_QUOTE_SLOT = 5
_OHLCV_COLUMNS = (0, 1, 2, 3, 4, 5)
_PRICE_NAMES = ("open", "high", "low", "close", "volume", "quote_volume", "trades",
                "taker_buy_volume")


def candle_blocks(spec: InputFile, symbols: frozenset[str], stage: str,
                  progress: list[int], contract_usd: float | None = None
                  ) -> Iterator[CandleBlock]:
    """The blocks of a klines or OHLCV CSV, parsed.

    Args:
        spec: the file, its layout, symbol, interval, width and header.
        symbols: the symbols to keep; candles of another symbol are all dead letters.
        stage: the dead-letter stage name.
        progress: ``progress[0]`` is increased by the decompressed bytes read.
        contract_usd: USD per contract when the file holds COIN-M klines, else None.
    """
    origin = str(spec.path.resolve())
    if spec.layout != "klines_csv":
        columns = _OHLCV_COLUMNS
    else:
        columns = _KLINE_COLUMNS if contract_usd is None else _COINM_KLINE_COLUMNS
    for block in iter_blocks(spec.path, progress, CSV_BLOCK_BYTES):
        if block.first_line == 1 and spec.header:
            block = without_header(block)
        if spec.symbol not in symbols:
            reason = f"unknown_symbol: {spec.symbol} is not among {sorted(symbols)}"
            yield CandleBlock.empty([dead_letter(stage, reason, line, origin, number)
                                     for number, line in csv_lines(block)])
            continue
        start, values, rows = _typed(block.data, spec.columns, columns)
        dead: list[DeadLetter] = []
        if start is None:
            start, values, rows, dead = _checked_rows(spec, block, columns, origin, stage)
        bad, reasons = _candle_problems(start, values, timeframe_us(spec.interval or ""))
        if bad.any():
            lines = rows or csv_lines(block)
            dead += [dead_letter(stage, str(reasons[i]), lines[i][1], origin, lines[i][0])
                     for i in np.flatnonzero(bad).tolist()]
            dead.sort(key=lambda letter: int(letter.origin.rpartition(":")[2]))
            start, values = start[~bad], values[~bad]
        if contract_usd is not None:
            values[:, _QUOTE_SLOT] *= contract_usd
        yield CandleBlock(spec.symbol or "", spec.interval or "", start, values, dead)


def _typed(data: bytes, width: int, columns: tuple[int, ...]
           ) -> tuple[np.ndarray | None, np.ndarray, list]:
    """Open times (µs) and value rows of a well-formed block, or ``None`` for any other."""
    empty = np.empty((0, len(_PRICE_NAMES)))
    types = {c: pa.float64() for c in columns[1:]}
    types[0] = pa.int64()
    table = read_typed(data, width, types)
    if table is None:
        return None, empty, []
    values = np.full((table.num_rows, len(_PRICE_NAMES)), np.nan)
    for slot, index in enumerate(columns[1:]):
        values[:, slot] = column(table, index)
    return exchange_time_us(column(table, 0)), values, []


def _checked_rows(spec: InputFile, block: TextBlock, columns: tuple[int, ...], origin: str,
                  stage: str) -> tuple[np.ndarray, np.ndarray, list, list[DeadLetter]]:
    """A block with a bad row: every row checked; each bad one a dead letter with its line."""
    import pandas as pd

    numbered, dead = split_by_width(csv_lines(block), spec.columns, origin, stage)
    values = np.full((len(numbered), len(_PRICE_NAMES)), np.nan)
    if not numbered:
        return np.empty(0, np.int64), values, [], dead
    table = pd.read_csv(io.BytesIO(b"\n".join(line for _, line in numbered)), header=None,
                        dtype=str, keep_default_na=False, engine="c", quoting=csv.QUOTE_NONE)
    opened = table.iloc[:, 0].str.strip()
    good = np.array(opened.str.fullmatch(r"\d{1,18}"), dtype=bool)
    reasons = np.where(good, "", "bad_type: open_time is not a number").astype(object)
    for slot, index in enumerate(columns[1:]):
        text = table.iloc[:, index].str.strip()
        number = pd.to_numeric(text, errors="coerce")
        ok = number.notna().to_numpy() | text.str.lower().str.lstrip("+-").isin(
            ["nan", "inf", "infinity"]).to_numpy()
        reasons[~ok & good] = f"bad_type: {_PRICE_NAMES[slot]} is not a number"
        good &= ok
        values[:, slot] = np.array(number, dtype=np.float64)
    dead += [dead_letter(stage, str(reasons[i]), numbered[i][1], origin, numbered[i][0])
             for i in np.flatnonzero(~good).tolist()]
    start = exchange_time_us(np.where(good, opened.where(good, "0"), "0").astype(np.int64))
    kept = [row for row, ok in zip(numbered, good.tolist(), strict=True) if ok]
    return start[good], values[good], kept, dead


def _candle_problems(start: np.ndarray, values: np.ndarray,
                     length: int) -> tuple[np.ndarray, np.ndarray]:
    """Candles that cannot be bars, with the reason of each.

    Prices must be finite and positive with low ≤ open, close ≤ high; volumes finite and not
    negative; the open time a multiple of the interval (bars are aligned to the epoch).
    """
    open_, high, low, close, volume = (values[:, i] for i in range(5))
    extras = values[:, 5:]
    reasons = np.full(len(start), "", object)
    prices = values[:, :4]
    finite = np.isfinite(prices).all(axis=1) & np.isfinite(volume) & ~np.isinf(extras).any(axis=1)
    reasons[~finite] = "non_finite: a price or volume"
    positive = (prices > 0).all(axis=1) & (volume >= 0) & ~(extras < 0).any(axis=1)
    reasons[finite & ~positive] = "non_positive: a price, or a negative volume"
    ordered = (low <= np.minimum(open_, close)) & (high >= np.maximum(open_, close))
    reasons[finite & positive & ~ordered] = "bad_value: low/high do not bound open and close"
    aligned = start % length == 0
    reasons[finite & positive & ordered & ~aligned] = (
        "bad_value: open_time is not a multiple of the interval")
    return ~(finite & positive & ordered & aligned), reasons
