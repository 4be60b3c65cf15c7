"""Z-score alerts with hysteresis and cooldown, as a small state machine.

States: *flat*, *upper* (entered on z ≥ +entry), *lower* (entered on z ≤ −entry). From upper,
the alert exits when z falls below +exit; from lower when z rises above −exit — a jump straight
across zero exits and, if beyond the other threshold, enters on the other side in the same bar.
No re-entry before an exit (hysteresis); after an exit, no entry for ``cooldown_bars`` bars.
Bars without a z-score leave the state as it is. ``alert_id`` is ``pair|timeframe|ts|kind``, so
a replay or a resumed flow produces the same ids and never a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass

from pairflow.errors import ConfigError
from pairflow.records import Alert


@dataclass
class AlertState:
    """Hysteresis state of one pair and timeframe.

    Args:
        entry_z: |z| at or above which an alert enters.
        exit_z: |z| below which it exits; must be below ``entry_z``.
        cooldown_bars: bars after an exit with no new entry.

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

    def update(
        self, pair: str, timeframe: str, ts: int, zscore: float | None, spread: float | None,
        beta: float | None,
    ) -> list[Alert]:
        """Feed one bar's z-score; return the alerts it fires (exit before entry)."""
        if self.bars_since_exit is not None:
            self.bars_since_exit += 1
        if zscore is None or spread is None or beta is None:
            return []
        alerts = []

        def fire(kind: str, threshold: float) -> None:
            alerts.append(Alert(f"{pair}|{timeframe}|{ts}|{kind}", pair, timeframe, ts, kind,
                                zscore, threshold, spread, beta))

        if self.side and self.side * zscore < self.exit_z:
            self.side = 0
            self.bars_since_exit = 0
            fire("exit", self.exit_z)
        cooling = (self.cooldown_bars > 0 and self.bars_since_exit is not None
                   and self.bars_since_exit <= self.cooldown_bars)
        if self.side == 0 and not cooling:
            if zscore >= self.entry_z:
                self.side = 1
                fire("enter_upper", self.entry_z)
            elif zscore <= -self.entry_z:
                self.side = -1
                fire("enter_lower", -self.entry_z)
        return alerts
