"""Where backfilled trades go in a recording: no sockets, no clock, synthetic receive times."""

from __future__ import annotations

import gzip
import json

import numpy as np

from connectors.binance.backfill import BackfillRecorder, backfill_keys
from connectors.binance.sequencer import TradeSequencer
from pairflow.ticks import TickChunk


def chunk(ids: list[int], recv_us: list[int], source: str = "live") -> TickChunk:
    """Ticks with the given ids and receive times (µs); trade time = id s."""
    a = np.array(ids, np.int64)
    n = len(ids)
    return TickChunk("ETHUSDT", source, a * 1_000_000, np.array(recv_us, np.int64), a, a, a,
                     np.ones(n), np.ones(n), np.zeros(n, np.bool_))


def test_a_backfilled_trade_goes_just_before_the_first_received_later_held_tick():
    held = {8: 60_000, 9: 60_001, 12: 59_000}  # 12 came first (another connection)
    keys = backfill_keys([6, 7, 10, 11, 13, 14], held, written_ns=70_000_000)
    assert keys == [58_999_000, 58_999_000, 58_999_000, 58_999_000, 70_000_000, 70_000_000]


def test_without_held_ticks_backfilled_trades_go_where_they_were_written():
    assert backfill_keys([3, 4], {}, written_ns=5_000_000) == [5_000_000, 5_000_000]


def test_a_recording_replays_in_id_order_around_holes_and_bursts(tmp_path):
    """Live frames as received plus backfilled pages: merged on receive time, ids ascend."""
    seq = TradeSequencer("ETHUSDT")
    recorder = BackfillRecorder(str(tmp_path), "0", "trade")
    recorded: list[tuple[int, int]] = []  # (receive ns, id) of the live frames

    def live(ids: list[int], recv_us: list[int]) -> None:
        recorded.extend((r * 1000, i) for i, r in zip(ids, recv_us, strict=True))
        seq.accept(chunk(ids, recv_us))

    def backfill(ids: list[int], written_ns: int) -> None:
        page = chunk(ids, [0] * len(ids), "backfill")
        recorder.write(seq, page, written_ns)
        seq.accept(page)

    live([1, 2], [1_000, 2_000])
    # A loaded loop read a burst of frames just before a reconnect's backfill (nothing held):
    # REST is ahead of the stream, its trades must go after the burst.
    live([3, 4, 5], [50_000, 50_001, 50_002])
    backfill([6, 7, 8], written_ns=50_003_000)
    live([6, 7, 8, 9], [50_010, 50_011, 50_012, 50_013])  # duplicates, then new
    # A hole: 12 and 13 are held; REST fills 10-11 and is ahead up to 15.
    live([12, 13], [60_000, 60_001])
    backfill([10, 11, 12, 13, 14, 15], written_ns=60_500_000)
    live([14, 15, 16], [60_600, 60_601, 60_602])
    recorder.close()

    for path in tmp_path.glob("*.gz"):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                key, frame = line.split(b" ", 1)
                recorded.append((int(key), json.loads(frame)["data"]["t"]))
    seen: list[int] = []
    for _, trade_id in sorted(recorded, key=lambda r: r[0] // 1000):  # replay: µs, stable
        if trade_id not in seen:
            seen.append(trade_id)
    assert seen == list(range(1, 17))
