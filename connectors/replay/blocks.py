"""The blocks a file is read in: runs of consecutive lines (or rows) with their merge keys.

Keys are receive times (µs) for ticks and recording lines, bar ends for candles; within a
block they never decrease.
"""

from __future__ import annotations

import numpy as np

from pairflow.columns import values_or_none
from pairflow.records import Bar, DeadLetter
from pairflow.ticks import TickChunk
from pairflow.timeframes import timeframe_us


class Block:
    """A run of consecutive lines of one file, with their merge keys.

    ``dead`` holds the file's malformed lines met while reading it, emitted with the block.
    """

    keys: np.ndarray
    dead: list[DeadLetter]


class RecordingBlock(Block):
    """The frames of well-formed recording lines, their receive times and line numbers."""

    def __init__(self, keys: np.ndarray, frames: list[bytes], dead: list[DeadLetter],
                 path: str, lines: np.ndarray):
        self.keys = keys
        self.frames = frames
        self.dead = dead
        self.path = path
        self.lines = lines


class ChunkBlock(Block):
    """Rows already parsed into one symbol's tick columns (CSV dumps, Parquet, NDJSON)."""

    def __init__(self, chunk: TickChunk, dead: list[DeadLetter]):
        self.keys = chunk.recv_ts
        self.chunk = chunk
        self.dead = dead


class CandleBlock(Block):
    """Candles of one symbol and timeframe as columns, made into :class:`Bar` s when taken."""

    def __init__(self, symbol: str, timeframe: str, start: np.ndarray, values: np.ndarray,
                 dead: list[DeadLetter], trade_ids: np.ndarray | None = None):
        self.symbol = symbol
        self.timeframe = timeframe
        self.start = start
        self.length = timeframe_us(timeframe)
        #: Bars are ordered by end: their merge keys.
        self.keys = start + self.length
        self.values = values  # rows of open, high, low, close, volume, quote, trades, taker
        self.dead = dead
        #: Rows of first and last trade id, -1 where unknown; None when the layout has none.
        self.trade_ids = trade_ids

    @classmethod
    def empty(cls, dead: list[DeadLetter]) -> CandleBlock:
        """A block of dead letters only."""
        return cls("", "1s", np.empty(0, np.int64), np.empty((0, 8)), dead)

    def bars(self, first: int, last: int) -> list[Bar]:
        """The candles ``first`` to ``last`` (exclusive) as bars."""
        n = last - first
        start = self.start[first:last]
        open_, high, low, close, volume, quote, trades, taker = self.values[first:last].T
        known = ~np.isnan(quote)  # NaN: the layout does not carry it
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = quote / volume
        ids = self.trade_ids[first:last] if self.trade_ids is not None else np.full((n, 2), -1)
        symbol, timeframe = self.symbol, self.timeframe
        return list(map(
            Bar, [symbol] * n, [timeframe] * n, start.tolist(), (start + self.length).tolist(),
            open_.tolist(), high.tolist(), low.tolist(), close.tolist(), volume.tolist(),
            values_or_none(quote, known), values_or_none(vwap, known & (volume > 0)),
            values_or_none(np.where(known, trades, 0).astype(np.int64), known),
            values_or_none(taker, known), values_or_none(ids[:, 0], ids[:, 0] >= 0),
            values_or_none(ids[:, 1], ids[:, 1] >= 0)))
