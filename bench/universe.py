"""Cost of the universe scan: every pair of N symbols, every statistic, one core.

Run: ``python bench/universe.py`` (``--quick`` for a short run).

Input: N log-normal random walks sharing a common factor (so some pairs cointegrate), bars
on a grid, 1 % of bars missing at random (gaps). Window 240, AIC lags, vr_lag 10,
Hurst lags 2…20 — the defaults. For N = 10, 100, 500 (45, 4,950, 124,750 pairs) it prints

* ``scan µs/pair``: one scan of every pair (the compiled kernel, p-values, q-values, frame),
  per pair: the cost of one pair update with every statistic when each bar is a scan time;
* ``bar → scan s``: a bar of the whole universe pushed and every pair scanned (the worst
  case, ``scan_every = 1``), and the real-time headroom at 1 s and 1 m bars (timeframe over
  that time: > 1 keeps up on one core);
* ``push µs/bar``: a bar pushed without a scan (what every other bar costs);
* memory: the shared history per pair, and the process's peak RSS;
* the SQLite store's bytes per scan row, hence the ``scan`` table's growth per day.

Baselines, side by side in the same process, per pair and bar on the same windows:
``PairEstimator.update + result`` (the watched pairs' incremental estimator: fewer statistics
— one Engle-Granger direction, no variance ratio or Hurst) and a statsmodels recompute of the
scan's statistics (OLS, ``coint`` both ways, half-life OLS, variance ratio and Hurst by numpy).
Times are CPU time of this process (``time.process_time``): on a shared machine they are what
one core of its own would take, where wall time would count the other jobs' turns too.
Nothing is asserted: timings are measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sqlite3
import tempfile
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from statsmodels.tsa.stattools import coint  # noqa: E402

from connectors.store import StoreWriter  # noqa: E402
from pairflow.analytics import EstimatorSettings, PairEstimator  # noqa: E402
from pairflow.universe import ScanSettings, UniverseScan  # noqa: E402

WINDOW = 240
SECOND = 1_000_000


def universe(symbols: int, bars: int, seed: int = 0) -> np.ndarray:
    """Closes (bars × symbols): a common factor plus own noise; 1 % of bars missing."""
    rng = np.random.default_rng(seed)
    factor = np.cumsum(rng.normal(0, 1e-4, bars))
    load = rng.uniform(0.5, 1.5, symbols)
    own = np.cumsum(rng.normal(0, 3e-5, (bars, symbols)), axis=0) * (rng.random(symbols) < 0.5)
    noise = rng.normal(0, 5e-5, (bars, symbols))
    closes = 10.0 ** rng.uniform(-4, 4, symbols) * np.exp(factor[:, None] * load + own + noise)
    closes[rng.random(closes.shape) < 0.01] = np.nan
    return closes


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_scan(symbols: int, scans: int) -> dict[str, float]:
    """µs per pair per scan, s per bar (push + scan of every pair), push cost."""
    closes = universe(symbols, WINDOW + 20 + scans)
    names = tuple(f"S{i:03d}USDT" for i in range(symbols))
    engine = UniverseScan(names, ScanSettings(scan_timeframe="1s", scan_window=WINDOW,
                                              scan_every=10**6))
    pairs = len(engine.pairs)
    start = time.process_time()
    for t in range(WINDOW + 20):
        engine.push((t + 1) * SECOND, closes[t])
    push_us = (time.process_time() - start) / (WINDOW + 20) * 1e6
    per_bar = []
    for t in range(WINDOW + 20, WINDOW + 20 + scans):
        start = time.process_time()
        engine.push((t + 1) * SECOND, closes[t])
        frame = engine.scan((t + 1) * SECOND)
        per_bar.append(time.process_time() - start)
        assert frame.reasons.count(None) > 0.9 * pairs
    bar_s = statistics.median(per_bar)
    return {"pairs": pairs, "scan_us": bar_s / pairs * 1e6, "bar_s": bar_s, "push_us": push_us,
            "history_b": engine._prices.nbytes / pairs, "frame": frame}


def store_bytes_per_row(frame, scans: int) -> float:
    """SQLite bytes per scan row: ``scans`` copies of one frame's records in a fresh store."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scan.db"
        writer = StoreWriter(path)
        empty = path.stat().st_size
        records = frame.records()
        for k in range(scans):
            writer.write(dataclasses.replace(r, ts=r.ts + k * 60 * SECOND) for r in records)
        writer.close()
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return (path.stat().st_size - empty) / (scans * len(records))


def time_estimator(bars: int) -> float:
    """µs per pair and bar of PairEstimator.update + result, window full."""
    closes = universe(2, WINDOW + bars, seed=1)
    closes = closes[~np.isnan(closes).any(axis=1)]
    est = PairEstimator(EstimatorSettings(window=WINDOW, price="log", lag="aic"))
    for k in range(WINDOW):
        est.update(closes[k, 0], closes[k, 1])
    start = time.process_time()
    for k in range(WINDOW, len(closes)):
        est.update(closes[k, 0], closes[k, 1])
        est.result()
    return (time.process_time() - start) / (len(closes) - WINDOW) * 1e6


def recompute(y: np.ndarray, x: np.ndarray) -> tuple:
    """The scan's statistics of one window with statsmodels (and numpy for VR, Hurst)."""
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    e = fit.resid
    z = e[-1] / e.std(ddof=1)
    corr = np.corrcoef(np.diff(y), np.diff(x))[0, 1]
    hl = sm.OLS(np.diff(e), sm.add_constant(e[:-1])).fit().params[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p_yx = coint(y, x, trend="c", autolag="aic")[1]
        p_xy = coint(x, y, trend="c", autolag="aic")[1]
    msd = [np.mean((e[q:] - e[:-q]) ** 2) for q in range(1, 21)]
    vr = msd[9] / (10 * msd[0])
    hurst = np.polyfit(np.log(np.arange(2, 21)), 0.5 * np.log(msd[1:]), 1)[0]
    return fit.params[1], z, corr, hl, p_yx, p_xy, vr, hurst


def time_recompute(windows: int) -> float:
    """µs per pair and bar of recomputing the scan's statistics with statsmodels."""
    closes = np.log(universe(2, WINDOW + windows, seed=2))
    closes = closes[~np.isnan(closes).any(axis=1)]
    start = time.process_time()
    for k in range(windows):
        recompute(closes[k:k + WINDOW, 0], closes[k:k + WINDOW, 1])
    return (time.process_time() - start) / windows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scans, N = 10 and 100")
    args = parser.parse_args()
    sizes = (10, 100) if args.quick else (10, 100, 500)
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, window {WINDOW}")
    time_scan(3, 2)  # compile (or load the cached kernels) outside the timings
    print("| symbols | pairs | scan µs/pair | bar → scan s | real time ×, 1 s bars "
          "| real time ×, 1 m bars | push µs/bar | history B/pair |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    scan_us = []
    frame = None
    for symbols in sizes:
        scans = 20 if symbols <= 10 else (5 if symbols <= 100 else 2)
        if args.quick:
            scans = max(2, scans // 4)
        r = time_scan(symbols, scans)
        scan_us.append(r["scan_us"])
        frame = r["frame"] if r["pairs"] == 4950 else frame
        print(f"| {symbols} | {r['pairs']:,} | {r['scan_us']:.1f} | {r['bar_s']:.4f} "
              f"| {1 / r['bar_s']:,.1f} | {60 / r['bar_s']:,.1f} | {r['push_us']:.1f} "
              f"| {r['history_b']:.1f} |")
    est_us = time_estimator(300 if args.quick else 2000)
    sm_us = time_recompute(20 if args.quick else 100)
    best = min(scan_us)
    print(f"\nbaselines, µs per pair and bar (window {WINDOW}):")
    print(f"  universe scan (all statistics, both EG directions)   {best:10.1f}")
    print(f"  PairEstimator.update + result (one EG direction)     {est_us:10.1f}"
          f"   ({est_us / best:.1f}× the scan)")
    print(f"  statsmodels recompute (OLS, coint ×2, half-life, VR, Hurst) {sm_us:7.1f}"
          f"   ({sm_us / best:.0f}× the scan)")
    row_b = store_bytes_per_row(frame, 4 if args.quick else 24)
    print(f"store: {row_b:.0f} B per scan row; 100 symbols (4,950 pairs) on 1m bars: "
          f"{4950 * 24 * row_b / 1e6:.0f} MB/day at scan_every 60, "
          f"{4950 * 1440 * row_b / 1e9:.2f} GB/day at scan_every 1")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
