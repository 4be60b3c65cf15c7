"""Per-update cost of the pair estimator vs recomputing the same statistics with statsmodels.

Run: ``python bench/analytics.py`` (``--windows 100 1000``, ``--quick`` for a short run).

For each window it prints microseconds per bar of

* ``pairflow``: ``PairEstimator.update`` + ``result`` (compiled kernels, all statistics,
  AIC lag selection), the median of 3 blocks, each at least one full window of updates so
  the periodic re-anchoring is included;
* ``statsmodels``: recomputing the same statistics on the window every bar: ``OLS`` of y on
  1 + x, spread / z-score, ``np.corrcoef`` of the returns, ``adfuller(spread, autolag="AIC")``,
  ``coint(y, x, trend="c")`` and the half-life OLS;

and the ratio statsmodels / pairflow. Nothing is asserted: timings are measured.

Then, per window, CPU µs per bar (less sensitive than wall time to a shared machine's load)
under each hedge-ratio choice (``beta = ols | kalman | rls``, each run computing all three β),
the two recursive estimators' own per-bar part (one compiled call, measured alone) and the
peak RSS of the process (``--hedge`` prints only this table).

``python bench/analytics.py --accuracy`` instead prints, per field, the largest error against
the exact oracle of the tests (``tests/analytics/analytics_oracle.py``) over every window of
the real recording (BTCUSDT on ETHUSDT, 1 s, log, window 120) and over generated series,
next to statsmodels' own OLS / coint error on the same windows.
"""

from __future__ import annotations

import argparse
import os

# One BLAS thread for both sides: a fair per-core comparison, and stable figures on a
# shared 2-core machine (multi-threaded SVDs in statsmodels' pinv thrash under load).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import statsmodels.api as sm  # noqa: E402
from statsmodels.tsa.stattools import adfuller, coint  # noqa: E402

from pairflow.analytics import EstimatorSettings, PairEstimator  # noqa: E402


def series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """BTC/ETH-like 1 s closes: ETH random walk on a 0.01 tick, BTC cointegrated with it."""
    rng = np.random.default_rng(seed)
    eth = np.round(2680.0 * np.exp(np.cumsum(rng.normal(size=n)) * 2e-4), 2)
    eps = np.zeros(n)
    for t in range(1, n):
        eps[t] = 0.97 * eps[t - 1] + rng.normal() * 5e-5
    btc = np.round(61800.0 * np.exp(1.1 * np.log(eth / 2680.0) + eps), 2)
    return btc, eth


def time_estimator(window: int, updates: int, reps: int = 3, beta: str = "ols",
                   clock=time.perf_counter) -> float:
    """Median over ``reps`` blocks of microseconds per update + result, window full."""
    y, x = series(window + reps * updates)
    est = PairEstimator(EstimatorSettings(window=window, price="log", lag="aic", beta=beta))
    for k in range(window):
        est.update(y[k], x[k])
    est.result()
    blocks = []
    for r in range(reps):
        first = window + r * updates
        t0 = clock()
        for k in range(first, first + updates):
            est.update(y[k], x[k])
            est.result()
        blocks.append((clock() - t0) / updates * 1e6)
    return statistics.median(blocks)


def time_hedge_part(updates: int, reps: int = 3) -> float:
    """Median µs per bar of the Kalman + RLS update and reading both β (window-independent)."""
    from pairflow.analytics.rolling import HedgeRatios

    y, x = (np.log(v) for v in series(reps * updates + 1))
    hedge = HedgeRatios(EstimatorSettings())
    hedge.update(y[0], x[0])
    hedge.start_kalman(y[0], x[0], 1.1, 1e-4, 1e-8, 120)
    blocks = []
    for r in range(reps):
        first = 1 + r * updates
        t0 = time.process_time()
        for k in range(first, first + updates):
            hedge.update(y[k], x[k])
            hedge.estimates()
        blocks.append((time.process_time() - t0) / updates * 1e6)
    return statistics.median(blocks)


def hedge_table(windows: list[int], quick: bool) -> None:
    """CPU µs per bar under each hedge-ratio choice, side by side in this process."""
    part = time_hedge_part(2000 if quick else 20000)
    print(f"\nhedge ratio choice, CPU µs per bar (update + result; Kalman + RLS part alone "
          f"{part:.2f} µs)")
    print(f"{'window':>7} {'ols':>8} {'kalman':>8} {'rls':>8} {'kalman/ols':>11} {'rls/ols':>8}")
    for window in windows:
        updates = max(window, 600 if quick else 3000)
        # interleaved rounds, median of each: the three choices see the same machine load
        rounds = [{beta: time_estimator(window, updates, reps=1, beta=beta,
                                        clock=time.process_time)
                   for beta in ("ols", "kalman", "rls")} for _ in range(5)]
        us = {beta: statistics.median(r[beta] for r in rounds) for beta in rounds[0]}
        print(f"{window:>7} {us['ols']:>8.1f} {us['kalman']:>8.1f} {us['rls']:>8.1f} "
              f"{us['kalman'] / us['ols']:>10.2f}x {us['rls'] / us['ols']:>7.2f}x")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")


def recompute(yw: np.ndarray, xw: np.ndarray) -> tuple:
    """All statistics of one window from scratch with statsmodels (the baseline)."""
    fit = sm.OLS(yw, sm.add_constant(xw)).fit()
    alpha, beta = fit.params
    spread = yw - beta * xw
    std = np.std(spread, ddof=1)
    z = (spread[-1] - alpha) / std
    corr = np.corrcoef(np.diff(yw), np.diff(xw))[0, 1]
    adf = adfuller(spread, regression="c", autolag="AIC")
    eg = coint(yw, xw, trend="c")
    hl = sm.OLS(np.diff(spread), sm.add_constant(spread[:-1])).fit().params[1]
    return z, corr, adf[0], adf[1], adf[2], eg[0], eg[1], hl


def time_recompute(window: int, bars: int) -> float:
    """Microseconds per bar of the statsmodels recomputation."""
    y, x = np.log(series(window + bars))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recompute(y[:window], x[:window])
        t0 = time.perf_counter()
        for k in range(window, window + bars):
            recompute(y[k - window + 1 : k + 1], x[k - window + 1 : k + 1])
        return (time.perf_counter() - t0) / bars * 1e6


def _accuracy_cases():
    """(name, y closes, x closes, window, price, step between checked windows)."""
    from analytics_oracle import load_real_bars

    bars = load_real_bars()
    if bars is not None:
        yield "real 1s log w120", bars.btc, bars.eth, 120, "log", 1
    rng = np.random.default_rng(42)
    for i in range(6):
        n = 700
        eth = np.round(2680.0 + 0.01 * np.cumsum(rng.integers(-1, 2, size=n)), 2)
        ret = np.log(eth / eth[0])
        own = 0.01 * np.cumsum(rng.integers(-3, 4, size=n))
        btc = np.round(61800.0 * np.exp(1.1 * ret) + own, 2)
        yield f"synthetic tight log w120 #{i}", btc, eth, 120, "log", 7
    for i in range(4):
        n = 900
        x = 100.0 + np.cumsum(rng.normal(size=n))
        eps = np.zeros(n)
        for t in range(1, n):
            eps[t] = 0.99 * eps[t - 1] + rng.normal() * 0.3
        yield f"near unit root raw w300 #{i}", 2.0 * x + eps, x, 300, "raw", 23
    for i in range(2):
        n = 2500
        x = 60000.0 + np.cumsum(rng.normal(size=n)) * 5
        y = 3000.0 + np.cumsum(rng.normal(size=n))
        yield f"random walks raw w1000 #{i}", y, x, 1000, "raw", 97


def _window_errors(result, exp: dict, stats: list[str], yw: np.ndarray, xw: np.ndarray) -> dict:
    """Error of each field of one window's result, and statsmodels' own, against the oracle."""
    errors = {}
    for f in stats:
        got, want = getattr(result, f), exp[f]
        if got is not None and want is not None:
            errors[f] = abs(got - want) / (abs(want) if f == "beta" else max(1.0, abs(want)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.OLS(yw, sm.add_constant(xw)).fit()
        z = fit.resid[-1] / np.std(fit.resid, ddof=1)
        eg = coint(yw, xw, trend="c")[0]
    errors["sm zscore"] = abs(z - exp["zscore"])
    errors["sm eg_stat"] = abs(eg - exp["eg_stat"])
    return errors


def accuracy() -> None:
    """Largest error of each field against the exact oracle (see module docstring)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "analytics"))
    from analytics_oracle import FIELDS, oracle, transform

    from pairflow.analytics import run_history

    stats = [f for f in FIELDS if f != "adf_lags"]
    all_cases = list(_accuracy_cases())
    groups = list(dict.fromkeys(name.split(" #")[0] for name, *_ in all_cases))
    rows = stats + ["sm zscore", "sm eg_stat"]
    worst = {g: dict.fromkeys(rows, 0.0) for g in groups}
    windows = dict.fromkeys(groups, 0)
    lag_mismatch = dict.fromkeys(groups, 0)
    for name, yc, xc, window, price, step in all_cases:
        grp = name.split(" #")[0]
        res = run_history(EstimatorSettings(window=window, price=price), yc, xc)
        y, x = transform(yc, price), transform(xc, price)
        for k in range(window - 1, len(y), step):
            yw, xw = y[k - window + 1 : k + 1], x[k - window + 1 : k + 1]
            exp = oracle(yw, xw)
            windows[grp] += 1
            lag_mismatch[grp] += res[k].adf_lags != exp["adf_lags"]
            for f, err in _window_errors(res[k], exp, stats, yw, xw).items():
                worst[grp][f] = max(worst[grp][f], err)
    print("\nlargest error vs oracle (beta relative; others abs, rel > 1)")
    print(f"| field | {' | '.join(groups)} |")
    print(f"|---|{'---|' * len(groups)}")
    print(f"| windows checked | {' | '.join(str(windows[g]) for g in groups)} |")
    print(f"| adf_lags mismatches | {' | '.join(str(lag_mismatch[g]) for g in groups)} |")
    for f in rows:
        print(f"| {f} | {' | '.join(f'{worst[g][f]:.1e}' for g in groups)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--quick", action="store_true", help="fewer updates and recomputations")
    ap.add_argument("--accuracy", action="store_true", help="errors against the exact oracle")
    ap.add_argument("--hedge", action="store_true", help="only the hedge-ratio choice table")
    args = ap.parse_args()
    if args.accuracy:
        accuracy()
        return
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}"
    )
    if args.hedge:
        hedge_table(args.windows, args.quick)
        return
    print(f"{'window':>7} {'maxlag':>6} {'pairflow us':>12} {'statsmodels us':>15} {'ratio':>8}")
    for window in args.windows:
        fast = time_estimator(window, max(window, 600 if args.quick else 3000))
        bars = {100: 200, 1000: 40}.get(window, 6)
        base = time_recompute(window, max(3, bars // (4 if args.quick else 1)))
        print(
            f"{window:>7} {EstimatorSettings(window=window).adf_maxlag:>6} {fast:>12.1f} "
            f"{base:>15.0f} {base / fast:>7.0f}x"
        )
    hedge_table(args.windows, args.quick)


if __name__ == "__main__":
    main()
