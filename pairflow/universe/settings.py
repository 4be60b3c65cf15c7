"""Settings of a universe scan, checked in one place whichever way they come.

The field names are the configuration keys (TOML key, ``PAIRFLOW_<NAME>`` variable), so
:func:`pairflow.config.load_settings` reads them directly and ``PairflowConfig`` carries the
same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pairflow.analytics.errors import SettingsError
from pairflow.analytics.settings import EstimatorSettings, parse_lag
from pairflow.errors import ConfigError
from pairflow.records import SYMBOL_PATTERN
from pairflow.timeframes import timeframe_us

__all__ = ["ScanSettings"]


@dataclass(frozen=True)
class ScanSettings:
    """What a universe scan computes: every pair of ``universe`` on one timeframe.

    Attributes:
        universe: the symbols, in the order that names each pair ``A/B`` (A before B);
            empty means "every symbol of the input, alphabetical".
        scan_timeframe: the bars' timeframe (``1m``).
        scan_window: aligned bars in each pair's window (>= 10).
        scan_every: bars between scan times; scan times are the bar ends that are multiples
            of ``scan_every`` timeframes since the epoch.
        vr_lag: the variance ratio's lag q (2 <= q < window).
        hurst_max_lag: largest lag of the Hurst exponent's fit (3 <= lag < window).
        price: ``log`` (statistics on natural logs of the closes) or ``raw``.
        lag: the Engle-Granger tests' lag policy (``aic``, ``bic`` or a fixed number).

    Raises:
        ConfigError: a setting out of bounds; the message names it, the bound and the value.

    >>> ScanSettings(universe=("ETHBTC", "LTCBTC")).pairs()
    [('ETHBTC', 'LTCBTC')]
    """

    universe: tuple[str, ...] = ()
    scan_timeframe: str = "1m"
    scan_window: int = 240
    scan_every: int = 60
    vr_lag: int = 10
    hurst_max_lag: int = 20
    price: Literal["log", "raw"] = "log"
    lag: Literal["aic", "bic"] | int = "aic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lag", parse_lag(self.lag))
        object.__setattr__(self, "universe", tuple(s.strip().upper() for s in self.universe))
        bad = [s for s in self.universe if not SYMBOL_PATTERN.match(s)]
        if bad:
            raise ConfigError(f"malformed universe symbol(s) {bad}: use upper-case names "
                              "like BTCUSDT")
        if len(set(self.universe)) != len(self.universe):
            raise ConfigError(f"universe {list(self.universe)} repeats a symbol")
        if len(self.universe) == 1:
            raise ConfigError("a universe needs at least two symbols")
        timeframe_us(self.scan_timeframe)
        try:
            _ = self.estimator
        except SettingsError as error:
            raise ConfigError(f"scan: {error}") from None
        self._check_lags()

    def _check_lags(self) -> None:
        window = self.scan_window
        if isinstance(self.scan_every, bool) or not isinstance(self.scan_every, int) \
                or self.scan_every < 1:
            raise ConfigError(f"scan_every must be a whole number of bars >= 1, got "
                              f"{self.scan_every!r}")
        if not 2 <= self.vr_lag < window:
            raise ConfigError(f"vr_lag must be between 2 and scan_window - 1 = {window - 1}, "
                              f"got {self.vr_lag}")
        if not 3 <= self.hurst_max_lag < window:
            raise ConfigError(f"hurst_max_lag must be between 3 and scan_window - 1 = "
                              f"{window - 1}, got {self.hurst_max_lag}")

    @property
    def estimator(self) -> EstimatorSettings:
        """The pair estimator's settings of the scan's window, price transform and lag policy."""
        return EstimatorSettings(window=self.scan_window, price=self.price, lag=self.lag)

    @property
    def timeframe_us(self) -> int:
        """The scan timeframe in µs."""
        return timeframe_us(self.scan_timeframe)

    @property
    def every_us(self) -> int:
        """Time between two scan times in µs."""
        return self.scan_every * self.timeframe_us

    def pairs(self, symbols: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
        """Every unordered pair ``(A, B)`` once, A before B in the universe's order.

        Args:
            symbols: the universe to pair (default: ``universe``).
        """
        names = self.universe if symbols is None else symbols
        return [(a, names[j]) for i, a in enumerate(names) for j in range(i + 1, len(names))]
