"""What-if recomputation: a pair's history from stored bars under other settings (pure).

Uses the same statistics core as the flow (:func:`pairflow.analytics.run_history`) and the
same alert state machine (:class:`pairflow.alerts.AlertState`); legs are aligned by bar end
like :mod:`pairflow.pairs`: only ends where both legs have a bar update the estimator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pairflow.analytics import PairResult, run_history
from pairflow.pair_settings import PairSettings
from pairflow.records import Alert, to_dict


@dataclass
class WhatIf:
    """A recomputed history.

    Attributes:
        ts: bar ends (µs) of the aligned bars, oldest first.
        results: one :class:`PairResult` per end.
        alerts: alerts the thresholds fire over the history (as store-row dicts).
        seconds: wall time of the recomputation.
    """

    ts: np.ndarray
    results: list[PairResult]
    alerts: list[dict[str, Any]]
    seconds: float

    @property
    def zscore(self) -> np.ndarray:
        """The z-scores (NaN where undefined)."""
        return np.array([np.nan if r.zscore is None else r.zscore for r in self.results],
                        dtype=float)


def align(y_bars: list[dict[str, Any]], x_bars: list[dict[str, Any]]
          ) -> tuple[np.ndarray, list[float], list[float]]:
    """Ends where both legs have a bar, in end order, with the legs' closes."""
    x_by_end = {b["end"]: b["close"] for b in x_bars}
    ends, ys, xs = [], [], []
    for bar in sorted(y_bars, key=lambda b: b["end"]):
        x_close = x_by_end.get(bar["end"])
        if x_close is not None:
            ends.append(bar["end"])
            ys.append(bar["close"])
            xs.append(x_close)
    return np.asarray(ends, dtype="int64"), ys, xs


def recompute(pair: str, timeframe: str, y_bars: list[dict[str, Any]],
              x_bars: list[dict[str, Any]], settings: PairSettings) -> WhatIf:
    """Recompute statistics and alerts of ``pair`` from its legs' bars under ``settings``."""
    started = time.perf_counter()
    state = settings.alert_state()
    ends, ys, xs = align(y_bars, x_bars)
    results = run_history(settings.estimator, ys, xs)
    alerts: list[Alert] = []
    for end, result in zip(ends, results, strict=True):
        spread = result.spread
        alerts += state.update(pair, timeframe, int(end), result.zscore, spread, result.beta)
    return WhatIf(ends, results, [to_dict(a) for a in alerts], time.perf_counter() - started)
