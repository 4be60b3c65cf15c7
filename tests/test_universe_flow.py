"""The universe scan inside the dataflow: replays with ``--universe`` against ``pairflow scan``.

The scan rows a replay stores must be those ``pairflow scan`` computes from the same files:
same scan times and pairs, the same statistics to the bit (both feed the same closes to the
same engine; the flow only gathers them per bar end across symbols). ``pairflow scan`` itself
is checked against the exact oracle in ``tests/analytics``.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.scan import run_scan
from pairflow.config import load_config
from pairflow.errors import ConfigError
from pairflow.records import ScanRecord, field_names
from pairflow.universe import ScanSettings
from pairflow.universe.gather import UniverseGather
from tests.helpers import SHARED_DATA, SPOT_FILES, run_replay

CANDLE_FILES = sorted((SHARED_DATA / "candles-2018-01-5m").glob("*.csv"))
CANDLE_SYMBOLS = tuple(sorted(path.name.split("-")[0] for path in CANDLE_FILES))
FIELDS = field_names(ScanRecord)
KEEP_ALL = 1_000_000.0  # days: the store's retention must not trim what is compared


def stored_scans(db: Path) -> list[tuple]:
    """The store's scan rows in (ts, pair) order, as tuples of :class:`ScanRecord` fields."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        columns = ", ".join(f'"{name}"' for name in FIELDS)
        return connection.execute(f"SELECT {columns} FROM scan ORDER BY ts, pair").fetchall()


def offline_scans(files: list[Path], settings: ScanSettings) -> list[tuple]:
    """``pairflow scan``'s rows of the same files, in (ts, pair) order."""
    rows = [tuple(row[name] for name in FIELDS) for row in run_scan(files, settings)]
    return sorted(rows, key=lambda row: (row[FIELDS.index("ts")], row[0]))


def assert_same_scans(stored: list[tuple], offline: list[tuple]) -> None:
    assert [(r[0], r[2]) for r in stored] == [(r[0], r[2]) for r in offline]
    for got, want in zip(stored, offline, strict=True):
        for name, a, b in zip(FIELDS, got, want, strict=True):
            same = a == b or (isinstance(a, float) and isinstance(b, float)
                              and math.isclose(a, b, rel_tol=0, abs_tol=1e-12))
            assert same, f"{got[0]} at {got[2]}: {name} {a!r} != {b!r}"


def test_spot_tape_universe_matches_offline_scan(tmp_path):
    """``pairflow replay --universe`` alone (no --symbols), trades of two symbols at 1 s bars,
    on two workers (the single-key step gathers both); lags set through PAIRFLOW_*."""
    store = tmp_path / "spot.db"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", *map(str, SPOT_FILES),
         "--universe", "BTCUSDT,ETHUSDT", "--timeframes", "1s,1m", "--scan-timeframe", "1s",
         "--scan-window", "30", "--scan-every", "10", "--workers", "2", "--store", str(store)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PAIRFLOW_VR_LAG": "3", "PAIRFLOW_HURST_MAX_LAG": "8"})
    assert done.returncode == 0, done.stderr
    stored = stored_scans(store)
    offline = offline_scans(SPOT_FILES, ScanSettings(
        universe=("BTCUSDT", "ETHUSDT"), scan_timeframe="1s", scan_window=30, scan_every=10,
        vr_lag=3, hurst_max_lag=8))
    assert len(stored) > 60 and {row[0] for row in stored} == {"BTCUSDT/ETHUSDT"}
    assert sum(row[FIELDS.index("beta")] is not None for row in stored) > 55
    assert re.search(rf"scan records\s+{len(stored):,}\b", done.stdout), done.stdout
    assert_same_scans(stored, offline)


def test_candle_universe_matches_offline_scan(tmp_path):
    """Ten symbols' 5 m candles with missing rows: 45 pairs at every scan time."""
    store = tmp_path / "candles.db"
    scan = {"universe": ",".join(CANDLE_SYMBOLS), "scan_timeframe": "5m", "scan_window": 48,
            "scan_every": 12}
    totals = run_replay(CANDLE_FILES, store, symbols=(), timeframes="5m",
                        scan_retention_days=KEEP_ALL, **scan)
    stored = stored_scans(store)
    offline = offline_scans(CANDLE_FILES, ScanSettings(
        **{**scan, "universe": CANDLE_SYMBOLS}))
    assert len({row[0] for row in stored}) == 45
    assert sum(row[FIELDS.index("eg_qvalue")] is not None for row in stored) > 40 * 45
    assert totals["scans"] == len(stored) == 45 * len({row[2] for row in stored})
    assert_same_scans(stored, offline)


def test_an_end_waits_until_every_symbol_has_passed_it():
    """An end is pushed once every symbol has sent a bar at or after it, or at the input's end."""
    settings = ScanSettings(scan_timeframe="1m", scan_window=10, scan_every=1, vr_lag=2,
                            hurst_max_lag=3, lag=0)
    gather = UniverseGather(("AAA", "BBB", "CCC"), settings)
    minute = 60_000_000
    bars = [(symbol, k * minute, 1.0 + k / 100) for k in range(1, 4) for symbol in ("AAA", "BBB")]
    assert gather.add(bars) == []  # CCC has sent nothing yet
    # CCC's first bar, at minute 2, passes minute 1 too (CCC has no bar there: NaN)
    assert sorted({r.ts for r in gather.add([("CCC", 2 * minute, 3.0)])}) == [minute, 2 * minute]
    assert gather.add([("AAA", 5 * minute, 1.1)]) == []  # BBB and CCC are at minutes 3 and 2
    # no symbol has a bar at minute 4: its scan is made on the history before it
    done = gather.add([("BBB", 5 * minute, 2.0), ("CCC", 5 * minute, 3.1)])
    assert sorted({r.ts for r in done}) == [3 * minute, 4 * minute, 5 * minute]
    assert gather.add([("AAA", 6 * minute, 1.2)]) == []
    assert {r.ts for r in gather.finish()} == {6 * minute}
    assert gather.add([("BBB", 6 * minute, 2.1)]) == [] and gather.dropped == 1


def test_scan_timeframe_must_be_a_bar_timeframe(tmp_path):
    from flows.pairs import build_flow

    config = load_config({"source": "replay", "files": [str(SPOT_FILES[0])],
                          "universe": "BTCUSDT,ETHUSDT", "timeframes": "1s",
                          "store": str(tmp_path / "s.db")}, env={})
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    with pytest.raises(ConfigError, match="add 1m to --timeframes"):
        build_flow(config)


def test_replay_refuses_top_k():
    done = subprocess.run([sys.executable, "-m", "app.cli", "replay", str(SPOT_FILES[0]),
                           "--universe", "top:5"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "for `pairflow live`" in done.stderr


def test_a_symbol_that_never_sends_holds_at_most_max_pending_ends():
    from pairflow.pairs import MAX_PENDING

    settings = ScanSettings(scan_timeframe="1s", scan_window=10, scan_every=1000, vr_lag=2,
                            hurst_max_lag=3, lag=0)
    gather = UniverseGather(("AAA", "BBB"), settings)
    second = 1_000_000
    assert gather.add([("AAA", k * second, 1.0) for k in range(1, MAX_PENDING + 1)]) == []
    # 1000 ends too many: the oldest 1000 go without BBB (its close NaN), scanned at 1000 s
    released = gather.add([("AAA", k * second, 1.0)
                           for k in range(MAX_PENDING + 1, MAX_PENDING + 1001)])
    assert [(r.ts, r.n, r.reason) for r in released] == [(1000 * second, 0, "n < window")]
    last_scan = (MAX_PENDING + 1000) // 1000
    assert {r.ts for r in gather.finish()} == {k * 1000 * second
                                               for k in range(2, last_scan + 1)}
