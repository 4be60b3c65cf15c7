"""Binance trade frames on the wire, parsed in batches into columnar tick chunks.

Handles combined-stream envelopes (``{"stream": "btcusdt@trade", "data": {...}}``) and raw
payloads, for spot ``@trade`` (with or without the legacy ``b``/``a`` order ids), spot
``@aggTrade``, USDⓈ-M futures ``@trade`` (``X`` = ``MARKET`` are trades; other fills are
skipped but keep trade-id contiguity) and futures ``@aggTrade`` (no ``M``). Other streams
(``@bookTicker``, ``@depth…``, ``@kline…``, REST snapshots) are counted by kind and skipped.

Frames are decoded many at a time by msgspec (one JSON array per batch): decoding is the floor
of the whole pipeline's cost. A batch with a bad frame is decoded again frame by frame so the
bad one becomes a dead letter with its reason and the rest goes on.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import msgspec
import numpy as np

from pairflow.records import DeadLetter, TickSource
from pairflow.ticks import TickChunk

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}$")


class TradePayload(msgspec.Struct, forbid_unknown_fields=True):
    """A ``trade`` or ``aggTrade`` event payload, spelled as on the wire."""

    e: str  # event type: "trade" or "aggTrade"
    s: str  # symbol, upper case
    p: float  # price (decimal string on the wire)
    q: float  # quantity (decimal string on the wire)
    T: int  # trade time, ms (µs when the stream was opened with timeUnit=MICROSECOND)
    m: bool  # is the buyer the market maker?
    E: int | None = None  # event time
    t: int | None = None  # trade id (trade)
    a: int | None = None  # aggregate trade id (aggTrade); seller order id in legacy trades
    b: int | None = None  # buyer order id (legacy spot trade, before 2024-06-11)
    f: int | None = None  # first trade id (aggTrade)
    l: int | None = None  # noqa: E741 - last trade id (aggTrade), Binance's own name
    M: bool | None = None  # ignore (spot only)
    X: str | None = None  # futures trade type: MARKET, INSURANCE_FUND, ADL, NA
    nq: float | None = None  # futures aggTrade quantity without RPI orders


class TradeEnvelope(msgspec.Struct, forbid_unknown_fields=True):
    """A combined-stream envelope around a trade payload."""

    stream: str  # "<symbol>@trade" or "<symbol>@aggTrade", lower case
    data: TradePayload


_envelopes = msgspec.json.Decoder(list[TradeEnvelope], strict=False)
_payloads = msgspec.json.Decoder(list[TradePayload], strict=False)
_envelope = msgspec.json.Decoder(TradeEnvelope, strict=False)
_payload = msgspec.json.Decoder(TradePayload, strict=False)

_STREAM_PREFIX = b'{"stream":"'
_TRADE_KINDS = frozenset({"trade", "aggTrade"})


@dataclass
class ParsedFrames:
    """The result of parsing a batch: per-symbol chunks, dead letters, skipped counts."""

    chunks: dict[str, TickChunk] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    frames: int = 0


def trade_time_us(value: int) -> int:
    """Binance trade time in µs, from ms or µs told apart by magnitude.

    Binance sends ms by default and µs on ``timeUnit=MICROSECOND`` streams and in
    data.binance.vision spot dumps from 2025; µs since the epoch exceed 1e14 after 1973, ms will
    not before the year 5138.
    """
    return value if value >= 100_000_000_000_000 else value * 1000


def stream_kind(stream: str) -> str:
    """The kind of a stream name: ``btcusdt@depth@100ms`` → ``depth``."""
    kind = stream.partition("@")[2].partition("@")[0]
    return kind.split("_")[0] if kind.startswith("kline") else kind


def _classify(frame: bytes) -> tuple[str, bool]:
    """(kind, enveloped) of a frame from its first bytes, without decoding it."""
    if frame.startswith(_STREAM_PREFIX):
        end = frame.find(b'"', len(_STREAM_PREFIX))
        return stream_kind(frame[len(_STREAM_PREFIX) : end].decode("ascii", "replace")), True
    start = frame.find(b'"e":"', 0, 40)
    if start >= 0:
        end = frame.find(b'"', start + 5)
        kind = frame[start + 5 : end].decode("ascii", "replace")
        return ("depth" if kind == "depthUpdate" else kind), False
    if frame.startswith(b'{"lastUpdateId"'):
        return "snapshot", False
    if frame.startswith(b"{") and frame.rstrip().endswith(b"}"):
        return ("bookTicker" if b'"A":' in frame else "other"), False
    return "", False


def _reason(error: Exception) -> str:
    text = str(error)
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return f"invalid_json: {text}"
    if "missing required field" in text:
        return f"missing_field: {text}"
    if "unknown field" in text:
        return f"unknown_field: {text}"
    return f"bad_type: {text}"


class _Columns:
    """Growing per-symbol columns while a batch is parsed."""

    __slots__ = ("ts", "recv", "ids", "first", "last", "price", "qty", "maker", "ghosts")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.recv: list[int] = []
        self.ids: list[int] = []
        self.first: list[int] = []
        self.last: list[int] = []
        self.price: list[float] = []
        self.qty: list[float] = []
        self.maker: list[bool] = []
        self.ghosts: list[int] = []


class FrameParser:
    """Parses batches of ``(recv_ts_us, frame)`` into tick chunks of the wanted symbols.

    Args:
        symbols: the symbols to keep; trades of any other symbol are dead letters
            (``unknown_symbol``).
        source: the ``source`` of the ticks made (``replay``, ``live``, ``backfill``).
        stage: the dead-letter stage name.
    """

    def __init__(
        self,
        symbols: frozenset[str] | set[str],
        source: TickSource,
        stage: str = "parse",
    ):
        self.symbols = frozenset(symbols)
        self.source = source
        self._stream_kinds: dict[bytes, str] = {}
        self.stage = stage

    def parse(self, frames: list[tuple[int, bytes]]) -> ParsedFrames:
        """Parse one batch; frames keep their order within each symbol."""
        out = ParsedFrames(frames=len(frames))
        enveloped: list[tuple[int, bytes]] = []
        raw: list[tuple[int, bytes]] = []
        kinds = self._stream_kinds
        prefix = len(_STREAM_PREFIX)
        for recv, frame in frames:
            if frame.startswith(_STREAM_PREFIX):
                # Fast path: the stream name is in the first bytes; its kind is cached.
                stream = frame[prefix : frame.find(b'"', prefix)]
                kind = kinds.get(stream)
                if kind is None:
                    kind = kinds[stream] = stream_kind(stream.decode("ascii", "replace"))
                if kind in _TRADE_KINDS:
                    enveloped.append((recv, frame))
                else:
                    out.skipped[kind] += 1
                continue
            kind, in_envelope = _classify(frame)
            if kind in _TRADE_KINDS:
                (enveloped if in_envelope else raw).append((recv, frame))
            elif kind:
                out.skipped[kind] += 1
            else:
                out.dead.append(self._dead("invalid_json: not a JSON object", frame, recv))
        columns: dict[str, _Columns] = {}
        if enveloped:
            self._decode(enveloped, _envelopes, _envelope, True, columns, out)
        if raw:
            self._decode(raw, _payloads, _payload, False, columns, out)
        for symbol, col in columns.items():
            self._finish(symbol, col, out)
        return out

    def _decode(self, batch, many, one, enveloped, columns, out) -> None:
        try:
            decoded = many.decode(b"[" + b",".join(f for _, f in batch) + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError):
            decoded = []
            for recv, frame in batch:
                try:
                    decoded.append(one.decode(frame))
                except (msgspec.DecodeError, msgspec.ValidationError) as error:
                    decoded.append(None)
                    out.dead.append(self._dead(_reason(error), frame, recv))
        for (recv, frame), item in zip(batch, decoded, strict=True):
            if item is None:
                continue
            if enveloped:
                payload = item.data
                stream_symbol = item.stream.partition("@")[0].upper()
                if stream_symbol != payload.s:
                    reason = f"symbol_mismatch: stream {item.stream!r} carries {payload.s!r}"
                    out.dead.append(self._dead(reason, frame, recv))
                    continue
            else:
                payload = item
            problem = self._check(payload)
            if problem:
                out.dead.append(self._dead(problem, frame, recv))
                continue
            col = columns.get(payload.s)
            if col is None:
                col = columns[payload.s] = _Columns()
            if payload.X is not None and payload.X != "MARKET":
                out.skipped[f"futures_{payload.X.lower()}"] += 1
                col.ghosts.append(payload.t)
                continue
            if payload.e == "trade":
                first = last = payload.t
                trade_id = payload.t
            else:
                first, last, trade_id = payload.f, payload.l, payload.a
            col.ts.append(trade_time_us(payload.T))
            col.recv.append(recv)
            col.ids.append(trade_id)
            col.first.append(first)
            col.last.append(last)
            col.price.append(payload.p)
            col.qty.append(payload.q)
            col.maker.append(payload.m)

    def _check(self, p: TradePayload) -> str | None:
        """A reason to reject a decoded payload, or None when it is a usable trade."""
        if p.e == "trade":
            if p.t is None:
                return "missing_field: trade without `t` (trade id)"
        elif p.a is None or p.f is None or p.l is None:
            return "missing_field: aggTrade needs `a`, `f` and `l`"
        elif p.l < p.f:
            return f"bad_value: aggTrade last id {p.l} < first id {p.f}"
        if not SYMBOL_PATTERN.match(p.s):
            return f"bad_symbol: {p.s!r} is not an upper-case Binance symbol"
        if p.s not in self.symbols:
            return f"unknown_symbol: {p.s} is not among {sorted(self.symbols)}"
        if not (math.isfinite(p.p) and math.isfinite(p.q)):
            return f"non_finite: price {p.p} qty {p.q}"
        if p.p <= 0 or p.q <= 0:
            if p.X is None or p.X == "MARKET":
                return f"non_positive: price {p.p} qty {p.q}"
        if p.T <= 0:
            return f"bad_value: trade time {p.T}"
        return None

    def _finish(self, symbol: str, col: _Columns, out: ParsedFrames) -> None:
        out.chunks[symbol] = TickChunk(
            symbol=symbol,
            source=self.source,
            ts=np.array(col.ts, np.int64),
            recv_ts=np.array(col.recv, np.int64),
            trade_id=np.array(col.ids, np.int64),
            first_trade_id=np.array(col.first, np.int64),
            last_trade_id=np.array(col.last, np.int64),
            price=np.array(col.price, np.float64),
            qty=np.array(col.qty, np.float64),
            buyer_is_maker=np.array(col.maker, np.bool_),
            ghost_ids=np.array(col.ghosts, np.int64),
        )

    def _dead(self, reason: str, frame: bytes, recv_ts: int) -> DeadLetter:
        return DeadLetter(self.stage, reason, frame.decode("utf-8", "replace"), recv_ts)
