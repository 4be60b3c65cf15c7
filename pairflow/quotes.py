"""Top-of-book quotes per bar: columnar quote chunks folded into :class:`QuoteBar` s.

A quote is the best bid and ask (price and size) from a ``@bookTicker`` frame, timed in
exchange time (µs): futures frames carry it (``T``); spot frames do not, and the connector
derives it from the receive time (:mod:`connectors.binance.quotes`). Windows are those of
:mod:`pairflow.bars`: aligned to the epoch, end-exclusive.

A quote is *in force* from its time until the next quote. Per window ``[start, end)``:

- ``bid``/``ask`` (and sizes), ``spread_bps``, ``imbalance``, ``microprice``: of the book at
  the close, the last quote before ``end`` (a quote at ``end`` opens the next window's book);
- ``mean_spread_bps``/``mean_imbalance``: means over the window's time weighted by how long
  each quote was in force in it (only the part of the window with a quote in force counts);
- ``max_spread_bps``: the largest spread in force for a positive time in the window;
- ``quotes``: how many quotes have their time in the window.

Spread in bps is ``(ask − bid) / mid · 10⁴`` with ``mid = (bid + ask) / 2``; imbalance is
``(B − A) / (B + A)`` with ``B``/``A`` the bid/ask sizes; the microprice is
``(ask·B + bid·A) / (A + B)``. Time-weighted sums are exact (correctly rounded), so a bar
does not depend on how its quotes were cut into chunks.

The watermark is the largest quote time seen minus the allowed lateness; a quote older than
it at its arrival is late and dropped (counted). A window closes when the watermark reaches
its end. Windows with no quote but a book in force (carried from before) are bars too
(``quotes = 0``), up to :data:`pairflow.bars.MAX_QUIET_US` after the last quote.

A live source declares a :class:`QuoteGap` where the quote stream was interrupted (the book in
force is unknown there): no quote bar is made for a window that overlaps it.

A perpetual's ``@markPrice`` updates (:class:`MarkChunk`) set ``mark_price``,
``funding_rate`` and ``next_funding_ts`` of each bar: the values of the last update with event
time before ``end`` (null before the first one, and the funding fields null where the update
carried none; null too when a :class:`QuoteGap` began after that update and before ``end``:
updates may have been missed in it). They only decorate bars: they neither open nor close a
window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pairflow.bars import MAX_QUIET_US
from pairflow.exact import segment_sums
from pairflow.records import QuoteBar
from pairflow.timeframes import timeframe_us

_NO_TS = np.iinfo(np.int64).min
_BPS = 10_000.0
#: Held pieces of a timeframe's open windows merged into one beyond this many.
_MAX_PIECES = 8


@dataclass(frozen=True, slots=True)
class QuoteChunk:
    """Quotes of one symbol as columns, in arrival order; ``ts`` is exchange time (µs)."""

    symbol: str
    recv_ts: np.ndarray  # int64 µs
    ts: np.ndarray  # int64 µs
    update_id: np.ndarray  # int64, Binance ``u``
    bid: np.ndarray
    bid_qty: np.ndarray
    ask: np.ndarray
    ask_qty: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray | slice) -> QuoteChunk:
        """The quotes at ``index`` (a mask, positions or a slice)."""
        return QuoteChunk(self.symbol, *(getattr(self, name)[index] for name in (
            "recv_ts", "ts", "update_id", "bid", "bid_qty", "ask", "ask_qty")))

    @staticmethod
    def concat(chunks: list[QuoteChunk]) -> QuoteChunk:
        """Chunks of one symbol, one after the other."""
        if len(chunks) == 1:
            return chunks[0]
        return QuoteChunk(chunks[0].symbol, *(np.concatenate([getattr(c, name) for c in chunks])
                                              for name in ("recv_ts", "ts", "update_id", "bid",
                                                           "bid_qty", "ask", "ask_qty")))


@dataclass(frozen=True, slots=True)
class MarkChunk:
    """``@markPrice`` updates of one symbol as columns, in arrival order.

    ``ts`` is the event time ``E`` (µs).
    """

    symbol: str
    recv_ts: np.ndarray  # int64 µs
    ts: np.ndarray  # int64 µs
    mark_price: np.ndarray
    funding_rate: np.ndarray  # NaN: none published (a delivery contract)
    next_funding_ts: np.ndarray  # int64 µs; 0: none published (a delivery contract)

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class QuoteGap:
    """The book of ``symbol`` is unknown in quote time ``(start, end)``.

    The quote stream was interrupted after the quote at ``start`` and resumed with the one
    at ``end``.
    """

    symbol: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class QuoteStepOut:
    """What one item (or the final flush) produced.

    Closed quote bars, late quotes, and the windows not made for overlapping a
    :class:`QuoteGap`.
    """

    bars: list[QuoteBar]
    late: int
    in_gaps: int = 0


@dataclass(frozen=True, slots=True)
class _Book:
    """Quotes as columns sorted by time (ties in arrival order)."""

    ts: np.ndarray
    bid: np.ndarray
    bid_qty: np.ndarray
    ask: np.ndarray
    ask_qty: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.ts, self.bid, self.bid_qty, self.ask, self.ask_qty)

    def cut(self, ts: int) -> tuple[_Book, _Book]:
        """(quotes before time ``ts``, the others)."""
        at = int(np.searchsorted(self.ts, ts))
        return _Book(*(c[:at] for c in self.columns())), _Book(*(c[at:] for c in self.columns()))

    @staticmethod
    def joined(pieces: list[_Book]) -> _Book:
        """One run of pieces given in arrival order, sorted by time, ties in that order."""
        if len(pieces) == 1:
            return pieces[0]
        merged = _Book(*(np.concatenate(c) for c in zip(*(p.columns() for p in pieces),
                                                        strict=True)))
        order = np.argsort(merged.ts, kind="stable")
        return _Book(*(c[order] for c in merged.columns()))


@dataclass(frozen=True, slots=True)
class _Marks:
    """Mark-price updates as columns sorted by event time (ties in arrival order)."""

    ts: np.ndarray
    mark_price: np.ndarray
    funding_rate: np.ndarray
    next_funding_ts: np.ndarray

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.ts, self.mark_price, self.funding_rate, self.next_funding_ts)

    def added(self, chunk: MarkChunk) -> _Marks:
        """These updates and the chunk's, sorted by time."""
        merged = [np.concatenate((old, new)) for old, new in zip(self.columns(), (
            chunk.ts, chunk.mark_price, chunk.funding_rate, chunk.next_funding_ts), strict=True)]
        order = np.argsort(merged[0], kind="stable")
        return _Marks(*(c[order] for c in merged))

    def since_last_before(self, ts: int) -> _Marks:
        """The last update before ``ts`` and every later one (what bars after ``ts`` need)."""
        at = max(int(np.searchsorted(self.ts, ts)) - 1, 0)
        return _Marks(*(c[at:] for c in self.columns()))


_NO_MARKS = _Marks(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))


@dataclass
class _Frame:
    name: str
    length_us: int
    held: list[_Book] = field(default_factory=list)  # quotes of windows not closed yet
    carried: _Book | None = None  # the last quote before the open windows (one row)
    next_window: int | None = None  # the first window not emitted yet


class QuoteBarBuilder:
    """Quote bars of one symbol for several timeframes; state is plain data so it pickles.

    Args:
        symbol: the symbol whose quotes this builder folds.
        timeframes: timeframe names (``1s``, ``1m`` …).
        lateness_us: allowed lateness of a quote behind the largest quote time seen.
    """

    def __init__(self, symbol: str, timeframes: list[str] | tuple[str, ...], lateness_us: int):
        if lateness_us < 0:
            raise ValueError(f"lateness must be >= 0 µs, got {lateness_us}")
        self.symbol = symbol
        self.lateness_us = lateness_us
        self._frames = [_Frame(tf, timeframe_us(tf)) for tf in timeframes]
        self._max_ts = _NO_TS
        self._marks = _NO_MARKS
        self._gaps: list[tuple[int, int]] = []

    @property
    def watermark(self) -> int:
        """Quotes older than this (µs) are late; windows ending at or before it are closed."""
        return self._max_ts - self.lateness_us if self._max_ts != _NO_TS else _NO_TS

    def update(self, chunk: QuoteChunk) -> QuoteStepOut:
        """Fold a chunk of quotes (arrival order) and return the quote bars it closed."""
        if not len(chunk):
            return QuoteStepOut([], 0)
        ts = chunk.ts
        running = np.maximum.accumulate(np.concatenate(([self._max_ts], ts)))
        before = running[:-1]
        floor = np.where(before == _NO_TS, _NO_TS, before - self.lateness_us)
        fresh = ts >= floor
        self._max_ts = int(running[-1])
        order = np.argsort(ts[fresh], kind="stable")
        book = _Book(*(column[fresh][order] for column in (ts, chunk.bid, chunk.bid_qty,
                                                             chunk.ask, chunk.ask_qty)))
        for frame in self._frames:
            frame.held.append(book)
            if len(frame.held) > _MAX_PIECES:
                frame.held = [_Book.joined(frame.held)]
        bars, in_gaps = self._close_through(self.watermark)
        return QuoteStepOut(bars, int((~fresh).sum()), in_gaps)

    def mark(self, chunk: MarkChunk) -> QuoteStepOut:
        """Take mark-price updates (arrival order) for the bars still to close."""
        if len(chunk):
            self._marks = self._marks.added(chunk)
        return QuoteStepOut([], 0)

    def gap(self, gap: QuoteGap) -> QuoteStepOut:
        """Declare a span of quote time with the book unknown: no bar for a window over it."""
        if gap.end > gap.start:
            self._gaps.append((gap.start, gap.end))
        return QuoteStepOut([], 0)

    def flush(self) -> QuoteStepOut:
        """Close every window holding a quote (the end of a replay or a live run)."""
        bars, in_gaps = self._close_through(None)
        return QuoteStepOut(bars, 0, in_gaps)

    def _close_through(self, watermark: int | None) -> tuple[list[QuoteBar], int]:
        """Bars the watermark (None: the end) closed; how many overlapped a gap instead."""
        bars: list[QuoteBar] = []
        for frame in self._frames:
            length = frame.length_us
            if not frame.held:
                closing = None
            elif watermark is None:
                closing, frame.held = _Book.joined(frame.held), []
            else:
                closing, frame.held = _split(frame.held, watermark // length * length)
            if watermark is None:
                last = None if closing is None or not len(closing) else int(closing.ts[-1])
                limit = None if last is None else last // length + 1
            else:
                limit = watermark // length
            if limit is not None:
                bars.extend(self._emit(frame, closing, limit))
        made = len(bars)
        if self._gaps:
            bars = [bar for bar in bars if not any(bar.start < end and bar.end > start
                                                   for start, end in self._gaps)]
        self._forget_old()
        return bars, made - len(bars)

    def _forget_old(self) -> None:
        """Drop the marks and gaps no window still to be emitted can need."""
        if any(f.next_window is None for f in self._frames):
            return
        start = min(f.next_window * f.length_us for f in self._frames)
        self._marks = self._marks.since_last_before(start)
        # A gap still matters while a window may overlap it or a kept mark precedes it.
        first_mark = int(self._marks.ts[0]) if len(self._marks.ts) else None
        self._gaps = [(s, e) for s, e in self._gaps
                      if e > start or (first_mark is not None and first_mark <= s)]

    def _emit(self, frame: _Frame, closing: _Book | None, limit: int) -> list[QuoteBar]:
        """Quote bars of windows ``frame.next_window`` … ``limit − 1`` with a book in force."""
        length = frame.length_us
        pieces = [p for p in (frame.carried, closing) if p is not None and len(p)]
        if not pieces:
            return []
        book = _Book(*(np.concatenate(c) for c in zip(*(p.columns() for p in pieces),
                                                      strict=True)))
        first = int(book.ts[0]) // length
        if frame.next_window is not None:
            first = max(first, frame.next_window)
        # The book goes stale: no window after a silence longer than MAX_QUIET_US.
        stale = (int(book.ts[-1]) + MAX_QUIET_US) // length + 1
        last = min(limit, stale)
        frame.next_window = limit if frame.next_window is None else max(limit, frame.next_window)
        frame.carried = _Book(*(c[-1:] for c in book.columns()))
        if last <= first:
            return []
        return _window_bars(self.symbol, frame.name, length, book, first, last, self._marks,
                            self._gaps)


def _split(held: list[_Book], end: int) -> tuple[_Book | None, list[_Book]]:
    """(the held quotes before ``end`` sorted, the pieces of the others)."""
    if all(len(p) == 0 or p.ts[0] >= end for p in held):
        return None, held
    closing, kept = [], []
    for piece in held:
        before, after = piece.cut(end)
        if len(before):
            closing.append(before)
        if len(after):
            kept.append(after)
    return _Book.joined(closing), kept


def _window_bars(symbol: str, timeframe: str, length: int, book: _Book, first: int,
                 last: int, marks: _Marks, gaps: list[tuple[int, int]]) -> list[QuoteBar]:
    """Quote bars of windows ``first`` … ``last − 1`` that have a book in force.

    ``book`` is sorted by time; its first row may lie before window ``first`` (carried in).
    ``marks`` give each bar the last mark-price update before its end, unless a gap begins
    between that update and the end (updates may have been missed in it: the values are
    unknown until the next one).
    """
    starts = np.arange(first, last, dtype=np.int64) * length
    # Segments: cut the time line at every quote and every window bound; each segment has
    # one quote in force and lies in one window.
    cuts = np.union1d(book.ts[book.ts >= starts[0]], np.append(starts, last * length))
    cuts = cuts[(cuts >= max(starts[0], book.ts[0])) & (cuts <= last * length)]
    in_force = np.searchsorted(book.ts, cuts[:-1], side="right") - 1
    duration = np.diff(cuts).astype(np.float64)
    window = cuts[:-1] // length - first
    spread = _spread_bps(book.bid, book.ask)
    imbalance = (book.bid_qty - book.ask_qty) / (book.bid_qty + book.ask_qty)
    positive = duration > 0
    in_force, duration, window = in_force[positive], duration[positive], window[positive]
    count = last - first
    has_book = np.bincount(window, minlength=count) > 0
    bounds = np.searchsorted(window, np.arange(count + 1))
    weight = segment_sums(duration, bounds)
    mean_spread = segment_sums(spread[in_force] * duration, bounds) / np.where(has_book,
                                                                               weight, 1.0)
    mean_imbalance = segment_sums(imbalance[in_force] * duration, bounds) / np.where(
        has_book, weight, 1.0)
    max_spread = np.full(count, -np.inf)
    np.maximum.at(max_spread, window, spread[in_force])
    quotes = np.bincount((book.ts[book.ts >= starts[0]] // length) - first,
                         minlength=count)[:count]
    close = np.searchsorted(book.ts, starts + length, side="left") - 1
    micro = (book.ask * book.bid_qty + book.bid * book.ask_qty) / (book.ask_qty + book.bid_qty)
    marked = np.searchsorted(marks.ts, starts + length, side="left") - 1
    for gap_start, _ in gaps:
        missed = (marked >= 0) & (gap_start < starts + length)
        missed[missed] &= marks.ts[marked[missed]] <= gap_start
        marked[missed] = -1
    rows = zip(starts[has_book].tolist(), close[has_book].tolist(),
               mean_spread[has_book].tolist(), max_spread[has_book].tolist(),
               mean_imbalance[has_book].tolist(), quotes[has_book].tolist(),
               marked[has_book].tolist(), strict=True)
    bid, bid_qty, ask, ask_qty = (c.tolist() for c in (book.bid, book.bid_qty, book.ask,
                                                        book.ask_qty))
    spreads, imbalances, micros = spread.tolist(), imbalance.tolist(), micro.tolist()
    mark_fields = _mark_fields(marks)
    return [QuoteBar(symbol, timeframe, start, start + length, bid[i], bid_qty[i], ask[i],
                     ask_qty[i], spreads[i], mean, top, imbalances[i], mean_imb, micros[i], n,
                     *(mark_fields[m] if m >= 0 else (None, None, None)))
            for start, i, mean, top, mean_imb, n, m in rows]


def _mark_fields(marks: _Marks) -> list[tuple[float, float | None, int | None]]:
    """Per update: (mark price, funding rate or None, next funding time or None)."""
    rates = [None if math.isnan(r) else r for r in marks.funding_rate.tolist()]
    nexts = [n if n > 0 else None for n in marks.next_funding_ts.tolist()]
    return list(zip(marks.mark_price.tolist(), rates, nexts, strict=True))


def _spread_bps(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """Quoted spread in bps of the mid price."""
    return (ask - bid) / ((bid + ask) / 2.0) * _BPS
