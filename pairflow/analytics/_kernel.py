"""Compiled (numba) kernels of the pair estimator's per-bar work.

The rank-one update of the rolling Gram matrix and the unit-root tests of the spread solved
from it (see ``docs/statistics.md``). Compiled because Python's per-call overhead dominates at
these matrix sizes (at most 81 x 81); the tests check the results against an exact oracle.

Each regression is solved from its augmented Gram matrix ``[X y]' [X y]`` by one Cholesky
factorisation ``R' R`` of its unit-diagonal scaling (insensitive to the very different
magnitudes of a constant, a level and its differences). With the regressand last, the
residual sum of squares of the model made of the first ``j`` regressors is
``sum(R[-1, i] ** 2 for i >= j)``, so every nested model of the automatic lag selection comes
from one factorisation; with the tested regressor last, its t-ratio is
``R[-1, -2] * sqrt(df) / R[-1, -1]``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["HEDGE_STATE_SIZE", "gram_row_update", "hedge_update", "pair_tests"]

_MIN_PIVOT = 1e-7
# No fastmath: with reassociation LLVM's summation order depends on how a function was
# compiled (inlined into a caller fresh, or loaded from the cache), so two processes of one
# cluster gave different last bits. Strict IEEE order makes every worker, restart and replay
# produce the same records to the bit, for ~4 % (window 100) to ~15 % (10 000) per update.


#: Length of the hedge-ratio state vector of :func:`hedge_update`.
HEDGE_STATE_SIZE = 13


@njit(cache=True)
def hedge_update(state, y, x, lam, q):  # noqa: D103
    # One bar of the two recursive hedge-ratio estimators (see rolling.HedgeRatios).
    # RLS: state[0:5] = [W, mean x, mean y, Cxx, Cxy], exponentially weighted (weight lam per
    # bar) sums in West's (1979) updating form: the exact weighted least-squares solution.
    w = lam * state[0] + 1.0
    dx = x - state[1]
    dy = y - state[2]
    mx = state[1] + dx / w
    my = state[2] + dy / w
    state[3] = lam * state[3] + dx * (x - mx)
    state[4] = lam * state[4] + dx * (y - my)
    state[0] = w
    state[1] = mx
    state[2] = my
    # Kalman, once started: state[5:13] = [started, a, b, xc, P00, P01, P11, r] with
    # y = a + b (x - xc) + e, Var e = r; (alpha, beta) = (a - b xc, b) take random-walk steps
    # of covariance q I, i.e. Q = q [[1 + xc^2, xc], [xc, 1]] in (a, b).
    if state[5] == 0.0:
        return
    xc = state[8]
    p00 = state[9] + q * (1.0 + xc * xc)
    p01 = state[10] + q * xc
    p11 = state[11] + q
    h = x - xc
    ph0 = p00 + h * p01
    ph1 = p01 + h * p11
    s = ph0 + h * ph1 + state[12]
    k0 = ph0 / s
    k1 = ph1 / s
    e = y - state[6] - state[7] * h
    state[6] += k0 * e
    state[7] += k1 * e
    state[9] = p00 - k0 * ph0
    state[10] = p01 - k0 * ph1
    state[11] = p11 - k1 * ph1


@njit(cache=True)
def gram_row_update(gram, ring, j, y_ref, x_ref, add):  # noqa: D103
    # gram +/-= z z', z = [1, u_{k-1}, v_{k-1}, dy_k..dy_{k-p}, dx_k..dx_{k-p}] of the bar k
    # at ring column j (second copy); ring rows y, x, dy, dx
    dim = gram.shape[0]
    p = (dim - 5) // 2
    z = np.empty(dim)
    z[0] = 1.0
    z[1] = ring[0, j - 1] - y_ref
    z[2] = ring[1, j - 1] - x_ref
    for i in range(p + 1):
        z[3 + i] = ring[2, j - i]
        z[p + 4 + i] = ring[3, j - i]
    if add:
        for a in range(dim):
            za = z[a]
            for b in range(dim):
                gram[a, b] += za * z[b]
    else:
        for a in range(dim):
            za = z[a]
            for b in range(dim):
                gram[a, b] -= za * z[b]


@njit(cache=True)
def _spread_gram(m, p, beta, c0):
    """T' M T, T mapping z to [1, e_{k-1}, ds_k, ..., ds_{k-p}] (symmetric, direct terms)."""
    k = p + 3
    dy = 3
    dx = p + 4
    g = np.empty((k, k))
    b2 = beta * beta
    # E = M T[:, e] restricted to the rows 0, 1, 2 that T[:, e] touches
    e0 = c0 * m[0, 0] + m[0, 1] - beta * m[0, 2]
    e1 = c0 * m[1, 0] + m[1, 1] - beta * m[1, 2]
    e2 = c0 * m[2, 0] + m[2, 1] - beta * m[2, 2]
    g[0, 0] = m[0, 0]
    g[0, 1] = g[1, 0] = e0
    g[1, 1] = c0 * e0 + e1 - beta * e2
    for j in range(p + 1):
        d0 = m[0, dy + j] - beta * m[0, dx + j]
        d1 = m[1, dy + j] - beta * m[1, dx + j]
        d2 = m[2, dy + j] - beta * m[2, dx + j]
        g[0, 2 + j] = g[2 + j, 0] = d0
        v = c0 * d0 + d1 - beta * d2
        g[1, 2 + j] = g[2 + j, 1] = v
        for i in range(j + 1):
            v = (
                m[dy + i, dy + j]
                - beta * (m[dy + i, dx + j] + m[dx + i, dy + j])
                + b2 * m[dx + i, dx + j]
            )
            g[2 + i, 2 + j] = g[2 + j, 2 + i] = v
    return g


@njit(cache=True)
def _zval(s, i, e, ds):
    if s == 0:
        return 1.0
    if s == 1:
        return e[i - 1]
    return ds[i - (s - 2)]


@njit(cache=True)
def _gram_sub(g, e, ds, p, lo, idx):
    """g[idx, idx] plus the head rows lo..p (spread coordinates) in the order idx."""
    m = idx.shape[0]
    out = np.empty((m, m))
    for a in range(m):
        for b in range(m):
            out[a, b] = g[idx[a], idx[b]]
    if lo <= p:
        nrow = p + 1 - lo
        extra = np.zeros((m, m))
        z = np.empty((nrow, m))
        for r in range(nrow):
            for a in range(m):
                z[r, a] = _zval(idx[a], lo + r, e, ds)
        for a in range(m):
            for b in range(m):
                acc = 0.0
                for r in range(nrow):
                    acc += z[r, a] * z[r, b]
                extra[a, b] = acc
        for a in range(m):
            for b in range(m):
                out[a, b] += extra[a, b]
    return out


@njit(cache=True)
def _cholesky(gram):
    """Lower factor of the unit-diagonal scaling of ``gram`` (ok flag, factor, scales)."""
    m = gram.shape[0]
    low = np.zeros((m, m))
    scale = np.empty(m)
    for i in range(m):
        d = gram[i, i]
        if not d > 0.0:
            return False, low, scale
        scale[i] = 1.0 / math.sqrt(d)
    for j in range(m):
        s = gram[j, j] * scale[j] * scale[j]
        for t in range(j):
            s -= low[j, t] * low[j, t]
        if not s > 0.0:
            return False, low, scale
        ljj = math.sqrt(s)
        if j < m - 1 and ljj < _MIN_PIVOT:
            return False, low, scale
        low[j, j] = ljj
        for i in range(j + 1, m):
            s = gram[i, j] * scale[i] * scale[j]
            for t in range(j):
                s -= low[i, t] * low[j, t]
            low[i, j] = s / ljj
    return True, low, scale


@njit(cache=True)
def _select(gram, first, maxlag, nobs, method):
    ok, low, scale = _cholesky(gram)
    if not ok:
        return -1
    m = gram.shape[0]
    tail = np.empty(m)
    acc = 0.0
    for i in range(m - 1, -1, -1):
        acc += low[m - 1, i] * low[m - 1, i]
        tail[i] = acc
    sy2 = scale[m - 1] * scale[m - 1]
    nobs2 = nobs / 2.0
    const = (1.0 + math.log(math.pi / nobs2)) * nobs2
    best = -1
    best_ic = 0.0
    for lag in range(maxlag + 1):
        ssr = tail[first + lag] / sy2
        if not ssr > 0.0:
            return -1
        llf = -math.log(ssr) * nobs2 - const
        k = float(first + lag)
        if method == 1:
            ic = -2.0 * llf + 2.0 * k
        else:
            ic = -2.0 * llf + math.log(nobs) * k
        if best < 0 or ic < best_ic:
            best = lag
            best_ic = ic
    return best


@njit(cache=True)
def _tstat(gram, nobs):
    m = gram.shape[0]
    df = nobs - (m - 1)
    if df <= 0:
        return False, 0.0, 0.0
    ok, low, scale = _cholesky(gram)
    if not ok:
        return False, 0.0, 0.0
    r_ly = low[m - 1, m - 2]
    r_ll = low[m - 2, m - 2]
    r_yy = low[m - 1, m - 1]
    if not r_yy > 0.0:
        return False, 0.0, 0.0
    t = r_ly * math.sqrt(df) / r_yy
    coef = r_ly * scale[m - 2] / (r_ll * scale[m - 1])
    if not (math.isfinite(t) and math.isfinite(coef)):
        return False, 0.0, 0.0
    return True, t, coef


@njit(cache=True)
def _order(const, lag, select):
    """Order of a regression in S coordinates: selection or final (tested level last)."""
    n = (1 if const else 0) + lag + 2
    idx = np.empty(n, dtype=np.int64)
    i = 0
    if const:
        idx[i] = 0
        i += 1
    if select:
        idx[i] = 1
        i += 1
    for j in range(1, lag + 1):
        idx[i] = 2 + j
        i += 1
    if not select:
        idx[i] = 1
        i += 1
    idx[i] = 2
    return idx


@njit(cache=True)
def _one_test(g, e, ds, p, maxlag, autolag, window, const):
    if autolag == 0:
        lag = maxlag
    else:
        gram = _gram_sub(g, e, ds, p, maxlag + 1, _order(const, maxlag, True))
        lag = _select(gram, 2 if const else 1, maxlag, window - 1 - maxlag, autolag)
        if lag < 0:
            return False, 0.0, -1
    gram = _gram_sub(g, e, ds, p, lag + 1, _order(const, lag, False))
    ok, t, _ = _tstat(gram, window - 1 - lag)
    return ok, t, lag


@njit(cache=True)
def pair_tests(m, ring, fpar, ipar, out):  # noqa: D103
    # fpar = [y_ref, x_ref, mu, mv, beta, c0]; ipar = [start, adf_maxlag, eg_maxlag,
    # autolag (0 none, 1 aic, 2 bic), window]; out <- [hl_ok, lambda, adf_ok, adf_t,
    # adf_lag, eg_ok, eg_t]
    y_ref, x_ref, mu, mv, beta, c0 = fpar[0], fpar[1], fpar[2], fpar[3], fpar[4], fpar[5]
    start, adf_maxlag, eg_maxlag, autolag, window = ipar[0], ipar[1], ipar[2], ipar[3], ipar[4]
    p = (m.shape[0] - 5) // 2
    e = np.empty(p + 1)
    ds = np.empty(p + 1)
    for i in range(p + 1):
        e[i] = ((ring[0, start + i] - y_ref) - mu) - beta * ((ring[1, start + i] - x_ref) - mv)
        ds[i] = ring[2, start + i] - beta * ring[3, start + i]
    g = _spread_gram(m, p, beta, c0)
    hl_ok, _, lam = _tstat(_gram_sub(g, e, ds, p, 1, _order(True, 0, False)), window - 1)
    adf_ok, adf_t, adf_lag = _one_test(g, e, ds, p, adf_maxlag, autolag, window, True)
    eg_ok, eg_t, _ = _one_test(g, e, ds, p, eg_maxlag, autolag, window, False)
    out[0] = 1.0 if hl_ok else 0.0
    out[1] = lam
    out[2] = 1.0 if adf_ok else 0.0
    out[3] = adf_t
    out[4] = adf_lag
    out[5] = 1.0 if eg_ok else 0.0
    out[6] = eg_t
