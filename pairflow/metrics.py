"""Counters that flow through the dataflow beside the data, for the run summary and health."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Count:
    """Add ``value`` to counter ``name`` (``frames``, ``skipped:bookTicker``, ``bars:1s`` …)."""

    name: str
    value: int


def counts(counter: Counter, prefix: str = "") -> list[Count]:
    """One :class:`Count` per non-zero entry of ``counter``, names prefixed."""
    return [Count(f"{prefix}{name}", value) for name, value in counter.items() if value]
