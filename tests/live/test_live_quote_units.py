"""Units of live quotes: mark-price frames, update-id order, quote gaps, stream settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from connectors.binance.settings import LiveSettings
from connectors.binance.wire import FrameParser
from pairflow.config import load_config
from pairflow.errors import ConfigError
from pairflow.quotes import MarkChunk, QuoteBarBuilder, QuoteChunk, QuoteGap


def _mark(symbol: str, event_ms: int, price: str, rate: str, next_ms: int,
          enveloped: bool = True) -> bytes:
    data = {"e": "markPriceUpdate", "E": event_ms, "s": symbol, "p": price, "i": price,
            "P": price, "r": rate, "T": next_ms}
    body = {"stream": f"{symbol.lower()}@markPrice@1s", "data": data} if enveloped else data
    return json.dumps(body, separators=(",", ":")).encode()


def _book(symbol: str, update_id: int, bid: str, ask: str, time_ms: int) -> bytes:
    data = {"e": "bookTicker", "u": update_id, "s": symbol, "b": bid, "B": "1.5", "a": ask,
            "A": "0.5", "T": time_ms, "E": time_ms}
    return json.dumps({"stream": f"{symbol.lower()}@bookTicker", "data": data},
                      separators=(",", ":")).encode()


def test_mark_price_frames_parse_with_quotes_and_are_skipped_without():
    frames = [(1, _mark("BTCUSDT", 1_000, "60000.5", "0.00010000", 28_800_000)),
              (2, _mark("BTCUSDT_240927", 2_000, "61000", "", 0, enveloped=False)),
              (3, _mark("ETHUSDT", 3_000, "-1", "0.0001", 28_800_000)),
              (4, _mark("XRPUSDT", 4_000, "0.5", "0.0001", 28_800_000))]
    parsed = FrameParser({"BTCUSDT", "BTCUSDT_240927", "ETHUSDT"}, "live",
                         quotes=True).parse(frames)
    perpetual, delivery = parsed.marks["BTCUSDT"], parsed.marks["BTCUSDT_240927"]
    assert (perpetual.ts.tolist(), perpetual.mark_price.tolist(),
            perpetual.funding_rate.tolist(), perpetual.next_funding_ts.tolist()) == (
        [1_000_000], [60000.5], [0.0001], [28_800_000_000])
    assert np.isnan(delivery.funding_rate).all() and delivery.next_funding_ts.tolist() == [0]
    assert parsed.skipped == {"bad_mark": 1, "mark_other_symbol": 1}
    without = FrameParser({"BTCUSDT"}, "live").parse(frames)
    assert not without.marks and without.skipped == {"markPrice": 3, "markPriceUpdate": 1}


def test_quotes_that_do_not_advance_the_update_id_are_dropped():
    parser = FrameParser({"BTCUSDT"}, "live", quotes=True)
    first = parser.parse([(1, _book("BTCUSDT", 10, "1", "2", 100)),
                          (2, _book("BTCUSDT", 12, "1", "2", 101)),
                          (3, _book("BTCUSDT", 11, "1", "2", 102))])
    # The next batch repeats a quote (a connection overlap) and brings a new one.
    second = parser.parse([(4, _book("BTCUSDT", 12, "1", "2", 101)),
                           (5, _book("BTCUSDT", 13, "1", "2", 103))])
    assert first.quotes["BTCUSDT"].update_id.tolist() == [10, 12]
    assert second.quotes["BTCUSDT"].update_id.tolist() == [13]
    assert first.skipped == second.skipped == {"quote_stale": 1}


def _quotes(times_us: list[int], bids: list[float]) -> QuoteChunk:
    ts = np.array(times_us, np.int64)
    bid = np.array(bids, np.float64)
    return QuoteChunk("X", ts, ts, np.arange(len(ts)), bid, np.ones(len(ts)), bid + 1,
                      np.ones(len(ts)))


def test_bars_carry_the_last_mark_before_their_end_and_none_over_a_gap():
    builder = QuoteBarBuilder("X", ["1s"], lateness_us=0)
    # Marks at 0.5 s, 1.0 s (not before the end of window 0), 2.7 s; a delivery-like one
    # (no funding) at 3.2 s.
    marks = MarkChunk("X", np.zeros(4, np.int64),
                      np.array([500_000, 1_000_000, 2_700_000, 3_200_000], np.int64),
                      np.array([10.0, 11.0, 12.0, 13.0]),
                      np.array([0.0001, 0.0002, 0.0003, np.nan]),
                      np.array([8_000_000, 8_000_000, 8_000_000, 0], np.int64))
    assert builder.mark(marks).bars == []
    out = builder.update(_quotes([100_000, 1_500_000], [1.0, 2.0]))
    # The gap from the quote at 1.5 s to the one at 4.2 s: windows 1 … 4 overlap it.
    builder.gap(QuoteGap("X", 1_500_000, 4_200_000))
    out2 = builder.update(_quotes([4_200_000, 6_100_000], [3.0, 4.0]))
    bars = out.bars + out2.bars + builder.flush().bars
    assert [(b.start // 1_000_000, b.bid, b.mark_price, b.funding_rate, b.next_funding_ts)
            for b in bars] == [(0, 1.0, 10.0, 0.0001, 8_000_000),
                               (5, 3.0, 13.0, None, None), (6, 4.0, 13.0, None, None)]
    assert out2.in_gaps == 4


def test_quote_streams_share_the_trades_connection():
    spot = LiveSettings(quotes=True, streams_per_connection=5)
    assert spot.stream_url(["BTCUSDT"]).endswith("btcusdt@trade/btcusdt@bookTicker")
    assert spot.symbols_per_connection == 2
    futures = LiveSettings(market="usdm", quotes=True, streams_per_connection=7)
    assert futures.quote_streams("BTCUSDT") == ["btcusdt@bookTicker", "btcusdt@markPrice@1s"]
    assert futures.quote_streams("BTCUSDT_240927") == ["btcusdt_240927@bookTicker"]
    assert futures.symbols_per_connection == 2
    assert LiveSettings(market="usdm").stream_url(["BTCUSDT"]).endswith("?streams="
                                                                         "btcusdt@aggTrade")


@pytest.mark.parametrize("given", [{"source": "live", "ingest_only": True, "kafka": "k:9092"},
                                   {"source": "kafka", "kafka": "k:9092", "store": "x.db"}])
def test_quotes_over_kafka_ticks_are_refused_at_start_up(given):
    with pytest.raises(ConfigError, match="drop quotes"):
        load_config({**given, "symbols": "BTCUSDT", "quotes": True}, env={})


def test_a_mark_from_before_a_gap_is_not_carried_past_it():
    builder = QuoteBarBuilder("X", ["1s"], lateness_us=0)
    one = lambda e_us, price: MarkChunk("X", np.zeros(1, np.int64),  # noqa: E731
                                        np.array([e_us]), np.array([price]),
                                        np.array([0.0001]), np.array([8_000_000]))
    builder.mark(one(400_000, 10.0))
    bars = builder.update(_quotes([100_000, 1_500_000], [1.0, 2.0])).bars
    builder.gap(QuoteGap("X", 1_500_000, 2_200_000))
    bars += builder.update(_quotes([2_200_000, 4_100_000], [3.0, 4.0])).bars
    builder.mark(one(3_500_000, 11.0))
    bars += builder.flush().bars
    # Window 3 ends after the gap with no update since it: unknown. Window 4 has the new one.
    assert [(b.start // 1_000_000, b.mark_price) for b in bars] == [(0, 10.0), (3, None),
                                                                     (4, 11.0)]


def test_a_resumed_run_declares_the_book_unknown_until_its_first_quote():
    from collections import deque

    from connectors.binance.client import LiveClient

    frames = [(5_000, _book("BTCUSDT", 7, "1", "2", 3)), (5_001, _book("BTCUSDT", 8, "1", "2", 4))]
    items: dict[bool, list] = {}
    for resumed in (False, True):
        out: deque = deque()
        client = LiveClient("usdm-0", ("BTCUSDT",), LiveSettings(market="usdm", quotes=True),
                            {"BTCUSDT": 41} if resumed else {}, out)
        client.frames = list(frames)
        client.process_frames()
        items[resumed] = [item for item in out if isinstance(item, QuoteGap | QuoteChunk)]
    assert [type(item) for item in items[False]] == [QuoteChunk]
    gap, quotes = items[True]
    assert gap == QuoteGap("BTCUSDT", 0, 3_000) and quotes.ts.tolist() == [3_000, 4_000]


@pytest.fixture
def tape_coinm_server():
    from tests.binance_server.server import BinanceTestServer
    from tests.binance_server.tape import COINM_DIR, Tape

    tape = Tape.load(start_s=100.0, length_s=5.0, symbols=("BTCUSD_PERP", "ETHUSD_PERP"),
                     capture=COINM_DIR)
    with BinanceTestServer(tape, market="cm", contract_sizes={"BTCUSD_PERP": 250.0}) as server:
        yield server


def test_a_live_coinm_run_takes_the_exchanges_contract_sizes(tape_coinm_server):
    """``/dapi/v1/exchangeInfo`` gives the sizes (a user's setting wins); unreachable: the spec."""
    from connectors.binance.exchange_info import with_exchange_contract_sizes

    def config(**given):
        return load_config({"source": "live", "market": "cm", "store": "x.db",
                            "symbols": "BTCUSD_PERP,ETHUSD_PERP", **given}, env={})

    read = with_exchange_contract_sizes(config(rest_url=tape_coinm_server.rest_url))
    # The stand-in exchange says otherwise than the published specification for BTC.
    assert read.contract_size("BTCUSD_PERP") == 250.0
    assert read.contract_size("ETHUSD_PERP") == 10.0
    mine = with_exchange_contract_sizes(config(rest_url=tape_coinm_server.rest_url,
                                               contract_sizes="BTCUSD_PERP=100"))
    assert mine.contract_size("BTCUSD_PERP") == 100.0
    down = with_exchange_contract_sizes(config(rest_url="http://127.0.0.1:9"))
    assert down.contract_size("BTCUSD_PERP") == 100.0
    spot = load_config({"source": "live", "store": "x.db", "symbols": "BTCUSDT"}, env={})
    assert with_exchange_contract_sizes(spot) is spot
