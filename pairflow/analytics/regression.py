"""Dickey-Fuller regressions solved from a Gram (cross-product) matrix.

All ADF-type regressions of a pair's spread are linear in a handful of base series, so the
estimator never re-scans the window: it hands this module the Gram matrix
``[X y]' [X y]`` of the regression (already assembled from rolling sums) and gets back
what ``statsmodels.tsa.stattools.adfuller`` would compute from the data.

Method: one Cholesky factorisation ``R' R`` of the equilibrated augmented Gram matrix
(columns scaled to unit diagonal, which makes the factorisation insensitive to the very
different magnitudes of a constant, a level and its differences). With the regressand last,
the residual sum of squares of the model made of the first ``j`` regressors is
``sum(R[i, -1] ** 2 for i >= j)``, so every nested lag model of the automatic lag selection
comes from the one factorisation; with the tested regressor placed last, its t-ratio is
``R[-2, -1] * sqrt(df) / R[-1, -1]``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["select_lag", "tstat_last"]


def _cholesky(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower Cholesky factor of the unit-diagonal scaling of ``gram`` and the scales."""
    diag = np.diagonal(gram)
    if not np.all(diag > 0.0):
        return None
    scale = 1.0 / np.sqrt(diag)
    scaled = gram * scale[:, None] * scale[None, :]
    try:
        low = np.linalg.cholesky(scaled)
    except np.linalg.LinAlgError:
        return None
    d = np.diagonal(low)
    # A pivot this small means the regressors are collinear to working precision: the
    # statistic would be noise, statsmodels' pinv would silently drop a direction.
    if not np.all(np.isfinite(low)) or d[:-1].min() < 1e-7:
        return None
    return low, scale


def select_lag(gram: np.ndarray, first: int, maxlag: int, nobs: int, method: str) -> int | None:
    """Lag chosen by statsmodels' ``_autolag`` (AIC or BIC) from one Gram matrix.

    Args:
        gram: augmented Gram matrix over the common sample of all candidate models, columns
            ordered ``[deterministic..., level, lag 1, ..., lag maxlag, regressand]``.
        first: number of regressors in the lag-0 model (2 with a constant, 1 without).
        maxlag: largest candidate lag.
        nobs: rows of the common sample (``len(series) - 1 - maxlag``).
        method: ``"aic"`` or ``"bic"``.

    Returns:
        The lag minimising the criterion (ties to the smaller lag, as statsmodels'
        ``min((ic, lag))``), or ``None`` when the regressors are singular.
    """
    fac = _cholesky(gram)
    if fac is None:
        return None
    low, scale = fac
    last = low[-1, :] ** 2
    tail = np.cumsum(last[::-1])[::-1] / (scale[-1] * scale[-1])
    ssr = tail[first : first + maxlag + 1]
    if not np.all(ssr > 0.0):
        return None
    # statsmodels' OLS.loglike, aic and bic, term by term, so near-ties break the same way
    nobs2 = nobs / 2.0
    llf = -np.log(ssr) * nobs2 - (1.0 + math.log(math.pi / nobs2)) * nobs2
    k = np.arange(first, first + maxlag + 1, dtype=float)
    if method == "aic":
        ic = -2.0 * llf + 2.0 * k
    else:
        ic = -2.0 * llf + math.log(nobs) * k
    return int(np.argmin(ic))


def tstat_last(gram: np.ndarray, nobs: int) -> tuple[float, float] | None:
    """t-ratio and coefficient of the last regressor of an OLS given by its Gram matrix.

    Args:
        gram: augmented Gram matrix ``[X y]' [X y]``, the tested regressor last in ``X``.
        nobs: number of observations (rows of ``X``).

    Returns:
        ``(t, coefficient)``, or ``None`` when the regression is singular or has no
        residual degrees of freedom.
    """
    k = gram.shape[0] - 1
    df = nobs - k
    if df <= 0:
        return None
    fac = _cholesky(gram)
    if fac is None:
        return None
    low, scale = fac
    r_ly = low[-1, -2]
    r_ll = low[-2, -2]
    r_yy = low[-1, -1]
    if not r_yy > 0.0:
        return None
    t = r_ly * math.sqrt(df) / r_yy
    coef = r_ly * scale[-2] / (r_ll * scale[-1])
    if not (math.isfinite(t) and math.isfinite(coef)):
        return None
    return float(t), float(coef)
