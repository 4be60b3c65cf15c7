"""The store feed: a thread tailing the SQLite store through the store's own reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.store import StoreReader
from dashboard.feed.base import FOLLOWED, Feed, FeedSettings
from pairflow.errors import StoreError

#: How long a history read waits for a store lock before the session shows an error.
READ_TIMEOUT_S = 5.0
#: Rows read per table per poll (a session catches up over several polls).
POLL_BATCH = 20_000


class StoreFeed(Feed):
    """Tails the SQLite store on a thread; history queries go to the store's reader."""

    def __init__(self, settings: FeedSettings) -> None:
        super().__init__(settings)
        assert settings.store is not None
        self.path = Path(settings.store)
        self._watermarks: dict[str, int] | None = None
        self._reader: StoreReader | None = None

    def _store(self) -> StoreReader:
        """The reader, made again after a failure (the store may not exist yet)."""
        with self._lock:
            if self._reader is None:
                self._reader = StoreReader(self.path, timeout_s=READ_TIMEOUT_S)
            return self._reader

    def _forget_reader(self) -> None:
        """Close this thread's connection; the next read opens the store again."""
        with self._lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _failed(self, error: StoreError) -> None:
        self._forget_reader()
        self._set_error(f"cannot read {self.settings.source}: {error}")

    def _history(self, table: str, where: dict[str, Any], limit: int | None,
                 time_range: tuple[int | None, int | None]) -> list[dict[str, Any]]:
        try:
            return self._store().latest(table, where, limit, time_range)
        except StoreError as error:
            self._failed(error)
            return []

    def health(self) -> list[dict[str, Any]]:
        """The latest health record of each stream in the store."""
        try:
            return self._store().latest_per("health", "stream")
        except StoreError:
            self._forget_reader()
            return []  # the poller reports why

    def scan_timeframes(self) -> list[str]:
        """The timeframes of the scan rows in the store."""
        try:
            return sorted(tf for (tf,) in self._store().distinct("scan", ("timeframe",)))
        except StoreError as error:
            self._failed(error)
            return []

    def scans(self, timeframe: str) -> list[dict[str, Any]]:
        """The latest scan row of each pair scanned on ``timeframe`` in the store."""
        try:
            return self._store().latest_per("scan", "pair", {"timeframe": timeframe})
        except StoreError as error:
            self._failed(error)
            return []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
                self._set_ok()
            except StoreError as error:
                self._watermarks = None
                self._failed(error)
            self._stop.wait(self.settings.poll_s)
        self._forget_reader()

    def _poll(self) -> None:
        reader = self._store()
        if self._watermarks is None:
            # (Re)connected: start from the current end; sessions read history themselves.
            marks = {table: reader.last_rowid(table) for table in FOLLOWED}
            keys = reader.distinct("pairs", ("pair", "timeframe"))
            with self._lock:
                self._keys.update((p, t) for p, t in keys)
                self._status.generation += 1
            self._watermarks = marks
            return
        for table in FOLLOWED:
            self._watermarks[table], rows = reader.rows_after(table, self._watermarks[table],
                                                              POLL_BATCH)
            self._publish(table, rows)
