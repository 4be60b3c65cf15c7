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

Units: ``volume`` and ``taker_buy_volume`` are in the traded coin and ``quote_volume`` in the
quote currency. COIN-M trades count contracts of a fixed USD face value (``contract_size``), so
there a trade of ``q`` contracts at ``p`` adds ``size·q / p`` coins and ``size·q`` USD
(:mod:`pairflow.contracts`).

Quiet windows (no trade, feed healthy) become ``trades = 0`` bars at the previous close. A
window is *not* a bar when it lies in a feed gap: either declared by the source
(:class:`~pairflow.ticks.FeedGap`) or shown by the exchange trade ids, which are contiguous per
symbol — if the first trade id after a run of quiet windows does not follow the last one
before them, trades were lost there and no flat price is invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pairflow.columns import values_or_none
from pairflow.exact import rounded, segment_partials, segment_sums
from pairflow.records import Bar
from pairflow.ticks import FeedGap, Heartbeat, TickChunk
from pairflow.timeframes import timeframe_us

#: Trade ids remembered per symbol to drop duplicates (overlapping files, reconnect overlap).
DEDUP_CAPACITY = 1 << 16
#: Longest run of quiet bars made in one go. A longer silence with contiguous ids is a halted
#: market or a corrupt trade time (years ahead), not a day of flat prices: it is a gap.
MAX_QUIET_US = 86_400_000_000
_NO_TS = np.iinfo(np.int64).min
#: Held pieces of a timeframe's open windows merged into one beyond this many (a live feed
#: sends many small chunks; each close looks at every piece).
_MAX_PIECES = 8


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


@dataclass(frozen=True, slots=True)
class _Ticks:
    """Ticks of open windows as columns, sorted by (trade time, trade id)."""

    ts: np.ndarray
    ids: np.ndarray
    price: np.ndarray
    volume: np.ndarray  # coins (COIN-M contracts converted)
    quote: np.ndarray
    taker_buy: np.ndarray
    first_ids: np.ndarray
    last_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def cut(self, ts: int) -> tuple[_Ticks, _Ticks]:
        """(ticks before trade time ``ts``, the others)."""
        at = int(np.searchsorted(self.ts, ts))
        return (_Ticks(*(column[:at] for column in self.columns())),
                _Ticks(*(column[at:] for column in self.columns())))

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.ts, self.ids, self.price, self.volume, self.quote, self.taker_buy,
                self.first_ids, self.last_ids)

    @staticmethod
    def merged(pieces: list[_Ticks]) -> _Ticks:
        """One sorted run of several sorted pieces."""
        if len(pieces) == 1:
            return pieces[0]
        merged = _Ticks(*(np.concatenate(c) for c in zip(*(p.columns() for p in pieces),
                                                         strict=True)))
        ordered = all((a.ts[-1], a.ids[-1]) < (b.ts[0], b.ids[0])
                      for a, b in zip(pieces, pieces[1:], strict=False) if len(a) and len(b))
        if ordered:
            return merged
        order = np.lexsort((merged.ids, merged.ts))
        return _Ticks(*(column[order] for column in merged.columns()))

    def windows(self, length: int, partials: bool) -> _Traded:
        """The traded windows of timeframe ``length`` (µs) these ticks fall in.

        Their sums are rows of partials when ``partials`` (a coarser timeframe folds them),
        else each one's rounded sum as a one-column row.
        """
        # Each tick is a window of its own (open = high = low = close = its price, its sums a
        # one-value row): the windows of ticks are then folded exactly as finer windows are.
        return _Traded(self.ts, self.price, self.price, self.price, self.price,
                       self.last_ids - self.first_ids + 1, self.first_ids, self.last_ids,
                       self.volume[:, None], self.quote[:, None],
                       self.taker_buy[:, None]).windows(length, partials)


@dataclass(frozen=True, slots=True)
class _Traded:
    """Traded windows as columns, in time order, with their sums as rows.

    A timeframe whose windows are tiled by a finer one's folds the finer one's closed windows
    instead of the ticks: a minute of 1 s windows is a few dozen rows, not thousands of ticks.
    Sums stay exact because the folded windows keep theirs unrounded, as rows of partials
    (:func:`~pairflow.exact.segment_partials`) whose exact sums are the ticks'. Windows that
    nothing folds hold each sum rounded, as a one-column row.
    """

    ts: np.ndarray  # window start, µs
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    trades: np.ndarray
    first_ids: np.ndarray
    last_ids: np.ndarray
    volume: np.ndarray  # rows of partials (one-column rounded sums where nothing folds them)
    quote: np.ndarray
    taker_buy: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.ts, self.open, self.high, self.low, self.close, self.trades, self.first_ids,
                self.last_ids, self.volume, self.quote, self.taker_buy)

    def cut(self, ts: int) -> tuple[_Traded, _Traded]:
        """(windows starting before ``ts``, the others)."""
        at = int(np.searchsorted(self.ts, ts))
        return (_Traded(*(column[:at] for column in self.columns())),
                _Traded(*(column[at:] for column in self.columns())))

    @staticmethod
    def merged(pieces: list[_Traded]) -> _Traded:
        """The pieces, closed one after another, as one (partial rows as wide as the widest)."""
        if len(pieces) == 1:
            return pieces[0]
        columns = []
        for parts in zip(*(p.columns() for p in pieces), strict=True):
            if parts[0].ndim == 1:
                columns.append(np.concatenate(parts))
                continue
            # Rows of partials, right-aligned in rows as wide as the widest (zeros before).
            rows = np.zeros((sum(len(part) for part in parts), max(p.shape[1] for p in parts)))
            at = 0
            for part in parts:
                rows[at:at + len(part), rows.shape[1] - part.shape[1]:] = part
                at += len(part)
            columns.append(rows)
        return _Traded(*columns)

    def windows(self, length: int, partials: bool) -> _Traded:
        """The traded windows of timeframe ``length`` (µs), a multiple of these windows'.

        Their sums are rows of partials when ``partials`` (a coarser timeframe folds them),
        else each one's rounded sum as a one-column row.
        """
        window = self.ts // length
        starts = np.flatnonzero(np.concatenate(([True], window[1:] != window[:-1])))
        bounds = np.append(starts, len(window))
        sums = segment_partials if partials else _rounded_rows
        return _Traded(
            ts=window[starts] * length,
            open=self.open[starts],
            high=np.maximum.reduceat(self.high, starts),
            low=np.minimum.reduceat(self.low, starts),
            close=self.close[bounds[1:] - 1],
            trades=np.add.reduceat(self.trades, starts),
            first_ids=np.minimum.reduceat(self.first_ids, starts),
            last_ids=np.maximum.reduceat(self.last_ids, starts),
            volume=sums(self.volume.ravel(), bounds * self.volume.shape[1]),
            quote=sums(self.quote.ravel(), bounds * self.quote.shape[1]),
            taker_buy=sums(self.taker_buy.ravel(), bounds * self.taker_buy.shape[1]),
        )


@dataclass
class _TimeframeState:
    name: str
    length_us: int
    #: Ticks of windows not closed yet; or, when the timeframe folds a finer one (``source``),
    #: that one's closed windows.
    held: list[_Ticks] | list[_Traded] = field(default_factory=list)
    source: int | None = None  # the index of the finer timeframe whose windows tile these
    folded: bool = False  # a coarser timeframe folds these windows (their partials)
    last_window: int | None = None
    last_close: float = 0.0
    last_trade_id: int = -1


@dataclass(frozen=True, slots=True)
class _Windows:
    """Closed windows of one timeframe as columns, in window order (quiet ones have 0 trades)."""

    wid: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote: np.ndarray
    trades: np.ndarray
    taker_buy: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray

    def take(self, index: np.ndarray) -> _Windows:
        return _Windows(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


class BarBuilder:
    """Bars of one symbol for several timeframes; state is plain data so it pickles.

    Work is columnar: a chunk is sorted once, and the windows it closes — traded and quiet —
    are computed for all of them at once; Python work per chunk is per timeframe, not per
    window, so a run of quiet windows costs little more than one.

    Args:
        symbol: the symbol whose ticks this builder folds.
        timeframes: timeframe names (``1s``, ``1m`` …).
        lateness_us: allowed lateness of a tick behind the largest trade time seen.
        contract_size: USD per contract of a COIN-M symbol (its trade sizes are contracts);
            None where trade sizes are coins.

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

    def __init__(self, symbol: str, timeframes: list[str] | tuple[str, ...], lateness_us: int,
                 contract_size: float | None = None):
        if lateness_us < 0:
            raise ValueError(f"lateness must be >= 0 µs, got {lateness_us}")
        self.symbol = symbol
        self.contract_size = contract_size
        self.lateness_us = lateness_us
        self._frames = [_TimeframeState(tf, timeframe_us(tf)) for tf in timeframes]
        #: Frames finest first: a frame's windows close before those of frames folding them.
        self._finest_first = sorted(self._frames, key=lambda f: f.length_us)
        for index, frame in enumerate(self._finest_first):
            tiling = [i for i, finer in enumerate(self._finest_first[:index])
                      if frame.length_us % finer.length_us == 0
                      and finer.length_us < frame.length_us]
            frame.source = tiling[-1] if tiling else None
            if tiling:
                self._finest_first[tiling[-1]].folded = True
        self._max_ts = _NO_TS
        self._heartbeat_ts = _NO_TS
        self._recent_ids = np.empty(0, np.int64)
        self._ghost_ids = np.empty(0, np.int64)  # sorted
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
            self._recent_ids = np.concatenate((self._recent_ids, ids[-DEDUP_CAPACITY:]))[
                -DEDUP_CAPACITY:]
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
        self._ghost_ids = np.union1d(self._ghost_ids, ghost_ids)[-DEDUP_CAPACITY:]

    def _fold(self, chunk: TickChunk) -> None:
        """Hold the chunk's ticks, sorted, in the open windows of the timeframes fed ticks."""
        ts, ids = chunk.ts, chunk.trade_id
        if not bool(((ts[1:] > ts[:-1]) | ((ts[1:] == ts[:-1]) & (ids[1:] > ids[:-1]))).all()):
            # Out of (time, id) order (a merge of files, a late trade): sort. In order (one
            # file or feed, the usual case): no copy.
            chunk = chunk.take(np.lexsort((ids, ts)))
        price = chunk.price
        if self.contract_size is None:
            coins = chunk.qty
            quote = price * coins
        else:
            quote = chunk.qty * self.contract_size
            coins = quote / price
        ticks = _Ticks(chunk.ts, chunk.trade_id, price, coins, quote,
                       np.where(chunk.buyer_is_maker, 0.0, coins), chunk.first_trade_id,
                       chunk.last_trade_id)
        for frame in self._frames:
            if frame.source is None:
                _hold(frame, ticks)

    def _close_through(self, watermark: int | None, quiet: bool) -> list[Bar]:
        """Close windows ending at or before ``watermark`` (all when None).

        With ``quiet``, windows after the last trade up to the watermark become quiet bars
        (a heartbeat vouches the feed was healthy); otherwise quiet bars are only made between
        two traded windows whose trade ids are contiguous.
        """
        bars_of: dict[str, list[Bar]] = {}
        for index, frame in enumerate(self._finest_first):
            length = frame.length_us
            limit = None if watermark is None else watermark // length
            closing = self._take_closing(frame, limit)
            traded = closing.windows(length, frame.folded) if closing is not None else None
            if traded is not None:
                # Windows folding these close later (or in this call, after them).
                for coarser in self._finest_first[index + 1:]:
                    if coarser.source == index:
                        _hold(coarser, traded)
            until = limit if quiet and watermark is not None else None
            windows = self._with_quiet(frame, _windows_of(traded, length), until)
            bars_of[frame.name] = self._bars(frame, windows) if len(windows.wid) else []
        self._forget_before(min((f.last_window or 0) * f.length_us for f in self._frames))
        return [bar for frame in self._frames for bar in bars_of[frame.name]]

    def _take_closing(self, frame: _TimeframeState, limit: int | None
                      ) -> _Ticks | _Traded | None:
        """Held ticks (or finer windows) of windows before ``limit`` (all when None), taken."""
        if not frame.held:
            return None
        if limit is None:
            closing, frame.held = frame.held, []
            return type(closing[0]).merged(closing)
        end = limit * frame.length_us
        if all(len(piece) == 0 or piece.ts[0] >= end for piece in frame.held):
            return None
        closing, kept = [], []
        for piece in frame.held:
            before, after = piece.cut(end)
            if len(before):
                closing.append(before)
            if len(after):
                kept.append(after)
        frame.held = kept
        return type(closing[0]).merged(closing)

    def _with_quiet(self, frame: _TimeframeState, traded: _Windows,
                    until: int | None) -> _Windows:
        """The traded windows with the quiet ones before and between them, and after them.

        Quiet windows between traded ones need contiguous trade ids; after the last traded
        one they go up to window ``until`` (exclusive) when given. Advances the frame's last
        window, close and trade id.
        """
        previous = np.concatenate(([frame.last_window if frame.last_window is not None
                                    else -1], traded.wid))
        last_ids = np.concatenate(([frame.last_trade_id], traded.last_id))
        closes = np.concatenate(([frame.last_close], traded.close))
        runs = traded.wid - previous[:-1] - 1  # quiet windows before each traded one
        eligible = (runs > 0) & (runs * frame.length_us <= MAX_QUIET_US)
        if frame.last_window is None and len(runs):
            eligible[0] = False
        if eligible.any():
            eligible &= self._ids_contiguous(last_ids[:-1], traded.first_id)
        counts = np.where(eligible, runs, 0)
        after = 0
        if until is not None and previous[-1] >= 0:
            tail = until - previous[-1] - 1
            after = tail if 0 < tail and tail * frame.length_us <= MAX_QUIET_US else 0
        if len(traded.wid):
            frame.last_window = int(traded.wid[-1])
            frame.last_close = float(traded.close[-1])
            frame.last_trade_id = int(traded.last_id[-1])
        if until is not None and frame.last_window is not None and until - 1 > frame.last_window:
            frame.last_window = until - 1
        if not counts.any() and not after:
            return traded
        quiet_wid = np.concatenate((
            np.repeat(traded.wid - counts, counts) + _ranks(counts),
            previous[-1] + 1 + np.arange(after)))
        quiet_close = np.concatenate((np.repeat(closes[:-1], counts),
                                      np.full(after, closes[-1])))
        return _merge_quiet(traded, quiet_wid, quiet_close)

    def _ids_contiguous(self, last_ids: np.ndarray, next_first_ids: np.ndarray) -> np.ndarray:
        """Whether no exchange trade id is missing between each pair (ghosts count as seen)."""
        missing = next_first_ids - last_ids - 1
        seen = (np.searchsorted(self._ghost_ids, next_first_ids, side="left")
                - np.searchsorted(self._ghost_ids, last_ids, side="right"))
        return (missing <= 0) | (seen == missing)

    def _bars(self, frame: _TimeframeState, windows: _Windows) -> list[Bar]:
        length = frame.length_us
        starts = windows.wid * length
        keep = np.ones(len(starts), bool)
        for gap_start, gap_end in self._gaps:
            # A window that lost trades to a gap has no true bar, nor has a quiet one in it.
            keep &= ~((gap_start < starts + length) & (starts < gap_end))
        if not keep.all():
            windows, starts = windows.take(keep), starts[keep]
        n = len(starts)
        traded = windows.trades > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            vwap = windows.quote / windows.volume
        # A quiet window's columns already hold its flat bar (OHLC at the close, zero volumes).
        return list(map(
            Bar, [self.symbol] * n, [frame.name] * n, starts.tolist(), (starts + length).tolist(),
            windows.open.tolist(), windows.high.tolist(), windows.low.tolist(),
            windows.close.tolist(), windows.volume.tolist(), windows.quote.tolist(),
            values_or_none(vwap, windows.volume > 0), windows.trades.tolist(),
            windows.taker_buy.tolist(), values_or_none(windows.first_id, traded),
            values_or_none(windows.last_id, traded)))

    def _forget_before(self, ts: int) -> None:
        self._gaps = [g for g in self._gaps if g[1] > ts]


def _hold(frame: _TimeframeState, piece: _Ticks | _Traded) -> None:
    """Add ticks (or a finer timeframe's closed windows) to a timeframe's open windows."""
    frame.held.append(piece)
    if len(frame.held) > _MAX_PIECES:
        frame.held = [type(piece).merged(frame.held)]


def _rounded_rows(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Each segment's correctly rounded sum, as a one-column row."""
    return segment_sums(values, bounds)[:, None]


def _windows_of(traded: _Traded | None, length: int) -> _Windows:
    """Traded windows with their window numbers and rounded sums, for bars."""
    if traded is None:
        ints, floats = np.empty(0, np.int64), np.empty(0, np.float64)
        return _Windows(ints, floats, floats, floats, floats, floats, floats, ints, floats,
                        ints, ints)
    # Sums are exact (correctly rounded): float addition is not associative, and a bar must
    # not depend on how its ticks were cut into chunks.
    return _Windows(
        wid=traded.ts // length, open=traded.open, high=traded.high, low=traded.low,
        close=traded.close, volume=rounded(traded.volume), quote=rounded(traded.quote),
        trades=traded.trades, taker_buy=rounded(traded.taker_buy), first_id=traded.first_ids,
        last_id=traded.last_ids)


def _ranks(counts: np.ndarray) -> np.ndarray:
    """0, 1, …, c−1 for each count c, concatenated."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def _merge_quiet(traded: _Windows, quiet_wid: np.ndarray, quiet_close: np.ndarray) -> _Windows:
    """Traded and quiet windows together, in window order (quiet: flat at the close, 0 trades)."""
    n = len(quiet_wid)
    zeros, ids = np.zeros(n), np.zeros(n, np.int64)
    joined = _Windows(*(np.concatenate((getattr(traded, name), extra)) for name, extra in (
        ("wid", quiet_wid), ("open", quiet_close), ("high", quiet_close), ("low", quiet_close),
        ("close", quiet_close), ("volume", zeros), ("quote", zeros), ("trades", ids),
        ("taker_buy", zeros), ("first_id", ids), ("last_id", ids))))
    return joined.take(np.argsort(joined.wid, kind="stable"))
