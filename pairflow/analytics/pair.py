"""Rolling pair statistics: hedge ratio, spread z-score, return correlation, ADF, Engle-Granger.

One :class:`PairEstimator` per (pair, timeframe) is fed aligned bar closes; after each bar,
:meth:`PairEstimator.result` gives every statistic of the ``PairStats`` record over the last
``window`` bars. The work per bar does not depend on the window length (see
``docs/statistics.md`` for the method and its measured accuracy).

The estimator is composed of the running parts of :mod:`pairflow.analytics.rolling`:

* a :class:`~pairflow.analytics.rolling.BarRing` of the transformed closes ``y``, ``x`` and
  their differences ``dy``, ``dx``;
* :class:`~pairflow.analytics.rolling.AnchoredCoMoments` of the levels
  ``u = y - y_ref``, ``v = x - x_ref`` (OLS, spread, z-score) and
  :class:`~pairflow.analytics.rolling.CoMoments` of the differences (return correlation),
  with a :class:`~pairflow.analytics.rolling.ZeroRun` per leg telling a flat leg exactly;
* one :class:`~pairflow.analytics.rolling.RollingGram` ``M = sum_k z_k z_k'`` of the base
  vector ``z_k = [1, u_{k-1}, v_{k-1}, dy_k, ..., dy_{k-P}, dx_k, ..., dx_{k-P}]`` over the
  rows shared by every ADF / Engle-Granger candidate regression (``P`` = largest lag).
  The spread's regressions use ``e_{k-1} = u_{k-1} - beta v_{k-1} + c0`` and
  ``ds_{k-j} = dy_{k-j} - beta dx_{k-j}``, a fixed linear map ``T`` of ``z``, so the compiled
  kernel :func:`~pairflow.analytics._kernel.pair_tests` gets their Gram matrix as the
  congruence ``T' M T``;
* :class:`~pairflow.analytics.rolling.HedgeRatios`, the Kalman and RLS hedge ratios beside the
  window's OLS one (``settings.beta`` chooses which the spread and z-score follow).

The anchors are reset to the latest bar, and every part recomputed from the ring, once per
``window`` bars: amortised O(1), and rounding drift of the running sums never outlives one
window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pairflow.analytics import _kernel
from pairflow.analytics.errors import InputError, SettingsError
from pairflow.analytics.mackinnon import mackinnonp
from pairflow.analytics.result import PairResult
from pairflow.analytics.rolling import (
    AnchoredCoMoments,
    BarRing,
    CoMoments,
    HedgeRatios,
    RollingGram,
    ZeroRun,
)
from pairflow.analytics.settings import EstimatorSettings

__all__ = ["PairEstimator", "run_history"]

#: statsmodels' ``coint`` gives up (statistic ``-inf``) when R^2 >= 1 - 100 * sqrt(eps).
_COLLINEAR_R2_GAP = 100.0 * math.sqrt(np.finfo(float).eps)
_LN2 = math.log(2.0)
_AUTOLAG_CODE = {None: 0, "aic": 1, "bic": 2}

N_LT_WINDOW = "n < window"
ZERO_VAR_X = "zero variance in x"
ZERO_VAR_Y = "zero variance in y"
ZERO_VAR_RETURNS = "zero variance in returns"
COLLINEAR = "collinear legs"
SINGULAR_ADF = "singular ADF regression"
SINGULAR_EG = "singular Engle-Granger regression"
NOT_MEAN_REVERTING = "not mean-reverting"
NON_FINITE = "non-finite intermediate result"


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
        self._maxlag = max(settings.adf_maxlag, settings.eg_maxlag)
        self._ring = BarRing(self._window)
        self._levels = AnchoredCoMoments()
        self._returns = CoMoments()  # over the window's n - 1 differences
        self._flat_y = ZeroRun()
        self._flat_x = ZeroRun()
        self._gram = RollingGram(self._maxlag)
        self._hedge = HedgeRatios(settings)
        self._count = 0
        self._last_y = 0.0
        self._last_x = 0.0
        self._since_rebuild = 0
        self._cached: PairResult | None = None
        # argument blocks of the compiled kernel (few arguments = little dispatch overhead)
        self._fpar = np.zeros(6)
        autolag = _AUTOLAG_CODE[None if isinstance(settings.lag, int) else settings.lag]
        self._ipar = np.array(
            [0, settings.adf_maxlag, settings.eg_maxlag, autolag, self._window], dtype=np.int64
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
        k = self._count
        if k == 0:
            self._levels.anchor(y, x)
            dy = dx = 0.0
        else:
            dy = y - self._last_y
            dx = x - self._last_x
            self._flat_y.update(dy)
            self._flat_x.update(dx)
        if k >= self._window:
            self._evict(k - self._window)
        self._ring.push(k, y, x, dy, dx)
        self._levels.update(y, x)
        if k >= 1:
            self._returns.update(dy, dx)
        if k >= self._maxlag + 1:
            self._gram.update(self._ring, k, self._levels.ref_a, self._levels.ref_b)
        self._last_y = y
        self._last_x = x
        self._count = k + 1
        self._cached = None
        self._since_rebuild += 1
        if self._since_rebuild >= self._window:
            self._rebuild()
        self._hedge.update(y, x)
        if not self._hedge.kalman_started and self._count >= self._window:
            self._start_kalman()

    def _start_kalman(self) -> None:
        """Start the Kalman filter from this window's OLS fit, if x varied over it."""
        mu, mv, cyy, cxy, cxx = self._levels.centred(self._window)
        if self._flat_x.length >= self._window - 1 or not cxx > 0.0:
            return
        beta = cxy / cxx
        self._hedge.start_kalman(self._levels.ref_a + mu, self._levels.ref_b + mv, beta, cxx,
                                 cyy - beta * cxy, self._window)

    def _evict(self, old: int) -> None:
        """Revert bar ``old``, leaving the window, from every part (before the ring drops it)."""
        self._levels.revert(*self._ring.levels(old))
        # the window's first difference goes with it: the one of bar old + 1
        self._returns.revert(*self._ring.differences(old + 1))
        self._gram.revert(self._ring, old + self._maxlag + 1, self._levels.ref_a,
                          self._levels.ref_b)

    def _rebuild(self) -> None:
        """Re-anchor at the latest bar and recompute every part from the ring."""
        self._since_rebuild = 0
        self._levels.anchor(self._last_y, self._last_x)
        bars = self._ring.last(self.n, self._count)
        self._levels.reset(bars[0], bars[1])
        self._returns.reset(bars[2, 1:], bars[3, 1:])
        self._gram.reset(bars, self._levels.ref_a, self._levels.ref_b)

    # ------------------------------------------------------------------ results

    def result(self) -> PairResult:
        """Statistics over the current window (cached until the next update).

        Returns:
            A :class:`PairResult`; before ``window`` bars only ``y``, ``x`` and ``n`` are
            set and ``reason`` is ``"n < window"`` (before the first bar ``n`` is 0 and
            ``y``, ``x`` are ``None`` too).
        """
        if self._count == 0:
            return PairResult(y=None, x=None, n=0, reason=N_LT_WINDOW)
        if self._cached is None:
            self._cached = self._compute()
        return self._cached

    def _compute(self) -> PairResult:
        y = self._last_y
        x = self._last_x
        n = self.n
        if n < self._window:
            return PairResult(y=y, x=x, n=n, reason=N_LT_WINDOW)
        flat_y = self._flat_y.length >= n - 1
        flat_x = self._flat_x.length >= n - 1
        corr = None if flat_y or flat_x else self._returns.corr(n - 1)
        reasons = [ZERO_VAR_RETURNS] if corr is None else []
        mu, mv, cyy, cxy, cxx = self._levels.centred(n)
        if flat_x or not cxx > 0.0:
            return PairResult(y=y, x=x, n=n, corr=_finite(corr),
                              reason="; ".join([ZERO_VAR_X, *reasons]))
        kalman, rls = self._hedge.estimates()
        recursive = {"beta_kalman": kalman and kalman[1], "beta_rls": rls and rls[1]}
        if flat_y:
            # y constant: beta = 0 exactly, the spread is y itself and does not vary
            return PairResult(y=y, x=x, n=n, beta=0.0, alpha=y, spread=y, spread_mean=y,
                              spread_std=0.0, corr=_finite(corr), beta_ols=0.0, beta_se=0.0,
                              **{k: _finite(v) for k, v in recursive.items()},
                              reason="; ".join([ZERO_VAR_Y, *reasons]))
        beta_ols = cxy / cxx
        c0 = -(mu - beta_ols * mv)  # e_t = u_t - beta v_t + c0, the OLS residual
        alpha_ols = (self._levels.ref_a - beta_ols * self._levels.ref_b) - c0
        sse = cyy - beta_ols * cxy
        spread_std = math.sqrt(sse / (n - 1)) if sse > 0.0 else 0.0
        stats: dict[str, float | None] = {
            "beta": beta_ols,
            "alpha": alpha_ols,
            "spread": y - beta_ols * x,
            "spread_mean": alpha_ols,
            "spread_std": spread_std,
            "corr": corr,
            "beta_ols": beta_ols,
            "beta_se": math.sqrt(sse / (n - 2) / cxx) if sse > 0.0 else 0.0,
            **recursive,
        }
        beta = beta_ols
        if self._settings.beta != "ols":
            chosen = kalman if self._settings.beta == "kalman" else rls
            beta = math.nan if chosen is None else chosen[1]
            # the window mean and spread of y - beta x for another beta, from the same sums:
            # the squares about the mean exceed the OLS ones by (beta - beta_ols)^2 Sxx
            sse_beta = max(sse, 0.0) + (beta - beta_ols) ** 2 * cxx
            stats.update(beta=beta, alpha=chosen and chosen[0], spread=y - beta * x,
                         spread_mean=(self._levels.ref_a + mu) - beta * (self._levels.ref_b + mv),
                         spread_std=math.sqrt(sse_beta / (n - 1)))
        if not (cyy > 0.0 and sse > _COLLINEAR_R2_GAP * cyy):
            reasons.insert(0, COLLINEAR)
        else:
            u_last = y - self._levels.ref_a
            v_last = x - self._levels.ref_b
            stats["zscore"] = ((u_last - mu) - beta * (v_last - mv)) / stats["spread_std"]
            stats.update(self._tests(beta_ols, c0, mu, mv, reasons))
        values = {name: _finite(value) for name, value in stats.items() if name != "adf_lags"}
        adf_lags = stats.get("adf_lags") if values.get("adf_stat") is not None else None
        if not reasons and (adf_lags is None or None in values.values()):
            # overflow on absurd inputs (|price| ~ 1e300 under "raw"): still no NaN/inf out
            reasons.append(NON_FINITE)
        return PairResult(y=y, x=x, n=n, adf_lags=adf_lags,
                          reason="; ".join(reasons) if reasons else None, **values)

    def _tests(
        self, beta: float, c0: float, mu: float, mv: float, reasons: list[str]
    ) -> dict[str, float | int]:
        """Half-life, ADF and Engle-Granger of the window's spread; why any is missing.

        Runs the compiled ``pair_tests`` over the Gram matrix and the ring, appends to
        ``reasons`` and returns the statistics it could compute.
        """
        fpar = self._fpar
        fpar[0] = self._levels.ref_a
        fpar[1] = self._levels.ref_b
        fpar[2] = mu
        fpar[3] = mv
        fpar[4] = beta
        fpar[5] = c0
        self._ipar[0] = self._count % self._window  # the window's first column in the ring
        _kernel.pair_tests(self._gram.matrix, self._ring.data, fpar, self._ipar, self._out)
        hl_ok, lam, adf_ok, adf_t, adf_lag, eg_ok, eg_t = self._out.tolist()
        stats: dict[str, float | int] = {}
        if not hl_ok:
            reasons.append(SINGULAR_ADF)
        elif lam < 0.0:
            stats["half_life"] = -_LN2 / lam
        else:
            reasons.append(NOT_MEAN_REVERTING)
        if not adf_ok:
            if SINGULAR_ADF not in reasons:
                reasons.append(SINGULAR_ADF)
        else:
            stats["adf_stat"] = adf_t
            stats["adf_pvalue"] = mackinnonp(adf_t, "c", 1)
            stats["adf_lags"] = int(adf_lag)
        if not eg_ok:
            reasons.append(SINGULAR_EG)
        else:
            stats["eg_stat"] = eg_t
            stats["eg_pvalue"] = mackinnonp(eg_t, "c", 2)
        return stats


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
