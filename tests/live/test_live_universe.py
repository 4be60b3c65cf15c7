"""``pairflow live --universe`` with 20 symbols against the local Binance test server.

The extra symbols are real trades relabelled (``tests.binance_server.tape.universe_tape``:
rotated times, shifted prices and ids). All 20 streams go over one connection; every trade
arrives, and the scan rows equal those of a replay of the same tape up to the symbols'
last trades (after them a live run adds quiet bars, hence more scans).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import typer
from bytewax.testing import run_main
from typer.testing import CliRunner

from app.live import register
from connectors.binance.ticker import top_symbols
from connectors.metrics import CountTally
from flows.pairs import build_flow
from pairflow.config import load_config
from pairflow.errors import ConfigError
from tests.binance_server import BinanceTestServer, Tape
from tests.binance_server.tape import universe_tape
from tests.live.harness import FAST_ENV, env
from tests.test_universe_flow import FIELDS, assert_same_scans, stored_scans

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]
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


def test_live_top_k_universe_from_the_24h_ticker(tmp_path):
    """``--universe top:3``: the three symbols of largest quote volume, ranked exactly."""
    tape = universe_tape(Tape.load(0, 40), 8)
    quote = {s: sum(Decimal(t.price) * Decimal(t.qty) for t in rows)
             for s, rows in tape.by_symbol.items()}
    expected = tuple(sorted(quote, key=lambda s: (-quote[s], s))[:3])
    store = tmp_path / "top.db"
    app = typer.Typer()
    register(app)
    with BinanceTestServer(tape, SPEED) as server, env(FAST_ENV):
        assert top_symbols(server.rest_url, "spot", 3) == expected
        result = CliRunner().invoke(app, [
            "live", "--universe", "top:3", "--timeframes", "1s", "--scan-timeframe", "1s",
            "--scan-window", "30", "--scan-every", "10", "--ws-url", server.ws_url,
            "--rest-url", server.rest_url, "--store", str(store), "--duration", "3"])
    assert result.exit_code == 0, result.output
    a, b, c = expected
    assert {row[0] for row in stored_scans(store)} == {f"{a}/{b}", f"{a}/{c}", f"{b}/{c}"}


def test_top_k_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="at least two"):
        top_symbols("http://127.0.0.1:9", "spot", 1)
    with pytest.raises(ConfigError, match="cannot read the 24 h ticker"):
        top_symbols("http://127.0.0.1:9", "spot", 3, timeout_s=2)
