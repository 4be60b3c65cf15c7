"""``pairflow live --universe`` with 20 symbols against the local Binance test server.

The extra symbols are real trades relabelled (``tests.binance_server.tape.universe_tape``:
rotated times, shifted prices and ids). All 20 streams go over one connection; every trade
arrives, and the scan rows equal those of a replay of the same tape up to the symbols'
last trades (after them a live run adds quiet bars, hence more scans).
"""

from __future__ import annotations

from bytewax.testing import run_main

from connectors.metrics import CountTally
from flows.pairs import build_flow
from pairflow.config import load_config
from tests.binance_server import BinanceTestServer, Tape
from tests.binance_server.tape import universe_tape
from tests.live.harness import FAST_ENV, env
from tests.test_universe_flow import FIELDS, assert_same_scans, stored_scans

SPEED = 20.0
SCAN = {"timeframes": "1s", "scan_timeframe": "1s", "scan_window": 30, "scan_every": 10,
        "vr_lag": 3, "hurst_max_lag": 8, "scan_retention_days": 1_000_000.0}


def test_live_universe_of_20_symbols_on_one_connection(tmp_path):
    tape = universe_tape(Tape.load(0, 60), 20)
    universe = ",".join(sorted(tape.by_symbol))
    recording = tape.write_recording(tmp_path / "tape.gz")
    replayed = tmp_path / "replay.db"
    run_main(build_flow(load_config({"source": "replay", "files": [str(recording)],
                                     "universe": universe, "store": str(replayed), **SCAN},
                                    env={})))
    live = tmp_path / "live.db"
    duration = (tape.last_ms - tape.first_ms) / 1000 / SPEED + 4.0
    tally = CountTally()
    with BinanceTestServer(tape, SPEED) as server, env(FAST_ENV):
        run_main(build_flow(load_config(
            {"source": "live", "universe": universe, "store": str(live),
             "ws_url": server.ws_url, "rest_url": server.rest_url, "duration_s": duration,
             **SCAN}, env={}), tally))
        stats = dict(server.stats)
    totals = tally.totals()
    assert stats["connections"] == 1, stats
    assert totals["ticks_read"] == len(tape.trades), totals
    last_trade_us = min(rows[-1].time_ms for rows in tape.by_symbol.values()) * 1000
    live_rows = [r for r in stored_scans(live) if r[2] < last_trade_us]
    replay_rows = [r for r in stored_scans(replayed) if r[2] < last_trade_us]
    assert len({r[0] for r in live_rows}) == 190
    beta = FIELDS.index("beta")
    assert sum(r[beta] is not None for r in live_rows) >= 190 * 3  # 3 scans with windows
    assert_same_scans(live_rows, replay_rows)
