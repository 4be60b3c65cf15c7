"""Feed health per stream: counters kept by the live client, turned into ``Health`` records."""

from __future__ import annotations

import logging
import time

import numpy as np

from pairflow.records import Health

logger = logging.getLogger(__name__)

#: A local clock this far behind the exchange (ms) is flagged once per stream.
SKEW_FLAG_MS = 500


class StreamHealth:
    """Counters of one stream and the record they make.

    Totals (``gaps_found``, ``backfilled``, ``gaps_unrecovered``) grow for the whole run;
    the message rate and latency percentiles cover the interval since the last periodic
    record (an event record does not start a new interval).

    Args:
        symbol: the stream's symbol.
        stream: the stream name (``btcusdt@trade``).
        every_s: the period of the periodic records (the first interval's length).
    """

    def __init__(self, symbol: str, stream: str, every_s: float):
        self.symbol = symbol
        self.stream = stream
        self.every_s = every_s
        self.gaps_found = 0
        self.backfilled = 0
        self.gaps_unrecovered = 0
        self._messages = 0
        self._latencies_ms: list[float] = []
        self._skew_flagged = False
        self._interval_start: float | None = None

    def on_trades(self, latencies_ms: list[float]) -> None:
        """Count trades received live with their exchange→receive latencies (ms)."""
        self._messages += len(latencies_ms)
        self._latencies_ms.extend(latencies_ms)

    def on_quotes(self, count: int, latencies_ms: list[float]) -> None:
        """Count quotes received; their latencies when they carry an exchange time (futures)."""
        self._messages += count
        self._latencies_ms.extend(latencies_ms)

    def record(self, *, connected: bool, reconnects: int, last_message: float | None,
               event: str | None) -> Health:
        """The stream's health now; a periodic record (no ``event``) starts a new interval.

        Args:
            connected: some connection carrying the stream is up.
            reconnects: reconnections of the stream's connection group so far.
            last_message: monotonic time of the stream's last frame (None: none yet).
            event: what happened (None: a periodic record).
        """
        now = time.monotonic()
        lat = np.asarray(self._latencies_ms, np.float64)
        since = self._interval_start if self._interval_start is not None else now - self.every_s
        elapsed = max(now - since, 1e-3)
        skew = None
        if len(lat):
            low = float(lat.min())
            skew = round(-low, 3) if low < 0 else 0.0
            if skew > SKEW_FLAG_MS and not self._skew_flagged:
                self._skew_flagged = True
                logger.warning("clock skew stream=%s local clock behind by ~%.0f ms",
                               self.stream, skew)
                event = event or f"clock_skew: local clock ~{skew:.0f} ms behind the exchange"
        record = Health(
            stream=self.stream, symbol=self.symbol, ts=time.time_ns() // 1000,
            connected=connected,
            last_message_age_s=None if last_message is None else round(now - last_message, 3),
            messages_per_s=round(self._messages / elapsed, 3), reconnects=reconnects,
            gaps_found=self.gaps_found, trades_backfilled=self.backfilled,
            gaps_unrecovered=self.gaps_unrecovered,
            latency_p50_ms=round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
            latency_p99_ms=round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
            clock_skew_ms=skew, event=event)
        if event is None:
            self._messages = 0
            self._latencies_ms = []
            self._interval_start = now
        return record
