"""Recording of backfilled trades, so a replay of a live run's recording gives its bars."""

from __future__ import annotations

import time

from connectors.binance.rest import RestKind, trade_frame
from connectors.binance.sequencer import TradeSequencer
from connectors.recorder import FrameRecorder
from pairflow.ticks import TickChunk

#: Backfilled frames are keyed this long (ns) before the first live frame held behind the hole.
_AHEAD_NS = 10_000_000


class BackfillRecorder:
    """Appends backfilled trades as trade frames, one file per symbol (keys there stay sorted).

    A frame's key is set just before the receive time of the first live frame held behind the
    hole, so a replay sees the symbol's trades in id order.

    Args:
        directory: the recording directory.
        part: the partition name (file prefix ``binance-<part>-backfill-<symbol>``).
        kind: the stream kind the frames imitate.
    """

    def __init__(self, directory: str, part: str, kind: RestKind):
        self.directory = directory
        self.part = part
        self.kind = kind
        self._recorders: dict[str, FrameRecorder] = {}
        self._last_key: dict[str, int] = {}

    def write(self, sequencer: TradeSequencer, chunk: TickChunk) -> None:
        """Record the trades of ``chunk`` the sequencer has not seen yet."""
        fresh = [i for i, trade_id in enumerate(chunk.trade_id.tolist())
                 if sequencer.is_new(trade_id)]
        if not fresh:
            return
        symbol = sequencer.symbol
        recorder = self._recorders.get(symbol)
        if recorder is None:
            recorder = self._recorders[symbol] = FrameRecorder(
                self.directory, f"binance-{self.part}-backfill-{symbol.lower()}")
        held = sequencer.held_recv_min()
        base = (held if held is not None else time.time_ns() // 1000) * 1000 - _AHEAD_NS
        last_key = self._last_key.get(symbol, 0)
        for n, i in enumerate(fresh):
            key = max(base + n, last_key + 1)
            last_key = key
            row = {"id": int(chunk.trade_id[i]), "ts_ms": int(chunk.ts[i]) // 1000,
                   "price": float(chunk.price[i]), "qty": float(chunk.qty[i]),
                   "maker": bool(chunk.buyer_is_maker[i]),
                   "first": int(chunk.first_trade_id[i]), "last": int(chunk.last_trade_id[i])}
            recorder.write(key, trade_frame(symbol, self.kind, row))
        self._last_key[symbol] = last_key

    def close(self) -> None:
        """Close every file."""
        for recorder in self._recorders.values():
            recorder.close()
