"""The embedded store: one SQLite database (WAL: one writer, many readers).

Tables ``bars``, ``pairs``, ``alerts`` and ``deadletter`` hold the records of
:mod:`pairflow.records` under their JSON field names, keyed like the Kafka topics, and are
written with idempotent upserts: replaying the same input twice leaves identical content, and a
flow resumed after a crash rewrites what it replays without duplicates. Dead letters are keyed
by a digest of (stage, reason, raw).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from operator import attrgetter
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from pairflow.errors import StoreError
from pairflow.records import Alert, Bar, DeadLetter, Health, PairStats, field_names

logger = logging.getLogger(__name__)

#: Record kind → (table, record class, primary key columns).
TABLES: dict[str, tuple[str, type, tuple[str, ...]]] = {
    "bar": ("bars", Bar, ("symbol", "timeframe", "start")),
    "pair": ("pairs", PairStats, ("pair", "timeframe", "ts")),
    "alert": ("alerts", Alert, ("alert_id",)),
    "deadletter": ("deadletter", DeadLetter, ("id",)),
    "health": ("health", Health, ("stream", "ts")),
}
#: Export / dashboard kinds by table name.
KINDS = {"bars": "bar", "pairs": "pair", "alerts": "alert", "deadletter": "deadletter",
         "health": "health"}
_BUSY_TIMEOUT_S = 30.0


def _column_type(cls: type, name: str) -> str:
    annotation = str(cls.__annotations__.get("alert_kind" if name == "kind" else name, "str"))
    for py, sql in (("int", "INTEGER"), ("float", "REAL"), ("bool", "INTEGER")):
        if annotation.startswith(py):
            return sql
    return "TEXT"


def _schema() -> str:
    statements = []
    for table, cls, key in TABLES.values():
        columns = field_names(cls)
        extra = ["id TEXT NOT NULL"] if table == "deadletter" else []
        body = ", ".join(extra + [f'"{c}" {_column_type(cls, c)}' for c in columns])
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} ({body}, PRIMARY KEY ({', '.join(key)}))"
        )
    statements.append("CREATE INDEX IF NOT EXISTS bars_by_end ON bars (symbol, timeframe, end)")
    return ";\n".join(statements) + ";"


def _connect(path: Path, readonly: bool, timeout_s: float = _BUSY_TIMEOUT_S) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}?mode=rwc"
    connection = sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)
    connection.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    return connection


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
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.executescript(_schema())
        connection.commit()
    except sqlite3.Error as error:
        raise StoreError(f"cannot write the store {path}: {error}") from error
    return connection


def dead_letter_id(letter: DeadLetter) -> str:
    """The store key of a dead letter: a digest of what it is, not of when it came."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (letter.stage, letter.reason, letter.raw):
        digest.update(part.encode("utf-8", "replace"))
        digest.update(b"\0")
    return digest.hexdigest()


class StoreWriter:
    """Writes records to the store with idempotent upserts, one transaction per call.

    Args:
        path: the SQLite file.
        timeout_s: how long a write waits for a lock another process holds.
    """

    def __init__(self, path: str | Path, timeout_s: float = _BUSY_TIMEOUT_S):
        self.path = Path(path)
        self._connection = open_store(self.path, timeout_s)
        self._statements = {}
        self._values = {}
        for kind, (table, cls, _key) in TABLES.items():
            self._values[kind] = attrgetter(*(f.name for f in dataclasses.fields(cls)))
            columns = (["id"] if table == "deadletter" else []) + field_names(cls)
            quoted = ", ".join(f'"{c}"' for c in columns)
            marks = ", ".join("?" * len(columns))
            self._statements[kind] = f"INSERT OR REPLACE INTO {table} ({quoted}) VALUES ({marks})"

    def write(self, records: Iterable[Any]) -> None:
        """Upsert records of any stored kind in one transaction.

        Raises:
            StoreError: when the database cannot be written (disk full, read-only, locked).
        """
        rows: dict[str, list[tuple]] = {}
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
        except sqlite3.Error as error:
            raise StoreError(f"cannot write the store {self.path}: {error}") from error

    def close(self) -> None:
        """Close the connection (every write is already committed)."""
        self._connection.close()


class StoreSink(DynamicSink[Any]):
    """A Bytewax sink upserting records into the store; one connection per worker.

    Delivery: each batch is committed in ``write_batch``; with idempotent upserts a resumed
    flow that replays a batch leaves the same content (effectively exactly-once).
    """

    def __init__(self, path: str | Path, timeout_s: float = _BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.timeout_s = timeout_s
        open_store(self.path, timeout_s).close()  # fail at start-up, not in a worker

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StorePartition:
        """One writer per worker."""
        return _StorePartition(StoreWriter(self.path, self.timeout_s))


class _StorePartition(StatelessSinkPartition[Any]):
    def __init__(self, writer: StoreWriter):
        self._writer = writer

    def write_batch(self, items: list[Any]) -> None:
        self._writer.write(items)

    def close(self) -> None:
        self._writer.close()


class StoreReader:
    """Read-only queries over the store, for export and the dashboard; thread-safe.

    Raises:
        StoreError: when the file does not exist or is not a pairflow store.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"store {self.path} does not exist: run `pairflow replay` first")
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = _connect(self.path, readonly=True)
                connection.execute("SELECT 1 FROM bars LIMIT 1")
            except sqlite3.Error as error:
                message = f"{self.path} is not a readable pairflow store: {error}"
                raise StoreError(message) from error
            self._local.connection = connection
        return connection

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
            table: ``bars``, ``pairs``, ``alerts`` or ``deadletter``.
            where: equality filters on columns.
            time_range: ``[start, end)`` on the table's time column, µs, either may be None.
            order: the ordering column (default: the time column).
            limit: the most rows returned (the latest ones when ``descending``).
            descending: newest first.
        """
        if table not in KINDS:
            raise StoreError(f"unknown table {table!r}: choose one of {sorted(KINDS)}")
        cls = TABLES[KINDS[table]][1]
        columns = field_names(cls)
        time_column = "end" if table == "bars" else "ts"
        clauses, params = [], []
        for column, value in (where or {}).items():
            if column not in columns:
                raise StoreError(f"{table} has no column {column!r}")
            clauses.append(f'"{column}" = ?')
            params.append(value)
        start, end = time_range
        if start is not None:
            clauses.append(f'"{time_column}" >= ?')
            params.append(start)
        if end is not None:
            clauses.append(f'"{time_column}" < ?')
            params.append(end)
        sql = f"SELECT {', '.join(chr(34) + c + chr(34) for c in columns)} FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f' ORDER BY "{order or time_column}"' + (" DESC" if descending else "")
        if table == "bars" and order is None:
            sql += ", symbol, timeframe"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            cursor = self._connection().execute(sql, params)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read {self.path}: {error}") from error
        for row in cursor:
            yield dict(zip(columns, row, strict=True))

    def count(self, table: str, group_by: str) -> dict[str, int]:
        """Row counts of ``table`` grouped by one column."""
        if table not in KINDS:
            raise StoreError(f"unknown table {table!r}")
        sql = f'SELECT "{group_by}", COUNT(*) FROM {table} GROUP BY "{group_by}"'
        return dict(self._connection().execute(sql).fetchall())

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
