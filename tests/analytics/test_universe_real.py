"""``pairflow scan`` on the real candles of ../shared/data against the exact oracle.

The output CSV is checked, at its last scan time and for every pair, against statistics
computed from the raw candle files read independently here (plain ``csv``): the pair's last
``window`` bar ends where both legs have a candle, the exact oracle of ``analytics_oracle``
and the Benjamini–Hochberg definition. Also through a coarser timeframe (5m candles scanned
as 15m bars: a bar's close is its last candle's close).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from analytics_oracle import oracle
from test_universe_oracle import BETA_TOL, bh_oracle, close, persistence_oracle
from typer.testing import CliRunner

from app.cli import app
from pairflow.records import iso_to_us

CANDLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "candles-2018-01-5m"
SYMBOLS = ("ETHBTC", "LTCBTC", "XMRBTC", "DASHBTC")
MINUTE = 60_000_000

pytestmark = pytest.mark.skipif(not CANDLES.is_dir(), reason="candles not found")


def candle_closes(symbol: str, timeframe_us: int) -> dict[int, float]:
    """Bar end (µs) -> close of the last candle of that bar, straight from the file."""
    out: dict[int, float] = {}
    with open(CANDLES / f"{symbol}-5m-2018-01.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            end = int(row["open_time"]) * 1000 + 5 * MINUTE
            out[-(-end // timeframe_us) * timeframe_us] = float(row["close"])  # ends ascend
    return out


def scan_csv(tmp_path: Path, timeframe: str, window: int, every: int) -> list[dict]:
    out = tmp_path / "scan.csv"
    files = [str(CANDLES / f"{s}-5m-2018-01.csv") for s in SYMBOLS]
    done = CliRunner().invoke(app, ["scan", *files, "--universe", ",".join(SYMBOLS),
                                    "--timeframe", timeframe, "--window", str(window),
                                    "--every", str(every), "--out", str(out)])
    assert done.exit_code == 0, done.output
    with open(out, newline="") as handle:
        return list(csv.DictReader(handle))


def number(text: str) -> float | None:
    return None if text == "" else float(text)


@pytest.mark.parametrize(("timeframe", "length", "window", "every"),
                         [("5m", 5, 240, 288), ("15m", 15, 60, 40)])
def test_scan_of_real_candles_matches_the_oracle(tmp_path, timeframe, length, window, every):
    rows = scan_csv(tmp_path, timeframe, window, every)
    pairs = [f"{a}/{b}" for i, a in enumerate(SYMBOLS) for b in SYMBOLS[i + 1:]]
    times = sorted({iso_to_us(r["ts"]) for r in rows})
    assert len(rows) == len(times) * len(pairs)
    assert all(t % (every * length * MINUTE) == 0 for t in times)
    last = [r for r in rows if iso_to_us(r["ts"]) == times[-1]]
    assert [r["pair"] for r in last] == pairs
    closes = {s: candle_closes(s, length * MINUTE) for s in SYMBOLS}
    want_p = []
    for row in last:
        a, b = row["pair"].split("/")
        ends = sorted(e for e in closes[a] if e in closes[b] and e <= times[-1])[-window:]
        assert int(row["n"]) == window and iso_to_us(row["as_of"]) == ends[-1]
        y = np.array([math.log(closes[a][e]) for e in ends])
        x = np.array([math.log(closes[b][e]) for e in ends])
        yx, xy = oracle(y, x), oracle(x, y)
        assert close(number(row["beta"]), yx["beta"], BETA_TOL)
        for field in ("zscore", "corr", "half_life", "eg_stat"):
            assert close(number(row[field]), yx[field]), (field, row[field], yx[field])
        assert close(number(row["eg_pvalue_yx"]), yx["eg_pvalue"])
        assert close(number(row["eg_pvalue_xy"]), xy["eg_pvalue"])
        want_p.append(max(yx["eg_pvalue"], xy["eg_pvalue"]))
        assert close(number(row["eg_pvalue"]), want_p[-1])
        vr, hurst = persistence_oracle(y, x, 10, 20)
        assert close(number(row["variance_ratio"]), vr)
        assert close(number(row["hurst"]), hurst)
    for row, want_q in zip(last, bh_oracle(want_p), strict=True):
        assert close(number(row["eg_qvalue"]), want_q)
    early = [r for r in rows if int(r["n"]) < window]
    assert early and all(r["beta"] == "" and r["reason"] == "n < window" for r in early)
