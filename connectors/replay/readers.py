"""Per-layout readers: each cuts one input file into blocks of lines with their merge keys.

A recording's lines keep their raw frames (parsed after the merge, many files' frames at once);
tick NDJSON is parsed here into one symbol's columns; CSV dumps (``csv_ticks``,
``csv_candles``) and Parquet (``parquet``) have modules of their own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import msgspec
import numpy as np

from connectors.binance.wire import Id, Time, decode_reason
from connectors.json_batch import DECODE_ERRORS
from connectors.replay.blocks import Block, ChunkBlock, RecordingBlock
from connectors.replay.csv_candles import candle_blocks
from connectors.replay.csv_ticks import csv_tick_blocks
from connectors.replay.files import iter_blocks
from connectors.replay.formats import InputFile
from pairflow.contracts import contract_size
from pairflow.records import DeadLetter, Tick
from pairflow.ticks import TickChunk

#: Lines read from a file at a time; also roughly the ticks per emitted batch.
BLOCK_LINES = 16_384
_POWERS_OF_TEN = 10 ** np.arange(18, -1, -1, dtype=np.int64)
#: Offsets of a recording line's head: 19 digits of receive time (ns) and a blank.
_HEAD = np.arange(20)


def file_blocks(spec: InputFile, symbols: frozenset[str], stage: str,
                progress: list[int], contract_sizes: Mapping[str, float] | None = None
                ) -> Iterator[Block]:
    """The blocks of one file, read lazily.

    Args:
        spec: the file and its layout.
        symbols: the symbols to keep (recordings' frames are filtered later, by the parser).
        stage: the dead-letter stage name for bad lines.
        progress: ``progress[0]`` is increased by the decompressed bytes read.
        contract_sizes: USD per contract of COIN-M symbols overriding Binance's
            specification (candles state coins and USD).
    """
    if spec.layout == "recording":
        return _recording_blocks(spec.path, stage, progress)
    if spec.layout == "ticks":
        return _tick_blocks(spec.path, symbols, stage, progress)
    if spec.layout in ("trades_csv", "aggtrades_csv"):
        return csv_tick_blocks(spec, symbols, stage, progress)
    if spec.layout in ("ticks_parquet", "bars_parquet"):
        # Imported here: pyarrow.parquet costs half a second of start-up.
        from connectors.replay.parquet import parquet_candle_blocks, parquet_tick_blocks

        if spec.layout == "ticks_parquet":
            return parquet_tick_blocks(spec.path, symbols, stage, progress)
        return parquet_candle_blocks(spec.path, symbols, stage, progress)
    return candle_blocks(spec, symbols, stage, progress,
                         contract_size(spec.symbol or "", contract_sizes))


# -------------------------------------------------------------------------- recordings


def _recording_blocks(path: Path, stage: str, progress: list[int]) -> Iterator[Block]:
    origin = str(path.resolve())
    last_key = 0
    for block in iter_blocks(path, progress):
        data = block.data
        # The block's lines found by one numpy scan, not a Python step per line: this thread
        # shares the GIL with the flow.
        raw = np.frombuffer(data, np.uint8)
        ends = np.flatnonzero(raw == ord("\n"))
        if not data.endswith(b"\n"):
            ends = np.append(ends, len(data))
        starts = np.concatenate(([0], ends[:-1] + 1))
        for start in range(0, len(starts), BLOCK_LINES):
            at, stop = starts[start : start + BLOCK_LINES], ends[start : start + BLOCK_LINES]
            numbers = np.arange(len(at), dtype=np.int64) + block.first_line + start
            keep = stop > at
            if not keep.all():  # blank lines
                at, stop, numbers = at[keep], stop[keep], numbers[keep]
            keys, frames, kept, dead, last_key = _split_recording(
                data, raw, at, stop, numbers, origin, stage, last_key)
            yield RecordingBlock(keys, frames, dead, origin, kept)


def _split_recording(
    data: bytes, raw: np.ndarray, at: np.ndarray, stop: np.ndarray, numbers: np.ndarray,
    origin: str, stage: str, last_key: int
) -> tuple[np.ndarray, list[bytes], np.ndarray, list[DeadLetter], int]:
    """Receive times (µs, running maximum), frames, their line numbers and dead letters.

    The lines are ``data[at[i]:stop[i]]`` (``raw``: ``data`` as a uint8 array). Receive times have
    19 digits from 2001 to 2286; lines of that shape, with a frame after the blank, are cut
    column-wise with numpy, any other block line by line.
    """
    if (stop - at > len(_HEAD)).all():
        heads = raw[at[:, None] + _HEAD]
        digits = heads[:, :19]
        if (heads[:, 19] == ord(" ")).all() and ((digits >= 48) & (digits <= 57)).all():
            frames = list(map(data.__getitem__, map(slice, (at + 20).tolist(), stop.tolist())))
            ns = (digits.astype(np.int64) - 48) @ _POWERS_OF_TEN
            # Receive times are monotone in a recording; a clock step back must not break the
            # merge order, so keys are the running maximum.
            keys = np.maximum.accumulate(np.concatenate(([last_key], ns // 1000)))[1:]
            return keys, frames, numbers, [], int(keys[-1]) if len(keys) else last_key
    lines = list(map(data.__getitem__, map(slice, at.tolist(), stop.tolist())))
    return _split_recording_slowly(lines, numbers, origin, stage, last_key)


def _split_recording_slowly(
    lines: list[bytes], numbers: np.ndarray, origin: str, stage: str, last_key: int
) -> tuple[np.ndarray, list[bytes], np.ndarray, list[DeadLetter], int]:
    keys: list[int] = []
    frames: list[bytes] = []
    kept: list[int] = []
    dead: list[DeadLetter] = []
    for line, number in zip(lines, numbers.tolist(), strict=True):
        head, _, frame = line.partition(b" ")
        if not line.strip():
            continue
        if not (head.isdigit() and len(head) <= 19 and frame):
            reason = "malformed_line: expected `<receive_time_ns> <frame>`"
            dead.append(DeadLetter(stage, reason, line.decode("utf-8", "replace"), last_key,
                                   f"{origin}:{number}"))
            continue
        last_key = max(last_key, int(head) // 1000)
        keys.append(last_key)
        frames.append(frame)
        kept.append(number)
    return (np.array(keys, np.int64), frames, np.array(kept, np.int64), dead, last_key)


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
    origin = str(path.resolve())
    for block in iter_blocks(path, progress):
        by_symbol: dict[str, list[Tick]] = {}
        dead: list[DeadLetter] = []
        for number, line in enumerate(block.data.split(b"\n"), block.first_line):
            if line.strip():
                _read_tick_line(line, symbols, stage, f"{origin}:{number}", by_symbol, dead)
        for symbol, ticks in by_symbol.items():
            yield ChunkBlock(TickChunk.from_ticks(symbol, "replay", ticks), dead)
            dead = []
        if dead:
            yield ChunkBlock(TickChunk.empty(), dead)


def _read_tick_line(line: bytes, symbols: frozenset[str], stage: str, origin: str,
                    by_symbol: dict[str, list[Tick]], dead: list[DeadLetter]) -> None:
    """Add one NDJSON line to its symbol's ticks, or its dead letter to ``dead``."""
    try:
        row = _tick_line.decode(line)
    except DECODE_ERRORS as error:
        dead.append(DeadLetter(stage, decode_reason(error), line.decode(errors="replace"), 0,
                               origin))
        return
    if row.symbol not in symbols:
        reason = f"unknown_symbol: {row.symbol} is not among {sorted(symbols)}"
        dead.append(DeadLetter(stage, reason, line.decode(errors="replace"), row.recv_ts,
                               origin))
        return
    if not (row.price > 0 and row.qty > 0 and np.isfinite(row.price + row.qty)):
        dead.append(DeadLetter(stage, "non_positive: price or qty",
                               line.decode(errors="replace"), row.recv_ts, origin))
        return
    by_symbol.setdefault(row.symbol, []).append(
        Tick(row.symbol, row.trade_id, row.price, row.qty, row.ts, row.recv_ts,
             row.buyer_is_maker, "replay", row.first_trade_id, row.last_trade_id))
