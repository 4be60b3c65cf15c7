"""Quote bars: pairflow against an independent aggregation of the raw ``@bookTicker`` frames.

The reference reads the recordings with the stdlib ``json`` module and pandas, times spot
quotes by its own reading of the clock rule (receive time minus the smallest
``receive − trade time`` of the symbol's trades received strictly before), drops late quotes,
and aggregates each window with a plain loop and ``math.fsum``. Time-weighted means are also
checked against exact rational arithmetic.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from connectors.binance.quotes import QuoteClock
from connectors.replay import MergedReplay, inspect_file
from pairflow.quotes import QuoteBarBuilder, QuoteChunk
from pairflow.records import QuoteBar, exchange_time_us, field_names
from pairflow.ticks import TickChunk
from tests.helpers import SHARED_DATA, SPOT_DIR, TIMEFRAMES_US, open_text

SPOT = [SPOT_DIR / "btcusdt_20240809.gz", SPOT_DIR / "ethusdt_20240809.gz"]
COINM = [SHARED_DATA / "binance-coinm-2024-08-09" / "btcusd_perp_20240809.gz"]
LATENESS_US = 2_000_000
FIELDS = field_names(QuoteBar)


def raw_frames(path) -> pd.DataFrame:
    """Trades and quotes of a recording, in line order (stdlib json); ``u``: a quote's
    update id (-1 for a trade)."""
    rows = []
    with open_text(path) as handle:
        for line in handle:
            head, _, frame = line.rstrip("\n").partition(" ")
            obj = json.loads(frame)
            stream, data = obj.get("stream", ""), obj.get("data")
            if stream.endswith("@bookTicker"):
                rows.append(("quote", data["s"], int(head) // 1000, data.get("T", -1),
                             float(data["b"]), float(data["B"]), float(data["a"]),
                             float(data["A"]), data["u"]))
            elif stream.endswith("@trade") and data.get("X", "MARKET") == "MARKET":
                rows.append(("trade", data["s"], int(head) // 1000, data["T"], *[math.nan] * 4,
                             -1))
    frame = pd.DataFrame(rows, columns=["kind", "symbol", "recv", "time", "bid", "bid_qty",
                                        "ask", "ask_qty", "u"])
    frame["time"] = [t * 1000 if t >= 0 else -1 for t in frame["time"]]
    return frame


def reference_quotes(frames: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The symbol's quotes timed (spot: by the trades' clock offset), late ones dropped."""
    mine = frames[frames.symbol == symbol]
    quotes = mine[mine.kind == "quote"].copy()
    trades = mine[mine.kind == "trade"]
    assert trades.recv.is_monotonic_increasing and quotes.recv.is_monotonic_increasing
    if (quotes.time < 0).any():
        lows = pd.DataFrame({"recv": trades.recv.to_numpy(),
                             "low": (trades.recv - trades.time).cummin().to_numpy()})
        timed = pd.merge_asof(quotes[["recv"]], lows, on="recv", allow_exact_matches=False)
        quotes["time"] = (quotes.recv.to_numpy() - timed.low.to_numpy()).astype("float")
        quotes = quotes[quotes.time.notna()].copy()
        quotes["time"] = quotes.time.astype("int64")
    floor = quotes.time.cummax().shift(1) - LATENESS_US
    return quotes[~(quotes.time < floor)]


def reference_bars(quotes: pd.DataFrame, symbol: str, timeframe: str) -> list[dict]:
    """Quote bars by a plain loop over windows, sums by ``math.fsum``."""
    length = TIMEFRAMES_US[timeframe]
    book = quotes.sort_values("time", kind="stable")
    ts = book.time.tolist()
    bid, bq, ask, aq = (book[c].tolist() for c in ("bid", "bid_qty", "ask", "ask_qty"))
    spread = [(a - b) / ((b + a) / 2.0) * 10_000.0 for b, a in zip(bid, ask, strict=True)]
    imb = [(b - a) / (b + a) for b, a in zip(bq, aq, strict=True)]
    out = []
    for window in range(ts[0] // length, ts[-1] // length + 1):
        start, end = window * length, (window + 1) * length
        lo, hi = np.searchsorted(ts, start), np.searchsorted(ts, end)
        points = ([(start, lo - 1)] if lo > 0 else []) + [(ts[i], i) for i in range(lo, hi)]
        segments = [(i, (points[k + 1][0] if k + 1 < len(points) else end) - at)
                    for k, (at, i) in enumerate(points)]
        segments = [(i, d) for i, d in segments if d > 0]
        total = math.fsum(d for _, d in segments)
        c = hi - 1
        out.append(dict(
            symbol=symbol, timeframe=timeframe, start=start, end=end, bid=bid[c],
            bid_qty=bq[c], ask=ask[c], ask_qty=aq[c], spread_bps=spread[c],
            mean_spread_bps=math.fsum(spread[i] * d for i, d in segments) / total,
            max_spread_bps=max(spread[i] for i, _ in segments),
            imbalance=imb[c], mean_imbalance=math.fsum(imb[i] * d for i, d in segments) / total,
            microprice=(ask[c] * bq[c] + bid[c] * aq[c]) / (aq[c] + bq[c]), quotes=hi - lo,
            # The shared tapes carry no @markPrice stream.
            mark_price=None, funding_rate=None, next_funding_ts=None))
    return out


def pairflow_bars(paths, symbols, chunk_lines: int = 4096) -> list[QuoteBar]:
    """Quote bars from the replay's quote chunks folded by :class:`QuoteBarBuilder`."""
    replay = MergedReplay([inspect_file(p) for p in paths], frozenset(symbols), quotes=True)
    builders = {s: QuoteBarBuilder(s, list(TIMEFRAMES_US), LATENESS_US) for s in symbols}
    bars: list[QuoteBar] = []
    while not replay.exhausted:
        for chunk in replay.read(chunk_lines).quotes:
            bars.extend(builders[chunk.symbol].update(chunk).bars)
    for builder in builders.values():
        bars.extend(builder.flush().bars)
    return bars


def _compare(paths, symbols):
    frames = pd.concat([raw_frames(p) for p in paths])
    got = pairflow_bars(paths, symbols)
    for symbol in symbols:
        quotes = reference_quotes(frames, symbol)
        for timeframe in TIMEFRAMES_US:
            want = reference_bars(quotes, symbol, timeframe)
            mine = [{f: getattr(b, f) for f in FIELDS} for b in got
                    if b.symbol == symbol and b.timeframe == timeframe]
            assert len(mine) == len(want) > 0, (symbol, timeframe)
            for a, b in zip(mine, want, strict=True):
                assert a == b, (symbol, timeframe, a, b)
    return got


def test_spot_quote_bars_equal_an_independent_aggregation():
    bars = _compare(SPOT, ["BTCUSDT", "ETHUSDT"])
    assert sum(b.quotes for b in bars if b.timeframe == "5m") > 70_000


def test_coinm_quote_bars_equal_an_independent_aggregation():
    _compare(COINM, ["BTCUSD_PERP"])


def test_quote_bars_do_not_depend_on_how_the_tape_is_cut():
    def ordered(bars):
        return sorted(bars, key=lambda bar: (bar.timeframe, bar.start))

    whole = ordered(pairflow_bars(SPOT[:1], ["BTCUSDT"], chunk_lines=1 << 20))
    assert ordered(pairflow_bars(SPOT[:1], ["BTCUSDT"], chunk_lines=333)) == whole


def test_time_weighted_means_are_exact():
    """Mean spread and imbalance equal exact rational arithmetic on the same inputs."""
    b = QuoteBarBuilder("X", ["1s"], lateness_us=0)
    bid = np.array([100.0, 100.1, 99.9, 100.2])
    ask = np.array([100.3, 100.2, 100.4, 100.25])
    bq, aq = np.array([1.0, 2.5, 0.1, 3.0]), np.array([2.0, 0.5, 0.7, 1.0])
    ts = np.array([100_000, 350_000, 350_000, 1_700_000], np.int64)
    chunk = QuoteChunk("X", ts, ts, np.arange(4), bid, bq, ask, aq)
    bars = b.update(chunk).bars + b.flush().bars
    first = bars[0]
    # Window 0: quote 0 for 250 ms, quote 1 for 0 ms (same time as quote 2), quote 2 for 650 ms.
    spreads = [Fraction((a - c) / ((c + a) / 2.0) * 10_000.0) for c, a in zip(bid, ask,
                                                                              strict=True)]
    exact = (spreads[0] * 250_000 + spreads[2] * 650_000) / 900_000
    assert first.mean_spread_bps == pytest.approx(float(exact), rel=4e-16, abs=0)
    assert first.max_spread_bps == float(max(spreads[0], spreads[2]))
    assert (first.quotes, first.bid, first.ask) == (3, 99.9, 100.4)
    # Window 1: quote 2 carried in for 700 ms, then quote 3 for 300 ms; close is quote 3.
    second = bars[1]
    imb = [Fraction(x - y) / Fraction(x + y) for x, y in zip(bq, aq, strict=True)]
    exact = (Fraction((bq[2] - aq[2]) / (bq[2] + aq[2])) * 700_000
             + Fraction((bq[3] - aq[3]) / (bq[3] + aq[3])) * 300_000) / 1_000_000
    assert second.mean_imbalance == pytest.approx(float(exact), rel=4e-16, abs=0)
    assert float(imb[3]) == second.imbalance and second.quotes == 1
    assert second.microprice == (100.25 * 3.0 + 100.2 * 1.0) / 4.0


def test_quiet_windows_carry_the_book_and_late_quotes_are_dropped():
    b = QuoteBarBuilder("X", ["1s"], lateness_us=100_000)
    one = lambda t, px: QuoteChunk("X", np.array([t]), np.array([t]), np.array([0]),  # noqa: E731
                                   np.array([px]), np.ones(1), np.array([px + 1]), np.ones(1))
    assert b.update(one(500_000, 10.0)).bars == []
    out = b.update(one(3_200_000, 20.0))
    assert [(x.start, x.bid, x.quotes) for x in out.bars] == [
        (0, 10.0, 1), (1_000_000, 10.0, 0), (2_000_000, 10.0, 0)]
    late = b.update(one(3_000_000, 30.0))
    assert late.late == 1 and late.bars == []
    assert [(x.start, x.bid, x.quotes) for x in b.flush().bars] == [(3_000_000, 20.0, 1)]


def test_the_clock_times_spot_quotes_from_trades_received_strictly_before():
    clock, skipped = QuoteClock(), Counter()
    trades = TickChunk("X", "replay", np.array([1_000, 2_000, 5_000]),
                       np.array([1_500, 2_200, 5_100]), *[np.arange(3)] * 3,
                       np.ones(3), np.ones(3), np.zeros(3, bool))
    recv = np.array([1_400, 1_600, 2_200, 2_300, 9_000])
    quotes = QuoteChunk("X", recv, np.full(5, -1), np.arange(5), *[np.ones(5)] * 4)
    timed = clock.time("X", quotes, trades, skipped)
    # Offsets 500, 200, 100 from the trades received at 1500, 2200, 5100. The quote at 1400
    # has no trade before it; the one at 2200 not yet the trade received at 2200.
    assert timed.ts.tolist() == [1_600 - 500, 2_200 - 500, 2_300 - 200, 9_000 - 100]
    assert skipped == Counter(quote_untimed=1) and clock.offsets == {"X": 100.0}
    later = clock.time("X", quotes.take(slice(4, 5)), None, skipped)
    assert later.ts.tolist() == [8_900]


def test_spot_offset_is_the_recording_clock_lag():
    """The README says the recording machine was ~1.3 s behind Binance."""
    frames = raw_frames(SPOT[0])
    trades = frames[(frames.kind == "trade") & (frames.symbol == "BTCUSDT")]
    replay = MergedReplay([inspect_file(SPOT[0])], frozenset({"BTCUSDT"}), quotes=True)
    while not replay.exhausted:
        replay.read(4096)
    offset = replay._parser._clock.offsets["BTCUSDT"]
    assert offset == float((trades.recv - trades.time).min())
    assert -1_500_000 < offset < -1_100_000
    assert exchange_time_us(1) == 1000


def test_the_flow_stores_quote_bars_only_when_asked(tmp_path):
    from tests.helpers import run_replay, table_rows

    with_quotes, without = tmp_path / "q.db", tmp_path / "n.db"
    totals = run_replay(SPOT[:1], with_quotes, symbols=["BTCUSDT"], timeframes="1m",
                        quotes=True)
    run_replay(SPOT[:1], without, symbols=["BTCUSDT"], timeframes="1m")
    stored = table_rows(with_quotes, "quotes")
    want = [b for b in pairflow_bars(SPOT[:1], ["BTCUSDT"]) if b.timeframe == "1m"]
    assert sorted(stored) == sorted(tuple(getattr(b, f) for f in FIELDS) for b in want)
    assert totals["quote_bars:1m"] == len(want) and "skipped:bookTicker" not in totals
    assert table_rows(without, "quotes") == []
    assert table_rows(with_quotes, "bars") == table_rows(without, "bars")


def test_a_quote_frame_holding_two_objects_is_skipped_not_shifted_onto_the_others():
    from collections import Counter

    from connectors.binance.quotes import decode_quotes

    def quote(update_id: int) -> bytes:
        return (b'{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"1.0",'
                b'"B":"2.0","a":"1.1","A":"3.0"}}' % update_id)

    frames = [quote(1), quote(2) + b"," + quote(3), quote(4)]
    skipped = Counter()
    recv, payloads = decode_quotes([10, 20, 30], frames, [True] * 3, skipped)
    assert recv == [10, 30] and [p.u for p in payloads] == [1, 4]
    assert skipped == Counter({"bad_quote": 1})
