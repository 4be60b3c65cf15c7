"""Topic names and record keys: which topic a record goes to, and under which key."""

from __future__ import annotations

from typing import Any, Final

from pairflow.errors import SinkError

DEFAULT_PREFIX: Final = "pairflow."
#: Topic name (after the prefix) of each record ``kind``.
TOPIC_SUFFIXES: Final[dict[str, str]] = {
    "tick": "ticks",
    "bar": "bars",
    "quote": "quotes",
    "cost": "costs",
    "pair": "pairs",
    "alert": "alerts",
    "trade": "trades",
    "pnl": "pnl",
    "deadletter": "deadletter",
    "health": "health",
    "scan": "scan",
}


def topic_for(kind: str, topic_prefix: str = DEFAULT_PREFIX) -> str:
    """The topic of records of ``kind`` (``"bar"`` -> ``"pairflow.bars"``).

    Raises:
        SinkError: ``kind`` is not a record kind pairflow publishes.
    """
    try:
        return topic_prefix + TOPIC_SUFFIXES[kind]
    except KeyError:
        msg = f"no Kafka topic for record kind {kind!r}; known kinds: {sorted(TOPIC_SUFFIXES)}"
        raise SinkError(msg) from None


def record_key(record: Any) -> str:
    """The Kafka key of a record: its ``key`` property, or the symbol of a tick."""
    key = getattr(record, "key", None)
    if key is None and getattr(record, "kind", None) == "tick":
        key = record.symbol
    if not isinstance(key, str):
        msg = f"record {type(record).__name__} has no string `key` to use as its Kafka key"
        raise SinkError(msg)
    return key
