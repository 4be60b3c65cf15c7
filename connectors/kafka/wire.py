"""The ``ticks`` topic's message forms, encoded and decoded a column at a time.

Two kinds of message share the topic, both keyed by symbol (so they stay in one partition, in
order):

- a **tick**: the JSON of :class:`~pairflow.records.Tick` (``schemas/tick.schema.json``), no
  header;
- a **mark**: a per-symbol watermark (``"kind": "heartbeat"``: the feed is complete up to
  exchange time ``ts``) or a declared feed gap (``"kind": "gap"``: trades in ``[start, end)``
  are lost for good), ``schemas/mark.schema.json``, with the header ``pairflow-kind`` naming
  the kind. Consumers that want only ticks skip messages carrying that header.

The hot paths never make a Python object per tick: a chunk's values are formatted by joining
whole columns, and a poll batch is decoded by one typed ``msgspec`` call over all its values.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Final, Literal

import msgspec
import numpy as np

from pairflow.records import SCHEMA_VERSION, SYMBOL_PATTERN, SYMBOL_TEXT, TickSource
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

#: Header naming a mark's kind; ticks carry no header.
MARK_HEADER: Final = "pairflow-kind"

_Symbol = Annotated[str, msgspec.Meta(pattern=f"^{SYMBOL_TEXT}$")]
_Micros = Annotated[int, msgspec.Meta(ge=0)]


class _TickRow(msgspec.Struct, gc=False):
    """A tick message as decoded: the schema's fields, checked by type.

    The symbol's pattern is checked once per distinct symbol of a batch, not per row.
    """

    v: Literal[1]
    symbol: str
    trade_id: int
    price: float
    qty: float
    ts: int
    recv_ts: int
    buyer_is_maker: bool
    source: TickSource
    first_trade_id: int
    last_trade_id: int


class _HeartbeatMark(msgspec.Struct, tag_field="kind", tag="heartbeat", forbid_unknown_fields=True):
    v: Literal[1]
    symbol: _Symbol
    ts: _Micros
    final: bool = False


class _GapMark(msgspec.Struct, tag_field="kind", tag="gap", forbid_unknown_fields=True):
    v: Literal[1]
    symbol: _Symbol
    start: _Micros
    end: _Micros
    reason: str


_rows = msgspec.json.Decoder(list[_TickRow])
_row = msgspec.json.Decoder(_TickRow)
_mark = msgspec.json.Decoder(_HeartbeatMark | _GapMark)
_encoder = msgspec.json.Encoder()

_INT_COLUMNS: Final = ("ts", "recv_ts", "trade_id", "first_trade_id", "last_trade_id")


# --- encoding ---------------------------------------------------------------------------------


def _column(values: np.ndarray) -> list[bytes]:
    """Each element's JSON text: the column is encoded as one JSON array, then split."""
    return _encoder.encode(values.tolist())[1:-1].split(b",")


def encode_chunk(chunk: TickChunk) -> list[bytes]:
    """The ``ticks`` message values of a chunk, in order; each equals ``to_json`` of its tick.

    Columns are formatted whole and interleaved with the constant parts of the object by list
    slicing, so the cost per tick is a few C-level copies.
    """
    n = len(chunk)
    if n == 0:
        return []
    head = f'{{"v":{SCHEMA_VERSION},"symbol":"{chunk.symbol}","trade_id":'.encode()
    trade_ids = _column(chunk.trade_id)

    def covered(ids: np.ndarray) -> list[bytes]:
        # A plain trade covers itself: its first and last ids are its id, formatted once.
        return trade_ids if np.array_equal(ids, chunk.trade_id) else _column(ids)

    fields = [
        (head, trade_ids),
        (b',"price":', _column(chunk.price)),
        (b',"qty":', _column(chunk.qty)),
        (b',"ts":', _column(chunk.ts)),
        (b',"recv_ts":', _column(chunk.recv_ts)),
        (b',"buyer_is_maker":', np.where(chunk.buyer_is_maker, b"true", b"false").tolist()),
        (f',"source":"{chunk.source}","first_trade_id":'.encode(), covered(chunk.first_trade_id)),
        (b',"last_trade_id":', covered(chunk.last_trade_id)),
    ]
    stride = 2 * len(fields) + 1
    pieces: list[bytes] = [b""] * (n * stride)
    for i, (text, values) in enumerate(fields):
        pieces[2 * i :: stride] = [text] * n
        pieces[2 * i + 1 :: stride] = values
    pieces[stride - 1 :: stride] = [b"}\n"] * n
    return b"".join(pieces)[:-1].split(b"\n")


def encode_mark(mark: Heartbeat | FeedGap) -> tuple[str, bytes]:
    """``(kind, value)`` of a heartbeat or feed gap message."""
    if isinstance(mark, Heartbeat):
        value = _HeartbeatMark(SCHEMA_VERSION, mark.symbol, mark.ts, mark.final)
        return "heartbeat", _encoder.encode(value)
    value = _GapMark(SCHEMA_VERSION, mark.symbol, mark.start, mark.end, mark.reason)
    return "gap", _encoder.encode(value)


# --- decoding ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A message that is neither a valid tick nor a valid mark: ``index`` in its batch, why."""

    index: int
    reason: str


def decode_mark(value: bytes | None) -> Heartbeat | FeedGap:
    """A mark message back into the :class:`Heartbeat` or :class:`FeedGap` it was made from.

    Raises:
        ValueError: the value is not a valid mark.
    """
    try:
        mark = _mark.decode(value or b"")
    except msgspec.DecodeError as exc:
        msg = f"bad mark: {exc}"
        raise ValueError(msg) from exc
    if isinstance(mark, _HeartbeatMark):
        return Heartbeat(mark.symbol, mark.ts, mark.final)
    if mark.end <= mark.start:
        msg = f"bad mark: gap end {mark.end} is not after its start {mark.start}"
        raise ValueError(msg)
    return FeedGap(mark.symbol, mark.start, mark.end, mark.reason)


def decode_ticks(values: list[bytes]) -> tuple[list[TickChunk], list[BadMessage]]:
    """Tick message values (one partition, in offset order) as chunks, one per symbol run.

    One typed decode of the whole batch; only when it fails are the values decoded one by one
    to tell the bad ones (returned as :class:`BadMessage`) from the good.
    """
    if not values:
        return [], []
    try:
        rows = _rows.decode(b"[" + b",".join(values) + b"]")
        symbols = list(map(attrgetter("symbol"), rows))
        if all(map(_is_symbol, set(symbols))):
            return _chunks(rows, symbols), []
    except msgspec.DecodeError:
        pass  # some value is bad: find which
    rows = []
    bad: list[BadMessage] = []
    for index, value in enumerate(values):
        try:
            row = _row.decode(value or b"")
        except msgspec.DecodeError as exc:
            bad.append(BadMessage(index, f"bad_tick: {exc}" if value else "bad_tick: empty value"))
            continue
        if _is_symbol(row.symbol):
            rows.append(row)
        else:
            bad.append(BadMessage(index, f"bad_tick: {row.symbol!r} is not an exchange symbol"))
    return _chunks(rows, list(map(attrgetter("symbol"), rows))), bad


def _is_symbol(symbol: str) -> bool:
    return SYMBOL_PATTERN.match(symbol) is not None


def _chunks(rows: list[_TickRow], symbols: list[str]) -> list[TickChunk]:
    """Rows in arrival order as chunks: one per symbol, split further where the source changes."""
    n = len(rows)
    if n == 0:
        return []
    sources = list(map(attrgetter("source"), rows))
    columns = {name: np.fromiter(map(attrgetter(name), rows), np.int64, n) for name in _INT_COLUMNS}
    columns["price"] = np.fromiter(map(attrgetter("price"), rows), np.float64, n)
    columns["qty"] = np.fromiter(map(attrgetter("qty"), rows), np.float64, n)
    columns["buyer_is_maker"] = np.fromiter(map(attrgetter("buyer_is_maker"), rows), np.bool_, n)
    if len(set(sources)) == 1 and len(set(symbols)) == 1:
        return [TickChunk(symbols[0], sources[0], **columns)]
    out = []
    symbol_of = np.array(symbols)
    source_of = np.array(sources)
    for symbol in dict.fromkeys(symbols):
        where = np.flatnonzero(symbol_of == symbol)
        # Consecutive ticks of this symbol with the same source make one chunk (order kept).
        keys = source_of[where]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(where)], strict=True):
            take = where[start:stop]
            out.append(TickChunk(symbol, sources[take[0]],
                                 **{name: column[take] for name, column in columns.items()}))
    return out
