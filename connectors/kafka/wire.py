"""The ``ticks`` topic's message forms, encoded and decoded a column at a time.

Three kinds of message share the topic, all keyed by symbol (so one symbol's messages stay in
one partition, in order):

- a **tick batch** (the default form): one symbol's run of ticks as columns, one JSON array per
  field (``schemas/ticks.schema.json``), at most :data:`TICKS_PER_MESSAGE` ticks, with the
  header ``pairflow-kind: ticks``;
- a **tick** (the per-tick form, for consumers that want one record per message): the JSON of
  :class:`~pairflow.records.Tick` (``schemas/tick.schema.json``), no header;
- a **mark**: a per-symbol watermark (``"kind": "heartbeat"``: the feed is complete up to
  exchange time ``ts``) or a declared feed gap (``"kind": "gap"``: trades in ``[start, end)``
  are lost for good), ``schemas/mark.schema.json``, with the header ``pairflow-kind`` naming
  the kind.

A consumer tells them apart by the header: none is a tick, ``ticks`` a batch, anything else a
mark; the value's ``kind`` field says the same (ticks have none). The hot paths make no Python
object per tick: a chunk is encoded by formatting whole columns, and a poll is decoded by one
typed ``msgspec`` call per form, whose values become numpy columns, one chunk per symbol run.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import Annotated, Final, Literal

import msgspec
import numpy as np

from connectors.json_batch import decode_batch
from pairflow.records import SCHEMA_VERSION, SYMBOL_PATTERN, TickSource
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

#: Header naming the kind of a batch or mark (``ticks``, ``heartbeat``, ``gap``); a tick in
#: the per-tick form carries none.
KIND_HEADER: Final = "pairflow-kind"
#: Most ticks in one batch message: ~90 bytes each as JSON, so ~180 kB typical and at most
#: ~370 kB (every number at its longest), well under the broker's 1 MB message limit.
TICKS_PER_MESSAGE: Final = 2048
#: The header value of a batch; a mark's is its ``kind``.
TICKS_KIND: Final = b"ticks"

_Symbol = Annotated[str, msgspec.Meta(pattern=SYMBOL_PATTERN.pattern)]
# The typed decode checks every value: what numpy's columns can hold, what the schemas allow.
# A non-finite number cannot reach a column: JSON has none and msgspec refuses out-of-range ones.
_Id = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Micros = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Price = Annotated[float, msgspec.Meta(gt=0)]
_Size = Annotated[float, msgspec.Meta(ge=0)]


class _TickRow(msgspec.Struct, gc=False):
    """A tick message as decoded: the schema's fields, checked by type.

    The symbol's pattern is checked once per distinct symbol of a batch, not per row.
    """

    v: Literal[1]
    symbol: str
    trade_id: _Id
    price: _Price
    qty: _Size
    ts: _Micros
    recv_ts: _Micros
    buyer_is_maker: bool
    source: TickSource
    first_trade_id: _Id
    last_trade_id: _Id


class _TickBatch(msgspec.Struct, tag_field="kind", tag="ticks", forbid_unknown_fields=True,
                 omit_defaults=True, gc=False):
    """A batch message: one symbol's ticks as columns (``ghost_ids``: see :class:`TickChunk`)."""

    v: Literal[1]
    symbol: _Symbol
    source: TickSource
    trade_id: list[_Id]
    price: list[_Price]
    qty: list[_Size]
    ts: list[_Micros]
    recv_ts: list[_Micros]
    buyer_is_maker: list[bool]
    ghost_ids: list[_Id]
    # Absent (None) when equal to ``trade_id``: a trade covers itself (only aggTrades differ).
    first_trade_id: list[_Id] | None = None
    last_trade_id: list[_Id] | None = None


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


_Kinded = _TickBatch | _HeartbeatMark | _GapMark

_rows = msgspec.json.Decoder(list[_TickRow])
_row = msgspec.json.Decoder(_TickRow)
_kinded_list = msgspec.json.Decoder(list[_Kinded])
_kinded = msgspec.json.Decoder(_Kinded)
_encoder = msgspec.json.Encoder()

#: A chunk's columns with their types, in :class:`TickChunk`'s field order.
_COLUMNS: Final = (("ts", np.int64), ("recv_ts", np.int64), ("trade_id", np.int64),
                   ("first_trade_id", np.int64), ("last_trade_id", np.int64),
                   ("price", np.float64), ("qty", np.float64), ("buyer_is_maker", np.bool_))
#: The columns of the exchange trade ids a tick covers, left out of a batch of plain trades.
_COVERED: Final = ("first_trade_id", "last_trade_id")


# --- encoding ---------------------------------------------------------------------------------


def encode_batches(chunk: TickChunk, ticks_per_message: int = TICKS_PER_MESSAGE) -> list[bytes]:
    """The batch message values of a chunk, in order, each of at most ``ticks_per_message``.

    A chunk's ghost ids go with its ticks, as many per message; a chunk with neither makes none.
    The covered-id columns are left out when they are the trade ids (plain trades): a quarter
    of the bytes.
    """
    n, ghosts = len(chunk), len(chunk.ghost_ids)
    own_ids = (np.array_equal(chunk.first_trade_id, chunk.trade_id)
               and np.array_equal(chunk.last_trade_id, chunk.trade_id))
    columns = {name: getattr(chunk, name).tolist() for name, _ in _COLUMNS
               if not (own_ids and name in _COVERED)}
    ghost_ids = chunk.ghost_ids.tolist()
    out = []
    for start in range(0, max(n, ghosts), ticks_per_message):
        part = slice(start, start + ticks_per_message)
        out.append(_encoder.encode(_TickBatch(
            SCHEMA_VERSION, chunk.symbol, chunk.source,
            **{name: values[part] for name, values in columns.items()},
            ghost_ids=ghost_ids[part])))
    return out


def _column(values: np.ndarray) -> list[bytes]:
    """Each element's JSON text: the column is encoded as one JSON array, then split."""
    return _encoder.encode(values.tolist())[1:-1].split(b",")


def encode_ticks(chunk: TickChunk) -> list[bytes]:
    """The per-tick message values of a chunk, in order; each equals ``to_json`` of its tick.

    Columns are formatted whole and interleaved with the constant parts of the object by list
    slicing, so the cost per tick is a few C-level copies. Ghost ids have no per-tick form.
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
    """A message that is not a valid tick, batch or mark: ``index`` in its poll, why."""

    index: int
    reason: str


TickItem = TickChunk | Heartbeat | FeedGap


def decode_poll(values: list[bytes | None], kinds: list[bytes | None],
                ) -> tuple[list[TickItem], list[BadMessage]]:
    """One poll of a partition as chunks and marks, with the bad messages apart.

    ``values`` are in offset order, ``kinds`` their ``pairflow-kind`` headers (``None``: none).

    Each form is decoded by one typed call over all its messages (per run of ticks between
    other messages); only when it fails are the values decoded one by one to tell the bad from
    the good. A symbol's chunks that no mark of it separates are joined into one, so a poll
    makes one chunk per symbol (and source) run; a symbol's items keep their order.
    """
    if not any(kinds):
        return _decode_rows(values)
    marked = [i for i, kind in enumerate(kinds) if kind is not None]
    decoded = iter(_decode_kinded([values[i] for i in marked], [kinds[i] for i in marked]))
    items: list[TickItem] = []
    bad: list[BadMessage] = []
    for is_tick, run in groupby(range(len(values)), key=lambda i: kinds[i] is None):
        at = list(run)
        if is_tick:
            chunks, bad_rows = _decode_rows([values[i] for i in at])
            items.extend(chunks)
            bad.extend(BadMessage(at[b.index], b.reason) for b in bad_rows)
            continue
        for i in at:
            item = next(decoded)
            if isinstance(item, str):
                bad.append(BadMessage(i, item))
            else:
                items.append(item)
    return _joined(items), bad


def _decode_kinded(values: list[bytes | None], kinds: list[bytes]) -> list[TickItem | str]:
    """Batch and mark values as items, or the reason each bad one is refused."""
    decoded = decode_batch(values, _kinded_list)
    if decoded is not None:
        return list(map(_from_kinded, decoded))
    out: list[TickItem | str] = []
    for value, kind in zip(values, kinds, strict=True):
        what = "bad_batch" if kind == TICKS_KIND else "bad_mark"
        try:
            out.append(_from_kinded(_kinded.decode(value or b"")))
        except msgspec.DecodeError as exc:
            out.append(f"{what}: {exc}" if value else f"{what}: empty value")
    return out


def _from_kinded(message: _Kinded) -> TickItem | str:
    if isinstance(message, _TickBatch):
        return _batch_chunk(message)
    if isinstance(message, _HeartbeatMark):
        return Heartbeat(message.symbol, message.ts, message.final)
    if message.end <= message.start:
        return f"bad_mark: gap end {message.end} is not after its start {message.start}"
    return FeedGap(message.symbol, message.start, message.end, message.reason)


def _batch_chunk(batch: _TickBatch) -> TickChunk | str:
    given = {name: getattr(batch, name) for name, _ in _COLUMNS}
    lengths = {name: len(values) for name, values in given.items() if values is not None}
    if len(set(lengths.values())) > 1:
        return f"bad_batch: columns of different lengths {lengths}"
    if (batch.first_trade_id is None) != (batch.last_trade_id is None):
        return "bad_batch: first_trade_id and last_trade_id come together or not at all"
    columns = {name: np.array(values, kind) for (name, kind), values
               in zip(_COLUMNS, given.values(), strict=True) if values is not None}
    for name in _COVERED:
        columns.setdefault(name, columns["trade_id"])
    return TickChunk(batch.symbol, batch.source, **columns,
                     ghost_ids=np.array(batch.ghost_ids, np.int64))


def _joined(items: list[TickItem]) -> list[TickItem]:
    """Items with each symbol's consecutive chunks of one source joined (symbol order kept)."""
    out: list[TickItem | list[TickChunk]] = []
    runs: dict[str, list[TickChunk]] = {}  # a symbol's open run of chunks, in ``out``
    for item in items:
        if isinstance(item, TickChunk):
            run = runs.get(item.symbol)
            if run is not None and run[0].source == item.source:
                run.append(item)
                continue
            runs[item.symbol] = run = [item]
            out.append(run)
        else:
            runs.pop(item.symbol, None)  # a mark ends its symbol's run
            out.append(item)
    return [TickChunk.concat(item) if isinstance(item, list) else item for item in out]


def _decode_rows(values: list[bytes | None]) -> tuple[list[TickChunk], list[BadMessage]]:
    """Per-tick values as chunks, one per symbol (and source) run, and the bad ones."""
    if not values:
        return [], []
    rows = decode_batch(values, _rows)
    if rows is not None:
        symbols = list(map(attrgetter("symbol"), rows))
        if all(map(_is_symbol, set(symbols))):
            return _chunks(rows, symbols), []
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
    columns = {name: np.fromiter(map(attrgetter(name), rows), kind, n) for name, kind in _COLUMNS}
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
