"""Store faults: disk full and a database locked by another process end with one clear line,
exit code 2, and a database that passes SQLite's integrity check."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.store import StoreWriter
from pairflow.errors import StoreError
from pairflow.records import Bar

ROOT = Path(__file__).resolve().parents[1]
TAPE = sorted(str(p) for p in (ROOT / "pairflow" / "data").glob("*.gz"))


def _replay(store: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", *TAPE, "--symbols", "BTCUSDT,ETHUSDT",
         "--pairs", "BTCUSDT/ETHUSDT", "--timeframes", "1s,1m", "--store", str(store)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def _integrity(store: Path) -> str:
    connection = sqlite3.connect(store)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def _one_clear_line(stderr: str, expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and expected in lines[-1], stderr
    assert "Traceback" not in stderr and "panicked" not in stderr, stderr


def _bar(start: int) -> Bar:
    return Bar("BTCUSDT", "1s", start, start + 1_000_000, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1,
               0.0, 1, 1)


def test_a_full_database_raises_a_store_error_and_stays_intact(tmp_path):
    store = tmp_path / "full.db"
    writer = StoreWriter(store)
    writer.write([_bar(0)])
    # SQLite's own page budget stands in for a full disk: the same SQLITE_FULL error.
    writer._connection.execute("PRAGMA max_page_count = 8")
    with pytest.raises(StoreError, match="full"):
        writer.write([_bar(i * 1_000_000) for i in range(1, 20_000)])
    writer.close()
    assert _integrity(store) == "ok"
    assert sqlite3.connect(store).execute("SELECT COUNT(*) FROM bars").fetchone()[0] == 1


def test_replay_onto_a_full_disk_fails_with_one_line(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(small)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = _replay(small / "store.db")
        assert result.returncode == 2
        _one_clear_line(result.stderr, "database or disk is full")
        assert _integrity(small / "store.db") == "ok"
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_store_locked_by_another_process_fails_with_one_line(tmp_path):
    store = tmp_path / "locked.db"
    StoreWriter(store).close()
    holder = sqlite3.connect(store)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = _replay(store, {"PAIRFLOW_STORE_TIMEOUT_S": "1"})
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 2
    _one_clear_line(result.stderr, "locked")
    assert _integrity(store) == "ok"


def test_a_store_of_an_earlier_version_reads_with_its_missing_tables_and_columns(tmp_path):
    """Only a writer adds tables and columns: a reader of an older store sees them empty/null."""
    from connectors.store import StoreReader

    store = tmp_path / "old.db"
    writer = StoreWriter(store)
    writer.write([_bar(0), _bar(1_000_000)])
    writer.close()
    with sqlite3.connect(store) as db:  # as a store written before quotes and the universe scan
        db.execute("DROP TABLE quotes")
        db.execute("DROP TABLE scan")
        db.execute('ALTER TABLE bars DROP COLUMN "taker_buy_volume"')
    reader = StoreReader(store)
    assert list(reader.query("quotes")) == []
    assert reader.latest_per("scan", "pair") == [] and reader.last_rowid("scan") == 0
    assert reader.rows_after("quotes", 0, 10) == (0, [])
    bars = list(reader.query("bars"))
    assert [b["start"] for b in bars] == [0, 1_000_000]
    assert {b["taker_buy_volume"] for b in bars} == {None}
    assert reader.last_rowid("bars") == 2 and len(reader.rows_after("bars", 0, 10)[1]) == 2
    # A writer opening the store brings it up to date; a new reader then reads the column.
    writer = StoreWriter(store)
    writer.write([_bar(2_000_000)])
    writer.close()
    assert [b["taker_buy_volume"] for b in StoreReader(store).query("bars")] == [None, None, 0.0]


def test_a_store_keyed_by_bar_start_is_still_written_without_duplicates(tmp_path):
    """Stores made before bars were keyed on their end keep their key and index: upserts hold."""
    store = tmp_path / "old-key.db"
    writer = StoreWriter(store)
    writer.close()
    with sqlite3.connect(store) as db:  # the layout of a store written before
        columns = [row[1] for row in db.execute("PRAGMA table_info(bars)")]
        quoted = ", ".join(f'"{c}"' for c in columns)
        db.execute("DROP TABLE bars")
        db.execute(f"CREATE TABLE bars ({quoted}, PRIMARY KEY (symbol, timeframe, start))")
        db.execute("CREATE INDEX bars_by_end ON bars (symbol, timeframe, end)")
    writer = StoreWriter(store)
    writer.write([_bar(0), _bar(1_000_000)])
    writer.write([_bar(1_000_000), _bar(2_000_000)])  # a replay over the same window again
    writer.close()
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT start FROM bars ORDER BY start").fetchall() == [
            (0,), (1_000_000,), (2_000_000,)]


def _open_and_write(path: str, start, results, index: int) -> None:
    start.wait()
    try:
        writer = StoreWriter(path)
        writer.write([Bar(f"SYM{index}USDT", "1s", j * 1_000_000, (j + 1) * 1_000_000, 1.0, 2.0,
                          0.5, 1.5, 10.0, 100.0, 10.0, 5, 3.0, j, j) for j in range(100)])
        results.put("ok")
    except StoreError as error:
        results.put(str(error))


def test_two_processes_opening_a_new_store_at_once_both_write(tmp_path):
    # A cluster's workers open the same new store together: both switch it to WAL, and SQLite
    # refuses the second switch at once; that must wait and go on, not end the worker.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for trial in range(12):
        path = str(tmp_path / f"s{trial}.db")
        start, results = context.Event(), context.Queue()
        processes = [context.Process(target=_open_and_write, args=(path, start, results, i))
                     for i in range(2)]
        for process in processes:
            process.start()
        start.set()
        outcomes = [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join()
        assert outcomes == ["ok", "ok"], (trial, outcomes)
        with sqlite3.connect(path) as connection:
            assert connection.execute("SELECT count(*) FROM bars").fetchone()[0] == 200
