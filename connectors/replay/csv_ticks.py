"""data.binance.vision trades and aggTrades CSV dumps, read block by block with Arrow's parser.

A block of whole lines (a few MB, so memory does not grow with the file) is parsed by Arrow's
CSV reader straight into typed columns — no Python per row. A block Arrow cannot type as a
whole is read again as text and checked row by row with pandas (``csv_blocks``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from connectors.replay.blocks import ChunkBlock
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
from pairflow.ticks import TickChunk

_NON_FINITE = ["nan", "inf", "infinity"]
#: Columns of (id, price, qty, first id, last id, time, is_buyer_maker) in each layout.
_COLUMNS = {"trades_csv": (0, 1, 2, 0, 0, 4, 5), "aggtrades_csv": (0, 1, 2, 3, 4, 5, 6)}
_NAMES = ("id", "first id", "last id", "time", "price", "qty")


def csv_tick_blocks(spec: InputFile, symbols: frozenset[str], stage: str,
                    progress: list[int]) -> Iterator[ChunkBlock]:
    """The blocks of a trades or aggTrades dump, parsed.

    Args:
        spec: the file, its layout, width and whether it has a header.
        symbols: the symbols to keep; a dump of another symbol is all dead letters.
        stage: the dead-letter stage name.
        progress: ``progress[0]`` is increased by the decompressed bytes read.
    """
    origin = str(spec.path.resolve())
    last_time = 0  # receive-time keys are the running maximum of trade times, across blocks
    for block in iter_blocks(spec.path, progress, CSV_BLOCK_BYTES):
        if block.first_line == 1 and spec.header:
            block = without_header(block)
        if spec.symbol in symbols:
            chunk, dead = _parse_block(spec, block, origin, stage)
        else:
            reason = f"unknown_symbol: {spec.symbol} is not among {sorted(symbols)}"
            dead = [dead_letter(stage, reason, line, origin, number)
                    for number, line in csv_lines(block)]
            chunk = TickChunk.empty(spec.symbol or "")
        if len(chunk):
            keys = np.maximum.accumulate(np.concatenate(([last_time], chunk.ts)))[1:]
            last_time = int(keys[-1])
            chunk = _with_receive_times(chunk, keys)
        yield ChunkBlock(chunk, dead)


def _with_receive_times(chunk: TickChunk, keys: np.ndarray) -> TickChunk:
    return TickChunk(chunk.symbol, chunk.source, chunk.ts, keys, chunk.trade_id,
                     chunk.first_trade_id, chunk.last_trade_id, chunk.price, chunk.qty,
                     chunk.buyer_is_maker)


def _parse_block(spec: InputFile, block: TextBlock, origin: str,
                 stage: str) -> tuple[TickChunk, list[DeadLetter]]:
    """Typed columns of a well-formed block; row-wise checks for any other."""
    columns = _COLUMNS[spec.layout]
    types = {c: pa.float64() for c in columns[1:3]}
    types.update({c: pa.int64() for c in (columns[0], *columns[3:6])})
    types[columns[6]] = pa.bool_()
    table = read_typed(block.data, spec.columns, types)
    if table is None:
        return _parse_rows(spec, block, origin, stage)
    id_, price, qty, first, last, when, maker = (column(table, c) for c in columns)
    ts = exchange_time_us(when)
    # Receive times are set by the caller, across blocks; trade times stand in meanwhile.
    chunk = TickChunk(spec.symbol or "", "replay", ts, ts, id_, first, last, price, qty, maker)
    bad, reasons = _value_problems(price, qty)
    if not bad.any():
        return chunk, []
    rows = np.flatnonzero(bad)
    lines = block.data.split(b"\n")
    dead = [dead_letter(stage, str(reasons[row]), lines[row], origin, block.first_line + int(row))
            for row in rows.tolist()]
    return chunk.take(~bad), dead


def _value_problems(price: np.ndarray, qty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose price or qty is not finite, or not positive, with the reason of each."""
    reasons = np.full(len(price), "", object)
    finite = np.isfinite(price) & np.isfinite(qty)
    reasons[~finite] = "non_finite: price or qty"
    non_positive = finite & ((price <= 0) | (qty <= 0))
    reasons[non_positive] = "non_positive: price or qty"
    return ~finite | non_positive, reasons


# ------------------------------------------------------------------------ row by row


def _parse_rows(spec: InputFile, block: TextBlock, origin: str,
                stage: str) -> tuple[TickChunk, list[DeadLetter]]:
    """A block with bad rows: every row checked; each bad one a dead letter with its line."""
    import pandas as pd

    numbered, dead = split_by_width(csv_lines(block), spec.columns, origin, stage)
    if not numbered:
        return TickChunk.empty(spec.symbol or ""), dead
    table = pd.read_csv(io.BytesIO(b"\n".join(line for _, line in numbered)), header=None,
                        dtype=str, keep_default_na=False, engine="c", quoting=csv.QUOTE_NONE)
    id_, price, qty, first, last, when, maker = (table.iloc[:, c] for c in _COLUMNS[spec.layout])
    texts = [col.str.strip() for col in (id_, first, last, when, price, qty)]
    # Integers are matched, not converted through float64, which would round ids past 2^53.
    int_ok = [text.str.fullmatch(r"-?\d{1,18}").to_numpy(bool) for text in texts[:4]]
    floats = [pd.to_numeric(text, errors="coerce") for text in texts[4:]]
    # NaN / inf spelled out are numbers, just not finite ones: checked below.
    float_ok = [col.notna().to_numpy() | text.str.lower().str.lstrip("+-").isin(_NON_FINITE)
                .to_numpy() for col, text in zip(floats, texts[4:], strict=True)]
    bad = np.zeros(len(table), bool)
    reasons = np.full(len(table), "", object)
    for ok, name in zip(int_ok + float_ok, _NAMES, strict=True):
        reasons[~ok & ~bad] = f"bad_type: {name} is not a number"
        bad |= ~ok
    values = [np.array(c, dtype=np.float64) for c in floats]
    value_bad, value_reasons = _value_problems(*values)
    reasons[value_bad & ~bad] = value_reasons[value_bad & ~bad]
    bad |= value_bad
    flag = maker.str.strip().str.lower()
    flag_bad = ~flag.isin(["true", "false"]).to_numpy() & ~bad
    reasons[flag_bad] = "bad_type: is_buyer_maker is not true/false"
    bad |= flag_bad
    dead += [dead_letter(stage, str(reasons[i]), numbered[i][1], origin, numbered[i][0])
             for i in np.flatnonzero(bad).tolist()]
    good = ~bad
    ids, firsts, lasts, times = (text[good].to_numpy().astype(np.int64) for text in texts[:4])
    ts = exchange_time_us(times)
    chunk = TickChunk(spec.symbol or "", "replay", ts, ts, ids, firsts, lasts, values[0][good],
                      values[1][good], (flag[good] == "true").to_numpy(bool))
    dead.sort(key=lambda letter: int(letter.origin.rpartition(":")[2]))
    return chunk, dead
