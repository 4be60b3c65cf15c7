"""``pairflow live`` / ``record`` / ``status`` against the local Binance server."""

from __future__ import annotations

import gzip
import json

import pytest
import typer
from bytewax.testing import run_main
from typer.testing import CliRunner

from app.live import register
from connectors.store import StoreReader
from flows.pairs import build_flow
from pairflow.config import load_config
from tests.binance_server import BinanceTestServer, Faults, Tape
from tests.live.harness import (
    FAST_ENV,
    SYMBOLS,
    TIMEFRAMES,
    assert_bars_equal,
    bars_of,
    comparable,
    env,
    replay_bars,
)

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]
SPEED = 40.0


@pytest.fixture(scope="module")
def tape() -> Tape:
    return Tape.load(start_s=200.0, length_s=80.0)


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_live_command_records_and_reports_status(tmp_path, tape, app):
    reference = replay_bars(tmp_path, tape)
    store = tmp_path / "live.db"
    rec = tmp_path / "rec"
    duration = (tape.last_ms - tape.first_ms) / 1000 / SPEED + 3
    faults = Faults(events=[(30.0, "abrupt_close", None)])
    with BinanceTestServer(tape, SPEED, faults) as server, env(FAST_ENV):
        result = CliRunner().invoke(app, [
            "live", "--symbols", ",".join(SYMBOLS), "--timeframes", TIMEFRAMES,
            "--ws-url", server.ws_url, "--rest-url", server.rest_url, "--store", str(store),
            "--duration", str(duration), "--record", str(rec)])
    assert result.exit_code == 0, result.output
    assert "ticks" in result.output
    live = bars_of(store)
    assert_bars_equal(comparable(live, tape), comparable(reference, tape))
    # The recording (live frames + backfilled trades) replays to the same bars.
    files = sorted(rec.glob("*.gz"))
    assert files
    ids = set()
    for path in files:
        with gzip.open(path, "rb") as handle:
            for line in handle:
                ids.add(json.loads(line.split(b" ", 1)[1])["data"]["t"])
    assert ids == {t.trade_id for t in tape.trades}
    replay_store = tmp_path / "rec.db"
    config = load_config({"source": "replay", "files": [str(p) for p in files],
                          "symbols": ",".join(SYMBOLS), "timeframes": TIMEFRAMES,
                          "store": str(replay_store)}, env={})
    run_main(build_flow(config))
    assert_bars_equal(comparable(bars_of(replay_store), tape), comparable(live, tape))
    # Health rows, and the status table.
    health = list(StoreReader(store).query("health"))
    assert {r["stream"] for r in health} == {"btcusdt@trade", "ethusdt@trade"}
    assert max(r["reconnects"] for r in health) >= 1
    assert any((r["trades_backfilled"] or 0) > 0 for r in health)
    assert any(r["latency_p50_ms"] is not None for r in health)
    status = CliRunner().invoke(app, ["status", "--store", str(store)])
    assert status.exit_code == 0, status.output
    assert "btcusdt@trade" in status.output and "ethusdt@trade" in status.output


def test_record_command(tmp_path, tape, app):
    out = tmp_path / "rec"
    with BinanceTestServer(tape, SPEED) as server, env(FAST_ENV):
        result = CliRunner().invoke(app, [
            "record", "--symbols", ",".join(SYMBOLS), "--ws-url", server.ws_url,
            # The run's length covers the recorder's start and connection on a busy machine;
            # the server sends its tape far sooner.
            "--out", str(out), "--duration", "3.0"])
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.gz"))
    assert files
    with gzip.open(files[0], "rb") as handle:
        lines = handle.read().splitlines()
    assert lines
    recv, frame = lines[0].split(b" ", 1)
    assert int(recv) > 1_600_000_000 * 10**9
    assert json.loads(frame)["stream"] in ("btcusdt@trade", "ethusdt@trade")


def test_status_without_health_is_one_line_error(tmp_path, app):
    from connectors.store import StoreWriter
    from pairflow.errors import PairflowError

    store = tmp_path / "empty.db"
    StoreWriter(store).close()
    result = CliRunner().invoke(app, ["status", "--store", str(store)])
    assert isinstance(result.exception, PairflowError)
