"""The blocks a file is read in: runs of consecutive lines (or rows) with their merge keys.

Keys are receive times (µs) for ticks and recording lines, bar ends for candles; within a
block they never decrease.
"""

from __future__ import annotations

import numpy as np

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
        ids = (self.trade_ids[first:last].tolist() if self.trade_ids is not None
               else [(-1, -1)] * (last - first))
        out = []
        for start, row, (first_id, last_id) in zip(self.start[first:last].tolist(),
                                                   self.values[first:last].tolist(), ids,
                                                   strict=True):
            open_, high, low, close, volume, quote, trades, taker = row
            known = quote == quote  # NaN: the layout does not carry it
            out.append(Bar(self.symbol, self.timeframe, start, start + self.length, open_,
                           high, low, close, volume, quote if known else None,
                           quote / volume if known and volume > 0 else None,
                           int(trades) if known else None, taker if known else None,
                           first_id if first_id >= 0 else None,
                           last_id if last_id >= 0 else None))
        return out
