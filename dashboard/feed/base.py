"""What every feed shares: where it reads (settings), its status, the fan-out log, the thread."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.store import TABLES

logger = logging.getLogger(__name__)

#: The store tables (and Kafka topics) a dashboard follows.
FOLLOWED = ("bars", "quotes", "costs", "pairs", "alerts", "trades", "pnl", "health", "scan")
#: The followed tables whose rows are a symbol's (the others are a pair's, or health).
BY_SYMBOL = ("bars", "quotes")
#: Rows kept in the fan-out log; a session further behind reloads its history.
LOG_LENGTH = 200_000


@dataclass(frozen=True)
class FeedSettings:
    """Where the dashboard reads from.

    Attributes:
        store: the SQLite store (embedded mode).
        kafka: Kafka bootstrap servers (``host:port[,…]``); used when ``store`` is None.
        kafka_prefix: topic prefix.
        poll_s: store poll interval (seconds).
        history: rows of history a session loads and keeps per series.
    """

    store: Path | None = None
    kafka: str | None = None
    kafka_prefix: str = "pairflow."
    poll_s: float = 0.1
    history: int = 3000

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> FeedSettings:
        """Settings from ``PAIRFLOW_STORE``, ``PAIRFLOW_KAFKA``, ``PAIRFLOW_KAFKA_PREFIX``.

        ``PAIRFLOW_DASHBOARD_HISTORY`` and ``PAIRFLOW_DASHBOARD_POLL_S`` tune the history
        length and the store poll interval. Without a store or broker, the store defaults to
        ``pairflow.db`` in the working directory.
        """
        env = os.environ if environ is None else environ
        kafka = env.get("PAIRFLOW_KAFKA") or None
        store = env.get("PAIRFLOW_STORE") or None
        if store is None and kafka is None:
            store = "pairflow.db"
        return cls(
            store=Path(store) if store else None,
            kafka=kafka,
            kafka_prefix=env.get("PAIRFLOW_KAFKA_PREFIX", "pairflow."),
            poll_s=float(env.get("PAIRFLOW_DASHBOARD_POLL_S", "0.1")),
            history=int(env.get("PAIRFLOW_DASHBOARD_HISTORY", "3000")),
        )

    @property
    def source(self) -> str:
        """Human-readable name of the source."""
        return f"store {self.store}" if self.store is not None else f"Kafka {self.kafka}"


@dataclass
class FeedStatus:
    """What a session shows about the feed (copied under the feed's lock).

    Attributes:
        ok: the last attempt to read the source succeeded.
        message: why not, when not ``ok``; empty otherwise.
        generation: bumped when the source was replaced (sessions reload their history).
        reconnects: times the feed recovered from a failure.
        last_ok: wall time (s) of the last successful read.
        last_row: wall time (s) a row last arrived, per table.
        last_event_ts: newest record time (µs) seen, per table.
    """

    ok: bool = False
    message: str = "starting"
    generation: int = 0
    reconnects: int = 0
    last_ok: float | None = None
    last_row: dict[str, float] = field(default_factory=dict)
    last_event_ts: dict[str, int] = field(default_factory=dict)


class Feed:
    """Base of both feeds: the fan-out log, the status and the thread.

    Args:
        settings: where to read.
    """

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._log: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=LOG_LENGTH)
        self._seq = 0
        self._status = FeedStatus()
        self._keys: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    # -- thread -------------------------------------------------------------------------
    def start(self) -> Feed:
        """Start the feed thread (once)."""
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the feed thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _set_ok(self) -> None:
        with self._lock:
            if not self._status.ok and self._status.message not in ("starting", ""):
                self._status.reconnects += 1
            self._status.ok = True
            self._status.message = ""
            self._status.last_ok = time.time()

    def _set_error(self, message: str) -> None:
        with self._lock:
            if self._status.ok or self._status.message != message:
                logger.warning("dashboard feed: %s", message)
            self._status.ok = False
            self._status.message = message

    def _publish(self, table: str, rows: Iterable[dict[str, Any]]) -> int:
        """Append rows to the fan-out log; return how many."""
        count = 0
        now = time.time()
        column = TABLES[table].time_column
        with self._lock:
            for row in rows:
                self._seq += 1
                self._log.append((self._seq, table, row))
                count += 1
                if table == "pairs":
                    self._keys.add((row["pair"], row["timeframe"]))
                ts = row.get(column)
                if ts is not None and ts > self._status.last_event_ts.get(table, 0):
                    self._status.last_event_ts[table] = ts
            if count:
                self._status.last_row[table] = now
        return count

    # -- what sessions call -------------------------------------------------------------
    @property
    def status(self) -> FeedStatus:
        """A copy of the current status."""
        with self._lock:
            s = self._status
            return FeedStatus(s.ok, s.message, s.generation, s.reconnects, s.last_ok,
                              dict(s.last_row), dict(s.last_event_ts))

    @property
    def seq(self) -> int:
        """Sequence number of the newest row in the log."""
        with self._lock:
            return self._seq

    def since(self, seq: int) -> tuple[int, list[tuple[str, dict[str, Any]]], bool]:
        """Rows published after ``seq``.

        Returns:
            ``(new_seq, [(table, row), …], lost)``; ``lost`` is True when rows after ``seq``
            have already left the bounded log (the caller should reload its history).
        """
        with self._lock:
            if not self._log or seq >= self._seq:
                return self._seq, [], False
            first = self._log[0][0]
            lost = seq < first - 1
            start = max(seq - first + 1, 0)
            rows = [(t, r) for _, t, r in list(self._log)[start:]] if start else [
                (t, r) for _, t, r in self._log]
            return self._seq, rows, lost

    def keys(self) -> list[tuple[str, str]]:
        """Known ``(pair, timeframe)`` series."""
        with self._lock:
            return sorted(self._keys)

    def pairs(self, pair: str, timeframe: str, limit: int | None = None,
              time_range: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
        """Pair statistics of one series, oldest first (the newest ``limit`` when given)."""
        return self._history("pairs", {"pair": pair, "timeframe": timeframe}, limit, time_range)

    def alerts(self, pair: str, timeframe: str, limit: int | None = None,
               time_range: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
        """Alerts of one series, oldest first (the newest ``limit`` when given)."""
        return self._history("alerts", {"pair": pair, "timeframe": timeframe}, limit, time_range)

    def bars(self, symbol: str, timeframe: str, limit: int | None = None,
             time_range: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
        """Bars of one symbol and timeframe, oldest first (the newest ``limit`` when given)."""
        return self._history("bars", {"symbol": symbol, "timeframe": timeframe}, limit,
                             time_range)

    def quotes(self, symbol: str, timeframe: str, limit: int | None = None,
               time_range: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
        """Quote bars of one symbol and timeframe, oldest first (the newest ``limit``)."""
        return self._history("quotes", {"symbol": symbol, "timeframe": timeframe}, limit,
                             time_range)

    def costs(self, pair: str, timeframe: str, limit: int | None = None,
              time_range: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
        """Executable-spread records of one series, oldest first (the newest ``limit``)."""
        return self._history("costs", {"pair": pair, "timeframe": timeframe}, limit, time_range)

    def trades(self, pair: str, timeframe: str, limit: int | None = None,
               time_range: tuple[int | None, int | None] = (None, None)) -> list[dict[str, Any]]:
        """Round trips of one series' paper P&L, in exit order (the newest ``limit``)."""
        return self._history("trades", {"pair": pair, "timeframe": timeframe}, limit,
                             time_range)

    def pnl(self, pair: str, timeframe: str) -> dict[str, Any] | None:
        """The latest paper-P&L summary of one series (None: the source has none)."""
        rows = self._history("pnl", {"pair": pair, "timeframe": timeframe}, 1, (None, None))
        return rows[-1] if rows else None

    def health(self) -> list[dict[str, Any]]:
        """The latest health record of each stream."""
        raise NotImplementedError

    def scan_timeframes(self) -> list[str]:
        """The timeframes of the universe scans the source holds."""
        raise NotImplementedError

    def scans(self, timeframe: str) -> list[dict[str, Any]]:
        """The latest universe scan row of each pair scanned on ``timeframe``, by pair."""
        raise NotImplementedError

    def _history(self, table: str, where: dict[str, Any], limit: int | None,
                 time_range: tuple[int | None, int | None]) -> list[dict[str, Any]]:
        raise NotImplementedError
