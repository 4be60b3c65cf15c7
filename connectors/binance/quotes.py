"""Binance ``@bookTicker`` frames parsed in batches into columnar quote chunks.

USDⓈ-M and COIN-M frames carry the book's exchange time ``T`` (ms); spot frames carry none,
so a spot quote is timed by :class:`QuoteClock` from its receive time.
"""

from __future__ import annotations

import math
from collections import Counter

import msgspec
import numpy as np

from pairflow.quotes import QuoteChunk
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


_envelopes = msgspec.json.Decoder(list[BookTickerEnvelope], strict=False)
_payloads = msgspec.json.Decoder(list[BookTickerPayload], strict=False)
_envelope = msgspec.json.Decoder(BookTickerEnvelope, strict=False)
_payload = msgspec.json.Decoder(BookTickerPayload, strict=False)
_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


def decode_quotes(recv: list[int], frames: list[bytes], enveloped: list[bool],
                  skipped: Counter) -> tuple[list[int], list[BookTickerPayload]]:
    """Decode ``bookTicker`` frames in one go (frame by frame when one is bad).

    Returns the receive times and payloads of the frames that decode; the others are counted
    in ``skipped`` as ``bad_quote``.
    """
    if all(enveloped) or not any(enveloped):
        many = _envelopes if enveloped and enveloped[0] else _payloads
        try:
            decoded = many.decode(b"[" + b",".join(frames) + b"]")
            payloads = [d.data for d in decoded] if many is _envelopes else decoded
            return recv, payloads
        except _ERRORS:
            pass
    kept_recv, payloads = [], []
    for at, frame, wrapped in zip(recv, frames, enveloped, strict=True):
        try:
            value = (_envelope if wrapped else _payload).decode(frame)
        except _ERRORS:
            skipped["bad_quote"] += 1
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
