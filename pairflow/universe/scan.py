"""The universe scan: every pair of N symbols, scanned every ``scan_every`` bars.

:class:`UniverseScan` keeps one history of the universe's transformed closes on the
timeframe grid (a ring of ``capacity`` bars per symbol, NaN where a symbol has no bar), shared
by all of its pairs, and at each scan time computes every pair's statistics in one compiled
call (:func:`pairflow.universe._kernel.scan_pairs`). The p-values come from the same
MacKinnon response surfaces as ``PairStats``; the q-values are Benjamini–Hochberg across the
pairs that have a p-value at that scan time. Definitions: ``docs/statistics.md``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pairflow.analytics.errors import InputError
from pairflow.analytics.mackinnon import mackinnonp_array
from pairflow.errors import ConfigError
from pairflow.records import ScanRecord
from pairflow.universe import _kernel
from pairflow.universe.fdr import bh_qvalues
from pairflow.universe.settings import ScanSettings

__all__ = ["STAT_COLUMNS", "ScanFrame", "UniverseScan"]

_AUTOLAG_CODE = {"aic": 1, "bic": 2}
#: The statistics of a scan row, in record order.
STAT_COLUMNS = ("beta", "zscore", "corr", "half_life", "eg_stat", "eg_pvalue_yx",
                "eg_pvalue_xy", "eg_pvalue", "eg_qvalue", "variance_ratio", "hurst")


@dataclass(frozen=True)
class ScanFrame:
    """Every pair's statistics at one scan time, column-wise.

    Attributes:
        ts: the scan time (a bar end, µs).
        timeframe: the bars' timeframe.
        window: the scan window.
        pairs: the pairs ``A/B``, in universe order.
        n: aligned bars in each pair's window.
        as_of: end of each pair's latest aligned bar at or before ``ts`` (-1: none).
        stats: each of :data:`STAT_COLUMNS` (NaN: undefined).
        reasons: why a pair's statistics are (partly) undefined, or ``None``.
    """

    ts: int
    timeframe: str
    window: int
    pairs: tuple[str, ...]
    n: np.ndarray
    as_of: np.ndarray
    stats: dict[str, np.ndarray]
    reasons: list[str | None]

    def rows(self) -> list[dict]:
        """One dict per pair with the :class:`~pairflow.records.ScanRecord` fields."""
        columns = {name: [None if math.isnan(v) else v for v in values.tolist()]
                   for name, values in self.stats.items()}
        return [
            {"pair": pair, "timeframe": self.timeframe, "ts": self.ts,
             "as_of": None if as_of < 0 else as_of, "window": self.window, "n": n,
             **{name: columns[name][i] for name in STAT_COLUMNS}, "reason": self.reasons[i]}
            for i, (pair, n, as_of) in enumerate(zip(self.pairs, self.n.tolist(),
                                                     self.as_of.tolist(), strict=True))
        ]

    def records(self) -> list[ScanRecord]:
        """One :class:`~pairflow.records.ScanRecord` per pair."""
        return [ScanRecord(**row) for row in self.rows()]


class UniverseScan:
    """Incremental scan of every pair of a universe on one timeframe.

    Push each bar end's closes of the whole universe (NaN: no bar of that symbol) in end
    order; every push that completes a scan time returns that scan's :class:`ScanFrame`.

    Args:
        symbols: the universe, in the order that names each pair (A before B).
        settings: window, scan interval, lags and price transform.
        capacity: bars of history kept per symbol (default: 4 windows). A pair whose last
            ``window`` aligned bars reach further back (a leg with long gaps) has no
            statistics; give the input's length to scan a recording exactly.

    Raises:
        ConfigError: fewer than two symbols, or a capacity below the window.

    Examples:
        >>> s = ScanSettings(scan_timeframe="1m", scan_window=30, scan_every=10, vr_lag=2,
        ...                  hurst_max_lag=5, lag=0)
        >>> scan = UniverseScan(("AAA", "BBB", "CCC"), s)
        >>> rng = np.random.default_rng(7)
        >>> walk = np.exp(np.cumsum(rng.normal(0, 0.01, (40, 3)), axis=0))
        >>> frames = [f for t in range(40) for f in scan.push((t + 1) * 60_000_000, walk[t])]
        >>> [(f.ts // 60_000_000, f.n.tolist()) for f in frames]
        [(10, [10, 10, 10]), (20, [20, 20, 20]), (30, [30, 30, 30]), (40, [30, 30, 30])]
        >>> frames[-1].pairs, frames[-1].reasons[0]
        (('AAA/BBB', 'AAA/CCC', 'BBB/CCC'), None)
    """

    def __init__(self, symbols: Sequence[str], settings: ScanSettings,
                 capacity: int | None = None) -> None:
        self.symbols = tuple(symbols)
        self.settings = settings
        pairs = settings.pairs(self.symbols)
        if not pairs:
            raise ConfigError(f"a universe needs at least two symbols, got {list(symbols)}")
        window = settings.scan_window
        capacity = 4 * window if capacity is None else capacity
        if capacity < window:
            raise ConfigError(f"history capacity {capacity} is below the window {window}")
        index = {s: i for i, s in enumerate(self.symbols)}
        self.pairs = tuple(f"{a}/{b}" for a, b in pairs)
        self._legs = np.array([(index[a], index[b]) for a, b in pairs], dtype=np.int64)
        self._prices = np.full((len(self.symbols), capacity), np.nan)
        estimator = settings.estimator
        autolag = 0 if isinstance(settings.lag, int) else _AUTOLAG_CODE[settings.lag]
        self._ipar = np.array([window, estimator.eg_maxlag, autolag, settings.vr_lag,
                               settings.hurst_max_lag], dtype=np.int64)
        self._log = settings.price == "log"
        self._tf = settings.timeframe_us
        self._every = settings.every_us
        self._first: int | None = None  # grid index of the first bar end pushed
        self._last: int | None = None
        self._next_scan = 0

    @property
    def capacity(self) -> int:
        """Bars of history kept per symbol."""
        return self._prices.shape[1]

    def push(self, end: int, closes: np.ndarray) -> list[ScanFrame]:
        """Add the universe's closes of the bars ending at ``end``; return completed scans.

        Args:
            end: the bar end in µs, a multiple of the timeframe, after the previous one.
            closes: raw closes in universe order, NaN for a symbol without a bar.

        Returns:
            The scans of every scan time up to ``end`` not returned before (a scan time inside
            a gap of the whole universe is scanned on the history before it).

        Raises:
            InputError: a misaligned or out-of-order end, or a close that is not finite (or
                not positive under ``price="log"``); the history is unchanged then.
        """
        slot = self._check_end(end)
        values = self._transform(closes)
        frames = []
        if self._last is None:
            self._first = slot
            self._next_scan = -(-end // self._every) * self._every
        else:
            while self._next_scan < end:
                frames.append(self.scan(self._next_scan))
                self._next_scan += self._every
            for gap in range(self._last + 1, min(slot, self._last + 1 + self.capacity)):
                self._prices[:, gap % self.capacity] = np.nan
        self._prices[:, slot % self.capacity] = values
        self._last = slot
        if end == self._next_scan:
            frames.append(self.scan(end))
            self._next_scan += self._every
        return frames

    def _check_end(self, end: int) -> int:
        if end % self._tf:
            raise InputError(f"bar end {end} is not a multiple of the timeframe "
                             f"{self.settings.scan_timeframe}")
        slot = end // self._tf
        if self._last is not None and slot <= self._last:
            raise InputError(f"bar end {end} is not after the previous one "
                             f"{self._last * self._tf}")
        return slot

    def _transform(self, closes: np.ndarray) -> np.ndarray:
        values = np.array(closes, dtype=np.float64)
        if values.shape != (len(self.symbols),):
            raise InputError(f"expected {len(self.symbols)} closes, got shape {values.shape}")
        present = ~np.isnan(values)
        bad = present & ~(np.isfinite(values) & ((values > 0.0) if self._log else True))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            need = "positive and finite" if self._log else "finite"
            raise InputError(f"{self.symbols[i]} close must be {need}, got {values[i]!r}")
        if self._log:
            # math.log as PairEstimator: numpy's SIMD log may differ by an ulp between CPUs
            values[present] = [math.log(v) for v in values[present].tolist()]
        return values

    def scan(self, ts: int) -> ScanFrame:
        """Every pair's statistics now, stamped ``ts`` (:meth:`push` calls it at scan times).

        Args:
            ts: the scan time; the history pushed so far (up to the latest bar end) is used.

        Raises:
            InputError: nothing has been pushed yet.
        """
        if self._first is None or self._last is None:
            raise InputError("no bars pushed yet: nothing to scan")
        depth = min(self._last - self._first + 1, self.capacity)
        count = len(self.pairs)
        out = np.full((count, len(_kernel.OUT_COLUMNS)), np.nan)
        counts = np.zeros((count, 3), dtype=np.int64)
        _kernel.scan_pairs(self._prices, self._last % self.capacity, depth, self._legs,
                           self._ipar, out, counts)
        columns = dict(zip(_kernel.OUT_COLUMNS, out.T, strict=True))
        p_yx = mackinnonp_array(columns["eg_stat"], "c", 2)
        p_xy = mackinnonp_array(columns.pop("eg_stat_xy"), "c", 2)
        p_max = np.fmax(p_yx, p_xy)
        p_max[np.isnan(p_yx) | np.isnan(p_xy)] = np.nan
        columns.update(eg_pvalue_yx=p_yx, eg_pvalue_xy=p_xy, eg_pvalue=p_max,
                       eg_qvalue=bh_qvalues(p_max))
        latest = counts[:, 1]
        as_of = np.where(latest < 0, -1, (self._last - latest) * self._tf)
        return ScanFrame(ts=ts, timeframe=self.settings.scan_timeframe,
                         window=self.settings.scan_window, pairs=self.pairs, n=counts[:, 0],
                         as_of=as_of, stats={name: columns[name] for name in STAT_COLUMNS},
                         reasons=[_reason(int(f)) for f in counts[:, 2]])


@functools.cache  # a few distinct flag sets, met by thousands of pairs
def _reason(flags: int) -> str | None:
    if not flags:
        return None
    return "; ".join(text for bit, text in enumerate(_kernel.FLAG_BITS) if flags >> bit & 1)
