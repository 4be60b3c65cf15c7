"""Per-update cost of the pair estimator vs recomputing the same statistics with statsmodels.

Run: ``python bench/analytics.py`` (``--windows 100 1000``, ``--quick`` for a short run).

For each window it prints microseconds per bar of

* ``pairflow[numba]``: ``PairEstimator.update`` + ``result`` with the compiled kernels
  (all statistics, AIC lag selection), amortised over at least one full window of updates
  so the periodic re-anchoring is included;
* ``pairflow[numpy]``: the same code path without numba;
* ``statsmodels``: recomputing the same statistics on the window every bar: ``OLS`` of y on
  1 + x, spread / z-score, ``np.corrcoef`` of the returns, ``adfuller(spread, autolag="AIC")``,
  ``coint(y, x, trend="c")`` and the half-life OLS;

and the ratio statsmodels / pairflow[numba]. Nothing is asserted: timings are measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint

from pairflow.analytics import EstimatorSettings, PairEstimator, _kernel, pair


def series(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """BTC/ETH-like 1 s closes: ETH random walk on a 0.01 tick, BTC cointegrated with it."""
    rng = np.random.default_rng(seed)
    eth = np.round(2680.0 * np.exp(np.cumsum(rng.normal(size=n)) * 2e-4), 2)
    eps = np.zeros(n)
    for t in range(1, n):
        eps[t] = 0.97 * eps[t - 1] + rng.normal() * 5e-5
    btc = np.round(61800.0 * np.exp(1.1 * np.log(eth / 2680.0) + eps), 2)
    return btc, eth


def time_estimator(backend: str, window: int, updates: int) -> float:
    """Microseconds per update + result, after filling the window."""
    y, x = series(window + updates)
    saved = pair.BACKEND
    pair.BACKEND = backend
    try:
        est = PairEstimator(EstimatorSettings(window=window, price="log", lag="aic"))
        for k in range(window):
            est.update(y[k], x[k])
        est.result()
        t0 = time.perf_counter()
        for k in range(window, window + updates):
            est.update(y[k], x[k])
            est.result()
        return (time.perf_counter() - t0) / updates * 1e6
    finally:
        pair.BACKEND = saved


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--quick", action="store_true", help="fewer updates and recomputations")
    args = ap.parse_args()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, numba {_kernel.AVAILABLE}"
    )
    header = (
        f"{'window':>7} {'maxlag':>6} {'pairflow[numba] us':>19} {'pairflow[numpy] us':>19} "
        f"{'statsmodels us':>15} {'ratio':>8}"
    )
    print(header)
    for window in args.windows:
        updates = max(window, 600 if args.quick else 3000)
        fast = time_estimator("numba", window, updates) if _kernel.AVAILABLE else float("nan")
        slow = time_estimator("numpy", window, min(updates, 1200 if args.quick else updates))
        bars = {100: 200, 1000: 40}.get(window, 6)
        base = time_recompute(window, max(3, bars // (4 if args.quick else 1)))
        best = fast if _kernel.AVAILABLE else slow
        print(
            f"{window:>7} {EstimatorSettings(window=window).adf_maxlag:>6} {fast:>19.1f} "
            f"{slow:>19.1f} {base:>15.0f} {base / best:>7.0f}x"
        )


if __name__ == "__main__":
    main()
