"""The dashboard's data feed: ONE per server process, fanned out to every browser session.

A feed is either a store poller (a thread tailing the SQLite store by ``rowid``: an upsert
deletes and re-inserts, so a new or rewritten row always gets a larger ``rowid``) or a Kafka
consumer (a thread reading the ``bars``/``pairs``/``alerts``/``health`` topics). New rows go
into one bounded log with a sequence number; each session keeps a cursor and, from its
periodic callback, takes the rows after it (:meth:`Feed.since`). A session reads its initial
history with :meth:`Feed.pairs` and friends (from the store, or from the Kafka consumer's
bounded per-key cache) before it starts following the log.

A feed never raises to a session: failures (store missing or unreadable, broker down) set
:attr:`Feed.status`, which sessions show as a banner, and the thread keeps retrying.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pairflow.records import Alert, Bar, Health, PairStats, field_names

logger = logging.getLogger(__name__)

#: The tables a dashboard follows and their record classes.
TABLES: dict[str, type] = {"bars": Bar, "pairs": PairStats, "alerts": Alert, "health": Health}
#: Each table's time column.
TIME_COLUMN = {"bars": "end", "pairs": "ts", "alerts": "ts", "health": "ts"}
#: Rows kept in the fan-out log; a session further behind reloads its history.
LOG_LENGTH = 200_000
#: Rows read per table per poll (a session catches up over several polls).
POLL_BATCH = 20_000


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
        column = TIME_COLUMN[table]
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

    def health(self) -> list[dict[str, Any]]:
        """The latest health record of each stream."""
        raise NotImplementedError

    def _history(self, table: str, where: dict[str, Any], limit: int | None,
                 time_range: tuple[int | None, int | None]) -> list[dict[str, Any]]:
        raise NotImplementedError


class StoreFeed(Feed):
    """Tails the SQLite store on a thread; history queries go to the store directly."""

    def __init__(self, settings: FeedSettings) -> None:
        super().__init__(settings)
        assert settings.store is not None
        self.path = Path(settings.store)
        self._watermarks: dict[str, int] | None = None
        self._reader = None
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if not self.path.is_file():
                raise FileNotFoundError(f"store {self.path} not found (is the flow running?)")
            connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5,
                                         check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 5000")
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _select(self, table: str, where: dict[str, Any], limit: int | None,
                time_range: tuple[int | None, int | None], descending: bool) -> list[dict]:
        columns = field_names(TABLES[table])
        clauses, params = [], []
        for column, value in where.items():
            clauses.append(f'"{column}" = ?')
            params.append(value)
        time_column = TIME_COLUMN[table]
        if time_range[0] is not None:
            clauses.append(f'"{time_column}" >= ?')
            params.append(time_range[0])
        if time_range[1] is not None:
            clauses.append(f'"{time_column}" < ?')
            params.append(time_range[1])
        sql = "SELECT " + ", ".join(f'"{c}"' for c in columns) + f" FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f' ORDER BY "{time_column}"' + (" DESC" if descending else "")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._connection().execute(sql, params).fetchall()
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def _history(self, table: str, where: dict[str, Any], limit: int | None,
                 time_range: tuple[int | None, int | None]) -> list[dict[str, Any]]:
        try:
            rows = self._select(table, where, limit, time_range, descending=limit is not None)
        except (sqlite3.Error, FileNotFoundError) as error:
            self._drop_connection()
            self._set_error(f"cannot read {self.settings.source}: {error}")
            return []
        return rows[::-1] if limit is not None else rows

    def health(self) -> list[dict[str, Any]]:
        """The latest health record of each stream in the store."""
        columns = field_names(Health)
        sql = ("SELECT " + ", ".join(f'h."{c}"' for c in columns) + " FROM health h JOIN "
               "(SELECT stream, MAX(ts) AS ts FROM health GROUP BY stream) m "
               "ON h.stream = m.stream AND h.ts = m.ts ORDER BY h.stream")
        try:
            rows = self._connection().execute(sql).fetchall()
        except (sqlite3.Error, FileNotFoundError):
            self._drop_connection()
            return []
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
                self._set_ok()
            except (sqlite3.Error, FileNotFoundError, OSError) as error:
                self._drop_connection()
                self._watermarks = None
                self._set_error(f"cannot read {self.settings.source}: {error}")
            self._stop.wait(self.settings.poll_s)
        self._drop_connection()

    def _poll(self) -> None:
        connection = self._connection()
        if self._watermarks is None:
            # (Re)connected: start from the current end; sessions read history themselves.
            marks = {}
            for table in TABLES:
                sql = f"SELECT COALESCE(MAX(rowid), 0) FROM {table}"
                (top,) = connection.execute(sql).fetchone()
                marks[table] = top
            keys = connection.execute("SELECT DISTINCT pair, timeframe FROM pairs").fetchall()
            with self._lock:
                self._keys.update((p, t) for p, t in keys)
                self._status.generation += 1
            self._watermarks = marks
            return
        for table, cls in TABLES.items():
            columns = field_names(cls)
            sql = ("SELECT rowid, " + ", ".join(f'"{c}"' for c in columns) +
                   f" FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT {POLL_BATCH}")
            rows = connection.execute(sql, (self._watermarks[table],)).fetchall()
            if not rows:
                continue
            self._watermarks[table] = rows[-1][0]
            self._publish(table, (dict(zip(columns, row[1:], strict=True)) for row in rows))


class KafkaFeed(Feed):
    """One Kafka consumer on a thread; keeps a bounded cache per series for new sessions.

    Reads the ``bars``, ``pairs``, ``alerts`` and ``health`` topics from the offsets of
    ``lookback_s`` seconds ago (``offsets_for_times``), so a new session sees recent history.
    """

    def __init__(self, settings: FeedSettings, lookback_s: float = 3600.0) -> None:
        super().__init__(settings)
        self.lookback_s = lookback_s
        self._cache: dict[tuple[str, str, str], deque[dict[str, Any]]] = {}
        self._health: dict[str, dict[str, Any]] = {}

    def _cache_key(self, table: str, row: dict[str, Any]) -> tuple[str, str, str]:
        name = row["symbol"] if table == "bars" else row["pair"]
        return table, name, row["timeframe"]

    def _history(self, table: str, where: dict[str, Any], limit: int | None,
                 time_range: tuple[int | None, int | None]) -> list[dict[str, Any]]:
        name = where.get("symbol") or where.get("pair")
        key = (table, name, where["timeframe"])
        column = TIME_COLUMN[table]
        start, end = time_range
        with self._lock:
            rows = list(self._cache.get(key, ()))
        rows = [r for r in rows if (start is None or r[column] >= start)
                and (end is None or r[column] < end)]
        return rows[-limit:] if limit is not None else rows

    def health(self) -> list[dict[str, Any]]:
        """The latest health record of each stream seen on the topic."""
        with self._lock:
            return [self._health[k] for k in sorted(self._health)]

    def _consumer(self):
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka,
            "group.id": f"pairflow-dashboard-{os.getpid()}-{id(self)}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "socket.connection.setup.timeout.ms": 5000,
            "reconnect.backoff.max.ms": 2000,
        })
        since_ms = int((time.time() - self.lookback_s) * 1000)
        wanted = []
        for table in TABLES:
            topic = f"{self.settings.kafka_prefix}{table}"
            metadata = consumer.list_topics(topic, timeout=5)
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                continue
            wanted += [TopicPartition(topic, p, since_ms) for p in info.partitions]
        if not wanted:
            consumer.close()
            raise RuntimeError("no pairflow topics yet (is the flow running?)")
        offsets = consumer.offsets_for_times(wanted, timeout=10)
        for tp in offsets:
            if tp.offset < 0:  # no message after the time: start at the end
                tp.offset = -1  # OFFSET_END
        consumer.assign(offsets)
        return consumer

    def _run(self) -> None:
        import msgspec

        consumer = None
        tables = {f"{self.settings.kafka_prefix}{t}": t for t in TABLES}
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._consumer()
                    self._set_ok()
                messages = consumer.consume(num_messages=5000, timeout=0.25)
            except Exception as error:  # noqa: BLE001 - any broker failure is shown, then retried
                self._set_error(f"cannot read {self.settings.source}: {error}")
                if consumer is not None:
                    consumer.close()
                    consumer = None
                self._stop.wait(2.0)
                continue
            batches: dict[str, list[dict[str, Any]]] = {}
            for message in messages:
                if message.error() is not None:
                    self._set_error(f"Kafka: {message.error()}")
                    continue
                table = tables.get(message.topic())
                try:
                    row = msgspec.json.decode(message.value())
                except msgspec.DecodeError:
                    continue
                row.pop("v", None)
                batches.setdefault(table, []).append(row)
            if messages:
                self._set_ok()
            for table, rows in batches.items():
                with self._lock:
                    for row in rows:
                        if table == "health":
                            self._health[row["stream"]] = row
                        else:
                            key = self._cache_key(table, row)
                            cache = self._cache.get(key)
                            if cache is None:
                                cache = self._cache[key] = deque(
                                    maxlen=max(self.settings.history * 4, 10_000))
                            cache.append(row)
                self._publish(table, rows)
        if consumer is not None:
            consumer.close()


_FEEDS: dict[FeedSettings, Feed] = {}
_FEEDS_LOCK = threading.Lock()


def get_feed(settings: FeedSettings) -> Feed:
    """The process's feed for ``settings``, started on first use."""
    with _FEEDS_LOCK:
        feed = _FEEDS.get(settings)
        if feed is None:
            feed = StoreFeed(settings) if settings.store is not None else KafkaFeed(settings)
            _FEEDS[settings] = feed.start()
        return feed
