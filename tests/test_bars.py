"""BarBuilder: unit cases and hypothesis properties against the plain reference aggregation."""

from __future__ import annotations

import copy
import math
import pickle
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairflow.bars import BarBuilder
from pairflow.ticks import FeedGap, Heartbeat
from tests.helpers import (
    SPOT_FILES,
    RawTrade,
    bar_dicts,
    bar_mismatches,
    chunk_of,
    make_chunk,
    plain_bars,
    raw_trades,
)

S = 1_000_000  # one second in µs
TFS = ("1s", "1m", "5m")
PROPERTY = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def run_builder(chunks, timeframes=TFS, lateness_us=2 * S, final=True):
    """Feed chunks to one builder; return (bars sorted, late ids, late_by, duplicates)."""
    builder = BarBuilder("BTCUSDT", list(timeframes), lateness_us)
    bars, late_ids, late_by, duplicates = [], [], [], 0
    for chunk in chunks:
        out = builder.update(chunk)
        bars.extend(out.bars)
        duplicates += out.duplicates
        if out.late is not None:
            late_ids.extend(out.late.trade_id.tolist())
            late_by.extend(out.late_by_us.tolist())
    if final:
        bars.extend(builder.heartbeat(Heartbeat("BTCUSDT", 0, final=True)).bars)
    return bars, late_ids, late_by, duplicates


def by_tf(bars, timeframe):
    return sorted((b for b in bar_dicts(bars) if b["timeframe"] == timeframe),
                  key=lambda b: b["start"])


def cut(trades: list[RawTrade], sizes: list[int]):
    chunks, i, k = [], 0, 0
    while i < len(trades):
        size = sizes[k % len(sizes)]
        chunks.append(chunk_of(trades[i:i + size]))
        i += size
        k += 1
    return chunks


@pytest.fixture(scope="module")
def btc() -> list[RawTrade]:
    if not SPOT_FILES:
        pytest.skip("real spot tape not found")
    return raw_trades(SPOT_FILES)["BTCUSDT"][:6000]


# ------------------------------------------------------------------------------ unit cases


def tick(ts, tid, price, qty=1.0, maker=False):
    return make_chunk("BTCUSDT", [ts], [tid], [price], [qty], [maker])


def test_single_window_fields():
    chunk = make_chunk("BTCUSDT", [100, 200, 300, 400], [1, 2, 3, 4], [10.0, 12.0, 9.0, 11.0],
                       [1.0, 2.0, 3.0, 4.0], [True, False, True, False])
    bars, *_ = run_builder([chunk], timeframes=["1s"], lateness_us=0)
    assert bar_dicts(bars) == [{
        "symbol": "BTCUSDT", "timeframe": "1s", "start": 0, "end": S, "open": 10.0,
        "high": 12.0, "low": 9.0, "close": 11.0, "volume": 10.0,
        "quote_volume": 10.0 + 24.0 + 27.0 + 44.0, "vwap": 105.0 / 10.0, "trades": 4,
        "taker_buy_volume": 6.0, "first_trade_id": 1, "last_trade_id": 4}]


def test_open_close_by_time_then_trade_id_not_arrival():
    # Same trade time: the smaller trade id is first, whatever the arrival order.
    chunk = make_chunk("BTCUSDT", [500, 500, 100, 900, 900], [7, 6, 5, 9, 8],
                       [3.0, 2.0, 1.0, 5.0, 4.0])
    bars, *_ = run_builder([chunk], timeframes=["1s"], lateness_us=S)
    assert (bars[0].open, bars[0].close) == (1.0, 5.0)
    # Split so the later-id tie arrives in a separate chunk first.
    chunks = [make_chunk("BTCUSDT", [900], [9], [5.0]), make_chunk("BTCUSDT", [900], [8], [4.0])]
    bars, *_ = run_builder(chunks, timeframes=["1s"], lateness_us=S)
    assert (bars[0].open, bars[0].close, bars[0].trades) == (4.0, 5.0, 2)


def test_window_bounds_are_end_exclusive_and_epoch_aligned():
    chunk = make_chunk("BTCUSDT", [S - 1, S, 60 * S - 1, 60 * S], [1, 2, 3, 4],
                       [1.0, 2.0, 3.0, 4.0])
    bars, *_ = run_builder([chunk], timeframes=["1s", "1m"], lateness_us=0)
    ones = by_tf(bars, "1s")
    assert [(b["start"], b["trades"]) for b in ones if b["trades"]] == [
        (0, 1), (S, 1), (59 * S, 1), (60 * S, 1)]
    assert [(b["start"], b["end"], b["trades"]) for b in by_tf(bars, "1m")] == [
        (0, 60 * S, 3), (60 * S, 120 * S, 1)]


def test_aggregate_trades_count_exchange_trades():
    chunk = make_chunk("BTCUSDT", [100, 200], [50, 51], [1.0, 2.0], first=[100, 104],
                       last=[103, 110])
    bars, *_ = run_builder([chunk], timeframes=["1s"])
    assert (bars[0].trades, bars[0].first_trade_id, bars[0].last_trade_id) == (11, 100, 110)


def test_quiet_windows_between_contiguous_ids_only():
    contiguous = [tick(100, 1, 10.0), tick(3 * S + 5, 2, 11.0)]
    bars, *_ = run_builder(contiguous, timeframes=["1s"], lateness_us=0)
    assert [(b.start, b.trades, b.close) for b in bars] == [
        (0, 1, 10.0), (S, 0, 10.0), (2 * S, 0, 10.0), (3 * S, 1, 11.0)]
    assert all(b.vwap is None and b.volume == 0 and b.first_trade_id is None
               for b in bars if b.trades == 0)
    lost = [tick(100, 1, 10.0), tick(3 * S + 5, 5, 11.0)]  # ids 2..4 never came: feed gap
    bars, *_ = run_builder(lost, timeframes=["1s"], lateness_us=0)
    assert [(b.start, b.trades) for b in bars] == [(0, 1), (3 * S, 1)]


def test_ghost_ids_keep_contiguity():
    ghosts = make_chunk("BTCUSDT", [], [], [], ghosts=[2, 3, 4])
    chunks = [tick(100, 1, 10.0), ghosts, tick(3 * S + 5, 5, 11.0)]
    bars, *_ = run_builder(chunks, timeframes=["1s"], lateness_us=0)
    assert [(b.start, b.trades) for b in bars] == [(0, 1), (S, 0), (2 * S, 0), (3 * S, 1)]
    some = make_chunk("BTCUSDT", [], [], [], ghosts=[2, 4])  # id 3 still missing
    bars, *_ = run_builder([tick(100, 1, 10.0), some, tick(3 * S + 5, 5, 11.0)],
                           timeframes=["1s"], lateness_us=0)
    assert [b.trades for b in bars] == [1, 1]


def test_heartbeat_makes_quiet_bars_up_to_watermark_final_does_not():
    builder = BarBuilder("BTCUSDT", ["1s"], lateness_us=S)
    assert builder.update(tick(100, 1, 10.0)).bars == []
    out = builder.heartbeat(Heartbeat("BTCUSDT", 5 * S + 10))
    # watermark = 4 s + 10 µs: windows ending at or before it are closed.
    assert [(b.start, b.trades, b.close) for b in out.bars] == [
        (0, 1, 10.0), (S, 0, 10.0), (2 * S, 0, 10.0), (3 * S, 0, 10.0)]
    assert builder.watermark == 4 * S + 10
    late = builder.update(tick(4 * S, 2, 12.0))  # older than the heartbeat's watermark
    assert late.late is not None and late.late.trade_id.tolist() == [2]
    assert late.late_by_us.tolist() == [10]
    final = builder.heartbeat(Heartbeat("BTCUSDT", 0, final=True))
    assert final.bars == []  # no quiet bar after the last trade


def test_feed_gap_windows_are_not_bars():
    builder = BarBuilder("BTCUSDT", ["1s"], lateness_us=0)
    builder.update(tick(100, 1, 10.0))
    builder.gap(FeedGap("BTCUSDT", S, 2 * S + 1, "backfill failed"))
    bars = builder.update(tick(5 * S, 2, 11.0)).bars
    bars += builder.heartbeat(Heartbeat("BTCUSDT", 0, final=True)).bars
    assert [(b.start, b.trades) for b in bars] == [(0, 1), (3 * S, 0), (4 * S, 0), (5 * S, 1)]


def test_traded_windows_that_lost_trades_to_a_gap_are_not_bars():
    # Trades at 0.1 s and 70.5 s survive around a gap [0.4 s, 70.2 s): the 1 s windows at 0 s
    # and 70 s and the 1 m windows at 0 and 60 s each lost trades, so none of them is a bar.
    builder = BarBuilder("BTCUSDT", ["1s", "1m"], lateness_us=0)
    builder.update(tick(S // 10, 1, 10.0))
    builder.gap(FeedGap("BTCUSDT", 4 * S // 10, 70 * S + S // 5, "backfill: ids not available"))
    bars = builder.update(tick(70 * S + S // 2, 9, 11.0)).bars
    bars += builder.update(tick(125 * S, 10, 12.0)).bars
    bars += builder.heartbeat(Heartbeat("BTCUSDT", 0, final=True)).bars
    assert [(b.timeframe, b.start) for b in bars if b.trades] == [("1s", 125 * S), ("1m", 120 * S)]
    assert not [b for b in bars if b.start < 70 * S + S // 5 and b.end > 4 * S // 10]


def test_duplicates_dropped_and_counted():
    chunks = [make_chunk("BTCUSDT", [100, 200, 200], [1, 2, 2], [1.0, 2.0, 2.0]),
              make_chunk("BTCUSDT", [100, 300], [1, 3], [1.0, 3.0])]
    bars, late, _, duplicates = run_builder(chunks, timeframes=["1s"])
    assert duplicates == 2 and late == []
    assert (bars[0].trades, bars[0].volume) == (3, 3.0)


def test_rejects_negative_lateness():
    with pytest.raises(ValueError, match="lateness"):
        BarBuilder("BTCUSDT", ["1s"], -1)


def test_state_pickles_and_resumes(btc):
    trades = btc[:3000]
    whole, *_ = run_builder([chunk_of(trades)])
    builder = BarBuilder("BTCUSDT", list(TFS), 2 * S)
    bars = builder.update(chunk_of(trades[:1234])).bars
    restored = pickle.loads(pickle.dumps(copy.deepcopy(builder)))
    bars += restored.update(chunk_of(trades[1234:])).bars
    bars += restored.heartbeat(Heartbeat("BTCUSDT", 0, final=True)).bars
    for timeframe in TFS:
        assert bar_mismatches(by_tf(bars, timeframe), by_tf(whole, timeframe)) == []
        assert len(by_tf(bars, timeframe)) == len(by_tf(whole, timeframe))


# ----------------------------------------------------------------------------- properties


@PROPERTY
@given(sizes=st.lists(st.integers(1, 1000), min_size=1, max_size=30))
def test_bars_do_not_depend_on_chunk_size(btc, sizes):
    bars, late, _, duplicates = run_builder(cut(btc, sizes))
    assert late == [] and duplicates == 0
    for timeframe in TFS:
        assert bar_mismatches(by_tf(bars, timeframe), plain_bars(btc, "BTCUSDT", timeframe)) == []


@PROPERTY
@given(sizes=st.lists(st.integers(1, 1000), min_size=1, max_size=10),
       seed=st.integers(0, 2**32 - 1))
def test_duplicated_input_gives_the_same_bars(btc, sizes, seed):
    rng = random.Random(seed)
    trades = btc[:3000]
    # Re-send random stretches (as overlapping files or a reconnect would), right after.
    stream: list[RawTrade] = []
    resent = 0
    i = 0
    while i < len(trades):
        step = rng.randint(1, 700)
        stream.extend(trades[i:i + step])
        back = rng.randint(0, min(step, 50))
        stream.extend(trades[i + step - back:i + step] if back else [])
        resent += len(trades[i + step - back:i + step]) if back else 0
        i += step
    bars, late, _, duplicates = run_builder(cut(stream, sizes))
    assert duplicates == resent and late == []
    for timeframe in TFS:
        assert bar_mismatches(by_tf(bars, timeframe),
                              plain_bars(trades, "BTCUSDT", timeframe)) == []


def independent_lateness(trades: list[RawTrade], lateness_us: int):
    """Late iff trade time < (max trade time of earlier arrivals) − lateness."""
    late, late_by, on_time = [], [], []
    latest = None
    for trade in trades:
        floor = None if latest is None else latest - lateness_us
        if floor is not None and trade.ts_us < floor:
            late.append(trade.trade_id)
            late_by.append(floor - trade.ts_us)
        else:
            on_time.append(trade)
        latest = trade.ts_us if latest is None else max(latest, trade.ts_us)
    return late, late_by, on_time


@PROPERTY
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(1, 1000), min_size=1,
                                                       max_size=10),
       lateness_ms=st.sampled_from([0, 50, 300, 2000]))
def test_late_ticks_are_returned_not_folded(btc, seed, sizes, lateness_ms):
    # Disorder the arrival: each trade is delayed by up to 1.5 s of arrival positions.
    rng = random.Random(seed)
    trades = btc[:3000]
    delayed = sorted(trades, key=lambda t: t.ts_us + rng.randrange(0, 1_500_000))
    late_ref, late_by_ref, on_time = independent_lateness(delayed, lateness_ms * 1000)
    bars, late, late_by, duplicates = run_builder(cut(delayed, sizes),
                                                  lateness_us=lateness_ms * 1000)
    assert duplicates == 0
    assert late == late_ref and late_by == late_by_ref
    if lateness_ms == 0:
        assert late  # the disorder really produced late ticks
    for timeframe in TFS:
        traded = [b for b in by_tf(bars, timeframe) if b["trades"]]
        expected = [b for b in plain_bars(on_time, "BTCUSDT", timeframe) if b["trades"]]
        assert bar_mismatches(traded, expected) == []


@settings(max_examples=60, deadline=None)
@given(ticks=st.lists(st.tuples(st.integers(0, 5 * S), st.floats(0.01, 1e6),
                                st.floats(1e-8, 1e3)), min_size=1, max_size=80),
       lateness=st.integers(0, 6 * S))
def test_low_le_open_close_le_high(ticks, lateness):
    chunk = make_chunk("BTCUSDT", [t for t, _, _ in ticks], range(1, len(ticks) + 1),
                       [p for _, p, _ in ticks], [q for _, _, q in ticks])
    bars, *_ = run_builder([chunk], lateness_us=lateness)
    assert bars
    for bar in bars:
        assert bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high
        length = bar.end - bar.start
        assert length in (S, 60 * S, 300 * S) and bar.start % length == 0
        if bar.trades:
            assert bar.low <= bar.vwap * (1 + 1e-12) and bar.vwap <= bar.high * (1 + 1e-12)
            assert 0 <= bar.taker_buy_volume <= bar.volume


@settings(max_examples=40, deadline=None)
@given(ticks=st.lists(st.tuples(st.integers(0, 700 * S), st.floats(1e-3, 1e7),
                                st.floats(1e-12, 1e12)), min_size=1, max_size=300),
       sizes=st.lists(st.integers(1, 100), min_size=1, max_size=5),
       timeframes=st.sampled_from([("1s", "1m", "5m"), ("5m", "1s", "1m"), ("2s", "3s", "6s"),
                                   ("1s", "7s", "1m")]))
def test_coarse_bars_from_finer_windows_are_the_ticks_bars_to_the_bit(ticks, sizes, timeframes):
    # A timeframe tiled by a finer one folds that one's closed windows, not the ticks: its bars
    # must be exactly those of the ticks (sums correctly rounded, as ``math.fsum``), whatever
    # the chunking and the order the timeframes are given in.
    ticks = sorted(ticks)
    chunks, start = [], 0
    while start < len(ticks):
        part = ticks[start:start + sizes[len(chunks) % len(sizes)]]
        chunks.append(make_chunk("BTCUSDT", [t for t, _, _ in part],
                                 range(start + 1, start + len(part) + 1),
                                 [p for _, p, _ in part], [q for _, _, q in part]))
        start += len(part)
    together, *_ = run_builder(chunks, timeframes=timeframes, lateness_us=0)
    for timeframe in timeframes:
        alone, *_ = run_builder(chunks, timeframes=[timeframe], lateness_us=0)
        assert [b for b in together if b.timeframe == timeframe] == alone
        length = alone[0].end - alone[0].start
        for bar in alone:
            inside = [(p, q) for t, p, q in ticks if bar.start <= t < bar.start + length]
            assert bar.volume == math.fsum(q for _, q in inside)
            assert bar.quote_volume == math.fsum(p * q for p, q in inside)


def test_watermark_property_matches_definition():
    builder = BarBuilder("BTCUSDT", ["1s"], lateness_us=250)
    assert builder.watermark == np.iinfo(np.int64).min
    builder.update(make_chunk("BTCUSDT", [1000, 5000, 3000], [1, 2, 3], [1.0, 1.0, 1.0]))
    assert builder.watermark == 5000 - 250
