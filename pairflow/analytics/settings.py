"""Settings of the pair estimator and the lag rules they imply."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pairflow.analytics.errors import SettingsError

__all__ = [
    "HEDGE_METHODS",
    "HedgeMethod",
    "MIN_WINDOW",
    "EstimatorSettings",
    "parse_hedge_label",
    "parse_lag",
    "schwert_maxlag",
]

#: Smallest window: below it the ADF regressions have (almost) no degrees of freedom.
MIN_WINDOW = 10

HedgeMethod = Literal["ols", "kalman", "rls"]
#: The hedge-ratio estimators a pair can follow (``EstimatorSettings.beta``).
HEDGE_METHODS: tuple[str, ...] = ("ols", "kalman", "rls")


def parse_lag(value: str | int) -> Literal["aic", "bic"] | int:
    """A lag policy as given by a user (``"AIC"``, ``" 4 "``, ``4``) in its canonical form.

    Raises:
        SettingsError: when ``value`` is not ``aic``, ``bic`` or a whole number of lags.

    >>> parse_lag("AIC"), parse_lag(" 4 "), parse_lag(2)
    ('aic', 4, 2)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("aic", "bic"):
        return text  # type: ignore[return-value]
    if text.isdigit():
        return int(text)
    raise SettingsError(f"lag policy {value!r} is not aic, bic or a whole number of lags")


def schwert_maxlag(nobs: int, ntrend: int) -> int:
    """Statsmodels' default ADF maximum lag for a series of ``nobs`` points.

    ``min(ceil(12 * (nobs / 100) ** 0.25), nobs // 2 - ntrend - 1)`` exactly as in
    ``statsmodels.tsa.stattools.adfuller`` (Schwert 1989, via Greene), where ``ntrend`` is
    1 for ``regression="c"`` and 0 for ``regression="n"``.

    Args:
        nobs: length of the tested series (the window).
        ntrend: number of deterministic terms in the test regression.

    Returns:
        The maximum lag considered by the automatic lag selection.

    Examples:
        >>> schwert_maxlag(120, 1), schwert_maxlag(120, 0), schwert_maxlag(10, 1)
        (13, 13, 3)
    """
    maxlag = int(math.ceil(12.0 * math.pow(nobs / 100.0, 1 / 4.0)))
    return min(nobs // 2 - ntrend - 1, maxlag)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_LABEL_KEYS = {"delta": "kalman_delta", "obs_var": "kalman_obs_var", "lambda": "rls_lambda"}


def parse_hedge_label(label: str) -> dict[str, str | float | None]:
    """The hedge-ratio settings of a ``hedge`` label (see ``EstimatorSettings.hedge_label``).

    Returns:
        ``beta`` and the settings the label names, as ``EstimatorSettings`` keywords.

    Raises:
        SettingsError: a label that is not one ``hedge_label`` writes.

    >>> parse_hedge_label("kalman delta=1e-09 obs_var=auto")
    {'beta': 'kalman', 'kalman_delta': 1e-09, 'kalman_obs_var': None}
    """
    method, *pairs = label.split()
    settings: dict[str, str | float | None] = {"beta": method}
    try:
        for pair in pairs:
            key, value = pair.split("=")
            settings[_LABEL_KEYS[key]] = None if value == "auto" else float(value)
    except (KeyError, ValueError) as error:
        raise SettingsError(f"hedge label {label!r} is not ols, kalman delta=D obs_var=V or "
                            f"rls lambda=L") from error
    return settings


@dataclass(frozen=True, slots=True)
class EstimatorSettings:
    """What a :class:`~pairflow.analytics.PairEstimator` computes.

    Attributes:
        window: bars in the rolling window (``min_periods`` equals it).
        price: ``"log"`` (statistics on natural logs of the closes) or ``"raw"``.
        lag: ADF/Engle-Granger augmentation: ``"aic"`` or ``"bic"`` (statsmodels'
            ``autolag``, maximum lag ``12 * (window / 100) ** 0.25``) or a fixed ``int``
            number of lagged differences (``autolag=None, maxlag=lag``).

    Raises:
        SettingsError: a setting out of bounds (the message gives the bound).

    Examples:
        >>> EstimatorSettings(window=120).lag
        'aic'
        >>> EstimatorSettings(window=5)
        Traceback (most recent call last):
        ...
        pairflow.analytics.errors.SettingsError: window must be at least 10 bars, got 5
    """

    window: int = 300
    price: Literal["log", "raw"] = "log"
    lag: Literal["aic", "bic"] | int = "aic"
    beta: HedgeMethod = "ols"
    kalman_delta: float = 1e-10
    kalman_obs_var: float | None = None
    rls_lambda: float = 0.99

    def __post_init__(self) -> None:
        self._check_window_and_lag()
        self._check_hedge()

    def _check_hedge(self) -> None:
        if self.beta not in HEDGE_METHODS:
            raise SettingsError(f"beta must be one of {', '.join(HEDGE_METHODS)}, got "
                                f"{self.beta!r}")
        if not _is_real(self.kalman_delta) or not 0.0 < self.kalman_delta < 1.0:
            raise SettingsError(f"kalman_delta must be between 0 and 1 (exclusive), got "
                                f"{self.kalman_delta!r}")
        if self.kalman_obs_var is not None and not (
            _is_real(self.kalman_obs_var) and 0.0 < self.kalman_obs_var < math.inf
        ):
            raise SettingsError(f"kalman_obs_var must be a positive number (or unset), got "
                                f"{self.kalman_obs_var!r}")
        if not _is_real(self.rls_lambda) or not 0.0 < self.rls_lambda <= 1.0:
            raise SettingsError(f"rls_lambda must be in (0, 1], got {self.rls_lambda!r}")

    def _check_window_and_lag(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int):
            raise SettingsError(f"window must be an int number of bars, got {self.window!r}")
        if self.window < MIN_WINDOW:
            raise SettingsError(f"window must be at least {MIN_WINDOW} bars, got {self.window}")
        if self.price not in ("log", "raw"):
            raise SettingsError(f"price transform must be 'log' or 'raw', got {self.price!r}")
        if isinstance(self.lag, str):
            if self.lag not in ("aic", "bic"):
                raise SettingsError(f"lag must be 'aic', 'bic' or an int >= 0, got {self.lag!r}")
        elif isinstance(self.lag, bool) or not isinstance(self.lag, int):
            raise SettingsError(f"lag must be 'aic', 'bic' or an int >= 0, got {self.lag!r}")
        else:
            bound = self.window // 2 - 2
            if self.lag < 0:
                raise SettingsError(f"lag must be at least 0, got {self.lag}")
            if self.lag > bound:
                raise SettingsError(
                    f"lag must be at most window // 2 - 2 = {bound} for window {self.window}, "
                    f"got {self.lag}"
                )

    @property
    def hedge_label(self) -> str:
        """The hedge-ratio settings as one text, as pair records carry them (``hedge``).

        ``"ols"``, ``"kalman delta=D obs_var=V"`` (``V`` ``"auto"`` when unset) or
        ``"rls lambda=L"``, numbers to the last bit; :func:`parse_hedge_label` reads it back.

        >>> EstimatorSettings(beta="kalman", kalman_delta=1e-9).hedge_label
        'kalman delta=1e-09 obs_var=auto'
        """
        if self.beta == "kalman":
            obs_var = "auto" if self.kalman_obs_var is None else repr(float(self.kalman_obs_var))
            return f"kalman delta={float(self.kalman_delta)!r} obs_var={obs_var}"
        if self.beta == "rls":
            return f"rls lambda={float(self.rls_lambda)!r}"
        return "ols"

    @property
    def kalman_state_var(self) -> float:
        """Per-bar random-walk variance of each of α and β: ``delta / (1 - delta)``."""
        return self.kalman_delta / (1.0 - self.kalman_delta)

    @property
    def adf_maxlag(self) -> int:
        """Largest lag of the spread's ADF test (``regression="c"``)."""
        return self.lag if isinstance(self.lag, int) else schwert_maxlag(self.window, 1)

    @property
    def eg_maxlag(self) -> int:
        """Largest lag of the Engle-Granger residual test (``regression="n"``)."""
        return self.lag if isinstance(self.lag, int) else schwert_maxlag(self.window, 0)
