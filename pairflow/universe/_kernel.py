"""Compiled (numba) kernel of a universe scan: every statistic of many pairs in one call.

The universe's transformed closes are one matrix (symbol × bar of the timeframe grid, NaN
where a symbol has no bar), shared by all pairs. For each pair the kernel walks back from
the scan time to the latest ``window`` bars where both legs have a bar, and computes on that
aligned window, from scratch: OLS of A on B, z-score, return correlation, the Engle-Granger
tests in both directions, half-life, variance ratio and Hurst exponent. The unit-root tests
reuse the pair estimator's compiled solvers (:mod:`pairflow.analytics._kernel`): the Gram
matrix of ``[1, e_{k-1}, Δe_k, …, Δe_{k-p}]`` over the rows shared by every candidate
regression is built in O(n·p) (its Δe block is Toeplitz up to the ends of the window), then
the same nested-Cholesky lag selection and t-ratio as ``PairEstimator`` give the statistic.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pairflow.analytics._kernel import _gram_sub, _one_test, _order, _tstat

__all__ = ["FLAG_BITS", "OUT_COLUMNS", "scan_pairs"]

#: Float outputs per pair, in column order (NaN = undefined).
OUT_COLUMNS = ("beta", "zscore", "corr", "half_life", "eg_stat", "eg_stat_xy",
               "variance_ratio", "hurst")
#: Why statistics are undefined, one bit each (mapped to reason texts by the engine).
FLAG_BITS = ("n < window", "zero variance in x", "zero variance in y",
             "zero variance in returns", "collinear legs", "not mean-reverting",
             "singular half-life regression", "singular Engle-Granger regression",
             "non-finite intermediate result")
_N_LT_WINDOW, _ZERO_X, _ZERO_Y, _ZERO_RET, _COLLINEAR, _NOT_MR, _SING_HL, _SING_EG, \
    _NON_FINITE = (1 << i for i in range(len(FLAG_BITS)))
_COLLINEAR_R2_GAP = 100.0 * math.sqrt(np.finfo(np.float64).eps)
_LN2 = math.log(2.0)


@njit(cache=True)
def _residual_gram(e, ds, p):
    """Gram of ``[1, e_{k-1}, ds_k, …, ds_{k-p}]`` over the rows ``k = p + 1 … n - 1``."""
    n = e.shape[0]
    g = np.empty((p + 3, p + 3))
    g[0, 0] = n - p - 1
    s = 0.0
    ss = 0.0
    for t in range(p + 1, n):
        s += e[t - 1]
        ss += e[t - 1] * e[t - 1]
    g[0, 1] = g[1, 0] = s
    g[1, 1] = ss
    # one pass over the rows, every lag's sums side by side (independent accumulators: the
    # inner loop vectorises, and each sum still adds its terms in row order)
    sd = np.zeros(p + 1)
    se = np.zeros(p + 1)
    s0 = np.zeros(p + 1)
    for t in range(p + 1, n):
        lagged = e[t - 1]
        current = ds[t]
        for j in range(p + 1):
            d = ds[t - j]
            sd[j] += d
            se[j] += lagged * d
            s0[j] += current * d
    for j in range(p + 1):
        g[0, 2 + j] = g[2 + j, 0] = sd[j]
        g[1, 2 + j] = g[2 + j, 1] = se[j]
        g[2, 2 + j] = g[2 + j, 2] = s0[j]
    # sum_k ds_{k-i} ds_{k-j} is the (i-1, j-1) sum shifted by one row: drop the last row's
    # product, add the one before the first row
    for i in range(1, p + 1):
        for j in range(i, p + 1):
            v = g[1 + i, 1 + j] - ds[n - i] * ds[n - j] + ds[p + 1 - i] * ds[p + 1 - j]
            g[2 + i, 2 + j] = g[2 + j, 2 + i] = v
    return g


@njit(cache=True)
def _eg_test(e, ds, p, autolag):
    """Engle-Granger statistic of the residual ``e`` (``adfuller(e, regression="n")``)."""
    g = _residual_gram(e, ds, p)
    ok, t, _ = _one_test(g, e, ds, p, p, autolag, e.shape[0], False)
    return ok, t, g


@njit(cache=True)
def _lagged_sums(e, max_lag):
    """``sums[q] = sum_{t >= q} (e_t - e_{t-q})^2`` for q = 1 … max_lag."""
    n = e.shape[0]
    sums = np.zeros(max_lag + 1)
    for t in range(1, n):  # every lag's sum side by side, each in row order
        et = e[t]
        for q in range(1, min(t, max_lag) + 1):
            d = et - e[t - q]
            sums[q] += d * d
    return sums


@njit(cache=True)
def _persistence(e, vr_lag, hurst_max_lag):
    """Variance ratio and Hurst exponent of the residual (NaN when undefined)."""
    n = e.shape[0]
    sums = _lagged_sums(e, max(vr_lag, hurst_max_lag))
    vr = np.nan
    if sums[1] > 0.0:
        vr = (sums[vr_lag] / (n - vr_lag)) / (vr_lag * sums[1] / (n - 1))
    count = hurst_max_lag - 1
    lx = np.empty(count)
    ly = np.empty(count)
    for i in range(count):
        tau = i + 2
        if not sums[tau] > 0.0:
            return vr, np.nan
        lx[i] = math.log(tau)
        ly[i] = 0.5 * math.log(sums[tau] / (n - tau))
    mx = lx.mean()
    my = ly.mean()
    sxy = 0.0
    sxx = 0.0
    for i in range(count):
        sxy += (lx[i] - mx) * (ly[i] - my)
        sxx += (lx[i] - mx) * (lx[i] - mx)
    return vr, sxy / sxx


@njit(cache=True)
def _centred(a):
    """``a - a[-1]`` (exact for nearby floats) minus its mean: the levels keep their digits."""
    n = a.shape[0]
    out = np.empty(n)
    anchor = a[n - 1]
    mean = 0.0
    for t in range(n):
        out[t] = a[t] - anchor
        mean += out[t]
    mean /= n
    for t in range(n):
        out[t] -= mean
    return out


@njit(cache=True)
def _returns_corr(y, x):
    """Correlation of the differences of y and x (NaN: no variance); whether each is flat."""
    n = y.shape[0]
    my = 0.0
    mx = 0.0
    flat_y = True
    flat_x = True
    for t in range(1, n):
        dy = y[t] - y[t - 1]
        dx = x[t] - x[t - 1]
        flat_y = flat_y and dy == 0.0
        flat_x = flat_x and dx == 0.0
        my += dy
        mx += dx
    my /= n - 1
    mx /= n - 1
    ryy = 0.0
    rxx = 0.0
    ryx = 0.0
    for t in range(1, n):
        cy = (y[t] - y[t - 1]) - my
        cx = (x[t] - x[t - 1]) - mx
        ryy += cy * cy
        rxx += cx * cx
        ryx += cy * cx
    corr = np.nan
    if not (flat_y or flat_x) and ryy > 0.0 and rxx > 0.0:
        corr = max(-1.0, min(1.0, ryx / math.sqrt(ryy * rxx)))
    return corr, flat_y, flat_x


@njit(cache=True)
def _dot(a, b):
    acc = 0.0
    for t in range(a.shape[0]):
        acc += a[t] * b[t]
    return acc


@njit(cache=True)
def _tests(e, e_xy, p, autolag, out):
    """Engle-Granger both ways and the half-life (``out[3]``, ``out[4]``, ``out[5]``); flags.

    ``e`` is the residual of A on B, ``e_xy`` the residual of B on A.
    """
    n = e.shape[0]
    flags = 0
    ds = np.empty(n)
    ds[0] = 0.0  # never read: every regression starts at the second bar
    ds[1:] = np.diff(e)
    ok, t, g = _eg_test(e, ds, p, autolag)
    if ok:
        out[4] = t
    else:
        flags |= _SING_EG
    hl_ok, _, lam = _tstat(_gram_sub(g, e, ds, p, 1, _order(True, 0, False)), n - 1)
    if not hl_ok:
        flags |= _SING_HL
    elif lam < 0.0:
        out[3] = -_LN2 / lam
    else:
        flags |= _NOT_MR
    ds[1:] = np.diff(e_xy)
    ok, t, _ = _eg_test(e_xy, ds, p, autolag)
    if ok:
        out[5] = t
    else:
        flags |= _SING_EG
    return flags


@njit(cache=True)
def _pair_window(y, x, ipar, out):
    """Every statistic of one aligned window (``out`` as :data:`OUT_COLUMNS`); the flags."""
    p, autolag, vr_lag, hurst_max_lag = ipar[0], ipar[1], ipar[2], ipar[3]
    n = y.shape[0]
    flags = 0
    corr, flat_y, flat_x = _returns_corr(y, x)
    if math.isnan(corr):
        flags |= _ZERO_RET
    out[2] = corr
    u = _centred(y)
    v = _centred(x)
    cxx = _dot(v, v)
    if flat_x or not cxx > 0.0:
        return flags | _ZERO_X
    if flat_y:
        out[0] = 0.0
        return flags | _ZERO_Y
    cyy = _dot(u, u)
    cxy = _dot(u, v)
    if math.isinf(cxx) or math.isinf(cyy):  # absurd raw magnitudes (|price| ~ 1e300)
        return flags | _NON_FINITE
    beta = cxy / cxx
    out[0] = beta
    e = u - beta * v
    sse = _dot(e, e)
    if not (cyy > 0.0 and sse > _COLLINEAR_R2_GAP * cyy):
        return flags | _COLLINEAR
    out[1] = e[n - 1] / math.sqrt(sse / (n - 1))
    flags |= _tests(e, v - (cxy / cyy) * u, p, autolag, out)
    out[6], out[7] = _persistence(e, vr_lag, hurst_max_lag)
    if math.isnan(out[6]) or math.isnan(out[7]):
        flags |= _NON_FINITE
    for i in range(out.shape[0]):
        if math.isinf(out[i]):  # overflow on absurd raw prices: undefined, never inf out
            out[i] = np.nan
            flags |= _NON_FINITE
    return flags


@njit(cache=True)
def scan_pairs(prices, col, depth, legs, ipar, out, counts):  # noqa: D103
    # prices: (symbols, capacity) ring of transformed closes, NaN = no bar; col: the scan
    # time's column; depth: columns back from it that hold history (<= capacity);
    # legs: (pairs, 2) symbol rows of A and B; ipar = [window, p, autolag, vr_lag,
    # hurst_max_lag]; out <- (pairs, len(OUT_COLUMNS)) NaN-filled by the caller;
    # counts <- (pairs, 3) [n, columns back to the latest aligned bar (-1: none), flags]
    window = ipar[0]
    cap = prices.shape[1]
    y = np.empty(window)
    x = np.empty(window)
    for k in range(legs.shape[0]):
        a = legs[k, 0]
        b = legs[k, 1]
        n = 0
        latest = -1
        c = col + 1
        for back in range(depth):
            c = c - 1 if c > 0 else cap - 1  # (col - back) % cap without a division
            ya = prices[a, c]
            xb = prices[b, c]
            if math.isnan(ya) or math.isnan(xb):
                continue
            if latest < 0:
                latest = back
            n += 1
            y[window - n] = ya
            x[window - n] = xb
            if n == window:
                break
        counts[k, 0] = n
        counts[k, 1] = latest
        if n < window:
            counts[k, 2] = _N_LT_WINDOW
        else:
            counts[k, 2] = _pair_window(y, x, ipar[1:], out[k])
