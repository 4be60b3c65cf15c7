"""The estimator's result: one declaration of the statistics a pair record carries.

``pairflow.records.PairStats`` takes its statistic fields from :class:`PairResult` (see
``dataclasses.fields``), so the list of statistics is written here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PairResult"]


@dataclass(frozen=True, slots=True)
class PairResult:
    """Statistics of one pair after one bar (the ``PairStats`` record's numbers).

    Every statistic is a finite ``float`` or ``None``; when any is ``None``, ``reason``
    says why (several reasons are joined with ``"; "``), otherwise ``reason`` is ``None``.
    A statistic left out when building a result is ``None`` (undefined).

    Attributes:
        y: transformed close of the dependent leg at this bar (``log`` or ``raw``);
            ``None`` only before the first bar (``n == 0``).
        x: transformed close of the independent leg at this bar (same).
        n: bars in the window so far (at most ``window``).
        beta: the hedge ratio of the chosen estimator (``EstimatorSettings.beta``): by
            default the OLS slope of y on 1 + x over the window (``beta_ols``).
        alpha: the chosen estimator's intercept (OLS: the window mean of ``y - beta x``).
        spread: ``y - beta x`` at this bar.
        spread_mean: the window mean of ``y - beta x`` (``alpha`` under OLS).
        spread_std: sample standard deviation (ddof = 1) of the window's ``y - beta x``.
        zscore: ``(spread - spread_mean) / spread_std``, which is also the z-score of the
            residual ``y - alpha - beta x`` over the window whatever ``alpha`` is.
        corr: Pearson correlation of the window's ``window - 1`` bar-to-bar differences of
            the transformed closes (log returns under ``price="log"``).
        adf_stat: ADF t-ratio of the window's spread, ``adfuller(regression="c")``.
        adf_pvalue: MacKinnon p-value of ``adf_stat`` (one series, constant).
        adf_lags: lagged differences used by the ADF regression.
        eg_stat: Engle-Granger statistic, ``adfuller(residual, regression="n")``.
        eg_pvalue: MacKinnon p-value for two series with a constant (``coint``'s).
        half_life: ``-ln 2 / lambda`` bars, lambda the slope of Δspread on 1 + spread₋₁.
            The ADF, Engle-Granger and half-life statistics are those of the window's OLS
            residual, whichever hedge ratio ``beta`` is.
        beta_ols: OLS slope of y on 1 + x over the window.
        beta_kalman: Kalman-filtered β (random-walk α, β; started from the first full
            window's OLS fit).
        beta_rls: recursive least-squares β with exponential forgetting (every bar since
            the first, bar ``s`` weighted ``lambda ** (t - s)``).
        beta_se: OLS standard error of ``beta_ols``, ``sqrt(sse / (n - 2) / Sxx)``.
        reason: why some statistics are ``None``, or ``None``.

    Examples:
        >>> PairResult(y=1.0, x=2.0, n=3, reason="n < window").beta is None
        True
    """

    y: float | None
    x: float | None
    n: int
    beta: float | None = None
    alpha: float | None = None
    spread: float | None = None
    spread_mean: float | None = None
    spread_std: float | None = None
    zscore: float | None = None
    corr: float | None = None
    adf_stat: float | None = None
    adf_pvalue: float | None = None
    adf_lags: int | None = None
    eg_stat: float | None = None
    eg_pvalue: float | None = None
    half_life: float | None = None
    beta_ols: float | None = None
    beta_kalman: float | None = None
    beta_rls: float | None = None
    beta_se: float | None = None
    reason: str | None = None
