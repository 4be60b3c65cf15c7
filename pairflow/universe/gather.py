"""Gather a universe's bars per bar end and feed complete ends to the scan, in end order.

Each symbol's bars arrive in end order (one bar step per symbol) but the symbols arrive
independently, as the two legs of a watched pair do. An end is held until every universe
symbol has *passed* it, with the rule of :class:`pairflow.pairs.PairState`: a symbol has
passed an end once it has sent a bar at or after it (a missing bar there is a feed gap of that
symbol, a NaN close for the scan). A symbol that has sent nothing yet holds the ends back
until :data:`~pairflow.pairs.MAX_PENDING` of them wait, then the oldest go without it; the end
of the input releases everything. So the ends pushed, and the scans, do not depend on how the
symbols' bars interleave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from pairflow.pairs import MAX_PENDING
from pairflow.records import ScanRecord
from pairflow.universe.scan import UniverseScan
from pairflow.universe.settings import ScanSettings

__all__ = ["UniverseGather"]


class UniverseGather:
    """The universe's closes per bar end, pushed to a :class:`UniverseScan` once complete.

    Args:
        symbols: the universe, in pair order.
        settings: the scan's settings.

    Attributes:
        dropped: bars that came after their end was pushed (a symbol whose first bar came
            more than ``MAX_PENDING`` ends behind the others); they are not scanned.

    Examples:
        >>> s = ScanSettings(scan_timeframe="1m", scan_window=10, scan_every=2, vr_lag=2,
        ...                  hurst_max_lag=3, lag=0)
        >>> gather = UniverseGather(("AAA", "BBB"), s)
        >>> gather.add([("AAA", 60_000_000, 1.0), ("AAA", 120_000_000, 1.1)])  # BBB: none yet
        []
        >>> [(r.pair, r.ts, r.n) for r in gather.add([("BBB", 120_000_000, 2.0)])]
        [('AAA/BBB', 120000000, 1)]
    """

    def __init__(self, symbols: Sequence[str], settings: ScanSettings) -> None:
        self.scan = UniverseScan(symbols, settings)
        self._row = {symbol: i for i, symbol in enumerate(self.scan.symbols)}
        self._pending: dict[int, np.ndarray] = {}
        self._latest = np.full(len(self._row), -1, dtype=np.int64)  # -1: no bar yet
        self._pushed = -1  # the last end pushed
        self.dropped = 0

    def add(self, bars: Iterable[tuple[str, int, float]]) -> list[ScanRecord]:
        """Take universe bars ``(symbol, end, close)``; return the scan records now complete.

        Each symbol's bars come in end order, on the scan timeframe.
        """
        for symbol, end, close in bars:
            row = self._row[symbol]
            self._latest[row] = max(self._latest[row], end)
            if end <= self._pushed:
                self.dropped += 1
                continue
            closes = self._pending.get(end)
            if closes is None:
                closes = self._pending[end] = np.full(len(self._row), np.nan)
            closes[row] = close
        return self._release(final=False)

    def finish(self) -> list[ScanRecord]:
        """The end of the input: push every held end; return the scan records."""
        return self._release(final=True)

    def _release(self, final: bool) -> list[ScanRecord]:
        if not self._pending:
            return []
        passed = int(self._latest.min())  # every symbol has sent a bar at or after it
        started_passed = int(self._latest[self._latest >= 0].min())
        records: list[ScanRecord] = []
        for end in sorted(self._pending):
            overflow = len(self._pending) > MAX_PENDING and end <= started_passed
            if not (final or end <= passed or overflow):
                break
            for frame in self.scan.push(end, self._pending.pop(end)):
                records.extend(frame.records())
            self._pushed = end
        return records
