"""Parquet in pairflow's own columns: ticks and bars, read in row groups, written in batches.

A tick file has the :class:`~pairflow.records.Tick` fields as columns (``source`` optional),
any symbols, in receive-time order — what ``pairflow convert`` writes for a fast re-replay. A
bar file has the :class:`~pairflow.records.Bar` fields; its bars go to the pair step as
candles. Rows are read a batch at a time (memory does not grow with the file); a row with a
non-finite or non-positive price or size is a dead letter with ``path:row`` as its origin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.replay.blocks import CandleBlock, ChunkBlock
from pairflow.errors import InputFileError
from pairflow.records import Bar, DeadLetter, Tick, field_names
from pairflow.ticks import TickChunk

#: Rows read at a time.
PARQUET_BATCH_ROWS = 1 << 18
TICK_COLUMNS = [n for n in field_names(Tick) if n != "source"]
BAR_COLUMNS = field_names(Bar)
_BAR_VALUES = ["open", "high", "low", "close", "volume", "quote_volume", "trades",
               "taker_buy_volume"]


def parquet_kind(path: Path) -> str:
    """``ticks_parquet`` or ``bars_parquet``, from the file's columns.

    Raises:
        InputFileError: when the file is not readable Parquet or has neither set of columns.
    """
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as error:
        raise InputFileError(f"{path}: unreadable Parquet ({error})") from error
    if set(TICK_COLUMNS) <= names:
        return "ticks_parquet"
    if set(BAR_COLUMNS) - {"vwap"} <= names:
        return "bars_parquet"
    raise InputFileError(f"{path}: Parquet columns {sorted(names)} are neither pairflow ticks "
                         f"({', '.join(TICK_COLUMNS)}) nor bars ({', '.join(BAR_COLUMNS)})")


def first_time(path: Path, column: str) -> int:
    """The first row's value of ``column`` (a time, µs), 0 for an empty file."""
    batch = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=[column]), None)
    return int(batch.column(0)[0].as_py()) if batch is not None and batch.num_rows else 0


def _batches(path: Path, columns: list[str], progress: list[int]) -> Iterator[pa.RecordBatch]:
    try:
        reader = pq.ParquetFile(path)
        # Progress is in the file's bytes (what the replay's total counts), by rows read.
        bytes_per_row = path.stat().st_size / max(reader.metadata.num_rows, 1)
        for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            progress[0] += int(batch.num_rows * bytes_per_row)
            yield batch
    except (OSError, pa.ArrowException) as error:
        raise InputFileError(f"{path}: corrupt or truncated Parquet ({error})") from error


def parquet_tick_blocks(path: Path, symbols: frozenset[str], stage: str,
                        progress: list[int]) -> Iterator[ChunkBlock]:
    """One block per symbol of each batch of a tick file; bad rows as dead letters."""
    origin = str(path.resolve())
    row = 0
    for batch in _batches(path, TICK_COLUMNS, progress):
        columns = {name: batch.column(name) for name in TICK_COLUMNS}
        names = columns["symbol"].dictionary_decode() if pa.types.is_dictionary(
            columns["symbol"].type) else columns["symbol"]
        values = {n: c.to_numpy(zero_copy_only=False) for n, c in columns.items()
                  if n != "symbol"}
        price, qty = values["price"], values["qty"]
        good = np.isfinite(price) & np.isfinite(qty) & (price > 0) & (qty > 0)
        dead = [DeadLetter(stage, "non_positive: price or qty" if np.isfinite(price[i] + qty[i])
                           else "non_finite: price or qty", _row_text(batch, i), 0,
                           f"{origin}:row {row + i}")
                for i in np.flatnonzero(~good).tolist()]
        for symbol in pc.unique(names).to_pylist():
            mask = good & pc.equal(names, symbol).to_numpy(zero_copy_only=False)
            if symbol not in symbols:
                reason = f"unknown_symbol: {symbol} is not among {sorted(symbols)}"
                dead += [DeadLetter(stage, reason, _row_text(batch, i), 0,
                                    f"{origin}:row {row + i}")
                         for i in np.flatnonzero(mask).tolist()]
                continue
            chunk = TickChunk(symbol, "replay", *(values[n][mask] for n in (
                "ts", "recv_ts", "trade_id", "first_trade_id", "last_trade_id", "price", "qty",
                "buyer_is_maker")))
            yield ChunkBlock(chunk, dead)
            dead = []
        if dead:
            yield ChunkBlock(TickChunk.empty(), dead)
        row += batch.num_rows


def parquet_candle_blocks(path: Path, symbols: frozenset[str], stage: str,
                          progress: list[int]) -> Iterator[CandleBlock]:
    """One block per symbol and timeframe of each batch of a bar file.

    Bad rows and rows of symbols not asked for are dead letters.
    """
    origin = str(path.resolve())
    row = 0
    for batch in _batches(path, [n for n in BAR_COLUMNS if n != "vwap"], progress):
        keys = np.array([f"{s}|{t}" for s, t in zip(batch.column("symbol").to_pylist(),
                                                    batch.column("timeframe").to_pylist(),
                                                    strict=True)])
        start = batch.column("start").to_numpy(zero_copy_only=False)
        values = np.column_stack([batch.column(n).to_numpy(zero_copy_only=False)
                                  .astype(np.float64) for n in _BAR_VALUES])
        trade_ids = np.column_stack([batch.column(n).fill_null(-1).to_numpy(zero_copy_only=False)
                                     for n in ("first_trade_id", "last_trade_id")])
        prices = values[:, :4]
        good = np.isfinite(prices).all(axis=1) & (prices > 0).all(axis=1)
        dead = [DeadLetter(stage, "non_positive: a price (or not finite)", _row_text(batch, i),
                           0, f"{origin}:row {row + i}")
                for i in np.flatnonzero(~good).tolist()]
        wanted = np.isin(batch.column("symbol").to_numpy(zero_copy_only=False), list(symbols))
        dead += [DeadLetter(stage, f"unknown_symbol: not among {sorted(symbols)}",
                            _row_text(batch, i), 0, f"{origin}:row {row + i}")
                 for i in np.flatnonzero(good & ~wanted).tolist()]
        good &= wanted
        for key in sorted(set(keys[good].tolist())):
            symbol, _, timeframe = key.partition("|")
            mask = good & (keys == key)
            yield CandleBlock(symbol, timeframe, start[mask], values[mask], dead,
                              trade_ids[mask])
            dead = []
        if dead:
            yield CandleBlock.empty(dead)
        row += batch.num_rows


def _row_text(batch: pa.RecordBatch, index: int) -> str:
    return str(batch.slice(index, 1).to_pylist()[0])


class ParquetTickWriter:
    """Writes tick chunks to a Parquet file in pairflow's tick columns (``pairflow convert``).

    Args:
        path: the file to write (replaced).
    """

    SCHEMA = pa.schema([("symbol", pa.dictionary(pa.int32(), pa.string())),
                        ("trade_id", pa.int64()), ("price", pa.float64()),
                        ("qty", pa.float64()), ("ts", pa.int64()), ("recv_ts", pa.int64()),
                        ("buyer_is_maker", pa.bool_()), ("first_trade_id", pa.int64()),
                        ("last_trade_id", pa.int64())])

    def __init__(self, path: Path):
        self._writer = pq.ParquetWriter(path, self.SCHEMA, compression="zstd")
        self.rows = 0

    def write(self, chunk: TickChunk) -> None:
        """Append one chunk's ticks."""
        n = len(chunk)
        if not n:
            return
        symbol = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                pa.array([chunk.symbol]))
        self._writer.write_batch(pa.record_batch(
            [symbol, chunk.trade_id, chunk.price, chunk.qty, chunk.ts, chunk.recv_ts,
             chunk.buyer_is_maker, chunk.first_trade_id, chunk.last_trade_id],
            schema=self.SCHEMA))
        self.rows += n

    def close(self) -> None:
        """Finish the file (its footer); a file without it is unreadable."""
        self._writer.close()
