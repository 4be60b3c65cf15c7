"""``pairflow scan``: its output files, its settings (flags, PAIRFLOW_*, TOML) and its errors;
the ``scan`` store table and its retention."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from connectors.store import StoreWriter
from pairflow.config import load_config
from pairflow.errors import ConfigError
from pairflow.records import ScanRecord, field_names, iso_to_us
from pairflow.universe import ScanSettings

PAIRFLOW = Path(sys.executable).with_name("pairflow")
CANDLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "candles-2018-01-5m"
FILES = sorted(str(p) for p in CANDLES.glob("*BTC-5m-2018-01.csv"))[:3]  # ADA, DASH, ETC
SPOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-spot-2024-08-08"

pytestmark = pytest.mark.skipif(len(FILES) != 3, reason="candles not found")


def pairflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    return subprocess.run([str(PAIRFLOW), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**base, "COLUMNS": "200", **(env or {})})


def test_csv_and_parquet_hold_the_same_rows(tmp_path):
    args = ["scan", *FILES, "--timeframe", "5m", "--window", "100", "--every", "144"]
    done = pairflow(*args, "--out", tmp_path / "s.csv")
    assert done.returncode == 0, done.stderr
    assert pairflow(*args, "--out", tmp_path / "s.parquet").returncode == 0
    with open(tmp_path / "s.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert list(rows[0]) == field_names(ScanRecord) == list(table[0])
    assert done.stderr.strip() == f"{len(rows)} rows to {tmp_path / 's.csv'}"
    assert {r["pair"] for r in rows} == {"ADABTC/DASHBTC", "ADABTC/ETCBTC", "DASHBTC/ETCBTC"}
    assert len(rows) == len(table) and len(rows) % 3 == 0
    for text, value in zip(rows, table, strict=True):
        assert iso_to_us(text["ts"]) == int(value["ts"].timestamp() * 1_000_000)
        assert text["pair"] == value["pair"] and int(text["n"]) == value["n"]
        for field in ("beta", "eg_qvalue", "hurst"):
            assert (text[field] == "" and value[field] is None) or \
                float(text[field]) == value[field]


def test_universe_order_names_the_pairs_and_toml_and_env_set_the_scan(tmp_path):
    config = tmp_path / "pairflow.toml"
    config.write_text('universe = ["etcbtc", "adabtc"]\nscan_window = 50\nwindow = 999\n'
                      'symbols = ["X"]\n')  # keys of other commands are not the scan's
    done = pairflow("scan", *FILES, "--timeframe", "5m", "--out", tmp_path / "s.csv",
                    "--config", config, env={"PAIRFLOW_SCAN_EVERY": "288"})
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "s.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["pair"] for r in rows} == {"ETCBTC/ADABTC"}
    assert {r["window"] for r in rows} == {"50"}
    assert all(iso_to_us(r["ts"]) % (288 * 300_000_000) == 0 for r in rows)


@pytest.mark.parametrize(("args", "message"), [
    (["--timeframe", "1m"], "5m candles do not make 1m bars"),
    (["--timeframe", "5m", "--window", "5"], "window must be at least 10 bars"),
    (["--timeframe", "5m", "--vr-lag", "300"], "vr_lag must be between 2"),
    (["--timeframe", "5m", "--every", "0"], "scan_every must be a whole number"),
    (["--timeframe", "5m", "--universe", "ADABTC,NOPEBTC"], "no candles of universe symbol"),
    (["--timeframe", "5m", "--universe", "ADABTC"], "at least two symbols"),
    (["--timeframe", "7x"], "unknown timeframe"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    done = pairflow("scan", *FILES, *args, "--out", tmp_path / "s.csv")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
    assert message in done.stderr, done.stderr
    assert not (tmp_path / "s.csv").exists()


def test_bad_files_and_outputs_are_one_line_and_exit_2(tmp_path):
    cases = [
        (["scan", tmp_path / "missing-5m-x.csv", "--out", tmp_path / "s.csv"], "does not exist"),
        (["scan", *FILES, "--out", tmp_path / "s.txt"], "name a .csv or .parquet file"),
        (["scan", *FILES, "--out", tmp_path / "no" / "s.csv"], "does not exist"),
    ]
    if SPOT.is_dir():
        cases.append((["scan", SPOT / "btcusdt_20240808.gz", SPOT / "ethusdt_20240808.gz",
                       "--out", tmp_path / "s.csv"], "reads candles"))
    for args, message in cases:
        done = pairflow(*args)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert message in done.stderr, done.stderr


def test_config_carries_and_checks_the_scan_settings():
    config = load_config({"symbols": "BTCUSDT,ETHUSDT", "source": "live"},
                         env={"PAIRFLOW_UNIVERSE": "btcusdt, ethusdt,solusdt",
                              "PAIRFLOW_SCAN_WINDOW": "120", "PAIRFLOW_LAG": "2"})
    assert config.scan_settings == ScanSettings(universe=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                                                scan_window=120, lag=2)
    for given, message in [({"hurst_max_lag": 2}, "hurst_max_lag must be between 3"),
                           ({"universe": "BTCUSDT,BTCUSDT"}, "repeats a symbol"),
                           ({"scan_timeframe": "1y"}, "unknown timeframe"),
                           ({"scan_retention_days": 0}, "scan_retention_days must be > 0")]:
        with pytest.raises(ConfigError, match=message):
            load_config({"symbols": "BTCUSDT", "source": "live", **given}, env={})


def _scan(pair: str, ts: int) -> ScanRecord:
    return ScanRecord(pair=pair, timeframe="1m", ts=ts, as_of=ts, window=240, n=240,
                      beta=1.0, zscore=0.5, corr=0.3, half_life=12.0, eg_stat=-3.5,
                      eg_pvalue_yx=0.03, eg_pvalue_xy=0.04, eg_pvalue=0.04, eg_qvalue=0.08,
                      variance_ratio=0.5, hurst=0.3, reason=None)


def test_store_keeps_scan_rows_for_the_retention_only(tmp_path):
    hour = 3_600_000_000
    writer = StoreWriter(tmp_path / "s.db", scan_retention_s=2 * 3600)
    for t in range(5):
        writer.write([_scan("AAA/BBB", t * hour), _scan("AAA/CCC", t * hour)])
    writer.write([_scan("AAA/BBB", 4 * hour)])  # idempotent upsert
    writer.close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        kept = db.execute("SELECT pair, ts FROM scan ORDER BY ts, pair").fetchall()
    assert kept == [(p, t * hour) for t in (2, 3, 4) for p in ("AAA/BBB", "AAA/CCC")]
