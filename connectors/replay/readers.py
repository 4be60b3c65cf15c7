"""Per-layout readers: each cuts one input file into blocks of lines with their merge keys.

A recording's lines keep their raw frames (parsed after the merge, many files' frames at once);
CSV dumps and tick NDJSON are parsed here into one symbol's columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from connectors.binance.wire import DECODE_ERRORS, Id, Time, decode_reason
from connectors.replay.files import decompressed_size, iter_lines
from connectors.replay.formats import InputFile
from pairflow.errors import InputFileError
from pairflow.records import DeadLetter, Tick, exchange_time_us
from pairflow.ticks import TickChunk

if TYPE_CHECKING:
    import pandas as pd

#: Lines read from a file at a time; also roughly the ticks per emitted batch.
BLOCK_LINES = 16_384
_NON_FINITE = ["nan", "inf", "infinity"]
_POWERS_OF_TEN = 10 ** np.arange(18, -1, -1, dtype=np.int64)


class Block:
    """A run of consecutive lines of one file, with their merge keys (receive time, µs).

    ``dead`` holds the file's malformed lines met while reading it, emitted with the block.
    """

    keys: np.ndarray
    dead: list[DeadLetter]


class RecordingBlock(Block):
    """The frames of well-formed recording lines and their receive times."""

    def __init__(self, keys: np.ndarray, frames: list[bytes], dead: list[DeadLetter]):
        self.keys = keys
        self.frames = frames
        self.dead = dead


class ChunkBlock(Block):
    """Lines already parsed into one symbol's columns (CSV dumps, tick NDJSON)."""

    def __init__(self, chunk: TickChunk, dead: list[DeadLetter]):
        self.keys = chunk.recv_ts
        self.chunk = chunk
        self.dead = dead


def file_blocks(spec: InputFile, symbols: frozenset[str], stage: str,
                progress: list[int]) -> Iterator[Block]:
    """The blocks of one file, read lazily.

    Args:
        spec: the file and its layout.
        symbols: the symbols to keep (recordings' frames are filtered later, by the parser).
        stage: the dead-letter stage name for bad lines.
        progress: ``progress[0]`` is increased by the decompressed bytes read.
    """
    if spec.layout == "recording":
        return _recording_blocks(spec.path, stage, progress)
    if spec.layout == "ticks":
        return _tick_blocks(spec.path, symbols, stage, progress)
    progress[0] += decompressed_size(spec.path)  # read whole, at once
    return _csv_blocks(spec, symbols, stage)


# -------------------------------------------------------------------------- recordings


def _recording_blocks(path: Path, stage: str, progress: list[int]) -> Iterator[Block]:
    last_key = 0
    for lines in iter_lines(path, progress):
        for start in range(0, len(lines), BLOCK_LINES):
            keys, frames, dead, last_key = _split_recording(
                lines[start : start + BLOCK_LINES], stage, last_key)
            yield RecordingBlock(keys, frames, dead)


def _split_recording(
    lines: list[bytes], stage: str, last_key: int
) -> tuple[np.ndarray, list[bytes], list[DeadLetter], int]:
    """Receive times (µs, running maximum), frames and dead letters of recording lines.

    Receive times have 19 digits from 2001 to 2286; lines of that shape are cut column-wise
    with numpy, any other block line by line.
    """
    lines = [line for line in lines if line]
    heads = np.frombuffer(b"".join([line[:20] for line in lines]), np.uint8)
    if len(heads) != 20 * len(lines):
        return _split_recording_slowly(lines, stage, last_key)
    heads = heads.reshape(len(lines), 20)
    digits = heads[:, :19]
    if not ((heads[:, 19] == ord(" ")).all() and ((digits >= 48) & (digits <= 57)).all()):
        return _split_recording_slowly(lines, stage, last_key)
    frames = [line[20:] for line in lines]
    if not all(frames):
        return _split_recording_slowly(lines, stage, last_key)
    ns = (digits.astype(np.int64) - 48) @ _POWERS_OF_TEN
    # Receive times are monotone in a recording; a clock step back must not break the merge
    # order, so keys are the running maximum.
    keys = np.maximum.accumulate(np.concatenate(([last_key], ns // 1000)))[1:]
    return keys, frames, [], int(keys[-1]) if len(keys) else last_key


def _split_recording_slowly(
    lines: list[bytes], stage: str, last_key: int
) -> tuple[np.ndarray, list[bytes], list[DeadLetter], int]:
    keys: list[int] = []
    frames: list[bytes] = []
    dead: list[DeadLetter] = []
    for line in lines:
        head, _, frame = line.partition(b" ")
        if not line.strip():
            continue
        if not (head.isdigit() and len(head) <= 19 and frame):
            reason = "malformed_line: expected `<receive_time_ns> <frame>`"
            dead.append(DeadLetter(stage, reason, line.decode("utf-8", "replace"), last_key))
            continue
        last_key = max(last_key, int(head) // 1000)
        keys.append(last_key)
        frames.append(frame)
    return np.array(keys, np.int64), frames, dead, last_key


# ------------------------------------------------------------------------ CSV dumps


def _csv_blocks(spec: InputFile, symbols: frozenset[str], stage: str) -> Iterator[Block]:
    lines, dead = _csv_lines(spec.path, stage)
    table = _csv_table(spec.path, lines)
    chunk, rejected = _csv_chunk(spec, table, symbols, stage)
    dead += rejected
    if not len(chunk):
        yield ChunkBlock(chunk, dead)
        return
    for start in range(0, len(chunk), BLOCK_LINES * 4):
        yield ChunkBlock(chunk.take(slice(start, start + BLOCK_LINES * 4)), dead)
        dead = []


def _csv_lines(path: Path, stage: str) -> tuple[list[bytes], list[DeadLetter]]:
    """The data rows of a CSV dump (no header, no blank line) of the first row's width."""
    lines = [line.rstrip(b"\r") for block in iter_lines(path) for line in block]
    lines = [line for line in lines if line.strip()]
    if lines and not lines[0].split(b",")[0].strip().lstrip(b"-").isdigit():
        lines = lines[1:]  # header
    width = lines[0].count(b",") + 1 if lines else 0
    counts = [line.count(b",") + 1 for line in lines]
    dead = [DeadLetter(stage, f"bad_row: expected {width} fields, got {count}",
                       line.decode("utf-8", "replace"), 0)
            for line, count in zip(lines, counts, strict=True) if count != width]
    if dead:
        lines = [line for line, count in zip(lines, counts, strict=True) if count == width]
    return lines, dead


def _csv_table(path: Path, lines: list[bytes]) -> pd.DataFrame:
    """The rows as a table of strings (checked column-wise afterwards)."""
    import pandas as pd

    try:
        # Binance dumps never quote a field: a stray quote is a bad value of its row, not the
        # start of a field that swallows the rest of the file.
        return pd.read_csv(io.BytesIO(b"\n".join(lines)), header=None, dtype=str,
                           keep_default_na=False, engine="c",
                           quoting=csv.QUOTE_NONE) if lines else pd.DataFrame()
    except (ValueError, pd.errors.ParserError) as error:
        raise InputFileError(f"{path}: unreadable CSV ({error})") from error


def _csv_chunk(spec: InputFile, table: pd.DataFrame, symbols: frozenset[str],
               stage: str) -> tuple[TickChunk, list[DeadLetter]]:
    """The table's good rows as a tick chunk, and a dead letter for each bad row."""
    import pandas as pd

    columns = (0, 1, 2, 3, 4, 5, 6) if spec.layout == "aggtrades_csv" else (0, 1, 2, 0, 0, 4, 5)
    id_, price, qty, first, last, when, maker = (table.iloc[:, c] for c in columns)
    ints = [pd.to_numeric(col, errors="coerce") for col in (id_, first, last, when)]
    floats = [pd.to_numeric(col, errors="coerce") for col in (price, qty)]
    flag = maker.str.strip().str.lower()
    bad = np.zeros(len(table), bool)
    reasons = np.array([""] * len(table), object)
    for col, text, name in zip(ints + floats, (id_, first, last, when, price, qty),
                               ["id", "first id", "last id", "time", "price", "qty"],
                               strict=True):
        # NaN / inf spelled out are numbers, just not finite ones: checked below.
        spelled = text.str.strip().str.lower().str.lstrip("+-").isin(_NON_FINITE).to_numpy()
        missing = col.isna().to_numpy() & ~spelled
        reasons[missing & ~bad] = f"bad_type: {name} is not a number"
        bad |= missing
    values = [c.to_numpy(np.float64, na_value=np.nan) for c in floats]
    _reject_values(values[0], values[1], flag.isin(["true", "false"]).to_numpy(), bad, reasons)
    if spec.symbol not in symbols:
        reasons[~bad] = f"unknown_symbol: {spec.symbol} is not among {sorted(symbols)}"
        bad[:] = True
    bad_rows = np.flatnonzero(bad)
    raw = table.iloc[bad_rows].agg(",".join, axis=1).tolist() if len(bad_rows) else []
    dead = [DeadLetter(stage, str(reasons[i]), text, 0)
            for i, text in zip(bad_rows, raw, strict=True)]
    good = ~bad
    ids, firsts, lasts, times = (c.to_numpy(np.float64, na_value=0)[good].astype(np.int64)
                                 for c in ints)
    times = exchange_time_us(times)
    chunk = TickChunk(
        symbol=spec.symbol or "",
        source="replay",
        ts=times,
        recv_ts=np.maximum.accumulate(times) if len(times) else times,
        trade_id=ids,
        first_trade_id=firsts,
        last_trade_id=lasts,
        price=values[0][good],
        qty=values[1][good],
        buyer_is_maker=(flag[good] == "true").to_numpy(bool),
    )
    return chunk, dead


def _reject_values(price: np.ndarray, qty: np.ndarray, flag_ok: np.ndarray, bad: np.ndarray,
                   reasons: np.ndarray) -> None:
    """Mark (in place) rows with a non-finite or non-positive price or qty, or a bad flag.

    A row keeps the reason of its first problem, in the order checked.
    """
    not_finite = ~(np.isfinite(price) & np.isfinite(qty))
    reasons[not_finite & ~bad] = "non_finite: price or qty"
    bad |= not_finite
    non_positive = (np.nan_to_num(price) <= 0) | (np.nan_to_num(qty) <= 0)
    reasons[non_positive & ~bad] = "non_positive: price or qty"
    bad |= non_positive
    reasons[~flag_ok & ~bad] = "bad_type: is_buyer_maker is not true/false"
    bad |= ~flag_ok


# ------------------------------------------------------------------------ tick NDJSON


class _TickLine(msgspec.Struct, forbid_unknown_fields=True):
    symbol: str
    trade_id: Id
    price: float
    qty: float
    ts: Time
    recv_ts: Time
    buyer_is_maker: bool
    source: str
    first_trade_id: Id
    last_trade_id: Id
    v: int = 1


_tick_line = msgspec.json.Decoder(_TickLine)


def _tick_blocks(path: Path, symbols: frozenset[str], stage: str,
                 progress: list[int]) -> Iterator[Block]:
    for lines in iter_lines(path, progress):
        by_symbol: dict[str, list[Tick]] = {}
        dead: list[DeadLetter] = []
        for line in lines:
            if line.strip():
                _read_tick_line(line, symbols, stage, by_symbol, dead)
        for symbol, ticks in by_symbol.items():
            yield ChunkBlock(TickChunk.from_ticks(symbol, "replay", ticks), dead)
            dead = []
        if dead:
            yield ChunkBlock(TickChunk.from_ticks("", "replay", []), dead)


def _read_tick_line(line: bytes, symbols: frozenset[str], stage: str,
                    by_symbol: dict[str, list[Tick]], dead: list[DeadLetter]) -> None:
    """Add one NDJSON line to its symbol's ticks, or its dead letter to ``dead``."""
    try:
        row = _tick_line.decode(line)
    except DECODE_ERRORS as error:
        dead.append(DeadLetter(stage, decode_reason(error), line.decode(errors="replace"), 0))
        return
    if row.symbol not in symbols:
        reason = f"unknown_symbol: {row.symbol} is not among {sorted(symbols)}"
        dead.append(DeadLetter(stage, reason, line.decode(errors="replace"), row.recv_ts))
        return
    if not (row.price > 0 and row.qty > 0 and np.isfinite(row.price + row.qty)):
        dead.append(DeadLetter(stage, "non_positive: price or qty",
                               line.decode(errors="replace"), row.recv_ts))
        return
    by_symbol.setdefault(row.symbol, []).append(
        Tick(row.symbol, row.trade_id, row.price, row.qty, row.ts, row.recv_ts,
             row.buyer_is_maker, "replay", row.first_trade_id, row.last_trade_id))
