"""The settings of a watched pair, checked in one place whichever way they come."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pairflow.alerts import AlertState
from pairflow.analytics.settings import EstimatorSettings, HedgeMethod, parse_lag
from pairflow.timeframes import timeframe_us

#: Defaults of the hedge-ratio settings, stated once (the estimator's).
_HEDGE = EstimatorSettings()

#: Bars in the window: one number for every timeframe, or ``(timeframe, bars)`` per timeframe.
WindowSpec = int | tuple[tuple[str, int], ...]
_WINDOW_HINT = "use a number of bars or TIMEFRAME=BARS pairs, e.g. 1s=300,1m=120,5m=48"


def parse_window(value: Any) -> WindowSpec:
    """A window as given by a user: one number of bars, or one per timeframe.

    Accepts an int, its text, a mapping ``{timeframe: bars}`` (a TOML table) or the text
    ``TIMEFRAME=BARS,...``. The bounds are checked with the other pair settings.

    Raises:
        ValueError: a malformed value or a repeated timeframe.
        ConfigError: a malformed timeframe.

    >>> parse_window("300"), parse_window("1m=120, 1s=300"), parse_window({"5m": 48})
    (300, (('1s', 300), ('1m', 120)), (('5m', 48),))
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        items = [(str(k).strip(), v) for k, v in value.items()]
    else:
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        pairs = [[p.strip() for p in part.partition("=")[::2]]
                 for part in text.split(",") if part.strip()]
        if not pairs or any(not k or not v.isdigit() for k, v in pairs):
            raise ValueError(_WINDOW_HINT)
        items = [(k, int(v)) for k, v in pairs]
    bars = {}
    for name, count in items:
        timeframe_us(name)  # a malformed timeframe names itself
        if name in bars:
            raise ValueError(f"timeframe {name} is given twice")
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError(_WINDOW_HINT)
        bars[name] = int(count)
    return tuple(sorted(bars.items(), key=lambda item: timeframe_us(item[0])))


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
    max_pvalue: float | None = None
    net_of_cost: bool = False

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
        return AlertState(self.entry_z, self.exit_z, self.cooldown_bars, self.max_pvalue,
                          self.net_of_cost)
