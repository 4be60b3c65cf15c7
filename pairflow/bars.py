"""Event-time OHLCV bars of one symbol over several timeframes, from columnar tick chunks.

Windows are aligned to the Unix epoch and end-exclusive: window ``k`` of a timeframe of
length ``L`` µs is ``[k·L, (k+1)·L)``, as Binance klines. Time is the exchange trade time.

The watermark comes from data only: after a tick, it is the largest trade time seen minus the
allowed lateness (or a :class:`~pairflow.ticks.Heartbeat`'s time minus the lateness). A tick
older than the watermark at its arrival is *late*: it is not folded into any bar and is
returned for the dead letters. A window closes when the watermark reaches its end. Because
lateness is decided per tick in arrival order and a bar is an order-independent fold (open and
close are the prices of the smallest and largest ``(ts, trade_id)``, sums are exact), the bars
do not depend on how the ticks are cut into chunks, to the last bit.

Quiet windows (no trade, feed healthy) become ``trades = 0`` bars at the previous close. A
window is *not* a bar when it lies in a feed gap: either declared by the source
(:class:`~pairflow.ticks.FeedGap`) or shown by the exchange trade ids, which are contiguous per
symbol — if the first trade id after a run of quiet windows does not follow the last one
before them, trades were lost there and no flat price is invented.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from pairflow.exact import segment_sums
from pairflow.records import Bar
from pairflow.ticks import FeedGap, Heartbeat, TickChunk
from pairflow.timeframes import timeframe_us

#: Trade ids remembered per symbol to drop duplicates (overlapping files, reconnect overlap).
DEDUP_CAPACITY = 1 << 16
#: Longest run of quiet bars made in one go. A longer silence with contiguous ids is a halted
#: market or a corrupt trade time (years ahead), not a day of flat prices: it is a gap.
MAX_QUIET_US = 86_400_000_000
_NO_TS = np.iinfo(np.int64).min

# Slots of a partial (still open) window, kept as a plain list so state pickles cheaply.
_OPEN_TS, _OPEN_ID, _OPEN, _CLOSE_TS, _CLOSE_ID, _CLOSE = range(6)
_HIGH, _LOW, _VOLUME, _QUOTE, _TRADES, _TAKER_BUY, _FIRST_ID, _LAST_ID = range(6, 14)


@dataclass(frozen=True, slots=True)
class BarStepOut:
    """What one chunk (or heartbeat) produced.

    Closed bars in time order per timeframe, the late ticks (for dead letters, with how late
    each was) and the number of duplicates dropped.
    """

    bars: list[Bar]
    late: TickChunk | None
    late_by_us: np.ndarray | None
    duplicates: int


@dataclass
class _TimeframeState:
    name: str
    length_us: int
    open_windows: dict[int, list] = field(default_factory=dict)
    last_window: int | None = None
    last_close: float = 0.0
    last_trade_id: int = -1


class BarBuilder:
    """Bars of one symbol for several timeframes; state is plain data so it pickles.

    Args:
        symbol: the symbol whose ticks this builder folds.
        timeframes: timeframe names (``1s``, ``1m`` …).
        lateness_us: allowed lateness of a tick behind the largest trade time seen.

    >>> import numpy as np
    >>> from pairflow.ticks import TickChunk, Heartbeat
    >>> b = BarBuilder("BTCUSDT", ["1s"], lateness_us=0)
    >>> def chunk(ts, ids, px):
    ...     n = len(ts)
    ...     a = lambda v, t: np.asarray(v, t)
    ...     return TickChunk("BTCUSDT", "replay", a(ts, np.int64), a(ts, np.int64),
    ...         a(ids, np.int64), a(ids, np.int64), a(ids, np.int64), a(px, float),
    ...         np.ones(n), np.zeros(n, bool))
    >>> out = b.update(chunk([100, 2_500_000], [1, 2], [10.0, 11.0]))
    >>> [(x.start, x.close, x.trades) for x in out.bars]
    [(0, 10.0, 1)]
    >>> end = b.heartbeat(Heartbeat("BTCUSDT", 9_000_000, final=True))
    >>> [(x.start, x.close, x.trades) for x in end.bars]
    [(1000000, 10.0, 0), (2000000, 11.0, 1)]
    """

    def __init__(self, symbol: str, timeframes: list[str] | tuple[str, ...], lateness_us: int):
        if lateness_us < 0:
            raise ValueError(f"lateness must be >= 0 µs, got {lateness_us}")
        self.symbol = symbol
        self.lateness_us = lateness_us
        self._frames = [_TimeframeState(tf, timeframe_us(tf)) for tf in timeframes]
        self._max_ts = _NO_TS
        self._heartbeat_ts = _NO_TS
        self._recent_ids = np.empty(0, np.int64)
        self._ghost_ids: list[int] = []
        self._gaps: list[tuple[int, int]] = []

    @property
    def watermark(self) -> int:
        """Ticks older than this (µs) are late; windows ending at or before it are closed."""
        latest = max(self._max_ts, self._heartbeat_ts)
        return latest - self.lateness_us if latest != _NO_TS else _NO_TS

    def update(self, chunk: TickChunk) -> BarStepOut:
        """Fold a chunk of ticks (arrival order) and return the bars it closed."""
        fresh, duplicates = self._drop_duplicates(chunk)
        if len(chunk.ghost_ids):
            self._remember_ghosts(chunk.ghost_ids)
        if len(fresh) == 0:
            return BarStepOut([], None, None, duplicates)
        ts = fresh.ts
        # Watermark before each tick = running max of earlier trade times - lateness.
        running = np.maximum.accumulate(np.concatenate(([self._max_ts], ts)))
        before = running[:-1]
        floor = np.where(before == _NO_TS, _NO_TS, before - self.lateness_us)
        if self._heartbeat_ts != _NO_TS:
            floor = np.maximum(floor, self._heartbeat_ts - self.lateness_us)
        late_mask = ts < floor
        self._max_ts = int(running[-1])
        late = late_by = None
        if late_mask.any():
            late = fresh.take(late_mask)
            late_by = floor[late_mask] - ts[late_mask]
            fresh = fresh.take(~late_mask)
            # A late trade was received, only too late for its bar: its ids are not a hole in
            # the feed, so quiet windows around it are still bars.
            self._remember_ghosts(np.concatenate(
                [np.arange(f, last + 1) for f, last in
                 zip(late.first_trade_id.tolist(), late.last_trade_id.tolist(), strict=True)]))
        if len(fresh):
            self._fold(fresh)
        return BarStepOut(self._close_through(self.watermark, quiet=False), late, late_by,
                          duplicates)

    def heartbeat(self, beat: Heartbeat) -> BarStepOut:
        """Advance time without trades; a final beat closes every open window."""
        if beat.final:
            bars = self._close_through(None, quiet=False)
        else:
            self._heartbeat_ts = max(self._heartbeat_ts, beat.ts)
            bars = self._close_through(self.watermark, quiet=True)
        return BarStepOut(bars, None, None, 0)

    def gap(self, gap: FeedGap) -> None:
        """Declare trades in ``[gap.start, gap.end)`` lost: no bar for a window overlapping it.

        Traded windows too: a window that lost some of its trades has no true bar.
        """
        self._gaps.append((gap.start, gap.end))

    def _drop_duplicates(self, chunk: TickChunk) -> tuple[TickChunk, int]:
        ids = chunk.trade_id
        if len(ids) and (not len(self._recent_ids) or ids[0] > self._recent_ids[-1]) and (
                len(ids) == 1 or bool((ids[1:] > ids[:-1]).all())):
            # The usual case, ids rising past all remembered ones: nothing to look up.
            self._recent_ids = np.concatenate((self._recent_ids, ids))[-DEDUP_CAPACITY:]
            return chunk, 0
        _, first_index = np.unique(ids, return_index=True)
        keep = np.zeros(len(ids), bool)
        keep[first_index] = True
        if len(self._recent_ids):
            keep &= ~np.isin(ids, self._recent_ids, assume_unique=False)
        kept = int(keep.sum())
        if kept:
            merged = np.union1d(self._recent_ids, ids[keep])
            self._recent_ids = merged[-DEDUP_CAPACITY:]
        if kept == len(ids):
            return chunk, 0
        return chunk.take(keep), len(ids) - kept

    def _remember_ghosts(self, ghost_ids: np.ndarray) -> None:
        for gid in ghost_ids.tolist():
            bisect.insort(self._ghost_ids, gid)
        if len(self._ghost_ids) > DEDUP_CAPACITY:
            del self._ghost_ids[: len(self._ghost_ids) - DEDUP_CAPACITY]

    def _fold(self, chunk: TickChunk) -> None:
        order = np.lexsort((chunk.trade_id, chunk.ts))
        ts = chunk.ts[order]
        ids = chunk.trade_id[order]
        price = chunk.price[order]
        qty = chunk.qty[order]
        quote = price * qty
        taker_buy = np.where(chunk.buyer_is_maker[order], 0.0, qty)
        first_ids = chunk.first_trade_id[order]
        last_ids = chunk.last_trade_id[order]
        trades = last_ids - first_ids + 1
        for frame in self._frames:
            window = ts // frame.length_us
            starts = np.flatnonzero(np.concatenate(([True], window[1:] != window[:-1])))
            ends = np.concatenate((starts[1:], [len(ts)])) - 1
            # Sums keep the window's values (views) and are added exactly when the bar closes:
            # float addition is not associative, and a bar must not depend on chunking.
            bounds = list(zip(starts.tolist(), (ends + 1).tolist(), strict=True))
            columns = zip(
                window[starts].tolist(),
                ts[starts].tolist(),
                ids[starts].tolist(),
                price[starts].tolist(),
                ts[ends].tolist(),
                ids[ends].tolist(),
                price[ends].tolist(),
                np.maximum.reduceat(price, starts).tolist(),
                np.minimum.reduceat(price, starts).tolist(),
                [[qty[a:b]] for a, b in bounds],
                [[quote[a:b]] for a, b in bounds],
                np.add.reduceat(trades, starts).tolist(),
                [[taker_buy[a:b]] for a, b in bounds],
                np.minimum.reduceat(first_ids, starts).tolist(),
                np.maximum.reduceat(last_ids, starts).tolist(),
                strict=True,
            )
            open_windows = frame.open_windows
            for wid, *part in columns:
                current = open_windows.get(wid)
                if current is None:
                    open_windows[wid] = part
                else:
                    _merge(current, part)

    def _close_through(self, watermark: int | None, quiet: bool) -> list[Bar]:
        """Close windows ending at or before ``watermark`` (all when None).

        With ``quiet``, windows after the last trade up to the watermark become quiet bars
        (a heartbeat vouches the feed was healthy); otherwise quiet bars are only made between
        two traded windows whose trade ids are contiguous.
        """
        bars: list[Bar] = []
        for frame in self._frames:
            length = frame.length_us
            if watermark is None:
                closing = sorted(frame.open_windows)
            else:
                limit = watermark // length  # windows < limit have end <= watermark
                closing = sorted(w for w in frame.open_windows if w < limit)
            parts = [frame.open_windows.pop(wid) for wid in closing]
            sums = _window_sums(parts)
            for wid, part, (volume, quote, taker_buy) in zip(closing, parts, sums, strict=True):
                if frame.last_window is not None and wid > frame.last_window + 1:
                    if self._ids_contiguous(frame.last_trade_id, part[_FIRST_ID]):
                        self._quiet_bars(frame, wid, bars)
                if not self._in_gap(wid * length, (wid + 1) * length):
                    # A window that lost trades to a gap has no true bar: none is made.
                    bars.append(self._bar(frame, wid, part, volume, quote, taker_buy))
                frame.last_window = wid
                frame.last_close = part[_CLOSE]
                frame.last_trade_id = part[_LAST_ID]
            if quiet and watermark is not None and frame.last_window is not None:
                self._quiet_bars(frame, watermark // length, bars)
        self._forget_before(min((f.last_window or 0) * f.length_us for f in self._frames))
        return bars

    def _ids_contiguous(self, last_id: int, next_first_id: int) -> bool:
        missing = next_first_id - last_id - 1
        if missing <= 0:
            return True
        lo = bisect.bisect_right(self._ghost_ids, last_id)
        hi = bisect.bisect_left(self._ghost_ids, next_first_id)
        return hi - lo == missing

    def _quiet_bars(self, frame: _TimeframeState, until_window: int, out: list[Bar]) -> None:
        """Quiet bars for windows after ``frame.last_window`` and before ``until_window``."""
        length = frame.length_us
        if (until_window - frame.last_window - 1) * length > MAX_QUIET_US:
            frame.last_window = until_window - 1  # too long to be quiet trading: a gap
            return
        close = frame.last_close
        for wid in range(frame.last_window + 1, until_window):
            start, end = wid * length, (wid + 1) * length
            frame.last_window = wid
            if self._in_gap(start, end):
                continue
            out.append(
                Bar(self.symbol, frame.name, start, end, close, close, close, close,
                    0.0, 0.0, None, 0, 0.0, None, None)
            )

    def _in_gap(self, start: int, end: int) -> bool:
        """Whether the window ``[start, end)`` overlaps a declared feed gap."""
        return any(g_start < end and start < g_end for g_start, g_end in self._gaps)

    def _bar(self, frame: _TimeframeState, wid: int, part: list, volume: float, quote: float,
             taker_buy: float) -> Bar:
        return Bar(
            symbol=self.symbol,
            timeframe=frame.name,
            start=wid * frame.length_us,
            end=(wid + 1) * frame.length_us,
            open=part[_OPEN],
            high=part[_HIGH],
            low=part[_LOW],
            close=part[_CLOSE],
            volume=volume,
            quote_volume=quote,
            vwap=quote / volume if volume > 0 else None,
            trades=part[_TRADES],
            taker_buy_volume=taker_buy,
            first_trade_id=part[_FIRST_ID],
            last_trade_id=part[_LAST_ID],
        )

    def _forget_before(self, ts: int) -> None:
        self._gaps = [g for g in self._gaps if g[1] > ts]


def _window_sums(parts: list[list]) -> list[tuple[float, float, float]]:
    """Exact (correctly rounded) volume, quote volume and taker-buy volume of each window."""
    if not parts:
        return []
    columns = []
    for slot in (_VOLUME, _QUOTE, _TAKER_BUY):
        pieces = [piece for part in parts for piece in part[slot]]
        columns.append(np.concatenate(pieces))
    lengths = [sum(len(piece) for piece in part[_VOLUME]) for part in parts]
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    return list(zip(*(segment_sums(column, bounds).tolist() for column in columns), strict=True))


def _merge(into: list, part: list) -> None:
    """Merge partial window ``part`` into ``into`` (order-independent)."""
    if (part[_OPEN_TS], part[_OPEN_ID]) < (into[_OPEN_TS], into[_OPEN_ID]):
        into[_OPEN_TS], into[_OPEN_ID], into[_OPEN] = part[_OPEN_TS], part[_OPEN_ID], part[_OPEN]
    if (part[_CLOSE_TS], part[_CLOSE_ID]) > (into[_CLOSE_TS], into[_CLOSE_ID]):
        into[_CLOSE_TS], into[_CLOSE_ID], into[_CLOSE] = (
            part[_CLOSE_TS], part[_CLOSE_ID], part[_CLOSE])
    into[_HIGH] = max(into[_HIGH], part[_HIGH])
    into[_LOW] = min(into[_LOW], part[_LOW])
    into[_VOLUME].extend(part[_VOLUME])
    into[_QUOTE].extend(part[_QUOTE])
    into[_TRADES] += part[_TRADES]
    into[_TAKER_BUY].extend(part[_TAKER_BUY])
    into[_FIRST_ID] = min(into[_FIRST_ID], part[_FIRST_ID])
    into[_LAST_ID] = max(into[_LAST_ID], part[_LAST_ID])
