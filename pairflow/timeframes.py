"""Timeframe names (``1s``, ``1m``, ``5m``, ``1h`` …) and their lengths in microseconds."""

from __future__ import annotations

import re

from pairflow.errors import ConfigError

_UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_PATTERN = re.compile(r"^([1-9][0-9]*)([smhd])$")


def timeframe_us(name: str) -> int:
    """Length of timeframe ``name`` in microseconds.

    Raises:
        ConfigError: when ``name`` is not a count followed by one of s, m, h, d.
    """
    match = _PATTERN.match(name)
    if match is None:
        raise ConfigError(
            f"unknown timeframe {name!r}: use a whole number followed by s, m, h or d "
            "(e.g. 1s, 1m, 5m, 1h)"
        )
    return int(match.group(1)) * _UNIT_US[match.group(2)]


def parse_timeframes(text: str | list[str]) -> tuple[str, ...]:
    """Parse a comma-separated (or listed) set of timeframes, shortest first, no repeats.

    Raises:
        ConfigError: on an unknown timeframe or an empty list.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ConfigError("no timeframe given: pass e.g. --timeframes 1s,1m,5m")
    unique = {timeframe_us(n): n for n in names}
    if len(unique) != len(set(names)):
        raise ConfigError(f"timeframes {names} name the same length twice")
    return tuple(unique[k] for k in sorted(unique))
