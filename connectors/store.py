"""The embedded store: one SQLite database (WAL: one writer, many readers).

Tables ``bars``, ``quotes``, ``costs``, ``pairs``, ``alerts``, ``trades``, ``pnl``,
``deadletter``, ``health`` and ``scan`` hold the records of :mod:`pairflow.records` under
their JSON field names, keyed like the Kafka topics (each table's record, key and time column
are stated once, in :data:`TABLES`), and are written with idempotent upserts: replaying the
same input twice leaves identical content, and a flow resumed after a crash rewrites what it
replays without duplicates. Dead letters are keyed by a digest of (stage, reason, raw).
Universe scan rows are kept for a retention period behind the newest scan written
(``scan_retention_s``), so the table stays bounded. The ``pnl`` table holds the latest
summary of each pair and timeframe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from pairflow.errors import StoreError
from pairflow.records import (
    Alert,
    Bar,
    DeadLetter,
    Health,
    PairStats,
    PnlSummary,
    QuoteBar,
    RoundTrip,
    ScanRecord,
    SpreadCost,
    field_names,
)

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class StoredTable:
    """How one record kind is stored; the writer, reader, export and dashboard all use it.

    Attributes:
        name: the table (and export kind) name, ``bars``.
        kind: the record kind written to it (``Record.kind``), ``bar``.
        record: the record class; its fields are the table's columns.
        key: the primary key columns (the upsert identity, as the Kafka record key).
        time_column: the column time ranges and the default order refer to (µs).
    """

    name: str
    kind: str
    record: type
    key: tuple[str, ...]
    time_column: str


#: Every stored table by name.
TABLES: dict[str, StoredTable] = {t.name: t for t in (
    # Keyed on the bar's end, its timestamp (a timeframe has one length, so the end names the
    # window as well as the start): the key's index also serves every read by time, and one
    # index less makes an upsert a third cheaper.
    StoredTable("bars", "bar", Bar, ("symbol", "timeframe", "end"), "end"),
    StoredTable("quotes", "quote", QuoteBar, ("symbol", "timeframe", "end"), "end"),
    StoredTable("costs", "cost", SpreadCost, ("pair", "timeframe", "ts"), "ts"),
    StoredTable("pairs", "pair", PairStats, ("pair", "timeframe", "ts"), "ts"),
    StoredTable("alerts", "alert", Alert, ("alert_id",), "ts"),
    StoredTable("trades", "trade", RoundTrip, ("trade_id",), "exit_ts"),
    StoredTable("pnl", "pnl", PnlSummary, ("pair", "timeframe"), "ts"),
    StoredTable("deadletter", "deadletter", DeadLetter, ("id",), "ts"),
    StoredTable("health", "health", Health, ("stream", "ts"), "ts"),
    StoredTable("scan", "scan", ScanRecord, ("pair", "timeframe", "ts"), "ts"),
)}
_BUSY_TIMEOUT_S = 30.0


def _column_type(cls: type, name: str) -> str:
    annotation = str(cls.__annotations__.get("alert_kind" if name == "kind" else name, "str"))
    for py, sql in (("int", "INTEGER"), ("float", "REAL"), ("bool", "INTEGER")):
        if annotation.startswith(py):
            return sql
    return "TEXT"


def _schema() -> list[str]:
    statements = []
    for table in TABLES.values():
        cls = table.record
        extra = ["id TEXT NOT NULL"] if table.name == "deadletter" else []
        body = ", ".join(extra + [f'"{c}" {_column_type(cls, c)}' for c in field_names(cls)])
        statements.append(f"CREATE TABLE IF NOT EXISTS {table.name} ({body}, "
                          f"PRIMARY KEY ({', '.join(table.key)}))")
    statements.append("CREATE INDEX IF NOT EXISTS scan_by_ts ON scan (ts)")  # retention
    return statements


def _add_new_columns(connection: sqlite3.Connection) -> None:
    """Give a store written under an older record schema the columns added since (null)."""
    for table in TABLES.values():
        have = {row[1] for row in connection.execute(f"PRAGMA table_info({table.name})")}
        for column in field_names(table.record):
            if column not in have:
                connection.execute(f'ALTER TABLE {table.name} ADD COLUMN "{column}" '
                                   f"{_column_type(table.record, column)}")


def _connect(path: Path, readonly: bool, timeout_s: float = _BUSY_TIMEOUT_S) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rwc"
    connection = sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    return connection


def _write_ahead_log(connection: sqlite3.Connection, timeout_s: float) -> None:
    """Put the store in WAL mode.

    Two processes opening a new store at once (a cluster's workers) both switch it: SQLite
    refuses the second switch at once ("database is locked", no busy wait), so it is tried
    again until the busy timeout; once the file is in WAL mode the switch is a no-op.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def open_store(path: str | Path, timeout_s: float = _BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """Open (creating if needed) the store for writing, in WAL mode.

    Args:
        path: the SQLite file.
        timeout_s: how long a write waits for a lock another process holds.

    Raises:
        StoreError: when the directory is missing or the file cannot be written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise StoreError(f"store directory {path.parent} does not exist: create it first")
    try:
        connection = _connect(path, readonly=False, timeout_s=timeout_s)
        _write_ahead_log(connection, timeout_s)
        connection.execute("PRAGMA synchronous = NORMAL")
        # Write transactions take the write lock first, waiting for it up to the busy timeout.
        # A deferred one that read first (the schema checks below) fails at once, "database is
        # locked", when another process (a second worker) committed meanwhile.
        connection.isolation_level = "IMMEDIATE"
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            for statement in _schema():
                connection.execute(statement)
            _add_new_columns(connection)
    except sqlite3.Error as error:
        raise StoreError(f"cannot write the store {path}: {error}") from error
    return connection


def dead_letter_id(letter: DeadLetter) -> str:
    """The store key of a dead letter: a digest of what it is and where it came from.

    Not of when it came: a file replayed twice gives the same dead letters once.
    """
    digest = hashlib.blake2b(digest_size=16)
    for part in (letter.stage, letter.reason, letter.raw, letter.origin):
        digest.update(part.encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()


_KIND = attrgetter("kind")


class StoreWriter:
    """Writes records to the store with idempotent upserts, one transaction per call.

    Args:
        path: the SQLite file.
        timeout_s: how long a write waits for a lock another process holds.
        scan_retention_s: keep scan rows this long behind the newest scan time written
            (None: keep every row).
    """

    def __init__(self, path: str | Path, timeout_s: float = _BUSY_TIMEOUT_S,
                 scan_retention_s: float | None = None):
        self.path = Path(path)
        self._connection = open_store(self.path, timeout_s)
        self._scan_retention_us = (None if scan_retention_s is None
                                   else round(scan_retention_s * 1_000_000))
        self._statements = {}
        self._values = {}
        for table in TABLES.values():
            cls = table.record
            self._values[table.kind] = attrgetter(*(f.name for f in dataclasses.fields(cls)))
            columns = (["id"] if table.name == "deadletter" else []) + field_names(cls)
            quoted = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" * len(columns))
            self._statements[table.kind] = (f"INSERT OR REPLACE INTO {table.name} ({quoted}) "
                                            f"VALUES ({marks})")

    def write(self, records: Iterable[Any]) -> None:
        """Upsert records of any stored kind in one transaction.

        Raises:
            StoreError: when the database cannot be written (disk full, read-only, locked).
        """
        rows: dict[str, list[tuple]] = {}
        records = list(records)
        kinds = set(map(_KIND, records))
        if len(kinds) == 1 and "deadletter" not in kinds:
            # One kind (a batch of bars, the bulk of a replay): its rows in one C-level pass.
            [kind] = kinds
            rows[kind] = list(map(self._values[kind], records))
        else:
            for record in records:
                values = self._values[record.kind](record)
                if record.kind == "deadletter":
                    values = (dead_letter_id(record), *values)
                rows.setdefault(record.kind, []).append(values)
        if not rows:
            return
        try:
            with self._connection:
                for kind, batch in rows.items():
                    self._connection.executemany(self._statements[kind], batch)
                if "scan" in rows and self._scan_retention_us is not None:
                    newest = max(row[2] for row in rows["scan"])  # ts, third field
                    self._connection.execute("DELETE FROM scan WHERE ts < ?",
                                             (newest - self._scan_retention_us,))
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the store {self.path}: {error}") from error

    def close(self) -> None:
        """Close the connection (every write is already committed)."""
        self._connection.close()


class StoreSink(DynamicSink[Any]):
    """A Bytewax sink upserting records into the store; one connection per worker.

    Delivery: each batch is committed in ``write_batch``; with idempotent upserts a resumed
    flow that replays a batch leaves the same content (effectively exactly-once).
    ``scan_retention_s`` is the writers' retention of scan rows (None: keep all).
    """

    def __init__(self, path: str | Path, timeout_s: float = _BUSY_TIMEOUT_S,
                 scan_retention_s: float | None = None):
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.scan_retention_s = scan_retention_s
        open_store(self.path, timeout_s).close()  # fail at start-up, not in a worker

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        """One writer per worker."""
        return _StorePartition(StoreWriter(self.path, self.timeout_s, self.scan_retention_s))


class _StorePartition(StatelessSinkPartition[Any]):
    def __init__(self, writer: StoreWriter):
        self._writer = writer

    def write_batch(self, items: list[Any]) -> None:
        self._writer.write(items)

    def close(self) -> None:
        self._writer.close()


class StoreReader:
    """Read-only queries over the store (export, CLI, dashboard); one connection per thread.

    Args:
        path: the SQLite file.
        timeout_s: how long a read waits for a lock (a WAL reader rarely waits).

    A store written by an earlier pairflow may lack a newer table or column (only a writer
    adds them): such a table reads as empty and such a column as null, so an old store stays
    readable.

    Raises:
        StoreError: when the file does not exist or is not a pairflow store.
    """

    def __init__(self, path: str | Path, timeout_s: float = _BUSY_TIMEOUT_S):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"store {self.path} does not exist: run `pairflow replay` first")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._sources: dict[str, str] = {}

    def _source(self, table: str) -> str:
        """What to select ``table``'s rows from: the table, or a stand-in for an older store's.

        Re-read until the table has every column: a writer may add it while this reads.
        """
        source = self._sources.get(table)
        if source is not None:
            return source
        columns = field_names(_table(table).record)
        present = {row[1] for row in self._rows(f"PRAGMA table_info({table})")}
        if present.issuperset(columns):
            self._sources[table] = table
            return table
        if not present:
            empty = ", ".join(f'NULL AS "{c}"' for c in columns)
            return f"(SELECT 0 AS rowid, {empty} WHERE 0)"
        listed = ", ".join(f'"{c}"' if c in present else f'NULL AS "{c}"' for c in columns)
        return f"(SELECT rowid AS rowid, {listed} FROM {table})"

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = _connect(self.path, readonly=True, timeout_s=self.timeout_s)
                connection.execute("SELECT 1 FROM bars LIMIT 1")
            except sqlite3.Error as error:
                message = f"{self.path} is not a readable pairflow store: {error}"
                raise StoreError(message) from error
            self._local.connection = connection
        return connection

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        try:
            return self._connection().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"cannot read {self.path}: {error}") from error

    def query(
        self,
        table: str,
        where: dict[str, Any] | None = None,
        time_range: tuple[int | None, int | None] = (None, None),
        order: str | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Rows of ``table`` as dicts of the record's fields, in time order.

        Args:
            table: a name of :data:`TABLES`.
            where: equality filters on columns.
            time_range: ``[start, end)`` on the table's time column, µs, either may be None.
            order: the ordering column (default: the time column).
            limit: the most rows returned (the latest ones when ``descending``).
            descending: newest first.

        Raises:
            StoreError: an unknown table or column, or the store cannot be read.
        """
        spec = _table(table)
        columns = field_names(spec.record)
        clauses, params = [], []
        for column, value in (where or {}).items():
            if column not in columns:
                raise StoreError(f"{table} has no column {column!r}")
            clauses.append(f'"{column}" = ?')
            params.append(value)
        start, end = time_range
        if start is not None:
            clauses.append(f'"{spec.time_column}" >= ?')
            params.append(start)
        if end is not None:
            clauses.append(f'"{spec.time_column}" < ?')
            params.append(end)
        sql = f"SELECT {_column_list(columns)} FROM {self._source(table)}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f' ORDER BY "{order or spec.time_column}"' + (" DESC" if descending else "")
        if table == "bars" and order is None:
            sql += ", symbol, timeframe"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            cursor = self._connection().execute(sql, params)
            for row in cursor:
                yield dict(zip(columns, row, strict=True))
        except sqlite3.Error as error:
            raise StoreError(f"cannot read {self.path}: {error}") from error

    def latest(
        self,
        table: str,
        where: dict[str, Any] | None = None,
        limit: int | None = None,
        time_range: tuple[int | None, int | None] = (None, None),
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` rows of ``table`` (all when None), oldest first.

        Args:
            table: a name of :data:`TABLES`.
            where: equality filters on columns.
            limit: how many of the newest rows.
            time_range: ``[start, end)`` on the table's time column, µs, either may be None.
        """
        if limit is None:
            return list(self.query(table, where, time_range))
        rows = list(self.query(table, where, time_range, limit=limit, descending=True))
        return rows[::-1]

    def latest_per(self, table: str, column: str,
                   where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The newest row (by time column) of each value of ``column``, ordered by it.

        ``latest_per("health", "stream")`` is the current state of every live stream;
        ``latest_per("scan", "pair", {"timeframe": "1m"})`` the latest scan of every pair.

        Args:
            table: a name of :data:`TABLES`.
            column: the column whose values each get their newest row.
            where: equality filters on columns, applied before the newest row is chosen.
        """
        spec = _table(table)
        columns = field_names(spec.record)
        for name in (column, *(where or {})):
            if name not in columns:
                raise StoreError(f"{table} has no column {name!r}")
        time = spec.time_column
        filters = " AND ".join(f'"{name}" = ?' for name in where or {})
        inner = f" WHERE {filters}" if filters else ""
        outer = " AND " + " AND ".join(f't."{name}" = ?' for name in where) if where else ""
        source = self._source(table)
        sql = (f"SELECT {_column_list(columns, 't.')} FROM {source} t JOIN (SELECT \"{column}\","
               f' MAX("{time}") AS newest FROM {source}{inner} GROUP BY "{column}") m ON '
               f't."{column}" = m."{column}" AND t."{time}" = m.newest{outer} '
               f'ORDER BY t."{column}"')
        params = list((where or {}).values())
        return [dict(zip(columns, row, strict=True)) for row in self._rows(sql, params * 2)]

    def distinct(self, table: str, columns: tuple[str, ...]) -> list[tuple]:
        """The distinct value tuples of ``columns`` in ``table`` (``pairs``: the series)."""
        known = field_names(_table(table).record)
        for column in columns:
            if column not in known:
                raise StoreError(f"{table} has no column {column!r}")
        return self._rows(f"SELECT DISTINCT {_column_list(columns)} FROM {self._source(table)}")

    def last_rowid(self, table: str) -> int:
        """The ``rowid`` of the row written last (0 when empty): where a tail starts."""
        return self._rows(f"SELECT COALESCE(MAX(rowid), 0) FROM {self._source(table)}")[0][0]

    def rows_after(self, table: str, rowid: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Rows written after ``rowid``, in write order, and the last one's ``rowid``.

        An upsert deletes and re-inserts, so a new or rewritten row always gets a larger
        ``rowid``: following ``rows_after`` tails every write.

        Args:
            table: a name of :data:`TABLES`.
            rowid: the ``rowid`` already seen (:meth:`last_rowid` to start at the end).
            limit: the most rows returned (the rest come on the next call).

        Returns:
            ``(last_rowid, rows)``; ``last_rowid`` is ``rowid`` when nothing is new.
        """
        columns = field_names(_table(table).record)
        sql = (f"SELECT rowid, {_column_list(columns)} FROM {self._source(table)} WHERE rowid > ? "
               f"ORDER BY rowid LIMIT {int(limit)}")
        rows = self._rows(sql, (rowid,))
        if not rows:
            return rowid, []
        return rows[-1][0], [dict(zip(columns, row[1:], strict=True)) for row in rows]

    def close(self) -> None:
        """Close this thread's connection (the next query opens a new one)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _table(name: str) -> StoredTable:
    try:
        return TABLES[name]
    except KeyError:
        raise StoreError(f"unknown table {name!r}: choose one of {sorted(TABLES)}") from None


def _column_list(columns: Iterable[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{c}"' for c in columns)
