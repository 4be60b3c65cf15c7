"""Binance trade frames on the wire, parsed in batches into columnar tick chunks.

Handles combined-stream envelopes (``{"stream": "btcusdt@trade", "data": {...}}``) and raw
payloads, for spot ``@trade`` (with or without the legacy ``b``/``a`` order ids), spot
``@aggTrade``, USDⓈ-M futures ``@trade`` (``X`` = ``MARKET`` are trades; other fills are
skipped but keep trade-id contiguity) and futures ``@aggTrade`` (no ``M``). Other streams
(``@depth…``, ``@kline…``, REST snapshots) are counted by kind and skipped; so are
``@bookTicker`` and ``@markPrice`` unless the parser is asked for quotes
(:mod:`connectors.binance.quotes`).

Frames are decoded many at a time by msgspec (one JSON array per batch): decoding is the floor
of the whole pipeline's cost. A batch with a bad frame is decoded again frame by frame so the
bad one becomes a dead letter with its reason and the rest goes on.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Annotated, Literal

import msgspec
import numpy as np

from connectors.binance.quotes import (
    QuoteClock,
    UpdateIds,
    decode_quotes,
    mark_chunks,
    quote_chunks,
)
from connectors.json_batch import DECODE_ERRORS, decode_batch
from pairflow.quotes import MarkChunk, QuoteChunk
from pairflow.records import (
    EXCHANGE_SYMBOL_PATTERN,
    DeadLetter,
    TickSource,
    exchange_time_us,
    frame_market,
    split_symbol,
)
from pairflow.ticks import TickChunk

#: Ids and times as numpy int64 holds them; larger numbers are bad input, not an overflow.
Id = Annotated[int, msgspec.Meta(ge=0, le=2**62)]
Time = Annotated[int, msgspec.Meta(ge=0, le=10**16)]


# gc=False: these structs hold scalars only, so they cannot form cycles; untracked, millions of
# them per replay cost the garbage collector nothing.
class TradePayload(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``trade`` or ``aggTrade`` event payload, spelled as on the wire."""

    e: str  # event type: "trade" or "aggTrade"
    s: str  # symbol, upper case
    p: float  # price (decimal string on the wire)
    q: float  # quantity (decimal string on the wire)
    T: Time  # trade time, ms (µs when the stream was opened with timeUnit=MICROSECOND)
    m: bool  # is the buyer the market maker?
    E: Time | None = None  # event time
    t: Id | None = None  # trade id (trade)
    a: Id | None = None  # aggregate trade id (aggTrade); seller order id in legacy trades
    b: Id | None = None  # buyer order id (legacy spot trade, before 2024-06-11)
    f: Id | None = None  # first trade id (aggTrade)
    l: Id | None = None  # noqa: E741 - last trade id (aggTrade), Binance's own name
    M: bool | None = None  # ignore (spot only)
    X: str | None = None  # futures trade type: MARKET, INSURANCE_FUND, ADL, NA
    nq: float | None = None  # futures aggTrade quantity without RPI orders


class TradeEnvelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A combined-stream envelope around a trade payload."""

    stream: str  # "<symbol>@trade" or "<symbol>@aggTrade", lower case
    data: TradePayload


class Trade(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A ``trade`` payload as spot and USDⓈ-M send it today: a batch is decoded as these first.

    Without the optional fields of other shapes its decode costs ~20 % less than a
    :class:`TradePayload`'s. A frame of any other shape (legacy spot order ids, ``aggTrade``)
    fails it at its first differing field; the batch is then decoded as :class:`TradePayload`.
    """

    e: Literal["trade"]
    s: str
    t: Id
    p: float
    q: float
    T: Time
    m: bool
    E: Time | None = None
    M: bool | None = None
    # Literals decode to shared strings, with no string made per frame; another type decodes
    # as a TradePayload.
    X: Literal["MARKET", "INSURANCE_FUND", "ADL", "NA"] | None = None


class TradeOnlyEnvelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A combined-stream envelope around a :class:`Trade`."""

    stream: str
    data: Trade


#: ``list[…]`` decoders of a batch, tried in order: the common shape, then any trade.
_ENVELOPE_BATCHES = (msgspec.json.Decoder(list[TradeOnlyEnvelope], strict=False),
                     msgspec.json.Decoder(list[TradeEnvelope], strict=False))
_PAYLOAD_BATCHES = (msgspec.json.Decoder(list[Trade], strict=False),
                    msgspec.json.Decoder(list[TradePayload], strict=False))
_envelope = msgspec.json.Decoder(TradeEnvelope, strict=False)
_payload = msgspec.json.Decoder(TradePayload, strict=False)

# Fields of decoded payloads read a column at a time (``map`` over C getters: no Python frame
# per payload).
_KIND, _SYMBOL, _PRICE, _QTY, _TIME, _MAKER, _MARKET = map(attrgetter, "espqTmX")
_TRADE_ID, _AGG_ID, _FIRST_ID, _LAST_ID = map(attrgetter, "tafl")
_DATA, _STREAM = attrgetter("data"), attrgetter("stream")


def _ints(field: Callable[[Trade | TradePayload], int], payloads: list[Trade | TradePayload],
          n: int) -> np.ndarray:
    """One integer field of every payload as int64; TypeError when one is missing (None)."""
    return np.fromiter(map(field, payloads), np.int64, n)


def _ghosts(market: list[str | None]) -> np.ndarray:
    """Which payloads are USDⓈ-M fills other than ``MARKET``: not trades, but ids seen."""
    is_ghost = {x: x is not None and x != "MARKET" for x in set(market)}
    if not any(is_ghost.values()):
        return np.zeros(len(market), bool)
    return np.fromiter(map(is_ghost.__getitem__, market), bool, len(market))


_STREAM_PREFIX = b'{"stream":"'
_TRADE_KINDS = frozenset({"trade", "aggTrade"})
#: A mark-price frame's kind: its stream's (``btcusdt@markPrice@1s``) or its event type's.
_MARK_KINDS = frozenset({"markPrice", "markPriceUpdate"})


@dataclass
class ParsedFrames:
    """The result of parsing a batch: per-symbol chunks, dead letters, skipped counts."""

    chunks: dict[str, TickChunk] = field(default_factory=dict)
    quotes: dict[str, QuoteChunk] = field(default_factory=dict)
    marks: dict[str, MarkChunk] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    frames: int = 0


def stream_kind(stream: str) -> str:
    """The kind of a stream name: ``btcusdt@depth@100ms`` → ``depth``."""
    kind = stream.partition("@")[2].partition("@")[0]
    return kind.split("_")[0] if kind.startswith("kline") else kind


def _classify(frame: bytes) -> tuple[str, bool]:
    """(kind, enveloped) of a frame; ``""`` when it is not a JSON object.

    Frames as Binance sends them (compact, ``stream`` or ``e`` first) are told from their first
    bytes; anything else is decoded generically, so a trade spelled with blanks or another key
    order is still a trade.
    """
    if frame.startswith(_STREAM_PREFIX):
        end = frame.find(b'"', len(_STREAM_PREFIX))
        return stream_kind(frame[len(_STREAM_PREFIX) : end].decode("ascii", "replace")), True
    if frame.startswith(b'{"e":"'):
        kind = frame[6 : frame.find(b'"', 6)].decode("ascii", "replace")
        return ("depth" if kind == "depthUpdate" else kind), False
    try:
        value = msgspec.json.decode(frame)
    except DECODE_ERRORS:
        return "", False
    if not isinstance(value, dict):
        return "", False
    if isinstance(value.get("stream"), str) and "data" in value:
        return stream_kind(value["stream"]), True
    if isinstance(value.get("e"), str):
        return ("depth" if value["e"] == "depthUpdate" else value["e"]), False
    if "lastUpdateId" in value:
        return "snapshot", False
    if {"u", "s", "b", "B", "a", "A"} <= value.keys():
        return "bookTicker", False
    return "other", False


def decode_reason(error: Exception) -> str:
    """The dead-letter reason (``code: detail``) of a msgspec decoding error."""
    text = str(error)
    if isinstance(error, UnicodeDecodeError):
        return f"invalid_json: not UTF-8 ({text})"
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return f"invalid_json: {text}"
    if "missing required field" in text:
        return f"missing_field: {text}"
    if "unknown field" in text:
        return f"unknown_field: {text}"
    return f"bad_type: {text}"


class FrameParser:
    """Parses batches of ``(recv_ts_us, frame)`` into tick chunks of the wanted symbols.

    Args:
        symbols: the symbols to keep; trades of any other symbol are dead letters
            (``unknown_symbol``). A symbol may name its market (``cm:BTCUSD_PERP``); then each
            frame's market is told from the frame (:func:`~pairflow.records.frame_market`) and
            chunks carry the symbol's name as given.
        source: the ``source`` of the ticks made (``replay``, ``live``, ``backfill``).
        stage: the dead-letter stage name.
        quotes: parse ``@bookTicker`` frames into quote chunks and ``@markPrice`` frames into
            mark-price chunks (else they are counted as skipped, like other streams).
        market: the market of the bare symbols when some symbol names its market.
    """

    def __init__(
        self,
        symbols: frozenset[str] | set[str],
        source: TickSource,
        stage: str = "parse",
        quotes: bool = False,
        market: str = "spot",
    ):
        self.symbols = frozenset(symbols)
        #: (market, exchange symbol) → name, when some symbol names its market; else None:
        #: symbols are exchange symbols, whatever market a frame came from.
        self._names: dict[tuple[str, str], str] | None = None
        if any(split_symbol(name)[0] for name in self.symbols):
            self._names = {}
            for name in self.symbols:
                named, exchange_symbol = split_symbol(name)
                self._names[(named or market, exchange_symbol)] = name
        self.source = source
        self._stream_kinds: dict[bytes, str] = {}
        self.stage = stage
        self.quotes = quotes
        self._clock = QuoteClock()
        self._update_ids = UpdateIds()

    def parse(self, frames: list[tuple[int, bytes]],
              origin_at: Callable[[int], str] | None = None) -> ParsedFrames:
        """Parse one batch; frames keep their order within each symbol.

        Args:
            frames: ``(receive time µs, frame)`` pairs.
            origin_at: where frame ``i`` came from (``path:line``), for its dead letter.
        """
        out = ParsedFrames(frames=len(frames))
        where = origin_at or _nowhere
        enveloped: list[tuple[int, bytes, str | int]] = []
        raw: list[tuple[int, bytes, str | int]] = []
        book: list[tuple[int, bytes, bool]] = []
        marks: list[tuple[int, bytes, bool]] = []
        quoting = self.quotes
        kinds = self._stream_kinds
        prefix = len(_STREAM_PREFIX)
        for index, (recv, frame) in enumerate(frames):
            if frame.startswith(_STREAM_PREFIX):
                # Fast path: the stream name is in the first bytes; its kind is cached.
                stream = frame[prefix : frame.find(b'"', prefix)]
                kind = kinds.get(stream)
                if kind is None:
                    kind = kinds[stream] = stream_kind(stream.decode("ascii", "replace"))
                in_envelope = True
            else:
                kind, in_envelope = _classify(frame)
            if kind in _TRADE_KINDS:
                (enveloped if in_envelope else raw).append((recv, frame, index))
            elif quoting and kind == "bookTicker":
                book.append((recv, frame, in_envelope))
            elif quoting and kind in _MARK_KINDS:
                marks.append((recv, frame, in_envelope))
            elif kind:
                out.skipped[kind] += 1
            else:
                out.dead.append(self._dead("invalid_json: not a JSON object", frame,
                                           where(index), recv))
        parts: list[TickChunk] = []
        if enveloped:
            self._decode(enveloped, _ENVELOPE_BATCHES, _envelope, True, where, parts, out)
        if raw:
            self._decode(raw, _PAYLOAD_BATCHES, _payload, False, where, parts, out)
        for chunk in parts:
            previous = out.chunks.get(chunk.symbol)
            out.chunks[chunk.symbol] = chunk if previous is None else _concat(previous, chunk)
        if quoting:
            self._quotes(book, marks, out)
        return out

    def _quotes(self, book: list[tuple[int, bytes, bool]], marks: list[tuple[int, bytes, bool]],
                out: ParsedFrames) -> None:
        """Quote and mark-price chunks of the batch's ``bookTicker`` and ``markPrice`` frames.

        Spot quotes are timed by the trades: the clock learns from every batch's trades, with
        quotes or not.
        """
        if marks:
            recv, payloads = decode_quotes([r for r, _, _ in marks], [f for _, f, _ in marks],
                                           [e for _, _, e in marks], out.skipped, "mark")
            out.marks = mark_chunks(recv, payloads, [self.name_of(True, p.s) for p in payloads],
                                    self.symbols, out.skipped)
        chunks = {}
        if book:
            recv, payloads = decode_quotes([r for r, _, _ in book], [f for _, f, _ in book],
                                           [e for _, _, e in book], out.skipped)
            names = [self.name_of(p.T is not None, p.s) for p in payloads]
            chunks = {symbol: self._update_ids.fresh(chunk, out.skipped) for symbol, chunk in
                      quote_chunks(recv, payloads, names, self.symbols, out.skipped).items()}
        for symbol in sorted(chunks.keys() | out.chunks.keys()):
            timed = self._clock.time(symbol, chunks.get(symbol), out.chunks.get(symbol),
                                     out.skipped)
            if timed is not None and len(timed):
                out.quotes[symbol] = timed

    def _decode(self, batch, many, one, enveloped, where, parts: list[TickChunk], out) -> None:
        decoded = decode_batch([f for _, f, _ in batch], *many)
        if decoded is None:
            decoded = []
            for recv, frame, index in batch:
                try:
                    decoded.append(one.decode(frame))
                except DECODE_ERRORS as error:
                    decoded.append(None)
                    out.dead.append(self._dead(decode_reason(error), frame, where(index), recv))
        if None in decoded:
            batch = [b for b, d in zip(batch, decoded, strict=True) if d is not None]
            decoded = [d for d in decoded if d is not None]
        if not decoded:
            return
        payloads = [d.data for d in decoded] if enveloped else decoded
        streams = [d.stream for d in decoded] if enveloped else None
        recv = np.fromiter((r for r, _, _ in batch), np.int64, len(batch))
        self._columns(recv, lambda i: (batch[i][1], where(batch[i][2])), payloads, streams,
                      parts, out)

    def parse_columns(self, recv_ts: np.ndarray, frames: list[bytes],
                      origin_at: Callable[[int], str] | None = None) -> ParsedFrames:
        """Parse frames whose receive times (µs) come as an array; same result as :meth:`parse`.

        When every frame is a combined-stream trade envelope — what ``pairflow record`` writes —
        the batch is checked and decoded as one JSON array without a Python step per frame.
        """
        count = len(frames)
        # A batch that decodes as trade envelopes is one. In a batch mixing other streams the
        # decode fails at the first such frame, which comes early: quotes outnumber trades.
        decoded = decode_batch(frames, *_ENVELOPE_BATCHES)
        if decoded is not None:
            out = ParsedFrames(frames=count)
            parts: list[TickChunk] = []
            where = origin_at or _nowhere
            self._columns(recv_ts, lambda i: (frames[i], where(i)),
                          list(map(_DATA, decoded)), list(map(_STREAM, decoded)), parts, out)
            for chunk in parts:
                previous = out.chunks.get(chunk.symbol)
                out.chunks[chunk.symbol] = (chunk if previous is None
                                            else _concat(previous, chunk))
            return out
        return self.parse(list(zip(recv_ts.tolist(), frames, strict=True)), origin_at)

    def _columns(self, recv: np.ndarray, frame_at, payloads: list[Trade | TradePayload],
                 streams: list[str] | None, parts: list[TickChunk], out: ParsedFrames) -> None:
        """Check decoded payloads column-wise and cut them into per-symbol chunks.

        ``frame_at(i)`` gives the raw frame of payload ``i`` and its origin, for a dead letter.
        """
        n = len(payloads)
        symbols = list(map(_SYMBOL, payloads))
        names = symbols if self._names is None else [self.name_of(p.M is None, p.s)
                                                     for p in payloads]
        # A batch decoded as today's trade shape holds trades only (its ``e`` is a literal).
        kinds = ({"trade"} if payloads and type(payloads[0]) is Trade
                 else set(map(_KIND, payloads)))
        try:
            if kinds == {"trade"}:
                ids = first = last = _ints(_TRADE_ID, payloads, n)
            elif kinds == {"aggTrade"}:
                ids, first, last = (_ints(_AGG_ID, payloads, n), _ints(_FIRST_ID, payloads, n),
                                    _ints(_LAST_ID, payloads, n))
            else:
                return self._columns_slowly(recv, frame_at, payloads, streams, parts, out)
        except TypeError:  # an id missing (None): checked frame by frame
            return self._columns_slowly(recv, frame_at, payloads, streams, parts, out)
        price = np.fromiter(map(_PRICE, payloads), np.float64, n)
        qty = np.fromiter(map(_QTY, payloads), np.float64, n)
        times = _ints(_TIME, payloads, n)
        ok = np.isfinite(price) & np.isfinite(qty) & (price > 0) & (qty > 0) & (times > 0)
        ok &= first <= last
        market = list(map(_MARKET, payloads))
        ghost = _ghosts(market)
        ok |= ghost & (times > 0)
        distinct = (((s, s) for s in set(symbols)) if names is symbols
                    else set(zip(symbols, names, strict=True)))
        usable = {name: bool(EXCHANGE_SYMBOL_PATTERN.match(s)) and name in self.symbols
                  for s, name in distinct}
        # Each payload's name as an index into ``usable``: masks are then integer compares.
        code_of = {name: code for code, name in enumerate(usable)}
        codes = (np.zeros(n, np.int64) if len(code_of) == 1
                 else np.fromiter(map(code_of.__getitem__, names), np.int64, n))
        if not all(usable.values()):
            ok &= np.fromiter(usable.values(), bool, len(usable))[codes]
        if streams is not None:
            stream_symbol = {st: st.partition("@")[0].upper() for st in set(streams)}
            carried = list(map(stream_symbol.__getitem__, streams))
            if carried != symbols:
                ok &= np.array(carried) == np.array(symbols)
        for index in np.flatnonzero(~ok).tolist():
            problem = self._problem(payloads[index], streams and streams[index])
            out.dead.append(self._dead(problem, *frame_at(index), int(recv[index])))
        ts = exchange_time_us(times)
        maker = np.fromiter(map(_MAKER, payloads), np.bool_, n)
        for symbol in sorted({s for s, good in usable.items() if good}):
            mask = ok if len(usable) == 1 else ok & (codes == code_of[symbol])
            trades = mask & ~ghost
            if ghost.any():
                for kind in (market[i] for i in np.flatnonzero(mask & ghost).tolist()):
                    out.skipped[f"futures_{kind.lower()}"] += 1
            parts.append(TickChunk(symbol, self.source, ts[trades], recv[trades], ids[trades],
                                   first[trades], last[trades], price[trades], qty[trades],
                                   maker[trades], ids[mask & ghost]))

    def _columns_slowly(self, recv, frame_at, payloads, streams, parts, out) -> None:
        """Frame by frame, for batches mixing trade kinds or missing ids."""
        keep = []
        for index, payload in enumerate(payloads):
            problem = self._problem(payload, streams and streams[index])
            if problem:
                out.dead.append(self._dead(problem, *frame_at(index), int(recv[index])))
            else:
                keep.append(index)
        for kind in ("trade", "aggTrade"):
            chosen = [i for i in keep if payloads[i].e == kind]
            if chosen:
                self._columns(recv[chosen], lambda j, chosen=chosen: frame_at(chosen[j]),
                              [payloads[i] for i in chosen],
                              streams and [streams[i] for i in chosen], parts, out)

    def _problem(self, p: Trade | TradePayload, stream: str | None) -> str | None:
        """A reason to reject a decoded payload (with its envelope's stream), or None."""
        if stream is not None and stream.partition("@")[0].upper() != p.s:
            return f"symbol_mismatch: stream {stream!r} carries {p.s!r}"
        return self._check(p)

    def _check(self, p: Trade | TradePayload) -> str | None:
        """A reason to reject a decoded payload, or None when it is a usable trade."""
        if p.e == "trade":
            if p.t is None:
                return "missing_field: trade without `t` (trade id)"
        elif p.a is None or p.f is None or p.l is None:
            return "missing_field: aggTrade needs `a`, `f` and `l`"
        elif p.l < p.f:
            return f"bad_value: aggTrade last id {p.l} < first id {p.f}"
        if not EXCHANGE_SYMBOL_PATTERN.match(p.s):
            return f"bad_symbol: {p.s!r} is not an upper-case Binance symbol"
        name = self.name_of(p.M is None, p.s)
        if name not in self.symbols:
            return f"unknown_symbol: {name} is not among {sorted(self.symbols)}"
        if not (math.isfinite(p.p) and math.isfinite(p.q)):
            return f"non_finite: price {p.p} qty {p.q}"
        if p.p <= 0 or p.q <= 0:
            if p.X is None or p.X == "MARKET":
                return f"non_positive: price {p.p} qty {p.q}"
        if p.T <= 0:
            return f"bad_value: trade time {p.T}"
        return None

    def name_of(self, futures: bool, symbol: str) -> str:
        """The name chunks carry for an exchange symbol of a spot or futures frame."""
        if self._names is None:
            return symbol
        market = frame_market(futures, symbol)
        return self._names.get((market, symbol), f"{market}:{symbol}")

    def _dead(self, reason: str, frame: bytes, origin: str, recv_ts: int) -> DeadLetter:
        return DeadLetter(self.stage, reason, frame.decode("utf-8", "replace"), recv_ts, origin)


def _nowhere(index: int) -> str:
    """The origin of a frame that has no position (a live frame): none."""
    return ""


def _concat(a: TickChunk, b: TickChunk) -> TickChunk:
    """Two chunks of one symbol from the same batch, back in receive order."""
    merged = TickChunk.concat([a, b])
    return merged.take(np.argsort(merged.recv_ts, kind="stable"))
