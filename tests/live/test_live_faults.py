"""Acceptance: the live flow against the local Binance server, under each fault.

Each test replays a slice of the real tape tens of times faster than real time, injects a
fault, and checks that the flow received exactly the tape's trades (no loss, no duplicate,
none late) and that its bars equal a clean replay's.
"""

from __future__ import annotations

import logging
import re

import pytest

from tests.binance_server import BinanceTestServer, Faults, Tape
from tests.live.harness import SYMBOLS, check_exact, comparable, live_run, replay_bars

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]

SPEED = 40.0


@pytest.fixture(scope="module")
def tape() -> Tape:
    return Tape.load(start_s=30.0, length_s=90.0)


def test_clean_run_equals_replay(tmp_path, tape):
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, Faults())
    assert totals["reconnects"] == 0
    assert totals["backfilled"] == 0


def test_abrupt_close_backfills(tmp_path, tape):
    faults = Faults(events=[(20.0, "abrupt_close", None), (50.0, "refuse", 0.3)])
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults)
    assert totals["reconnects"] >= 2
    assert totals["backfilled"] > 0


@pytest.mark.parametrize("kind", ["close_1006", "close_1008"])
def test_close_codes(tmp_path, tape, kind):
    faults = Faults(events=[(25.0, kind, None), (60.0, kind, None)])
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults)
    assert totals["reconnects"] >= 2


def test_rest_429_with_retry_after(tmp_path, tape):
    faults = Faults(events=[(20.0, "refuse", 0.2)], rest_429_first=2, rest_429_every=3,
                    retry_after_s=1)
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults, slack_s=5.0)
    assert stats["rest_429"] >= 2
    assert totals["rest_rate_limited"] >= 2
    assert totals["backfilled"] > 0


def test_rest_418_ban(tmp_path, tape):
    faults = Faults(events=[(20.0, "abrupt_close", None)], rest_429_first=1, rest_status=418,
                    retry_after_s=1)
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults, slack_s=5.0)
    assert stats["rest_418"] == 1


def test_silent_stream_is_detected_and_backfilled(tmp_path, tape):
    faults = Faults(events=[(20.0, "silence", "ethusdt@trade")])
    totals, stats, store = check_exact(tmp_path, tape, SPEED, faults, slack_s=4.0)
    assert totals["silent_streams"] >= 1
    assert totals["backfilled"] > 0
    from connectors.store import StoreReader

    events = [r["event"] for r in StoreReader(store).query("health") if r["event"]]
    assert "silent_stream" in events


def test_duplicated_reordered_malformed_frames(tmp_path, tape):
    faults = Faults(duplicate_every=7, reorder_every=5, malformed_every=50)
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults)
    assert stats["duplicated"] > 0 and stats["reordered"] > 0 and stats["malformed"] > 0
    assert totals["source_duplicates"] >= stats["duplicated"]
    assert sum(v for k, v in totals.items() if k.startswith("dead:")) == stats["malformed"]


def test_rollover_before_the_24h_cut(tmp_path, tape):
    # The server's cut (2 s) is far enough past the client's rollover (0.6 s) that a client
    # stalled by a busy machine still leaves first.
    faults = Faults(max_connection_age_s=2.0)
    env = {"PAIRFLOW_LIVE_MAX_CONNECTION_AGE_S": "0.6",
           "PAIRFLOW_LIVE_ROLLOVER_OVERLAP_S": "0.2"}
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults, extra_env=env)
    assert totals["replaced:rollover"] >= 2
    assert stats["age_limit_closes"] == 0  # we always left before the server's cut
    assert totals["reconnects"] == 0
    # A client running behind may not have read the old connection's last frames when it
    # switches: then it found a hole and backfilled it, never otherwise.
    assert totals["backfilled"] == 0 or totals["gaps_found"] >= 1, totals


def test_server_24h_cut_without_rollover(tmp_path, tape):
    # The client's rollover is later than the server's limit: every cut is a reconnect and
    # the backfill closes the hole.
    faults = Faults(max_connection_age_s=0.8)
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults)
    assert stats["age_limit_closes"] >= 2
    assert totals["reconnects"] >= 2


def test_usdm_agg_trades_abrupt_close(tmp_path, tape):
    # Futures default to @aggTrade and /fapi/v1/aggTrades; aggregates cover the same exchange
    # trades, so the bars equal the trade tape's (sums to rounding).
    faults = Faults(events=[(30.0, "abrupt_close", None)])
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults, market="usdm")
    assert totals["backfilled"] > 0


def test_trades_rest_no_longer_has_become_a_feed_gap_without_bars(tmp_path, tape, caplog):
    # Disconnected from tape 20 s on; meanwhile (30 s) REST forgets everything published so
    # far, so the reconnect's backfill cannot get what the client missed before then back: a
    # declared feed gap, no bar for a window that lost trades, every other bar exact.
    # Where the loss starts depends on how far behind the client ran when it was cut off, so
    # the expectations come from what the server logged and the gaps the client declared.
    faults = Faults(events=[(20.0, "refuse", 0.5), (30.0, "forget", None)])
    reference = {(r["symbol"], r["timeframe"], r["start"]): r
                 for r in replay_bars(tmp_path, tape)}
    duration = (tape.last_ms - tape.first_ms) / 1000 / SPEED + 3.0
    caplog.set_level(logging.WARNING, logger="connectors.binance.client")
    with BinanceTestServer(tape, SPEED, faults) as server:
        totals, bars, _ = live_run(tmp_path, server, duration)
    forget = server.logged("forget")
    assert totals["feed_gaps_declared"] >= 1, totals
    assert 0 < totals["ticks_read"] < len(tape.trades)
    assert totals["dead:late"] == 0 and totals["duplicates"] == 0, totals
    live = {(r["symbol"], r["timeframe"], r["start"]): r for r in comparable(bars, tape)}
    for key, bar in live.items():
        assert bar == reference[key], key
    gaps = _declared_gaps(caplog.records)
    for symbol in SYMBOLS:
        trades = tape.by_symbol[symbol]
        lost = {key[2] for key in set(reference) - set(live)
                if key[0] == symbol and key[1] == "1s"}
        # Never served (as frames, or REST rows: a refused connection's handshake completes, so
        # its backfill may run before the forget) before REST forgot them: gone, so are their
        # windows.
        unsent = {_second(t.time_ms) for t in trades
                  if forget["sent_until_ms"] < t.time_ms <= forget["floor_ms"]}
        assert unsent <= lost, (symbol, sorted(unsent - lost))
        # The gap ends at the first trade REST still had; it starts at the client's last trade.
        first_kept = next(t for t in trades if t.time_ms > forget["floor_ms"])
        assert gaps[symbol], symbol
        for start, end in gaps[symbol]:
            assert start < forget["sent_until_ms"] * 1000 + 1 and \
                end <= first_kept.time_ms * 1000 + 1, (symbol, start, end, forget)
        # Every window without a bar overlaps a declared gap.
        for window in lost:
            assert any(window < end and window + 1_000_000 > start
                       for start, end in gaps[symbol]), (symbol, window, gaps[symbol])


def _second(time_ms: int) -> int:
    """The start (µs) of the 1 s window of a trade time in ms."""
    return time_ms // 1000 * 1_000_000


def _declared_gaps(records: list[logging.LogRecord]) -> dict[str, list[tuple[int, int]]]:
    """The feed gaps the live client logged, per symbol: (start, end) µs."""
    gaps: dict[str, list[tuple[int, int]]] = {symbol: [] for symbol in SYMBOLS}
    for record in records:
        match = re.match(r"feed gap symbol=(\w+) start=(\d+) end=(\d+)", record.getMessage())
        if match:
            gaps[match[1]].append((int(match[2]), int(match[3])))
    return gaps


@pytest.mark.parametrize("workers", [1, 2])
def test_one_connection_per_stream_reconnects_each_and_loses_nothing(tmp_path, tape, workers):
    # The tape starts once both connections are up: a stream subscribed after a trade was
    # published starts at its next one (live semantics), which the count below would not allow.
    # With two workers the two partitions (one per connection group) are spread over them.
    faults = Faults(events=[(30.0, "abrupt_close", None)], start_with_connections=2)
    env = {"PAIRFLOW_LIVE_STREAMS_PER_CONNECTION": "1"}
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults, extra_env=env,
                                   workers=workers)
    # One connection per symbol, each opened again after the drop (a replacement for a stream
    # the watchdog found silent on a loaded machine may add one).
    assert stats["most_open"] >= 2 and stats["connections"] >= 4, stats
    assert totals["reconnects"] >= 2
    assert totals["backfilled"] > 0
