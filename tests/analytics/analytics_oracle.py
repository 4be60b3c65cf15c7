"""Oracle and real-data bar builder for the analytics tests.

The oracle is the numerical reference of DESIGN.md: exact arithmetic (mpmath at 60
significant digits, far beyond the float inputs' 17) on the same float inputs for OLS, spread,
z-score, correlation and half-life; statsmodels' ``adfuller`` + ``mackinnonp`` applied to the
exactly computed residual (rounded once to float) for ADF and Engle-Granger.
"""

from __future__ import annotations

import glob
import gzip
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mpmath
import numpy as np
from statsmodels.tsa.adfvalues import mackinnonp
from statsmodels.tsa.stattools import adfuller

DATA_DIR = Path(
    os.environ.get(
        "PAIRFLOW_TEST_DATA",
        Path(__file__).resolve().parents[3] / "shared" / "data" / "binance-spot-2024-08-08",
    )
)

FIELDS = (
    "beta", "alpha", "spread", "spread_mean", "spread_std", "zscore", "corr",
    "adf_stat", "adf_pvalue", "adf_lags", "eg_stat", "eg_pvalue", "half_life",
)  # fmt: skip

_DPS = 60
_COLLINEAR_GAP = 100.0 * math.sqrt(np.finfo(float).eps)


def oracle(y: np.ndarray, x: np.ndarray, lag: str | int = "aic") -> dict:
    """Exact statistics of one full window of transformed closes (floats)."""
    with mpmath.workdps(_DPS):
        ys = [mpmath.mpf(float(v)) for v in y]
        xs = [mpmath.mpf(float(v)) for v in x]
        n = len(ys)
        my = mpmath.fsum(ys) / n
        mx = mpmath.fsum(xs) / n
        dxs = [v - mx for v in xs]
        dys = [v - my for v in ys]
        sxx = mpmath.fsum(a * a for a in dxs)
        syy = mpmath.fsum(a * a for a in dys)
        sxy = mpmath.fsum(a * b for a, b in zip(dxs, dys, strict=True))
        out = dict.fromkeys(FIELDS)
        # correlation of the n - 1 differences
        ry = [ys[i] - ys[i - 1] for i in range(1, n)]
        rx = [xs[i] - xs[i - 1] for i in range(1, n)]
        mry = mpmath.fsum(ry) / (n - 1)
        mrx = mpmath.fsum(rx) / (n - 1)
        cyy = mpmath.fsum((a - mry) ** 2 for a in ry)
        cxx = mpmath.fsum((a - mrx) ** 2 for a in rx)
        cyx = mpmath.fsum((a - mry) * (b - mrx) for a, b in zip(ry, rx, strict=True))
        if cyy > 0 and cxx > 0:
            out["corr"] = float(cyx / mpmath.sqrt(cyy * cxx))
        if sxx == 0:
            return out
        beta = sxy / sxx
        alpha = my - beta * mx
        out["beta"] = float(beta)
        out["alpha"] = float(alpha)
        out["spread"] = float(ys[-1] - beta * xs[-1])
        out["spread_mean"] = float(alpha)
        resid = [b - alpha - beta * a for a, b in zip(xs, ys, strict=True)]
        sse = mpmath.fsum(e * e for e in resid)
        out["spread_std"] = float(mpmath.sqrt(sse / (n - 1)))
        if syy == 0 or sse <= _COLLINEAR_GAP * syy:
            return out
        out["zscore"] = float(resid[-1] / mpmath.sqrt(sse / (n - 1)))
        lev = resid[:-1]
        dif = [resid[i] - resid[i - 1] for i in range(1, n)]
        ml = mpmath.fsum(lev) / (n - 1)
        md = mpmath.fsum(dif) / (n - 1)
        lam = mpmath.fsum((a - ml) * (b - md) for a, b in zip(lev, dif, strict=True)) / mpmath.fsum(
            (a - ml) ** 2 for a in lev
        )
        if lam < 0:
            out["half_life"] = float(-mpmath.log(2) / lam)
        e = np.array([float(v) for v in resid])
    autolag = None if isinstance(lag, int) else lag.upper()
    maxlag = lag if isinstance(lag, int) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adf = adfuller(e, maxlag=maxlag, regression="c", autolag=autolag)
        eg = adfuller(e, maxlag=maxlag, regression="n", autolag=autolag)
    out["adf_stat"] = float(adf[0])
    out["adf_pvalue"] = float(adf[1])
    out["adf_lags"] = int(adf[2])
    out["eg_stat"] = float(eg[0])
    out["eg_pvalue"] = float(mackinnonp(eg[0], regression="c", N=2))
    out["eg_lags"] = int(eg[2])
    return out


def mismatches(res, exp: dict, tol: float = 1e-6, beta_tol: float = 1e-7) -> list[str]:
    """Fields of a PairResult farther from the oracle than the contract allows."""
    bad = []
    for f in FIELDS:
        got = getattr(res, f)
        want = exp[f]
        if want is None or got is None:
            if (want is None) != (got is None):
                bad.append(f"{f}: got {got!r}, oracle {want!r}")
            continue
        if f == "adf_lags":
            if got != want:
                bad.append(f"{f}: got {got}, oracle {want}")
            continue
        if not math.isfinite(got):
            bad.append(f"{f}: non-finite {got!r}")
            continue
        if f == "beta":
            ok = abs(got - want) <= beta_tol * abs(want) + 1e-15
        else:
            ok = abs(got - want) <= tol * max(1.0, abs(want))
        if not ok:
            bad.append(f"{f}: got {got!r}, oracle {want!r}, diff {got - want:.3g}")
    return bad


def transform(a, price: str) -> np.ndarray:
    """The estimator's price transform, elementwise (math.log, as the estimator)."""
    if price == "log":
        return np.array([math.log(v) for v in a])
    return np.asarray(a, dtype=float)


@dataclass(frozen=True)
class RealBars:
    """Aligned 1 s closes of BTCUSDT (y) and ETHUSDT (x)."""

    seconds: np.ndarray
    btc: np.ndarray
    eth: np.ndarray


def _closes(symbol: str) -> dict[int, float]:
    last: dict[int, tuple[tuple[int, int], float]] = {}
    for path in sorted(glob.glob(str(DATA_DIR / f"{symbol}_*.gz"))):
        with gzip.open(path, "rt") as fh:
            for line in fh:
                _, _, frame = line.partition(" ")
                if "@trade" not in frame[:64]:
                    continue
                msg = json.loads(frame)
                if not str(msg.get("stream", "")).endswith("@trade"):
                    continue
                d = msg["data"]
                sec = int(d["T"]) // 1000
                key = (int(d["T"]), int(d["t"]))
                prev = last.get(sec)
                if prev is None or key >= prev[0]:
                    last[sec] = (key, float(d["p"]))
    return {s: v[1] for s, v in last.items()}


def _carried(closes: dict[int, float], first: int, last: int) -> np.ndarray:
    out = np.empty(last - first + 1)
    prev = closes[max(s for s in closes if s <= first)]
    for i, s in enumerate(range(first, last + 1)):
        if s in closes:
            prev = closes[s]
        out[i] = prev
    return out


def load_real_bars() -> RealBars | None:
    """1 s bar closes from the recorded Binance trades, aligned on common seconds."""
    if not DATA_DIR.is_dir():
        return None
    btc = _closes("btcusdt")
    eth = _closes("ethusdt")
    if not btc or not eth:
        return None
    first = max(min(btc), min(eth))
    last = min(max(btc), max(eth))
    return RealBars(
        seconds=np.arange(first, last + 1),
        btc=_carried(btc, first, last),
        eth=_carried(eth, first, last),
    )
