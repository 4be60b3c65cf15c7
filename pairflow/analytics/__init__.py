"""Streaming pair statistics: the pure, incremental analytics core of pairflow.

Imports only the standard library, numpy, scipy and numba (the per-bar work runs in compiled
kernels; statsmodels' MacKinnon tables are copied in); the flow (live) and the dashboard
(what-if recomputation) share these estimators.

Examples:
    >>> from pairflow.analytics import EstimatorSettings, PairEstimator
    >>> est = PairEstimator(EstimatorSettings(window=10, price="raw", lag=0))
    >>> for i in range(12):
    ...     est.update(100.0 + (i * 7919) % 13, 50.0 + (i * 104729) % 11)
    >>> r = est.result()
    >>> r.n, round(r.beta, 6), r.adf_lags
    (10, -0.292208, 0)
"""

from typing import TYPE_CHECKING, Any

from pairflow.analytics.errors import AnalyticsError, InputError, SettingsError
from pairflow.analytics.result import PairResult
from pairflow.analytics.settings import EstimatorSettings

if TYPE_CHECKING:
    from pairflow.analytics.pair import PairEstimator, run_history

__all__ = [
    "AnalyticsError",
    "EstimatorSettings",
    "InputError",
    "PairEstimator",
    "PairResult",
    "SettingsError",
    "run_history",
]


def __getattr__(name: str) -> Any:
    # The estimator loads numba and its compiled kernels (a second or more at start-up);
    # settings, results and errors come without them, so the configuration, the records and
    # a command that fails on a flag do not pay for the kernels.
    if name in ("PairEstimator", "run_history"):
        from pairflow.analytics import pair

        return getattr(pair, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
