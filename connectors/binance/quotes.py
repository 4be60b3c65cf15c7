"""Binance ``@bookTicker`` and ``@markPrice`` frames parsed in batches into columnar chunks.

USDⓈ-M and COIN-M ``bookTicker`` frames carry the book's exchange time ``T`` (ms); spot frames
carry none, so a spot quote is timed by :class:`QuoteClock` from its receive time. A quote whose
update id ``u`` is not above the last one taken for its symbol (a duplicate from a connection
overlap, or an older book arriving after a newer one) is dropped by :class:`UpdateIds`.

``markPriceUpdate`` payloads (futures ``<symbol>@markPrice`` / ``@markPrice@1s``) become
:class:`~pairflow.quotes.MarkChunk` s timed by their event time ``E``; a delivery contract's
empty funding rate (``"r": ""``) and zero next funding time (``"T": 0``) mean none.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated

import msgspec
import numpy as np

from connectors.json_batch import DECODE_ERRORS, decode_batch
from pairflow.quotes import MarkChunk, QuoteChunk
from pairflow.records import exchange_time_us
from pairflow.ticks import TickChunk

_Time = msgspec.Meta(ge=0, le=10**16)


class BookTickerPayload(msgspec.Struct, gc=False):
    """A ``bookTicker`` payload as on the wire (spot: no ``e``/``E``/``T``; COIN-M adds ``ps``)."""

    u: int  # order book update id
    s: str  # symbol
    b: float  # best bid price (decimal string on the wire)
    B: float  # best bid quantity
    a: float  # best ask price
    A: float  # best ask quantity
    e: str | None = None  # event type (futures)
    T: int | None = None  # transaction time, ms (futures)
    E: int | None = None  # event time, ms (futures)
    ps: str | None = None  # pair (COIN-M)


class BookTickerEnvelope(msgspec.Struct, gc=False):
    """A combined-stream envelope around a ``bookTicker`` payload."""

    stream: str
    data: BookTickerPayload


class MarkPricePayload(msgspec.Struct, gc=False):
    """A ``markPriceUpdate`` payload as on the wire."""

    E: Annotated[int, _Time]  # event time, ms
    s: str  # symbol
    p: float  # mark price (decimal string on the wire)
    r: str = ""  # funding rate (decimal string; "" for a delivery contract)
    T: Annotated[int, _Time] = 0  # next funding time, ms (0 for a delivery contract)
    e: str | None = None  # event type: "markPriceUpdate"
    i: float | None = None  # index price
    P: float | None = None  # estimated settle price


class MarkPriceEnvelope(msgspec.Struct, gc=False):
    """A combined-stream envelope around a ``markPriceUpdate`` payload."""

    stream: str
    data: MarkPricePayload


_DECODERS = {
    "quote": tuple(msgspec.json.Decoder(kind, strict=False) for kind in (
        list[BookTickerEnvelope], list[BookTickerPayload], BookTickerEnvelope, BookTickerPayload)),
    "mark": tuple(msgspec.json.Decoder(kind, strict=False) for kind in (
        list[MarkPriceEnvelope], list[MarkPricePayload], MarkPriceEnvelope, MarkPricePayload)),
}


def decode_quotes(recv: list[int], frames: list[bytes], enveloped: list[bool],
                  skipped: Counter, kind: str = "quote") -> tuple[list[int], list]:
    """Decode ``bookTicker`` (kind quote) or ``markPriceUpdate`` (kind mark) frames at once.

    A batch with a bad frame is decoded frame by frame.
    Returns the receive times and payloads of the frames that decode; the others are counted
    in ``skipped`` as ``bad_quote`` / ``bad_mark``.
    """
    envelopes, payloads_of, envelope, payload = _DECODERS[kind]
    if all(enveloped) or not any(enveloped):
        many = envelopes if enveloped and enveloped[0] else payloads_of
        decoded = decode_batch(frames, many)
        if decoded is not None:
            return recv, [d.data for d in decoded] if many is envelopes else decoded
    kept_recv, payloads = [], []
    for at, frame, wrapped in zip(recv, frames, enveloped, strict=True):
        try:
            value = (envelope if wrapped else payload).decode(frame)
        except DECODE_ERRORS:
            skipped[f"bad_{kind}"] += 1
            continue
        kept_recv.append(at)
        payloads.append(value.data if wrapped else value)
    return kept_recv, payloads


def quote_chunks(recv: list[int], payloads: list[BookTickerPayload], names: list[str],
                 symbols: frozenset[str], skipped: Counter) -> dict[str, QuoteChunk]:
    """Per-symbol quote chunks (arrival order) of decoded payloads of the wanted symbols.

    ``names`` are the payloads' symbol names (:meth:`FrameParser.name_of`), keys of the chunks.

    A quote without an exchange time has ``ts = -1`` (spot: timed later by :class:`QuoteClock`).
    Quotes of other symbols and unusable books (a price or size not positive and finite, or the
    bid not below the ask) are counted in ``skipped``.
    """
    out: dict[str, QuoteChunk] = {}
    if not payloads:
        return out
    names = np.array(names)
    times = np.array([-1 if p.T is None else p.T for p in payloads], np.int64)
    columns = [np.array([getattr(p, f) for p in payloads], np.float64) for f in "bBaA"]
    bid, bid_qty, ask, ask_qty = columns
    sane = np.logical_and.reduce([np.isfinite(c) & (c > 0) for c in columns]) & (bid < ask)
    wanted = np.isin(names, list(symbols)) if symbols else np.zeros(len(names), bool)
    _count(skipped, "bad_quote", ~sane)
    _count(skipped, "quote_other_symbol", sane & ~wanted)
    ts = np.where(times >= 0, exchange_time_us(times), -1)
    ids = np.array([p.u for p in payloads], np.int64)
    recv_ts = np.array(recv, np.int64)
    for symbol in sorted(set(names[sane & wanted].tolist())):
        mask = sane & (names == symbol)
        out[symbol] = QuoteChunk(symbol, recv_ts[mask], ts[mask], ids[mask], bid[mask],
                                 bid_qty[mask], ask[mask], ask_qty[mask])
    return out


def mark_chunks(recv: list[int], payloads: list[MarkPricePayload], names: list[str],
                symbols: frozenset[str], skipped: Counter) -> dict[str, MarkChunk]:
    """Per-symbol mark-price chunks (arrival order) of decoded payloads of the wanted symbols.

    Updates of other symbols (``mark_other_symbol``) and unusable ones (a mark price not
    positive and finite, a funding rate that is not a number: ``bad_mark``) are counted.
    """
    out: dict[str, MarkChunk] = {}
    rates, usable = [], []
    for p in payloads:
        try:
            rate = float(p.r) if p.r else math.nan
        except ValueError:
            rate = math.inf  # not a number: refused below
        rates.append(rate)
        usable.append(math.isfinite(p.p) and p.p > 0 and not math.isinf(rate))
    names_of = np.array(names)
    sane = np.array(usable, bool)
    wanted = np.isin(names_of, list(symbols)) if symbols else np.zeros(len(names), bool)
    _count(skipped, "bad_mark", ~sane)
    _count(skipped, "mark_other_symbol", sane & ~wanted)
    ts = exchange_time_us(np.array([p.E for p in payloads], np.int64))
    nexts = np.array([p.T for p in payloads], np.int64)
    nexts = np.where(nexts > 0, exchange_time_us(nexts), 0)
    price = np.array([p.p for p in payloads], np.float64)
    rate = np.array(rates, np.float64)
    recv_ts = np.array(recv, np.int64)
    for symbol in sorted(set(names_of[sane & wanted].tolist())):
        mask = sane & (names_of == symbol)
        out[symbol] = MarkChunk(symbol, recv_ts[mask], ts[mask], price[mask], rate[mask],
                                nexts[mask])
    return out


class UpdateIds:
    """Drops quotes whose book update id is not above the last one taken for their symbol.

    Binance's ``u`` grows with every change of a symbol's book, so such a quote is a duplicate
    (two connections overlapping during a rollover, a frame sent twice) or an older book
    received after a newer one; either way the book it states is not the current one.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def fresh(self, chunk: QuoteChunk, skipped: Counter) -> QuoteChunk:
        """The chunk's quotes that advance the symbol's update id (counted: ``quote_stale``)."""
        known = self._last.get(chunk.symbol, -1)
        running = np.maximum.accumulate(np.concatenate(([known], chunk.update_id)))
        fresh = chunk.update_id > running[:-1]
        self._last[chunk.symbol] = int(running[-1])
        if fresh.all():
            return chunk
        _count(skipped, "quote_stale", ~fresh)
        return chunk.take(fresh)


class QuoteClock:
    """Times quotes that carry no exchange time (spot) from their receive time.

    The receive clock's offset from the exchange is measured on the symbol's trades: each
    trade gives ``receive time − trade time`` = clock offset + network latency, and latency is
    never negative, so the running minimum over the trades received so far is the best bound
    on the offset (it is the offset plus the smallest latency seen). A quote is timed
    ``receive time − that minimum`` over the trades received strictly before it; a quote
    received before the symbol's first trade cannot be timed and is dropped (counted as
    ``quote_untimed``). Strictly before, so the time does not depend on how a stream in
    receive order is cut into batches.
    """

    def __init__(self) -> None:
        self._offset: dict[str, float] = {}

    @property
    def offsets(self) -> dict[str, float]:
        """The current offset estimate (µs) per symbol."""
        return dict(self._offset)

    def time(self, symbol: str, quotes: QuoteChunk | None, trades: TickChunk | None,
             skipped: Counter) -> QuoteChunk | None:
        """One batch of a symbol: learn from its trades, time its untimed quotes (or drop them).

        Args:
            symbol: the symbol.
            quotes: the batch's quotes of the symbol, or None.
            trades: the batch's trades of the symbol (receive order), or None.
            skipped: counts the quotes dropped.
        """
        known = self._offset.get(symbol, math.inf)
        traded = trades is not None and len(trades) > 0
        if traded:
            lows = np.minimum.accumulate(np.concatenate((
                [known], (trades.recv_ts - trades.ts).astype(np.float64))))
            self._offset[symbol] = float(lows[-1])
        if quotes is None or not (quotes.ts < 0).any():
            return quotes
        untimed = quotes.ts < 0
        offset = (lows[np.searchsorted(trades.recv_ts, quotes.recv_ts, side="left")] if traded
                  else np.full(len(quotes), known))
        usable = ~untimed | np.isfinite(offset)
        shift = np.where(np.isfinite(offset), offset, 0.0).astype(np.int64)
        timed = np.where(untimed, quotes.recv_ts - shift, quotes.ts)
        _count(skipped, "quote_untimed", ~usable)
        return QuoteChunk(symbol, quotes.recv_ts, timed, quotes.update_id, quotes.bid,
                          quotes.bid_qty, quotes.ask, quotes.ask_qty).take(usable)

def _count(skipped: Counter, reason: str, mask: np.ndarray) -> None:
    """Count the quotes ``mask`` drops under ``reason`` (no zero entries)."""
    dropped = int(mask.sum())
    if dropped:
        skipped[reason] += dropped
