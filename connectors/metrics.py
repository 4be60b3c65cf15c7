"""Where the flow's counters go: an in-process tally for the CLI summary, or the log."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from pairflow.metrics import Count

logger = logging.getLogger(__name__)


class CountTally:
    """Thread-safe totals of :class:`~pairflow.metrics.Count` items (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter = Counter()

    def add(self, items: list[Count]) -> None:
        """Add a batch of counts."""
        with self._lock:
            for item in items:
                self._totals[item.name] += item.value

    def totals(self) -> Counter:
        """A copy of the totals so far."""
        with self._lock:
            return Counter(self._totals)


class CountSink(DynamicSink[Count]):
    """Adds counts to a :class:`CountTally`; without one, logs each worker's totals at close."""

    def __init__(self, tally: CountTally | None = None):
        self.tally = tally

    def build(self, step_id: str, worker_index: int, worker_count: int) -> Any:
        """One partition per worker."""
        return _CountPartition(self.tally or CountTally(), log=self.tally is None,
                               worker=worker_index)


class _CountPartition(StatelessSinkPartition[Count]):
    def __init__(self, tally: CountTally, log: bool, worker: int):
        self._tally = tally
        self._log = log
        self._worker = worker

    def write_batch(self, items: list[Count]) -> None:
        self._tally.add(items)

    def close(self) -> None:
        if self._log:
            totals = " ".join(f"{k}={v}" for k, v in sorted(self._tally.totals().items()))
            logger.info("worker=%d counts %s", self._worker, totals)
