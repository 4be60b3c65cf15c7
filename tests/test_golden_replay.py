"""Golden test: the real spot tape through the real flow equals a plain, independent aggregation.

Every 1s/1m/5m bar of BTCUSDT and ETHUSDT from ``../shared/data/binance-spot-2024-08-08`` is
compared with :func:`tests.helpers.plain_bars` (stdlib json, Python loops): OHLC, counts and ids
exact, volumes and VWAP to 1e-9 relative. The replay runs once per module.
"""

from __future__ import annotations

import csv
import io
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pairflow.records import Bar, field_names, iso_to_us
from tests.helpers import (
    SPOT_FILES,
    SYMBOLS,
    bar_mismatches,
    plain_bars,
    raw_trades,
    run_replay,
    store_bars,
)

pytestmark = pytest.mark.skipif(len(SPOT_FILES) != 4, reason="real spot tape not found")

TIMEFRAMES = ("1s", "1m", "5m")
ISO_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PAIRFLOW = Path(sys.executable).with_name("pairflow")


@pytest.fixture(scope="module")
def reference() -> dict[str, list]:
    return raw_trades(SPOT_FILES)


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> tuple[Path, dict]:
    files = list(SPOT_FILES)
    random.Random(20240808).shuffle(files)
    if files == SPOT_FILES:  # make sure the order really differs from the sorted one
        files.reverse()
    db = tmp_path_factory.mktemp("golden") / "golden.db"
    totals = run_replay(files, db, timeframes="1s,1m,5m")
    return db, totals


def test_reference_matches_data_readme(reference):
    # The independent reader agrees with ../shared/data/README.md before it judges anything.
    assert len(reference["BTCUSDT"]) == 19_904
    assert len(reference["ETHUSDT"]) == 14_515
    for trades in reference.values():
        ids = sorted(t.trade_id for t in trades)
        assert ids == list(range(ids[0], ids[-1] + 1))  # complete tape, no duplicates


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_bar_equals_plain_aggregation(golden, reference, symbol, timeframe):
    db, _ = golden
    expected = plain_bars(reference[symbol], symbol, timeframe)
    actual = store_bars(db, symbol, timeframe)
    assert bar_mismatches(actual, expected) == []
    # Nothing before the first trade's window or after the last one's.
    assert actual[0]["trades"] > 0 and actual[-1]["trades"] > 0


def test_quiet_windows_are_explicit_zero_trade_bars(golden, reference):
    db, _ = golden
    quiet = [b for b in store_bars(db, "ETHUSDT", "1s") if b["trades"] == 0]
    assert len(quiet) > 10  # ETHUSDT has dozens of silent seconds in this tape
    bars = store_bars(db, "ETHUSDT", "1s")
    for previous, bar in zip(bars, bars[1:], strict=False):
        assert bar["start"] == previous["end"]  # no hole anywhere in the traded span
        if bar["trades"] == 0:
            assert bar["open"] == bar["high"] == bar["low"] == bar["close"] == previous["close"]
            assert bar["volume"] == bar["quote_volume"] == bar["taker_buy_volume"] == 0
            assert bar["vwap"] is None and bar["first_trade_id"] is None


def test_summary_counts(golden, reference):
    _, totals = golden
    assert totals["ticks_read"] == 19_904 + 14_515
    assert totals["duplicates"] == 0
    assert totals["skipped:bookTicker"] == 28_040 + 45_134 + 24_077 + 34_681
    assert totals["skipped:depth"] == 3_451 + 3_044 + 3_434 + 3_036
    assert totals["skipped:snapshot"] == 2
    assert not any(k.startswith("dead:") for k in totals)
    for timeframe in TIMEFRAMES:
        expected = sum(len(plain_bars(reference[s], s, timeframe)) for s in SYMBOLS)
        assert totals[f"bars:{timeframe}"] == expected


def _export(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PAIRFLOW), "export", "--store", str(db), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
def test_cli_export_csv_equals_plain_aggregation(golden, reference, timeframe):
    db, _ = golden
    done = _export(db, "--kind", "bars", "--symbol", "BTCUSDT", "--timeframe", timeframe,
                   "--out", "-")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == field_names(Bar)
    parsed = []
    for row in rows[1:]:
        record = dict(zip(rows[0], row, strict=True))
        assert ISO_US.match(record["start"]) and ISO_US.match(record["end"]), record
        parsed.append({
            "symbol": record["symbol"], "timeframe": record["timeframe"],
            "start": iso_to_us(record["start"]), "end": iso_to_us(record["end"]),
            **{k: float(record[k]) for k in ("open", "high", "low", "close", "volume",
                                             "quote_volume", "taker_buy_volume")},
            "vwap": float(record["vwap"]) if record["vwap"] else None,
            "trades": int(record["trades"]),
            "first_trade_id": int(record["first_trade_id"]) if record["first_trade_id"] else None,
            "last_trade_id": int(record["last_trade_id"]) if record["last_trade_id"] else None,
        })
    expected = plain_bars(reference["BTCUSDT"], "BTCUSDT", timeframe)
    assert bar_mismatches(parsed, expected) == []


def test_cli_export_to_file_with_time_range(golden, reference, tmp_path):
    db, _ = golden
    out = tmp_path / "eth.csv"
    expected = plain_bars(reference["ETHUSDT"], "ETHUSDT", "1s")
    start, end = expected[10]["end"], expected[20]["end"]  # bars filter on their end time
    from pairflow.records import us_to_iso

    done = _export(db, "--kind", "bars", "--symbol", "ethusdt", "--timeframe", "1s",
                   "--start", us_to_iso(start), "--end", us_to_iso(end), "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [iso_to_us(r["end"]) for r in rows] == [b["end"] for b in expected[10:20]]
