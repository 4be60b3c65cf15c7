"""Run the flow live against the local Binance test server and a clean replay of its tape."""

from __future__ import annotations

import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from bytewax.testing import cluster_main, run_main

from connectors.metrics import CountTally
from connectors.store import StoreReader
from flows.pairs import build_flow
from pairflow.config import load_config
from tests.binance_server import BinanceTestServer, Faults, Tape

SYMBOLS = ("BTCUSDT", "ETHUSDT")
TIMEFRAMES = "1s,1m"
#: Fast settings for tests: the tape runs tens of times real time.
FAST_ENV = {
    "PAIRFLOW_LIVE_BACKOFF_INITIAL_S": "0.05",
    "PAIRFLOW_LIVE_BACKOFF_MAX_S": "0.5",
    "PAIRFLOW_LIVE_REORDER_GRACE_S": "0.2",
    "PAIRFLOW_LIVE_PROBE_AFTER_S": "0.3",
    "PAIRFLOW_LIVE_PROBE_EVERY_S": "0.3",
    "PAIRFLOW_LIVE_SILENCE_MIN_S": "1.0",
    "PAIRFLOW_LIVE_SILENCE_LIMIT_S": "3.0",
    "PAIRFLOW_LIVE_HEALTH_EVERY_S": "1.0",
    "PAIRFLOW_LIVE_HEARTBEAT_EVERY_S": "0.05",
}


@contextmanager
def env(values: dict[str, str]):
    """Set environment variables for the block."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bars_of(store: Path) -> list[dict]:
    """All bars of a store, sorted."""
    rows = list(StoreReader(store).query("bars"))
    return sorted(rows, key=lambda r: (r["symbol"], r["timeframe"], r["start"]))


def replay_bars(tmp_path: Path, tape: Tape) -> list[dict]:
    """Bars of a clean replay of the tape."""
    recording = tape.write_recording(tmp_path / "tape.gz")
    store = tmp_path / "replay.db"
    config = load_config({"source": "replay", "files": [str(recording)],
                          "symbols": ",".join(SYMBOLS), "timeframes": TIMEFRAMES,
                          "store": str(store)}, env={})
    run_main(build_flow(config))
    return bars_of(store)


def live_run(tmp_path: Path, server: BinanceTestServer, duration_s: float,
             extra_env: dict[str, str] | None = None,
             record_dir: Path | None = None,
             market: str = "spot", workers: int = 1) -> tuple[Counter, list[dict], Path]:
    """Run the live flow against ``server`` for ``duration_s``; (totals, bars, store)."""
    store = tmp_path / "live.db"
    config = load_config({"source": "live", "symbols": ",".join(SYMBOLS),
                          "timeframes": TIMEFRAMES, "store": str(store),
                          "ws_url": server.ws_url, "rest_url": server.rest_url,
                          "duration_s": duration_s, "market": market,
                          "record_dir": str(record_dir) if record_dir else None}, env={})
    tally = CountTally()
    with env({**FAST_ENV, **(extra_env or {})}):
        if workers == 1:
            run_main(build_flow(config, tally))
        else:
            cluster_main(build_flow(config, tally), [], 0, worker_count_per_proc=workers)
    return tally.totals(), bars_of(store), store


def comparable(bars: list[dict], tape: Tape) -> list[dict]:
    """Bars up to each symbol's last traded window (a live run may add quiet bars after)."""
    last = {}
    for r in bars:
        if r["trades"]:
            key = (r["symbol"], r["timeframe"])
            last[key] = max(last.get(key, 0), r["start"])
    return [r for r in bars if r["start"] <= last.get((r["symbol"], r["timeframe"]), -1)]


def check_exact(tmp_path: Path, tape: Tape, speed: float, faults: Faults,
                extra_env: dict[str, str] | None = None, slack_s: float = 3.0,
                market: str = "spot", workers: int = 1):
    """Run live under ``faults``; assert every tape trade arrived once and bars equal replay."""
    reference = replay_bars(tmp_path, tape)
    duration = (tape.last_ms - tape.first_ms) / 1000 / speed + slack_s
    with BinanceTestServer(tape, speed, faults) as server:
        totals, bars, store = live_run(tmp_path, server, duration, extra_env, market=market,
                                       workers=workers)
        stats = Counter(server.stats)
    expected = len(tape.trades) if market == "spot" else sum(map(len, tape.aggs.values()))
    assert totals["ticks_read"] == expected, (totals, stats)
    assert totals["duplicates"] == 0, totals
    assert totals["dead:late"] == 0, totals
    assert totals["feed_gaps_declared"] == 0, totals
    assert_bars_equal(comparable(bars, tape), comparable(reference, tape),
                      exact=market == "spot")
    return totals, stats, store


#: A usdm run's aggregate trades carry quantities the server summed and formatted, while the
#: replay reference folds the individual trades: their sums agree to rounding, not to the bit
#: (runs of the same stream kind are identical: bar sums are exact).
_SUMS = ("volume", "quote_volume", "vwap", "taker_buy_volume")


def assert_bars_equal(live: list[dict], reference: list[dict], exact: bool = False) -> None:
    """Same bars: identical keys, ids, counts and prices; sums to 1e-9 relative or exactly.

    With ``exact`` every field, sums included, must be equal to the bit.
    """
    assert [(r["symbol"], r["timeframe"], r["start"]) for r in live] == \
        [(r["symbol"], r["timeframe"], r["start"]) for r in reference]
    for a, b in zip(live, reference, strict=True):
        if exact:
            assert a == b, (a, b)
            continue
        assert {k: v for k, v in a.items() if k not in _SUMS} == \
            {k: v for k, v in b.items() if k not in _SUMS}, (a, b)
        for k in _SUMS:
            assert (a[k] is None) == (b[k] is None), (k, a, b)
            if a[k] is not None:
                assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), (k, a, b)
