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


@pytest.fixture
def cli(monkeypatch, capsys):
    """``pairflow`` in this process (the console entry point): (exit code, stderr)."""
    from app.cli import main

    for name in [n for n in os.environ if n.startswith("PAIRFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", ["pairflow", *map(str, args)])
        with pytest.raises(SystemExit) as done:
            main()
        return done.value.code or 0, capsys.readouterr().err

    return run


def test_csv_and_parquet_hold_the_same_rows(tmp_path, cli):
    args = ["scan", *FILES, "--timeframe", "5m", "--window", "100", "--every", "144"]
    code, err = cli(*args, "--out", tmp_path / "s.csv")
    assert code == 0, err
    assert cli(*args, "--out", tmp_path / "s.parquet")[0] == 0
    with open(tmp_path / "s.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    table = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert list(rows[0]) == field_names(ScanRecord) == list(table[0])
    assert err.strip() == f"{len(rows)} rows to {tmp_path / 's.csv'}"
    assert {r["pair"] for r in rows} == {"ADABTC/DASHBTC", "ADABTC/ETCBTC", "DASHBTC/ETCBTC"}
    assert len(rows) == len(table) and len(rows) % 3 == 0
    for text, value in zip(rows, table, strict=True):
        assert iso_to_us(text["ts"]) == value["ts"]  # µs, as in every record
        assert text["pair"] == value["pair"] and int(text["n"]) == value["n"]
        for field in ("beta", "eg_qvalue", "hurst"):
            assert (text[field] == "" and value[field] is None) or \
                float(text[field]) == value[field]


def test_universe_order_names_the_pairs_and_toml_and_env_set_the_scan(tmp_path, cli):
    config = tmp_path / "pairflow.toml"
    config.write_text('universe = ["etcbtc", "adabtc"]\nscan_window = 50\nwindow = 999\n'
                      'symbols = ["X"]\n')  # keys of other commands are not the scan's
    code, err = cli("scan", *FILES, "--timeframe", "5m", "--out", tmp_path / "s.csv",
                    "--config", config, env={"PAIRFLOW_SCAN_EVERY": "288"})
    assert code == 0, err
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
    (["--timeframe", "5m", "--universe", "ADABTC,NOPEBTC"], "no bars of universe symbol"),
    (["--timeframe", "5m", "--universe", "ADABTC"], "at least two symbols"),
    (["--timeframe", "7x"], "unknown timeframe"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, cli, args, message):
    code, err = cli("scan", *FILES, *args, "--out", tmp_path / "s.csv")
    assert code == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert message in err, err
    assert not (tmp_path / "s.csv").exists()


def test_bad_files_and_outputs_are_one_line_and_exit_2(tmp_path, cli):
    cases = [
        (["scan", tmp_path / "missing-5m-x.csv", "--out", tmp_path / "s.csv"], "does not exist"),
        (["scan", *FILES, "--out", tmp_path / "s.txt"], "name a .csv or .parquet file"),
        (["scan", *FILES, "--out", tmp_path / "no" / "s.csv"], "does not exist"),
    ]
    if SPOT.is_dir():
        cases.append((["scan", SPOT / "btcusdt_20240808.gz", SPOT / "ethusdt_20240808.gz",
                       "--out", tmp_path / "s.csv"], "name the universe with --universe"))
    for args, message in cases:
        code, err = cli(*args)
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
        assert message in err, err


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


@pytest.mark.skipif(not SPOT.is_dir(), reason="real spot tape not found")
def test_scan_of_trades_agrees_with_the_watched_pair_of_a_replay(tmp_path):
    """The same recording through ``pairflow replay`` (watched pair, per-bar PairStats) and
    ``pairflow scan`` (universe of the two legs): at each scan time the scan row equals the
    PairStats of its ``as_of`` bar — the same bars, aligned the same way, the same tests."""
    tapes = sorted(SPOT.glob("*.gz"))
    replay = pairflow("replay", *tapes, "--symbols", "ETHUSDT,BTCUSDT", "--pairs",
                      "ETHUSDT/BTCUSDT", "--timeframes", "1s", "--window", "120",
                      "--store", tmp_path / "r.db")
    assert replay.returncode == 0, replay.stderr
    scan = pairflow("scan", *tapes, "--universe", "ETHUSDT,BTCUSDT", "--timeframe", "1s",
                    "--window", "120", "--every", "30", "--out", tmp_path / "s.csv")
    assert scan.returncode == 0, scan.stderr
    with open(tmp_path / "s.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["n"] == "120"]
    assert len(rows) >= 15
    with sqlite3.connect(tmp_path / "r.db") as db:
        db.row_factory = sqlite3.Row
        for row in rows:
            stats = db.execute("SELECT * FROM pairs WHERE pair = ? AND ts = ?",
                               (row["pair"], iso_to_us(row["as_of"]))).fetchone()
            for field, theirs in (("beta", "beta"), ("zscore", "zscore"), ("corr", "corr"),
                                  ("half_life", "half_life"), ("eg_stat", "eg_stat"),
                                  ("eg_pvalue_yx", "eg_pvalue")):
                want = stats[theirs]
                got = None if row[field] == "" else float(row[field])
                assert (got is None) == (want is None), (field, row, dict(stats))
                assert want is None or abs(got - want) <= 1e-9 * max(1.0, abs(want)), field
