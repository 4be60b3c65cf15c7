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
    # COIN-M trades count contracts, 100 USD each for BTCUSD_PERP (the exchange's contract
    # specification): its bars state coins and USD like the spot leg's.
    for path, exchange_symbol, name, contract_usd in (
            (SPOT_BTC, "BTCUSDT", "spot:BTCUSDT", None),
            (COINM_BTC, "BTCUSD_PERP", "cm:BTCUSD_PERP", 100.0)):
        trades = raw_trades([path])[exchange_symbol]
        for timeframe in ("1s", "1m"):
            want = [dict(b, symbol=name) for b in plain_bars(trades, exchange_symbol, timeframe,
                                                             contract_usd=contract_usd)]
            got = store_bars(db, name, timeframe)
            assert not bar_mismatches(got, want), bar_mismatches(got, want)
    pairs = [row for row in table_rows(db, "pairs") if row[1] == "1s"]
    assert {row[0] for row in pairs} == {"spot:BTCUSDT/cm:BTCUSD_PERP"}
    with_z = [row for row in pairs if row[-1] is None]
    assert len(with_z) > 200
    quoted = {row[0] for row in table_rows(db, "quotes")}
    assert quoted == {"spot:BTCUSDT", "cm:BTCUSD_PERP"}


def _coinm_trade_rows(trades) -> list[str]:
    # data.binance.vision COIN-M trades: id, price, qty (contracts), base_qty (coins), time (ms)
    return [f"{t.trade_id},{t.price!r},{t.qty!r},{100.0 * t.qty / t.price!r},"
            f"{t.ts_us // 1000},{'true' if t.buyer_is_maker else 'false'}" for t in trades]


def test_coinm_dumps_state_coins_and_usd(tmp_path):
    """COIN-M trades and klines dumps (data.binance.vision layouts) give bars in coins and USD."""
    trades = raw_trades([COINM_BTC])["BTCUSD_PERP"]
    dump = tmp_path / "BTCUSD_PERP-trades-2024-08-09.csv"
    dump.write_text("id,price,qty,base_qty,time,is_buyer_maker\n"
                    + "\n".join(_coinm_trade_rows(trades)) + "\n")
    in_contracts = [b for b in plain_bars(trades, "BTCUSD_PERP", "1m") if b["trades"]]
    in_coins = [b for b in plain_bars(trades, "BTCUSD_PERP", "1m", contract_usd=100.0)
                if b["trades"]]
    # COIN-M klines count contracts in `volume` / `taker_buy_volume` and coins in the columns
    # the other markets use for quote volumes.
    klines = tmp_path / "BTCUSD_PERP-1m-2024-08-09.csv"
    klines.write_text(
        "open_time,open,high,low,close,volume,close_time,base_volume,count,taker_buy_volume,"
        "taker_buy_base_volume,ignore\n" + "\n".join(
            f"{c['start'] // 1000},{c['open']!r},{c['high']!r},{c['low']!r},{c['close']!r},"
            f"{c['volume']!r},{(c['end'] - 1) // 1000},{b['volume']!r},{c['trades']},"
            f"{c['taker_buy_volume']!r},{b['taker_buy_volume']!r},0"
            for c, b in zip(in_contracts, in_coins, strict=True)) + "\n")
    for files, db_name, ids in (([dump], "trades.db", True), ([klines], "klines.db", False)):
        db = tmp_path / db_name
        run_replay(files, db, symbols=["BTCUSD_PERP"], timeframes="1m")
        want = [b if ids else {**b, "first_trade_id": None, "last_trade_id": None}
                for b in plain_bars(trades, "BTCUSD_PERP", "1m", contract_usd=100.0)]
        got = store_bars(db, "BTCUSD_PERP", "1m")
        assert not bar_mismatches(got, want), bar_mismatches(got, want)
        assert got[0]["quote_volume"] == pytest.approx(100.0 * in_contracts[0]["volume"])
    # A user's contract size overrides the exchange's specification.
    db = tmp_path / "half.db"
    run_replay([dump], db, symbols=["BTCUSD_PERP"], timeframes="1m",
               contract_sizes="BTCUSD_PERP=50")
    got = store_bars(db, "BTCUSD_PERP", "1m")
    assert got[0]["quote_volume"] == pytest.approx(50.0 * in_contracts[0]["volume"])


def test_contract_sizes_are_checked_at_start_up():
    assert _config(symbols="BTCUSD_PERP", contract_sizes="btcusd_perp=50").contract_size(
        "BTCUSD_PERP") == 50.0
    assert _config(symbols="BTCUSDT").contract_size("BTCUSDT") is None
    for bad, message in (("BTCUSDT=5", "not a COIN-M contract"),
                         ("BTCUSD_PERP=-1", "positive"), ("BTCUSD_PERP=x", "not a number"),
                         ("BTCUSD_PERP", "SYMBOL=USD"), ("BTCUSD_PERP=1,btcusd_perp=2",
                                                         "twice")):
        with pytest.raises(ConfigError, match=message):
            _config(symbols="BTCUSDT", contract_sizes=bad)
