"""Units of the live connector: REST parser, recorder, settings."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from connectors.binance.rest import BackfillError, parse_rest_trades
from connectors.binance.settings import LiveSettings
from connectors.recorder import FrameRecorder, close_all_recorders
from connectors.replay import ReplaySource  # noqa: F401 - the reader of recordings
from pairflow.errors import ConfigError

REST = Path("/work/shared/data/binance-rest")


def test_rest_agg_trades_fixture():
    chunk = parse_rest_trades("BTCUSDT", "aggTrade", (REST / "agg_trades.json").read_bytes(), 7)
    assert len(chunk) == 10 and chunk.source == "backfill"
    assert (chunk.first_trade_id <= chunk.last_trade_id).all()
    assert chunk.ts[0] > 1_600_000_000_000_000 and (chunk.recv_ts == 7).all()


@pytest.mark.parametrize("name", ["trades.json", "historical_trades.json"])
def test_rest_trades_fixture(name):
    chunk = parse_rest_trades("BTCUSDT", "trade", (REST / name).read_bytes(), 0)
    assert len(chunk) == 10
    assert (chunk.trade_id == chunk.first_trade_id).all()
    assert (chunk.price > 0).all() and (chunk.qty > 0).all()


def test_rest_bad_body():
    with pytest.raises(BackfillError):
        parse_rest_trades("BTCUSDT", "trade", b'{"code":-1121}', 0)


def test_recorder_rotates_and_closes(tmp_path):
    rec = FrameRecorder(tmp_path, "t", rotate_s=60)
    base = 1_723_161_600 * 10**9
    rec.write(base, b'{"a":1}')
    rec.write(base + 61 * 10**9, b'{"a":2}\n')
    close_all_recorders()
    rec.write(base + 62 * 10**9, b'{"a":3}')  # after close: ignored, no crash
    assert len(rec.paths) == 2
    lines = [gzip.open(p).read() for p in rec.paths]
    assert lines == [b'%d {"a":1}\n' % base, b'%d {"a":2}\n' % (base + 61 * 10**9)]


def test_settings_from_env_and_checks():
    s = LiveSettings.from_env({"PAIRFLOW_LIVE_SILENCE_LIMIT_S": "7.5",
                               "PAIRFLOW_BINANCE_API_KEY": "k"}, market="usdm")
    assert s.silence_limit_s == 7.5 and s.api_key == "k" and s.kind == "aggTrade"
    assert s.base_ws_url == "wss://fstream.binance.com/market"
    with pytest.raises(ConfigError):
        LiveSettings(streams_per_connection=2000)
    with pytest.raises(ConfigError):
        LiveSettings.from_env({"PAIRFLOW_LIVE_SILENCE_LIMIT_S": "x"})
