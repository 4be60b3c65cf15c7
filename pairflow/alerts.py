"""Z-score alerts with hysteresis and cooldown, as a small state machine.

States: *flat*, *upper* (entered on z ≥ +entry), *lower* (entered on z ≤ −entry). From upper,
the alert exits when z falls below +exit; from lower when z rises above −exit — a jump straight
across zero exits and, if beyond the other threshold, enters on the other side in the same bar.
No re-entry before an exit (hysteresis); after an exit, no entry for ``cooldown_bars`` bars.
Bars without a z-score leave the state as it is. ``alert_id`` is ``pair|timeframe|ts|kind``, so
a replay or a resumed flow produces the same ids and never a duplicate.

Two optional entry conditions (off by default): ``max_pvalue`` — enter only while the pair is
cointegrated, its Engle-Granger p-value below it (or, for a pair of a scanned universe, its
universe q-value: the caller passes that instead, and the entry carries it); ``net_of_cost`` —
enter only when the expected reversion to the exit threshold, ``(|z| − exit)·σ``, exceeds the
round-trip cost at the quotes (:class:`~pairflow.records.SpreadCost`: crossing + fees, spread
units). An alert weighed against a cost carries the executable prices of its trade and, on
entry, that edge net of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from pairflow.errors import ConfigError
from pairflow.records import Alert, SpreadCost


@dataclass
class AlertState:
    """Hysteresis state of one pair and timeframe.

    Args:
        entry_z: |z| at or above which an alert enters.
        exit_z: |z| below which it exits; must be below ``entry_z``.
        cooldown_bars: bars after an exit with no new entry.
        max_pvalue: enter only when the Engle-Granger p-value (or the universe q-value, when
            given) is below it (None: always).
        net_of_cost: enter only when the expected reversion beats the round-trip cost.

    Raises:
        ConfigError: thresholds or cooldown out of bounds (the one check of these settings,
            whether they come from flags, TOML, the environment or the what-if form).

    >>> s = AlertState(2.0, 0.5)
    >>> zs = (1.0, 2.1, 3.0, 0.4, -2.5)
    >>> [a.alert_kind for z in zs for a in s.update("A/B", "1s", 0, z, 0, 1)]
    ['enter_upper', 'exit', 'enter_lower']
    """

    entry_z: float
    exit_z: float
    cooldown_bars: int = 0
    max_pvalue: float | None = None
    net_of_cost: bool = False
    side: int = 0  # +1 upper, -1 lower, 0 flat
    bars_since_exit: int | None = None

    def __post_init__(self) -> None:
        if not (self.entry_z > 0 and self.exit_z >= 0):
            raise ConfigError(f"thresholds must be entry_z > 0 and exit_z >= 0, got "
                              f"{self.entry_z}, {self.exit_z}")
        if self.exit_z >= self.entry_z:
            raise ConfigError(f"exit threshold {self.exit_z} must be below the entry threshold "
                              f"{self.entry_z}")
        if isinstance(self.cooldown_bars, bool) or not isinstance(self.cooldown_bars, int):
            raise ConfigError(f"cooldown must be a whole number of bars, got "
                              f"{self.cooldown_bars!r}")
        if self.cooldown_bars < 0:
            raise ConfigError(f"cooldown must be >= 0 bars, got {self.cooldown_bars}")
        if self.max_pvalue is not None and not 0 < self.max_pvalue <= 1:
            raise ConfigError(f"max_pvalue must be in (0, 1], got {self.max_pvalue}")

    def update(
        self, pair: str, timeframe: str, ts: int, zscore: float | None, spread: float | None,
        beta: float | None, *, pvalue: float | None = None, qvalue: float | None = None,
        sigma: float | None = None, cost: SpreadCost | None = None,
    ) -> list[Alert]:
        """Feed one bar's z-score; return the alerts it fires (exit before entry).

        ``pvalue``, ``sigma`` (the spread's σ) and ``cost`` are the bar's Engle-Granger p-value
        and executable spread, for the optional entry conditions. ``qvalue``, the pair's
        universe q-value in force, gates the entry in place of ``pvalue`` when given (a pair
        gated by the universe passes no ``pvalue``: without a q-value it does not enter).
        """
        if self.bars_since_exit is not None:
            self.bars_since_exit += 1
        if zscore is None or spread is None or beta is None:
            return []
        alerts = []

        def fire(kind: str, threshold: float, side: int, edge: float | None = None,
                 gate_qvalue: float | None = None) -> None:
            y_price = x_price = None
            if cost is not None:  # side +1: short the spread (sell Y), −1: buy it
                y_price = cost.y_bid if side > 0 else cost.y_ask
                x_price = cost.x_ask if (side > 0) == (beta > 0) else cost.x_bid
            alerts.append(Alert(f"{pair}|{timeframe}|{ts}|{kind}", pair, timeframe, ts, kind,
                                zscore, threshold, spread, beta, y_price, x_price, edge,
                                gate_qvalue))

        if self.side and self.side * zscore < self.exit_z:
            fire("exit", self.exit_z, -self.side)
            self.side = 0
            self.bars_since_exit = 0
        cooling = (self.cooldown_bars > 0 and self.bars_since_exit is not None
                   and self.bars_since_exit <= self.cooldown_bars)
        if self.side == 0 and not cooling and abs(zscore) >= self.entry_z:
            significance = pvalue if qvalue is None else qvalue
            allowed, edge = self._worth_entering(zscore, significance, sigma, cost)
            if allowed:
                self.side = 1 if zscore > 0 else -1
                fire("enter_upper" if zscore > 0 else "enter_lower",
                     self.side * self.entry_z, self.side, edge, qvalue)
        return alerts

    def _worth_entering(self, zscore: float, significance: float | None, sigma: float | None,
                        cost: SpreadCost | None) -> tuple[bool, float | None]:
        """(whether the optional entry conditions hold, the edge net of cost when known).

        ``significance`` is the p-value or q-value the ``max_pvalue`` gate compares.
        """
        if self.max_pvalue is not None and not (significance is not None
                                                and significance < self.max_pvalue):
            return False, None
        edge = None
        if cost is not None and sigma is not None:
            edge = (abs(zscore) - self.exit_z) * sigma - (cost.crossing + cost.fees)
        if self.net_of_cost and not (edge is not None and edge > 0):
            return False, edge
        return True, edge
