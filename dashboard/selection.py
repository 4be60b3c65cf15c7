"""Which series a session shows: the URL's ``?pair=Y/X&timeframe=1s`` checked (pure).

The URL's pair and timeframe are checked against the series the feed knows, the one place the
dashboard validates them.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

from pairflow.errors import ConfigError
from pairflow.timeframes import timeframe_us

#: Sorts a timeframe the core cannot parse after every known one.
_UNKNOWN_LENGTH = 1 << 62


@dataclass(frozen=True)
class Selection:
    """The series a session starts on and the selectors' options.

    Attributes:
        pair: the pair ``Y/X`` shown ("" while the feed knows none).
        timeframe: the timeframe shown ("" while unknown).
        pairs: the pair selector's options (the known pairs, plus a waited-for one).
        timeframes: the timeframe selector's options, shortest first.
        unknown: what the URL asked for that the feed does not know, if anything.
    """

    pair: str
    timeframe: str
    pairs: list[str]
    timeframes: list[str]
    unknown: str | None = None

    @property
    def message(self) -> str:
        """The Markdown message about an unknown URL selection ("" when there is none)."""
        if self.unknown is None:
            return ""
        return (f"Unknown pair or timeframe “{_literal(self.unknown)}” in the URL. Known "
                f"pairs: {', '.join(self.pairs)}. Showing {self.pair} {self.timeframe} instead.")


def _literal(text: str) -> str:
    """``text`` shown as typed in Markdown: HTML escaped, emphasis and link marks too."""
    escaped = html.escape(text)
    for mark in "\\`*_[]":
        escaped = escaped.replace(mark, "\\" + mark)
    return escaped


def known_pairs(keys: Iterable[tuple[str, str]]) -> list[str]:
    """The pairs of the ``(pair, timeframe)`` series, sorted."""
    return sorted({pair for pair, _ in keys})


def timeframes_of(keys: Iterable[tuple[str, str]], pair: str) -> list[str]:
    """The timeframes ``pair`` has series in, shortest first (unparsable names last)."""
    def length(name: str) -> int:
        try:
            return timeframe_us(name)
        except ConfigError:
            return _UNKNOWN_LENGTH

    return sorted({t for p, t in keys if p == pair}, key=length)


def _spelled(pair: str, pairs: list[str]) -> str:
    """``pair`` as the known pair it names in any case, else as the command line spells it.

    The command line upper-cases symbols and lower-cases market qualifiers
    (``spot:BTCUSDT/cm:BTCUSD_PERP``); upper-casing the whole name lost the market's case.
    """
    known = {p.upper(): p for p in pairs}
    if pair.upper() in known:
        return known[pair.upper()]

    def leg(name: str) -> str:
        market, colon, symbol = name.rpartition(":")
        return f"{market.lower()}{colon}{symbol.upper()}"

    return "/".join(leg(name) for name in pair.split("/"))


def select(keys: list[tuple[str, str]], pair: str | None, timeframe: str | None) -> Selection:
    """The series to show for a URL's ``pair`` and ``timeframe`` (None: not given).

    An empty parameter counts as not given. A known pair (any case) and timeframe are shown
    as asked. An unknown one is replaced by the
    first known pair / the pair's shortest timeframe and reported in :attr:`Selection.unknown`.
    While the feed knows no series yet, the asked-for series is kept and waited for.
    """
    pairs = known_pairs(keys)
    pair = (pair or "").strip() or None
    timeframe = (timeframe or "").strip() or None
    unknown = None
    if pair is not None:
        pair = _spelled(pair, pairs)
        if pairs and pair not in pairs:
            unknown, pair = pair, None
    if pair is None:
        pair = pairs[0] if pairs else ""
    timeframes = timeframes_of(keys, pair)
    if timeframe is not None and timeframes and timeframe not in timeframes:
        unknown = unknown or f"{pair} {timeframe}"
        timeframe = None
    if timeframe is None:
        timeframe = timeframes[0] if timeframes else ""
    return Selection(
        pair=pair,
        timeframe=timeframe,
        pairs=pairs if pair in pairs or not pair else [*pairs, pair],
        timeframes=timeframes if timeframe in timeframes or not timeframe
        else [*timeframes, timeframe],
        unknown=unknown,
    )
