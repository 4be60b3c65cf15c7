"""Rolling pair statistics: hedge ratio, spread z-score, return correlation, ADF, Engle-Granger.

One :class:`PairEstimator` per (pair, timeframe) is fed aligned bar closes; after each bar,
:meth:`PairEstimator.result` gives every statistic of the ``PairStats`` record over the last
``window`` bars. The work per bar does not depend on the window length (see
``docs/statistics.md`` for the method and its measured accuracy).

State (all plain floats, ints and numpy arrays, so it pickles and deep-copies):

* a double-length ring buffer of the transformed closes ``y``, ``x`` and their differences
  ``dy``, ``dx`` (each value stored twice, so every window is one contiguous slice);
* anchored co-moments of the levels ``u = y - y_ref``, ``v = x - x_ref`` over the window
  (OLS, spread, z-score) and of the differences (return correlation);
* one rolling Gram matrix ``M = sum_k z_k z_k'`` of the base vector
  ``z_k = [1, u_{k-1}, v_{k-1}, dy_k, ..., dy_{k-P}, dx_k, ..., dx_{k-P}]`` over the
  rows shared by every ADF / Engle-Granger candidate regression (``P`` = largest lag).
  The spread's regressions use ``e_{k-1} = u_{k-1} - beta v_{k-1} + c0`` and
  ``ds_{k-j} = dy_{k-j} - beta dx_{k-j}``, a fixed linear map ``T`` of ``z``, so their
  Gram matrix is the congruence ``T' M T``.

The anchors are reset to the latest bar, and every sum recomputed from the buffer, once per
``window`` bars: amortised O(1), and rounding drift of the rolling sums never outlives one
window.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pairflow.analytics import _kernel
from pairflow.analytics.errors import InputError, SettingsError
from pairflow.analytics.mackinnon import mackinnonp
from pairflow.analytics.regression import select_lag, tstat_last
from pairflow.analytics.settings import EstimatorSettings

__all__ = ["PairEstimator", "PairResult", "run_history"]

#: statsmodels' ``coint`` gives up (statistic ``-inf``) when R^2 >= 1 - 100 * sqrt(eps).
_COLLINEAR_R2_GAP = 100.0 * math.sqrt(np.finfo(float).eps)
_LN2 = math.log(2.0)
_AUTOLAG_CODE = {None: 0, "aic": 1, "bic": 2}

#: ``"numba"`` (compiled kernels, the default when numba is installed) or ``"numpy"``;
#: both give the same statistics to ~1e-13 (tests run both against the oracle). Read at
#: each update, so tests and the benchmark may switch it; environment variable
#: ``PAIRFLOW_ANALYTICS_BACKEND`` sets the initial choice.
BACKEND = os.environ.get("PAIRFLOW_ANALYTICS_BACKEND", "numba" if _kernel.AVAILABLE else "numpy")
if BACKEND == "numba" and not _kernel.AVAILABLE:  # pragma: no cover
    BACKEND = "numpy"

N_LT_WINDOW = "n < window"
ZERO_VAR_X = "zero variance in x"
ZERO_VAR_Y = "zero variance in y"
ZERO_VAR_RETURNS = "zero variance in returns"
COLLINEAR = "collinear legs"
SINGULAR_ADF = "singular ADF regression"
SINGULAR_EG = "singular Engle-Granger regression"
NOT_MEAN_REVERTING = "not mean-reverting"
NON_FINITE = "non-finite intermediate result"


@dataclass(frozen=True, slots=True)
class PairResult:
    """Statistics of one pair after one bar (the ``PairStats`` record's numbers).

    Every statistic is a finite ``float`` or ``None``; when any is ``None``, ``reason``
    says why (several reasons are joined with ``"; "``), otherwise ``reason`` is ``None``.

    Attributes:
        y: transformed close of the dependent leg at this bar (``log`` or ``raw``);
            ``None`` only before the first bar (``n == 0``).
        x: transformed close of the independent leg at this bar (same).
        n: bars in the window so far (at most ``window``).
        beta: OLS slope of y on 1 + x over the window.
        alpha: OLS intercept (the window mean of ``y - beta x``).
        spread: ``y - beta x`` at this bar.
        spread_mean: ``alpha``.
        spread_std: sample standard deviation (ddof = 1) of the window's ``y - beta x``.
        zscore: ``(spread - spread_mean) / spread_std``.
        corr: Pearson correlation of the window's ``window - 1`` bar-to-bar differences of
            the transformed closes (log returns under ``price="log"``).
        adf_stat: ADF t-ratio of the window's spread, ``adfuller(regression="c")``.
        adf_pvalue: MacKinnon p-value of ``adf_stat`` (one series, constant).
        adf_lags: lagged differences used by the ADF regression.
        eg_stat: Engle-Granger statistic, ``adfuller(residual, regression="n")``.
        eg_pvalue: MacKinnon p-value for two series with a constant (``coint``'s).
        half_life: ``-ln 2 / lambda`` bars, lambda the slope of Δspread on 1 + spread₋₁.
        reason: why some statistics are ``None``, or ``None``.
    """

    y: float | None
    x: float | None
    n: int
    beta: float | None
    alpha: float | None
    spread: float | None
    spread_mean: float | None
    spread_std: float | None
    zscore: float | None
    corr: float | None
    adf_stat: float | None
    adf_pvalue: float | None
    adf_lags: int | None
    eg_stat: float | None
    eg_pvalue: float | None
    half_life: float | None
    reason: str | None


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class PairEstimator:
    """Incremental estimator of a pair's hedge ratio, spread, correlation and tests.

    Feed raw closes of the two legs bar by bar with :meth:`update`; :meth:`result` returns
    the statistics over the last ``settings.window`` bars. Each update costs the same at any
    window length (O(P^2) in the largest ADF lag P, O(1) in the window).

    Definitions (window = last ``window`` bars; ``y``, ``x`` transformed closes):

    * ``beta``, ``alpha``: OLS of y on 1 + x; ``spread = y - beta x``;
      ``spread_mean = alpha``; ``spread_std`` with ddof = 1; ``zscore``.
    * ``corr``: Pearson correlation of the ``window - 1`` differences of y and x.
    * ``adf_*``: ``statsmodels.tsa.stattools.adfuller(spread, regression="c",
      autolag="AIC"|"BIC"|None, maxlag=None|lag)``; H0: the spread has a unit root,
      H1: it is stationary (mean-reverting).
    * ``eg_*``: the second stage of ``statsmodels.tsa.stattools.coint(y, x, trend="c")``:
      ``adfuller(residual, regression="n")`` with ``mackinnonp(stat, "c", N=2)``; H0: no
      cointegration. Its p-value accounts for beta being estimated (Engle and Granger 1987,
      MacKinnon 2010).
    * ``half_life``: ``-ln 2 / lambda``, lambda the slope of the OLS of ``diff(spread)`` on
      1 + the lagged spread over the window; ``None`` when lambda >= 0.

    Args:
        settings: window, price transform and lag policy.

    Raises:
        SettingsError: ``settings`` is not an :class:`EstimatorSettings`.

    Examples:
        >>> est = PairEstimator(EstimatorSettings(window=10, price="raw", lag=0))
        >>> ys = [10.0, 10.4, 10.1, 10.9, 11.2, 10.8, 11.5, 11.1, 11.9, 12.2, 11.6]
        >>> xs = [5.0, 5.1, 5.0, 5.4, 5.5, 5.3, 5.8, 5.5, 5.9, 6.0, 5.8]
        >>> for y, x in zip(ys, xs):
        ...     est.update(y, x)
        ...     r = est.result()
        ...     if r.n < 10:
        ...         continue
        ...     print(r.n, round(r.beta, 4), round(r.zscore, 4), round(r.corr, 4), r.adf_lags)
        10 1.9873 0.9761 0.9633 0
        10 1.9011 -0.89 0.9654 0
        >>> PairEstimator(EstimatorSettings(window=10)).settings.price
        'log'
    """

    def __init__(self, settings: EstimatorSettings) -> None:
        if not isinstance(settings, EstimatorSettings):
            raise SettingsError(
                f"settings must be an EstimatorSettings, got {type(settings).__name__}"
            )
        self._settings = settings
        self._window = settings.window
        self._log = settings.price == "log"
        self._adf_maxlag = settings.adf_maxlag
        self._eg_maxlag = settings.eg_maxlag
        self._autolag = None if isinstance(settings.lag, int) else settings.lag
        self._maxlag = max(self._adf_maxlag, self._eg_maxlag)
        w = self._window
        p = self._maxlag
        self._dim = 2 * p + 5
        # double-length rings: bar k lives at k % w and k % w + w
        # rows: y, x, dy, dx
        self._ring = np.zeros((4, 2 * w))
        self._count = 0
        self._last_y = 0.0
        self._last_x = 0.0
        self._y_ref = 0.0
        self._x_ref = 0.0
        # anchored level sums over the window
        self._su = self._sv = self._suu = self._suv = self._svv = 0.0
        # difference sums over the window's n - 1 differences
        self._sdy = self._sdx = self._sdydy = self._sdydx = self._sdxdx = 0.0
        # trailing runs of zero differences (exact detection of a leg that does not move)
        self._flat_y = 0
        self._flat_x = 0
        self._gram = np.zeros((self._dim, self._dim))
        self._since_rebuild = 0
        self._cached: PairResult | None = None
        # argument blocks of the compiled kernel (few arguments = little dispatch overhead)
        self._fpar = np.zeros(6)
        self._ipar = np.array(
            [0, self._adf_maxlag, self._eg_maxlag, _AUTOLAG_CODE[self._autolag], w], dtype=np.int64
        )
        self._out = np.zeros(7)

    @property
    def settings(self) -> EstimatorSettings:
        """The settings this estimator was built with."""
        return self._settings

    @property
    def n(self) -> int:
        """Bars currently in the window."""
        return min(self._count, self._window)

    # ------------------------------------------------------------------ updates

    def _transform(self, close: float, leg: str) -> float:
        try:
            value = float(close)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{leg} close must be a number, got {close!r}") from exc
        if not math.isfinite(value):
            raise InputError(f"{leg} close must be finite, got {value!r}")
        if self._log:
            if value <= 0.0:
                raise InputError(f"{leg} close must be positive for price='log', got {value!r}")
            return math.log(value)
        return value

    def _row(self, k: int) -> np.ndarray:
        """Base vector z_k of bar k (which must be in the ring with its P predecessors)."""
        w = self._window
        p = self._maxlag
        j = k % w + w
        z = np.empty(self._dim)
        z[0] = 1.0
        z[1] = self._ring[0, j - 1] - self._y_ref
        z[2] = self._ring[1, j - 1] - self._x_ref
        z[3 : p + 4] = self._ring[2, j - p : j + 1][::-1]
        z[p + 4 :] = self._ring[3, j - p : j + 1][::-1]
        return z

    def update(self, y_close: float, x_close: float) -> None:
        """Add one aligned bar (raw closes of the two legs).

        Args:
            y_close: close of the dependent leg (first leg of the pair).
            x_close: close of the independent leg.

        Raises:
            InputError: a close that is not finite, or not positive under ``price="log"``.
                The estimator is unchanged then.
        """
        y = self._transform(y_close, "y")
        x = self._transform(x_close, "x")
        w = self._window
        p = self._maxlag
        k = self._count
        if k == 0:
            self._y_ref = y
            self._x_ref = x
            dy = dx = 0.0
        else:
            dy = y - self._last_y
            dx = x - self._last_x
            self._flat_y = self._flat_y + 1 if dy == 0.0 else 0
            self._flat_x = self._flat_x + 1 if dx == 0.0 else 0
        yr = self._y_ref
        xr = self._x_ref
        pos = k % w
        kernel = BACKEND == "numba"
        if k >= w:
            # evict bar k - w (levels), the difference of bar k - w + 1, row k - w + p + 1
            uo = self._ring[0, pos] - yr
            vo = self._ring[1, pos] - xr
            self._su -= uo
            self._sv -= vo
            self._suu -= uo * uo
            self._suv -= uo * vo
            self._svv -= vo * vo
            j = (k - w + 1) % w
            dyo = self._ring[2, j]
            dxo = self._ring[3, j]
            self._sdy -= dyo
            self._sdx -= dxo
            self._sdydy -= dyo * dyo
            self._sdydx -= dyo * dxo
            self._sdxdx -= dxo * dxo
            # row k - w + p + 1 uses the level of bar k - w + p: evict before overwriting
            if kernel:
                _kernel.gram_row_update(
                    self._gram, self._ring, (k - w + p + 1) % w + w, yr, xr, False
                )
            else:
                zo = self._row(k - w + p + 1)
                self._gram -= np.outer(zo, zo)
        ring = self._ring
        ring[:, pos] = ring[:, pos + w] = (y, x, dy, dx)
        u = y - yr
        v = x - xr
        self._su += u
        self._sv += v
        self._suu += u * u
        self._suv += u * v
        self._svv += v * v
        if k >= 1:
            self._sdy += dy
            self._sdx += dx
            self._sdydy += dy * dy
            self._sdydx += dy * dx
            self._sdxdx += dx * dx
        if kernel:
            if k >= p + 1:
                _kernel.gram_row_update(self._gram, self._ring, pos + w, yr, xr, True)
        elif k >= p + 1:
            zn = self._row(k)
            self._gram += np.outer(zn, zn)
        self._last_y = y
        self._last_x = x
        self._count = k + 1
        self._cached = None
        self._since_rebuild += 1
        if self._since_rebuild >= w:
            self._rebuild()

    def _window_slice(self, ring: np.ndarray) -> np.ndarray:
        n = self.n
        start = (self._count - n) % self._window
        return ring[start : start + n]

    def _rebuild(self) -> None:
        """Re-anchor at the latest bar and recompute every sum from the buffered window."""
        self._since_rebuild = 0
        self._y_ref = self._last_y
        self._x_ref = self._last_x
        n = self.n
        p = self._maxlag
        u = self._window_slice(self._ring[0]) - self._y_ref
        v = self._window_slice(self._ring[1]) - self._x_ref
        self._su = float(np.sum(u))
        self._sv = float(np.sum(v))
        self._suu = float(np.dot(u, u))
        self._suv = float(np.dot(u, v))
        self._svv = float(np.dot(v, v))
        dy = self._window_slice(self._ring[2])[1:]
        dx = self._window_slice(self._ring[3])[1:]
        self._sdy = float(np.sum(dy))
        self._sdx = float(np.sum(dx))
        self._sdydy = float(np.dot(dy, dy))
        self._sdydx = float(np.dot(dy, dx))
        self._sdxdx = float(np.dot(dx, dx))
        rows = n - p - 1
        if rows <= 0:
            self._gram = np.zeros((self._dim, self._dim))
            return
        dyw = self._window_slice(self._ring[2])
        dxw = self._window_slice(self._ring[3])
        z = np.empty((rows, self._dim))
        z[:, 0] = 1.0
        z[:, 1] = u[p:-1]
        z[:, 2] = v[p:-1]
        z[:, 3 : p + 4] = sliding_window_view(dyw, p + 1)[1:, ::-1]
        z[:, p + 4 :] = sliding_window_view(dxw, p + 1)[1:, ::-1]
        self._gram = z.T @ z

    # ------------------------------------------------------------------ results

    def result(self) -> PairResult:
        """Statistics over the current window (cached until the next update).

        Returns:
            A :class:`PairResult`; before ``window`` bars only ``y``, ``x`` and ``n`` are
            set and ``reason`` is ``"n < window"`` (before the first bar ``n`` is 0 and
            ``y``, ``x`` are ``None`` too).
        """
        if self._count == 0:
            return _empty(None, None, 0, N_LT_WINDOW)
        if self._cached is None:
            self._cached = self._compute()
        return self._cached

    def _compute(self) -> PairResult:
        y = self._last_y
        x = self._last_x
        n = self.n
        if n < self._window:
            return _empty(y, x, n, N_LT_WINDOW)
        reasons: list[str] = []
        mu = self._su / n
        mv = self._sv / n
        cyy = self._suu - self._su * mu
        cxy = self._suv - self._su * mv
        cxx = self._svv - self._sv * mv
        corr = None
        if self._flat_y >= n - 1 or self._flat_x >= n - 1:
            reasons.append(ZERO_VAR_RETURNS)
        else:
            m = n - 1
            ddy = self._sdydy - self._sdy * self._sdy / m
            ddx = self._sdxdx - self._sdx * self._sdx / m
            dyx = self._sdydx - self._sdy * self._sdx / m
            if ddy > 0.0 and ddx > 0.0:
                corr = max(-1.0, min(1.0, dyx / math.sqrt(ddy * ddx)))
            else:
                reasons.append(ZERO_VAR_RETURNS)
        if self._flat_x >= n - 1 or not cxx > 0.0:
            reasons.insert(0, ZERO_VAR_X)
            return _empty(y, x, n, "; ".join(reasons), corr=_finite(corr))
        u_last = y - self._y_ref
        v_last = x - self._x_ref
        if self._flat_y >= n - 1:
            # y constant: beta = 0 exactly, the spread is y itself and does not vary
            reasons.insert(0, ZERO_VAR_Y)
            return PairResult(
                y, x, n, 0.0, y, y, y, 0.0, None, _finite(corr),
                None, None, None, None, None, None, "; ".join(reasons),
            )  # fmt: skip
        beta = cxy / cxx
        c0 = -(mu - beta * mv)  # e_t = u_t - beta v_t + c0, the OLS residual
        alpha = (self._y_ref - beta * self._x_ref) - c0
        spread = y - beta * x
        sse = cyy - beta * cxy
        spread_std = math.sqrt(sse / (n - 1)) if sse > 0.0 else 0.0
        e_last = (u_last - mu) - beta * (v_last - mv)
        stats = dict.fromkeys(
            ("zscore", "adf_stat", "adf_pvalue", "eg_stat", "eg_pvalue", "half_life")
        )
        adf_lags = None
        if not (cyy > 0.0 and sse > _COLLINEAR_R2_GAP * cyy):
            reasons.insert(0, COLLINEAR)
        else:
            stats["zscore"] = e_last / spread_std
            adf_lags = self._tests(beta, c0, stats, reasons)
        values = {
            "beta": _finite(beta),
            "alpha": _finite(alpha),
            "spread": _finite(spread),
            "spread_mean": _finite(alpha),
            "spread_std": _finite(spread_std),
            "zscore": _finite(stats["zscore"]),
            "corr": _finite(corr),
            "adf_stat": _finite(stats["adf_stat"]),
            "adf_pvalue": _finite(stats["adf_pvalue"]),
            "eg_stat": _finite(stats["eg_stat"]),
            "eg_pvalue": _finite(stats["eg_pvalue"]),
            "half_life": _finite(stats["half_life"]),
        }
        if values["adf_stat"] is None:
            adf_lags = None
        if not reasons and (adf_lags is None or None in values.values()):
            # overflow on absurd inputs (|price| ~ 1e300 under "raw"): still no NaN/inf out
            reasons.append(NON_FINITE)
        return PairResult(
            y=y,
            x=x,
            n=n,
            adf_lags=adf_lags,
            reason="; ".join(reasons) if reasons else None,
            **values,
        )

    def _spread_gram(self, beta: float, c0: float) -> np.ndarray:
        """Gram matrix T' M T in spread coordinates [1, e_{k-1}, ds_k, ds_{k-1}, ..., ds_{k-P}]."""
        p = self._maxlag
        m = self._gram
        a = np.empty((self._dim, p + 3))
        a[:, 0] = m[:, 0]
        a[:, 1] = c0 * m[:, 0] + m[:, 1] - beta * m[:, 2]
        a[:, 2:] = m[:, 3 : p + 4] - beta * m[:, p + 4 :]
        g = np.empty((p + 3, p + 3))
        g[0] = a[0]
        g[1] = c0 * a[0] + a[1] - beta * a[2]
        g[2:] = a[3 : p + 4] - beta * a[p + 4 :]
        return g

    def _head(self, beta: float, c0: float) -> tuple[np.ndarray, np.ndarray]:
        """Residuals e and spread differences ds at window positions 0..P."""
        p = self._maxlag
        w = self._window
        start = self._count % w  # window full: first bar at (count - w) % w
        yw = self._ring[0, start : start + p + 1]
        xw = self._ring[1, start : start + p + 1]
        mu = self._su / w
        mv = self._sv / w
        e = ((yw - self._y_ref) - mu) - beta * ((xw - self._x_ref) - mv)
        ds = self._ring[2, start : start + p + 1] - beta * self._ring[3, start : start + p + 1]
        return e, ds

    def _gram_for(
        self, g: np.ndarray, head: tuple[np.ndarray, np.ndarray], lo: int, lag: int
    ) -> np.ndarray:
        """Spread-coordinate Gram over rows lo..W-1 for lags 0..lag (lo <= P + 1)."""
        p = self._maxlag
        sub = g[: lag + 3, : lag + 3]
        if lo > p:
            return sub.copy()
        e, ds = head
        rows = np.arange(lo, p + 1)
        zx = np.empty((rows.size, lag + 3))
        zx[:, 0] = 1.0
        zx[:, 1] = e[rows - 1]
        zx[:, 2:] = ds[rows[:, None] - np.arange(lag + 1)[None, :]]
        return sub + zx.T @ zx

    def _tests(self, beta: float, c0: float, stats: dict, reasons: list[str]) -> int | None:
        """Half-life, ADF and Engle-Granger into ``stats``/``reasons``; the ADF lag used."""
        raw = self._tests_kernel(beta, c0) if BACKEND == "numba" else self._tests_numpy(beta, c0)
        hl_ok, lam, adf_ok, adf_t, adf_lag, eg_ok, eg_t = raw
        if not hl_ok:
            reasons.append(SINGULAR_ADF)
        elif lam < 0.0:
            stats["half_life"] = -_LN2 / lam
        else:
            reasons.append(NOT_MEAN_REVERTING)
        if not adf_ok:
            if SINGULAR_ADF not in reasons:
                reasons.append(SINGULAR_ADF)
            adf_lag = None
        else:
            stats["adf_stat"] = adf_t
            stats["adf_pvalue"] = mackinnonp(adf_t, "c", 1)
            adf_lag = int(adf_lag)
        if not eg_ok:
            reasons.append(SINGULAR_EG)
        else:
            stats["eg_stat"] = eg_t
            stats["eg_pvalue"] = mackinnonp(eg_t, "c", 2)
        return adf_lag

    def _tests_numpy(self, beta: float, c0: float) -> tuple:
        """The kernel's ``pair_tests`` outputs, computed with numpy (same order of operations).

        ``(hl_ok, lambda, adf_ok, adf_t, adf_lag, eg_ok, eg_t)``.
        """
        w = self._window
        g = self._spread_gram(beta, c0)
        head = self._head(beta, c0)
        # half-life: lag-0 regression of ds on [1, e_{k-1}] over the whole window
        hl = tstat_last(self._gram_for(g, head, 1, 0), w - 1)
        tests = []
        for maxlag, const in ((self._adf_maxlag, True), (self._eg_maxlag, False)):
            lag = self._chosen_lag(g, head, maxlag, const)
            t = None if lag is None else tstat_last(self._final_gram(g, head, lag, const),
                                                    w - 1 - lag)
            tests.append((t is not None, t[0] if t is not None else 0.0, lag or 0))
        (adf_ok, adf_t, adf_lag), (eg_ok, eg_t, _) = tests
        return (hl is not None, hl[1] if hl is not None else 0.0, adf_ok, adf_t, adf_lag,
                eg_ok, eg_t)

    def _tests_kernel(self, beta: float, c0: float) -> tuple:
        """``pair_tests`` of the compiled kernels, over the estimator's Gram and ring."""
        w = self._window
        fpar = self._fpar
        fpar[0] = self._y_ref
        fpar[1] = self._x_ref
        fpar[2] = self._su / w
        fpar[3] = self._sv / w
        fpar[4] = beta
        fpar[5] = c0
        self._ipar[0] = self._count % w
        _kernel.pair_tests(self._gram, self._ring, fpar, self._ipar, self._out)
        return tuple(self._out.tolist())

    def _chosen_lag(self, g: np.ndarray, head: tuple, maxlag: int, const: bool) -> int | None:
        if self._autolag is None:
            return maxlag
        gram = self._gram_for(g, head, maxlag + 1, maxlag)
        # [const?, e, ds_{k-1}..ds_{k-maxlag}, ds_k]
        idx = ([0] if const else []) + [1] + list(range(3, maxlag + 3)) + [2]
        gram = gram[np.ix_(idx, idx)]
        first = 2 if const else 1
        return select_lag(gram, first, maxlag, self._window - 1 - maxlag, self._autolag)

    def _final_gram(self, g: np.ndarray, head: tuple, lag: int, const: bool) -> np.ndarray:
        gram = self._gram_for(g, head, lag + 1, lag)
        # [const?, ds_{k-1}..ds_{k-lag}, e, ds_k]: tested level last among regressors
        idx = ([0] if const else []) + list(range(3, lag + 3)) + [1, 2]
        return gram[np.ix_(idx, idx)]


def _empty(
    y: float | None, x: float | None, n: int, reason: str, corr: float | None = None
) -> PairResult:
    return PairResult(
        y,
        x,
        n,
        None,
        None,
        None,
        None,
        None,
        None,
        corr,
        None,
        None,
        None,
        None,
        None,
        None,
        reason,
    )


def run_history(
    settings: EstimatorSettings, y_closes: Sequence[float], x_closes: Sequence[float]
) -> list[PairResult]:
    """Run :class:`PairEstimator` over a history of aligned closes, one result per bar.

    The same incremental code as the live flow, so a what-if recomputation shows exactly
    what the flow would have produced.

    Args:
        settings: estimator settings.
        y_closes: raw closes of the dependent leg, oldest first.
        x_closes: raw closes of the independent leg, aligned with ``y_closes``.

    Returns:
        One :class:`PairResult` per bar.

    Raises:
        InputError: the two histories differ in length, or a close is rejected.

    Examples:
        >>> res = run_history(EstimatorSettings(window=10, price="raw", lag=0),
        ...                   [1.0, 2, 3, 5, 4, 6, 7, 9, 8, 10], [2.0, 3, 5, 4, 6, 7, 9, 8, 10, 11])
        >>> len(res), res[-1].n, round(res[-1].beta, 6), round(res[-1].eg_stat, 4), res[-1].reason
        (10, 10, 0.927273, -5.8745, None)
    """
    if len(y_closes) != len(x_closes):
        raise InputError(
            f"y and x histories must have the same length, got {len(y_closes)} and {len(x_closes)}"
        )
    est = PairEstimator(settings)
    out = []
    for yc, xc in zip(y_closes, x_closes, strict=True):
        est.update(yc, xc)
        out.append(est.result())
    return out
