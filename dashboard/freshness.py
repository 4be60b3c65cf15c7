"""How fresh the shown data are, for the header badge (pure).

A store written by a live flow also holds its streams' ``health`` records; a replay writes
none, and its bars are historical, so their age says nothing: a replayed series is "replay
running" while rows keep arriving and "replay finished" after.
"""

from __future__ import annotations

import math

from dashboard.cards import duration, short_time
from pairflow.errors import ConfigError
from pairflow.timeframes import timeframe_us

#: A live series is stale once its newest bar is older than this many bars…
STALE_BARS = 3
#: …and at least this many seconds (the flow writes a bar after its end and a grace period).
STALE_MIN_S = 15.0
#: A replay counts as running while rows arrived within this many seconds.
REPLAY_QUIET_S = 3.0


def stale_after_s(timeframe: str) -> float:
    """Seconds after which the newest bar of a live ``timeframe`` series is stale."""
    try:
        bar_s = timeframe_us(timeframe) / 1e6
    except ConfigError:
        bar_s = 0.0
    return max(STALE_BARS * bar_s, STALE_MIN_S)


def freshness(*, reachable: bool, live: bool, newest_ts: int | None, timeframe: str,
              arrived: float | None, now: float) -> tuple[str, str]:
    """The badge's state and text.

    Args:
        reachable: whether the feed can read its source.
        live: whether the source holds live-stream health records (a live flow writes it).
        newest_ts: bar end (µs) of the shown series' newest record, None while it has none.
        timeframe: the shown timeframe.
        arrived: wall time (s) a row last arrived from the source, if any did.
        now: the wall time (s).

    Returns:
        ``(state, text)``, state one of ``unreachable``, ``waiting``, ``live``, ``stale``,
        ``replay``, ``replay-done``.
    """
    if not reachable:
        return "unreachable", "source unreachable"
    if newest_ts is None:
        return "waiting", "waiting for data"
    if not live:
        if arrived is not None and now - arrived <= REPLAY_QUIET_S:
            return "replay", "replay running"
        return "replay-done", f"replay finished · last bar {short_time(newest_ts)}"
    age = now - newest_ts / 1e6
    if math.isfinite(age) and age <= stale_after_s(timeframe):
        return "live", "live"
    return "stale", f"stale · last bar {duration(age)} ago"
