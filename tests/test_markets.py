"""Legs on any Binance market: COIN-M symbols, market-named symbols and a spot/COIN-M basis pair."""

from __future__ import annotations

import json

import numpy as np
import pytest

from connectors.binance.wire import FrameParser
from pairflow.config import load_config
from pairflow.errors import ConfigError
from pairflow.records import frame_market, split_symbol
from tests.helpers import (
    SHARED_DATA,
    SPOT_DIR,
    bar_mismatches,
    plain_bars,
    raw_trades,
    run_replay,
    store_bars,
    table_rows,
)

COINM_BTC = SHARED_DATA / "binance-coinm-2024-08-09" / "btcusd_perp_20240809.gz"
SPOT_BTC = SPOT_DIR / "btcusdt_20240809.gz"


def _config(**given):
    return load_config({"source": "replay", "files": ["x.gz"], "store": "x.db", **given},
                       env={})


def test_coinm_and_market_named_symbols_are_accepted():
    assert _config(symbols="BTCUSD_PERP").symbols == ("BTCUSD_PERP",)
    config = _config(symbols="btcusdt,Cm:btcusd_perp", pairs="BTCUSDT/cm:btcusd_perp")
    assert config.symbols == ("BTCUSDT", "cm:BTCUSD_PERP")
    assert config.legs(config.pairs[0]) == ("BTCUSDT", "cm:BTCUSD_PERP")
    assert split_symbol("usdm:BTCUSDT") == ("usdm", "BTCUSDT")


@pytest.mark.parametrize(("given", "message"), [
    ({"symbols": "BTCUSDT,spot:BTCUSDT"}, "name one market's symbol twice"),
    ({"symbols": "usdm:BTCUSDT,BTCUSDT", "market": "usdm"}, "name one market's symbol twice"),
    ({"symbols": "xx:BTCUSDT"}, "malformed symbol"),
    ({"symbols": "BTCUSD__PERP"}, "malformed symbol"),
])
def test_ambiguous_or_malformed_market_names_are_refused(given, message):
    with pytest.raises(ConfigError, match=message):
        _config(**given)


def test_a_live_run_refuses_market_named_symbols():
    with pytest.raises(ConfigError, match="live run reads one market"):
        load_config({"source": "live", "symbols": "cm:BTCUSD_PERP", "store": "x.db"}, env={})


def test_frame_market_tells_spot_usdm_and_coinm_apart():
    assert [frame_market(False, "BTCUSDT"), frame_market(True, "BTCUSDT"),
            frame_market(True, "BTCUSDT_240927"), frame_market(True, "ETHUSD_240927")] == [
        "spot", "usdm", "usdm", "cm"]


def _frame(stream, **data):
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":")).encode()


def test_the_parser_keeps_legs_apart_by_market():
    spot = _frame("btcusdt@trade", e="trade", E=2, s="BTCUSDT", t=1, p="100.0", q="1", T=1,
                  m=False, M=True)
    usdm = _frame("btcusdt@trade", e="trade", E=2, T=1, s="BTCUSDT", t=7, p="101.0", q="2",
                  X="MARKET", m=True)
    parser = FrameParser({"usdm:BTCUSDT"}, "replay")
    out = parser.parse([(10, spot), (11, usdm)])
    assert list(out.chunks) == ["usdm:BTCUSDT"]
    assert out.chunks["usdm:BTCUSDT"].trade_id.tolist() == [7]
    assert [d.reason.split(":")[0] for d in out.dead] == ["unknown_symbol"]
    assert "spot:BTCUSDT" in out.dead[0].reason
    # A bare symbol is on the run's market; the other market's frames are not it.
    both = FrameParser({"BTCUSDT", "usdm:BTCUSDT"}, "replay", market="spot")
    out = both.parse_columns(np.array([10, 11]), [spot, usdm])
    assert {s: c.trade_id.tolist() for s, c in out.chunks.items()} == {
        "BTCUSDT": [1], "usdm:BTCUSDT": [7]}
    # Without market names, symbols are exchange symbols on any market (as before).
    out = FrameParser({"BTCUSDT"}, "replay").parse([(10, spot), (11, usdm)])
    assert out.chunks["BTCUSDT"].trade_id.tolist() == [1, 7] and not out.dead


def test_a_spot_coinm_basis_pair_replays_with_bars_equal_to_a_plain_aggregation(tmp_path):
    db = tmp_path / "basis.db"
    run_replay([SPOT_BTC, COINM_BTC], db, symbols=["spot:BTCUSDT", "cm:BTCUSD_PERP"],
               pairs="spot:BTCUSDT/cm:BTCUSD_PERP", timeframes="1s,1m", window="30",
               quotes=True)
    for path, exchange_symbol, name in ((SPOT_BTC, "BTCUSDT", "spot:BTCUSDT"),
                                        (COINM_BTC, "BTCUSD_PERP", "cm:BTCUSD_PERP")):
        trades = raw_trades([path])[exchange_symbol]
        for timeframe in ("1s", "1m"):
            want = [dict(b, symbol=name) for b in plain_bars(trades, exchange_symbol,
                                                             timeframe)]
            got = store_bars(db, name, timeframe)
            assert not bar_mismatches(got, want), bar_mismatches(got, want)
    pairs = [row for row in table_rows(db, "pairs") if row[1] == "1s"]
    assert {row[0] for row in pairs} == {"spot:BTCUSDT/cm:BTCUSD_PERP"}
    with_z = [row for row in pairs if row[-1] is None]
    assert len(with_z) > 200
    quoted = {row[0] for row in table_rows(db, "quotes")}
    assert quoted == {"spot:BTCUSDT", "cm:BTCUSD_PERP"}
