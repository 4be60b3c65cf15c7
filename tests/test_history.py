"""History at scale: candles as input, Parquet in and out, and bad input in big dumps.

Candles are made from the real spot tape by the plain reference aggregation (klines) or taken
as they are from the real candles in ``../shared/data/candles-2018-01-5m`` (OHLCV); Parquet
files are made by ``pairflow convert`` and ``pairflow export`` from real recordings.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from connectors.replay import inspect_file
from tests.helpers import (
    SHARED_DATA,
    SPOT_FILES,
    bar_mismatches,
    dead_letters,
    plain_bars,
    raw_trades,
    run_replay,
    store_bars,
)

pytestmark = pytest.mark.skipif(len(SPOT_FILES) != 4, reason="real spot tape not found")
CANDLES = SHARED_DATA / "candles-2018-01-5m"
ROOT = Path(__file__).resolve().parents[1]
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trades():
    return raw_trades(SPOT_FILES)


def kline_rows(bars: list[dict], micro: bool) -> list[str]:
    scale = 1 if micro else 1000
    return [f"{b['start'] // scale},{b['open']!r},{b['high']!r},{b['low']!r},{b['close']!r},"
            f"{b['volume']!r},{(b['end'] - 1) // scale},{b['quote_volume']!r},{b['trades']},"
            f"{b['taker_buy_volume']!r},0,0" for b in bars if b["trades"]]


def write_klines(path: Path, rows: list[str], header: bool, zipped: bool) -> Path:
    text = "\n".join(([KLINE_HEADER] if header else []) + rows) + "\n"
    if not zipped:
        path.write_text(text)
        return path
    target = path.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.name, text)
    return target


@pytest.mark.parametrize("timeframe,micro,header,zipped", [
    ("1s", True, True, False), ("1m", False, False, True)], ids=["1s-us-header", "1m-ms-zip"])
def test_klines_become_bars_and_pairs(tmp_path, trades, timeframe, micro, header, zipped):
    # Klines carry no trade ids.
    expected = {s: [{**b, "first_trade_id": None, "last_trade_id": None}
                    for b in plain_bars(trades[s], s, timeframe) if b["trades"]]
                for s in ("BTCUSDT", "ETHUSDT")}
    files = [write_klines(tmp_path / f"{s}-{timeframe}-2024-08-08.csv",
                          kline_rows(expected[s], micro), header, zipped) for s in expected]
    assert inspect_file(files[0]).layout == "klines_csv"
    db = tmp_path / "k.db"
    totals = run_replay(files, db, timeframes=timeframe, pairs="BTCUSDT/ETHUSDT",
                        window=60 if timeframe == "1s" else 10)
    for symbol, bars in expected.items():
        assert bar_mismatches(store_bars(db, symbol, timeframe), bars) == []
    assert totals[f"bars:{timeframe}"] == sum(len(b) for b in expected.values())
    with sqlite3.connect(db) as connection:
        ends = {e for e, in connection.execute("SELECT ts FROM pairs")}
        stats = connection.execute("SELECT count(*) FROM pairs WHERE zscore IS NOT NULL")
        assert stats.fetchone()[0] > 0
        gaps = connection.execute("SELECT count(*) FROM pairs WHERE reason LIKE '%feed gap%'")
        missing = gaps.fetchone()[0]
    both = {b["end"] for b in expected["BTCUSDT"]} & {b["end"] for b in expected["ETHUSDT"]}
    assert both <= ends
    # A leg without a candle at an end is a gap there (no candle is invented).
    assert missing == len(ends - both) - sum(1 for e in ends - both if e < min(both))


def test_ohlcv_candles_of_real_markets_as_they_are(tmp_path):
    # ZECBTC misses three 5-minute slots that ETHBTC has, the last one at the very end.
    files = [CANDLES / "ETHBTC-5m-2018-01.csv", CANDLES / "ZECBTC-5m-2018-01.csv"]
    db = tmp_path / "c.db"
    totals = run_replay(files, db, symbols=["ETHBTC", "ZECBTC"], timeframes="5m",
                        pairs="ETHBTC/ZECBTC", window=100)
    for path in files:
        symbol = path.name.split("-")[0]
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        stored = store_bars(db, symbol, "5m")
        assert [(b["start"], b["open"], b["high"], b["low"], b["close"], b["volume"])
                for b in stored] == [
            (int(r["open_time"]) * 1000, float(r["open"]), float(r["high"]), float(r["low"]),
             float(r["close"]), float(r["volume"])) for r in rows]
        assert all(b["trades"] is None and b["quote_volume"] is None for b in stored)
    assert totals["bars:5m"] == sum(len(open(f).readlines()) - 1 for f in files)
    with sqlite3.connect(db) as connection:
        reasons = dict(connection.execute(
            "SELECT reason, count(*) FROM pairs WHERE reason LIKE '%bar: feed gap' "
            "GROUP BY reason"))
    # The pair waits at the missing slots, it invents nothing; the slot at the end stays open
    # (ZECBTC never sends a later bar).
    assert reasons == {"no ZECBTC bar: feed gap": 2}


def test_candles_need_their_interval_among_the_timeframes(tmp_path):
    done = cli("replay", str(CANDLES / "ETHBTC-5m-2018-01.csv"), "--symbols", "ETHBTC",
               "--timeframes", "1m", "--store", str(tmp_path / "x.db"))
    assert done.returncode == 2 and "5m candles" in done.stderr
    assert "Traceback" not in done.stderr


def test_convert_to_parquet_then_replay_gives_the_same_store(tmp_path):
    out = tmp_path / "spot.parquet"
    done = cli("convert", *map(str, SPOT_FILES), "--symbols", "BTCUSDT,ETHUSDT", "--out",
               str(out))
    assert done.returncode == 0, done.stderr
    assert inspect_file(out).layout == "ticks_parquet"
    run_replay([out], tmp_path / "pq.db", pairs="BTCUSDT/ETHUSDT", window=60)
    run_replay(SPOT_FILES, tmp_path / "rec.db", pairs="BTCUSDT/ETHUSDT", window=60)
    for table in ("bars", "pairs", "alerts"):
        with sqlite3.connect(tmp_path / "pq.db") as a, sqlite3.connect(tmp_path / "rec.db") as b:
            query = f"SELECT * FROM {table} ORDER BY 1, 2, 3"
            assert a.execute(query).fetchall() == b.execute(query).fetchall()


def test_export_parquet_reads_back_with_the_record_types(tmp_path):
    db = tmp_path / "e.db"
    run_replay(SPOT_FILES, db, pairs="BTCUSDT/ETHUSDT", window=60)
    out = tmp_path / "pairs.parquet"
    done = cli("export", "--store", str(db), "--kind", "pairs", "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT pair, timeframe, ts, zscore FROM pairs").fetchall()
    assert table.num_rows == len(rows)
    assert str(table.schema.field("ts").type) == "int64"
    assert str(table.schema.field("zscore").type) == "double"
    got = list(zip(*(table.column(c).to_pylist() for c in ("pair", "timeframe", "ts", "zscore")),
                   strict=True))
    assert sorted(got, key=repr) == sorted(rows, key=repr)
    bars = tmp_path / "bars.parquet"
    assert cli("export", "--store", str(db), "--kind", "bars", "--out", str(bars)).returncode == 0
    # Exported bars replay as candles: the same bars, and the same pair statistics.
    assert inspect_file(bars).layout == "bars_parquet"
    again = tmp_path / "again.db"
    run_replay([bars], again, pairs="BTCUSDT/ETHUSDT", window=60)
    for table in ("bars", "pairs"):
        with sqlite3.connect(db) as a, sqlite3.connect(again) as b:
            query = f"SELECT * FROM {table} ORDER BY 1, 2, 3"
            assert a.execute(query).fetchall() == b.execute(query).fetchall()


# ------------------------------------------------------------------------------ bad input


def trades_csv(trades, symbol: str) -> list[str]:
    return [f"{t.trade_id},{t.price!r},{t.qty!r},0,{t.ts_us // 1000},"
            f"{'true' if t.buyer_is_maker else 'false'},true" for t in trades[symbol]]


def test_identical_garbage_at_different_places_stays_distinct(tmp_path, trades):
    rows = trades_csv(trades, "BTCUSDT")
    garbage = "this is not a trade"
    at = sorted({1 + (i * 997) % len(rows) for i in range(121)}, reverse=True)
    for index in at:
        rows.insert(index, garbage)
    path = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    path.write_text("\n".join(rows) + "\n")
    db = tmp_path / "g.db"
    totals = run_replay([path], db, symbols=["BTCUSDT"])
    letters = dead_letters(db)
    assert len(letters) == len(at) == totals["dead:bad_row"]
    lines = [i + 1 for i, row in enumerate(rows) if row == garbage]
    assert sorted(int(d["origin"].rpartition(":")[2]) for d in letters) == lines
    assert all(d["origin"].startswith(str(path.resolve())) for d in letters)
    # The same file again: no dead letter twice.
    run_replay([path], db, symbols=["BTCUSDT"])
    assert len(dead_letters(db)) == len(at)
    assert bar_mismatches(store_bars(db, "BTCUSDT", "1m"),
                          plain_bars(trades["BTCUSDT"], "BTCUSDT", "1m")) == []


def test_unbalanced_quote_in_a_large_dump_costs_only_its_row(tmp_path, trades):
    rows = trades_csv(trades, "BTCUSDT")
    bad_at = len(rows) // 2
    trade_id, price, rest = rows[bad_at].split(",", 2)
    rows[bad_at] = f'{trade_id},"{price},{rest}'
    path = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    path.write_text("\n".join(rows) + "\n")
    db = tmp_path / "q.db"
    totals = run_replay([path], db, symbols=["BTCUSDT"])
    assert totals["ticks_read"] == len(rows) - 1
    [letter] = dead_letters(db)
    assert letter["reason"].startswith("bad_type") and letter["origin"].endswith(f":{bad_at + 1}")


def test_zip_cut_short_is_an_error_after_its_good_part(tmp_path, trades):
    rows = trades_csv(trades, "BTCUSDT")
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-trades-2024-08-08.csv", "\n".join(rows) + "\n")
    data = whole.read_bytes()
    cut = tmp_path / "BTCUSDT-trades-2024-08-08.zip"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    db = tmp_path / "z.db"
    done = cli("replay", str(cut), "--symbols", "BTCUSDT", "--timeframes", "1m", "--store",
               str(db))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(cut) in done.stderr and "cut short" in done.stderr
    assert "bytes" in done.stderr
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM bars").fetchone()[0] > 0


def test_csv_parsed_in_many_blocks_keeps_line_numbers(tmp_path, trades, monkeypatch):
    # Blocks of a few kB: line numbers and header handling must carry across block edges.
    import connectors.replay.csv_ticks as csv_ticks

    monkeypatch.setattr(csv_ticks, "CSV_BLOCK_BYTES", 4096)
    rows = trades_csv(trades, "BTCUSDT")
    for index in (3000, 1500, 10):
        rows.insert(index, "1,abc,1,0,1,true,true")
    # Blank lines (no dead letter) before a typed row with a bad value: rows must stay lines.
    rows[2000:2000] = ["", "", ""]
    rows.insert(2100, "2,0.0,1,0,1723161255342,true,true")
    text = io.StringIO()
    text.write("id,price,qty,quote_qty,time,is_buyer_maker,is_best_match\n")
    text.write("\n".join(rows) + "\n")
    path = tmp_path / "BTCUSDT-trades-2024-08-08.csv"
    path.write_text(text.getvalue())
    db = tmp_path / "b.db"
    run_replay([path], db, symbols=["BTCUSDT"])
    numbers = sorted(int(d["origin"].rpartition(":")[2]) for d in dead_letters(db))
    assert numbers == [i + 2 for i, row in enumerate(rows) if row.startswith(("1,abc", "2,0.0"))]
    assert bar_mismatches(store_bars(db, "BTCUSDT", "1s"),
                          plain_bars(trades["BTCUSDT"], "BTCUSDT", "1s")) == []


def test_bad_candles_are_dead_letters_with_their_lines(tmp_path):
    rows = (CANDLES / "ETHBTC-5m-2018-01.csv").read_text().splitlines()
    header, good = rows[0], rows[1:200]
    t = int(good[50].split(",")[0])
    bad = {
        f"{t},abc,1,1,1,1": "bad_type",
        f"{t},inf,1,1,1,1": "non_finite",
        f"{t},0.1,0.2,0.05,-0.1,1": "non_positive",
        f"{t},0.1,0.2,0.15,0.1,1": "bad_value",  # low above open
        f"{t + 1},0.1,0.2,0.05,0.1,1": "bad_value",  # not on a 5-minute boundary
        f"{t},0.1,0.2": "bad_row",
    }
    mixed = good[:100] + list(bad) + good[100:]
    path = tmp_path / "ETHBTC-5m-2018-01.csv"
    path.write_text("\n".join([header, *mixed]) + "\n")
    db = tmp_path / "bad.db"
    totals = run_replay([path], db, symbols=["ETHBTC"], timeframes="5m")
    letters = dead_letters(db)
    assert sorted((d["raw"], d["reason"].partition(":")[0]) for d in letters) == sorted(
        bad.items())
    assert {int(d["origin"].rpartition(":")[2]) for d in letters} == set(range(102, 108))
    assert totals["bars:5m"] == len(good)


def test_overlapping_candle_files_give_each_end_once(tmp_path):
    rows = (CANDLES / "ETHBTC-5m-2018-01.csv").read_text().splitlines()
    first = tmp_path / "ETHBTC-5m-2018-01-a.csv"
    second = tmp_path / "ETHBTC-5m-2018-01-b.csv"
    first.write_text("\n".join([rows[0], *rows[1:300]]) + "\n")
    second.write_text("\n".join([rows[0], *rows[200:400]]) + "\n")
    db = tmp_path / "o.db"
    totals = run_replay([second, first], db, symbols=["ETHBTC"], timeframes="5m")
    assert totals["bars:5m"] == 399 and totals["skipped:duplicate_candle"] == 100
    assert [b["start"] for b in store_bars(db, "ETHBTC", "5m")] == [
        int(r.split(",")[0]) * 1000 for r in rows[1:400]]


def test_weekly_klines_are_refused_with_a_reason(tmp_path):
    path = tmp_path / "BTCUSDT-1w-2024-08.csv"
    path.write_text("1722816000000,1,2,0.5,1.5,10,1723420799999,15,3,5,7,0\n")
    done = cli("replay", str(path), "--symbols", "BTCUSDT", "--store", str(tmp_path / "w.db"))
    assert done.returncode == 2 and "1w candles are not supported" in done.stderr
