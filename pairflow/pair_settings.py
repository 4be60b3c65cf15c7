"""The settings of a watched pair, checked in one place whichever way they come."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pairflow.alerts import AlertState
from pairflow.analytics.settings import EstimatorSettings, HedgeMethod, parse_lag

#: Defaults of the hedge-ratio settings, stated once (the estimator's).
_HEDGE = EstimatorSettings()


@dataclass(frozen=True)
class PairSettings:
    """What a watched pair computes and when it alerts.

    Window, price transform, lag policy, hedge-ratio estimator (``beta``: ``ols``, ``kalman``
    or ``rls``, with ``kalman_delta``, ``kalman_obs_var`` and ``rls_lambda``; see
    :class:`~pairflow.analytics.EstimatorSettings`), thresholds and cooldown. The one check of these
    settings, whichever way they come (flags, ``PAIRFLOW_*``, the TOML file, the dashboard's
    what-if form): the estimator's settings and the alert state machine validate their parts
    when built here.

    Raises:
        ConfigError: a setting out of bounds; the message names it, the bound and the value.

    >>> PairSettings(window=60, lag="BIC").estimator.lag
    'bic'
    >>> PairSettings(beta="rls", rls_lambda=0.995).estimator.rls_lambda
    0.995
    """

    window: int = 300
    price: Literal["log", "raw"] = "log"
    lag: Literal["aic", "bic"] | int = "aic"
    entry_z: float = 2.0
    exit_z: float = 0.5
    cooldown_bars: int = 0
    beta: HedgeMethod = _HEDGE.beta
    kalman_delta: float = _HEDGE.kalman_delta
    kalman_obs_var: float | None = _HEDGE.kalman_obs_var
    rls_lambda: float = _HEDGE.rls_lambda

    def __post_init__(self) -> None:
        object.__setattr__(self, "lag", parse_lag(self.lag))
        self.alert_state()
        _ = self.estimator

    @property
    def estimator(self) -> EstimatorSettings:
        """The estimator's settings."""
        return EstimatorSettings(window=self.window, price=self.price, lag=self.lag,
                                 beta=self.beta, kalman_delta=self.kalman_delta,
                                 kalman_obs_var=self.kalman_obs_var, rls_lambda=self.rls_lambda)

    def alert_state(self) -> AlertState:
        """A fresh alert state machine with these thresholds."""
        return AlertState(self.entry_z, self.exit_z, self.cooldown_bars)
