"""Per-symbol trade-id sequencing: chunks in, ticks out in id order, lost ranges declared.

Pure bookkeeping (no sockets, no event loop, no clock): the live client feeds it live and
backfilled chunks and decides *when* to give up on a hole; the sequencer decides *what* goes
out. Binance trade ids per symbol (``t``, or the aggregate id ``a``) are contiguous, so every id
after the last one emitted either arrives, is waiting behind a hole, or is declared lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pairflow.ticks import FeedGap, TickChunk

#: A held tick: (ts, recv_ts, trade_id, first_trade_id, last_trade_id, price, qty,
#: buyer_is_maker, source); None for a ghost id (announced, but no market trade).
Row = tuple | None
_NO_ID = 1 << 62


def lost_range(symbol: str, start_us: int, end_us: int, reason: str) -> FeedGap:
    """A :class:`FeedGap` over ``[start_us, end_us)``, at least 1 µs long."""
    return FeedGap(symbol, start_us, max(end_us, start_us + 1), reason)


@dataclass
class Sequenced:
    """What one :meth:`TradeSequencer.accept` did.

    Attributes:
        out: ticks now in id order (and lost ranges), in emission order.
        fresh: ticks of the chunk not seen before (emitted or now held).
        duplicates: ticks of the chunk dropped as already seen.
    """

    out: list[TickChunk | FeedGap] = field(default_factory=list)
    fresh: int = 0
    duplicates: int = 0


class TradeSequencer:
    """The trade-id sequence of one symbol: reorder, deduplicate, detect and declare holes.

    Every id ``<= last_id`` was emitted or declared lost; later ids wait in a reorder buffer
    until the ids before them arrive.

    Args:
        symbol: the symbol.
        last_id: the last id emitted before (a resume), None: start at the first id seen.
        max_pending: ticks that may wait behind a hole before :attr:`overfull` says so.

    """

    def __init__(self, symbol: str, last_id: int | None = None, max_pending: int = 500_000):
        self.symbol = symbol
        #: Every id <= last_id was emitted or declared lost (None: nothing seen yet).
        self.last_id = last_id
        #: Exchange time of the last emitted tick, µs (None: none emitted yet).
        self.last_ts: int | None = None
        self.max_pending = max_pending
        self._held: dict[int, Row] = {}

    @property
    def pending(self) -> int:
        """Ids waiting behind a hole."""
        return len(self._held)

    @property
    def overfull(self) -> bool:
        """More ticks wait behind a hole than ``max_pending``."""
        return len(self._held) > self.max_pending

    @property
    def next_id(self) -> int:
        """The id that must come next (a backfill asks from here)."""
        return (self.last_id if self.last_id is not None else -1) + 1

    def is_new(self, trade_id: int) -> bool:
        """``trade_id`` was neither emitted, declared lost nor is held."""
        return (self.last_id is None or trade_id > self.last_id) and trade_id not in self._held

    def held_recv(self) -> dict[int, int]:
        """The receive time (µs) of each held tick, by trade id (ghost ids have none)."""
        return {trade_id: row[1] for trade_id, row in self._held.items() if row is not None}

    def accept(self, chunk: TickChunk) -> Sequenced:
        """Take a live or backfilled chunk; return what now follows the last id without a hole."""
        ids = chunk.trade_id
        if self.last_id is None:
            if not len(ids) and not len(chunk.ghost_ids):
                return Sequenced()
            lowest = min(int(ids.min()) if len(ids) else _NO_ID,
                         int(chunk.ghost_ids.min()) if len(chunk.ghost_ids) else _NO_ID)
            self.last_id = lowest - 1
        if self._continues(chunk):
            self.last_id = int(ids[-1])
            return Sequenced(self._emitted([chunk]), fresh=len(chunk))
        done = Sequenced()
        last, held = self.last_id, self._held
        for row in zip(chunk.ts.tolist(), chunk.recv_ts.tolist(), ids.tolist(),
                       chunk.first_trade_id.tolist(), chunk.last_trade_id.tolist(),
                       chunk.price.tolist(), chunk.qty.tolist(), chunk.buyer_is_maker.tolist(),
                       strict=True):
            if row[2] <= last or row[2] in held:
                done.duplicates += 1
                continue
            held[row[2]] = (*row, chunk.source)
            done.fresh += 1
        for ghost in chunk.ghost_ids.tolist():
            if ghost > last and ghost not in held:
                held[ghost] = None
        done.out = self._drain()
        return done

    def give_up(self, reason: str, now_us: int) -> list[TickChunk | FeedGap]:
        """Declare every hole lost and emit everything held, in id order.

        Args:
            reason: why the holes are lost (the gaps' reason).
            now_us: the exchange time now, µs: the end of a hole whose next id is a ghost.
        """
        out: list[TickChunk | FeedGap] = []
        while self._held:
            first = min(self._held)
            row = self._held[first]
            end = row[0] + 1 if row is not None else now_us
            out.append(lost_range(self.symbol, self.last_ts if self.last_ts is not None
                                  else end - 1, end, reason))
            self.last_id = first - 1
            out.extend(self._drain())
        return out

    def skip_to(self, first_id: int, first_ts: int, reason: str) -> FeedGap:
        """Ids before ``first_id`` (its trade at ``first_ts`` µs) are gone for good.

        Returns:
            the lost range, from the last emitted trade to ``first_ts``.
        """
        gap = lost_range(self.symbol, self.last_ts or first_ts - 1, first_ts + 1, reason)
        for trade_id in [t for t in self._held if t < first_id]:
            del self._held[trade_id]
        self.last_id = first_id - 1
        return gap

    def _continues(self, chunk: TickChunk) -> bool:
        """The chunk is exactly the next ids, nothing held: the fast path."""
        ids = chunk.trade_id
        return (not self._held and not len(chunk.ghost_ids) and len(ids) > 0
                and ids[0] == self.last_id + 1
                and (len(ids) == 1 or bool((np.diff(ids) == 1).all())))

    def _drain(self) -> list[TickChunk | FeedGap]:
        """Release the held ticks that now follow ``last_id`` without a hole."""
        rows = []
        held = self._held
        while self.last_id + 1 in held:
            self.last_id += 1
            row = held.pop(self.last_id)
            if row is not None:
                rows.append(row)
        return self._emitted(self._chunks(rows)) if rows else []

    def _chunks(self, rows: list[tuple]) -> list[TickChunk]:
        """Rows as chunks, one per run of the same source."""
        chunks = []
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i][8] != rows[start][8]:
                cols = list(zip(*rows[start:i], strict=True))
                chunks.append(TickChunk(
                    self.symbol, rows[start][8], np.array(cols[0], np.int64),
                    np.array(cols[1], np.int64), np.array(cols[2], np.int64),
                    np.array(cols[3], np.int64), np.array(cols[4], np.int64),
                    np.array(cols[5], np.float64), np.array(cols[6], np.float64),
                    np.array(cols[7], np.bool_)))
                start = i
        return chunks

    def _emitted(self, chunks: list[TickChunk]) -> list[TickChunk | FeedGap]:
        for chunk in chunks:
            newest = int(chunk.ts.max())
            self.last_ts = newest if self.last_ts is None else max(self.last_ts, newest)
        return list(chunks)
