"""The per-symbol trade-id sequencer on its own: no sockets, no event loop, no clock."""

from __future__ import annotations

import numpy as np

from connectors.binance.sequencer import TradeSequencer
from pairflow.ticks import FeedGap, TickChunk


def chunk(*ids: int, source: str = "live", ghosts: tuple[int, ...] = ()) -> TickChunk:
    """Ticks with the given ids; trade time = id ms, receive time = id ms + 1."""
    n = len(ids)
    a = np.array(ids, np.int64)
    return TickChunk("BTCUSDT", source, a * 1000, a * 1000 + 1, a, a, a,
                     np.ones(n), np.ones(n), np.zeros(n, np.bool_),
                     np.array(ghosts, np.int64))


def ids_of(items: list) -> list[int]:
    return [i for item in items if isinstance(item, TickChunk) for i in item.trade_id.tolist()]


def test_in_order_chunks_pass_through_as_they_are():
    seq = TradeSequencer("BTCUSDT")
    first = chunk(10, 11, 12)
    done = seq.accept(first)
    assert done.out == [first] and done.fresh == 3 and done.duplicates == 0
    assert ids_of(seq.accept(chunk(13)).out) == [13]
    assert seq.last_id == 13 and seq.last_ts == 13_000 and seq.pending == 0


def test_duplicates_are_dropped_and_counted():
    seq = TradeSequencer("BTCUSDT")
    seq.accept(chunk(1, 2, 3))
    done = seq.accept(chunk(2, 3, 4))
    assert ids_of(done.out) == [4] and done.duplicates == 2 and done.fresh == 1
    assert seq.accept(chunk(4)).duplicates == 1


def test_reordered_ticks_come_out_in_id_order():
    seq = TradeSequencer("BTCUSDT", last_id=0)
    assert ids_of(seq.accept(chunk(3, 2, 1)).out) == [1, 2, 3]
    assert ids_of(seq.accept(chunk(5)).out) == []
    assert ids_of(seq.accept(chunk(4)).out) == [4, 5]


def test_a_hole_holds_later_ticks_until_it_is_filled_by_a_backfill():
    seq = TradeSequencer("BTCUSDT")
    seq.accept(chunk(1, 2))
    assert seq.accept(chunk(5, 6)).out == []
    assert seq.pending == 2 and seq.next_id == 3
    assert seq.is_new(3) and not seq.is_new(5) and not seq.is_new(2)
    assert seq.held_recv() == {5: 5_001, 6: 6_001}
    done = seq.accept(chunk(3, 4, source="backfill"))
    assert [(c.source, c.trade_id.tolist()) for c in done.out] == \
        [("backfill", [3, 4]), ("live", [5, 6])]
    assert seq.pending == 0 and seq.last_id == 6


def test_ghost_ids_close_a_hole_without_a_tick():
    seq = TradeSequencer("BTCUSDT", last_id=0)
    seq.accept(chunk(1))
    assert seq.accept(chunk(3)).out == []
    assert ids_of(seq.accept(chunk(ghosts=(2,))).out) == [3]


def test_a_hole_given_up_becomes_a_lost_range_from_the_last_trade_to_the_next():
    seq = TradeSequencer("BTCUSDT")
    seq.accept(chunk(1, 2))
    seq.accept(chunk(5, 6))
    seq.accept(chunk(9))
    out = seq.give_up("stopped", now_us=99_000)
    assert out[0] == FeedGap("BTCUSDT", 2_000, 5_001, "stopped")
    assert out[1].trade_id.tolist() == [5, 6]
    assert out[2] == FeedGap("BTCUSDT", 6_000, 9_001, "stopped")
    assert out[3].trade_id.tolist() == [9]
    assert seq.pending == 0 and seq.last_id == 9


def test_ids_rest_no_longer_has_are_skipped_as_lost():
    seq = TradeSequencer("BTCUSDT")
    seq.accept(chunk(1, 2))
    seq.accept(chunk(8))
    gap = seq.skip_to(6, 6_000, "gone")
    assert gap == FeedGap("BTCUSDT", 2_000, 6_001, "gone")
    assert ids_of(seq.accept(chunk(6, 7, source="backfill")).out) == [6, 7, 8]


def test_the_pending_bound_is_reported():
    seq = TradeSequencer("BTCUSDT", max_pending=3)
    seq.accept(chunk(1))
    seq.accept(chunk(3, 4, 5))
    assert not seq.overfull
    seq.accept(chunk(6))
    assert seq.overfull
    seq.accept(chunk(2))
    assert not seq.overfull and seq.pending == 0


def test_a_resume_starts_after_the_last_emitted_id():
    seq = TradeSequencer("BTCUSDT", last_id=10)
    done = seq.accept(chunk(9, 10, 11))
    assert ids_of(done.out) == [11] and done.duplicates == 2
