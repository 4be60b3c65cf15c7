"""Columnar batches of one symbol's ticks, the unit that flows through the bar step.

A replay moves thousands of ticks per item (ENGINE.md: the engine costs ~0.45 µs per item in a
keyed step, so per-tick items cannot reach replay speed); the live source moves small chunks.
Both go through the same bar logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pairflow.records import Tick, TickSource


@dataclass(frozen=True, slots=True)
class TickChunk:
    """Ticks of one symbol in arrival order, as parallel numpy arrays.

    ``ts`` is the exchange trade time and ``recv_ts`` the local receive time, both µs;
    ``trade_id`` is the record id (``t`` or the aggregate id ``a``) and
    ``first_trade_id``/``last_trade_id`` the exchange trades it covers.
    ``ghost_ids`` are exchange trade ids the feed announced but that are not market trades
    (USDⓈ-M insurance-fund / ADL fills): they keep id contiguity without entering bars.
    """

    symbol: str
    source: TickSource
    ts: np.ndarray
    recv_ts: np.ndarray
    trade_id: np.ndarray
    first_trade_id: np.ndarray
    last_trade_id: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    buyer_is_maker: np.ndarray
    ghost_ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def key(self) -> str:
        """Stream key: the symbol."""
        return self.symbol

    @classmethod
    def empty(cls, symbol: str = "", source: TickSource = "replay") -> TickChunk:
        """A chunk without ticks."""
        ints, floats = np.empty(0, np.int64), np.empty(0, np.float64)
        return cls(symbol, source, ints, ints, ints, ints, ints, floats, floats,
                   np.empty(0, np.bool_))

    @classmethod
    def from_ticks(cls, symbol: str, source: TickSource, ticks: list[Tick]) -> TickChunk:
        """Pack ticks of one symbol (in arrival order) into a chunk."""
        return cls(
            symbol=symbol,
            source=source,
            ts=np.fromiter((t.ts for t in ticks), np.int64, len(ticks)),
            recv_ts=np.fromiter((t.recv_ts for t in ticks), np.int64, len(ticks)),
            trade_id=np.fromiter((t.trade_id for t in ticks), np.int64, len(ticks)),
            first_trade_id=np.fromiter((t.first_trade_id for t in ticks), np.int64, len(ticks)),
            last_trade_id=np.fromiter((t.last_trade_id for t in ticks), np.int64, len(ticks)),
            price=np.fromiter((t.price for t in ticks), np.float64, len(ticks)),
            qty=np.fromiter((t.qty for t in ticks), np.float64, len(ticks)),
            buyer_is_maker=np.fromiter((t.buyer_is_maker for t in ticks), np.bool_, len(ticks)),
        )

    @staticmethod
    def concat(chunks: list[TickChunk]) -> TickChunk:
        """Chunks of one symbol and source, one after the other (ghost ids too)."""
        if len(chunks) == 1:
            return chunks[0]
        return TickChunk(chunks[0].symbol, chunks[0].source,
                         *(np.concatenate([getattr(c, name) for c in chunks])
                           for name in ("ts", "recv_ts", "trade_id", "first_trade_id",
                                        "last_trade_id", "price", "qty", "buyer_is_maker",
                                        "ghost_ids")))

    def take(self, mask: np.ndarray) -> TickChunk:
        """The sub-chunk selected by a boolean mask or index array (ghost ids kept)."""
        return TickChunk(
            self.symbol,
            self.source,
            self.ts[mask],
            self.recv_ts[mask],
            self.trade_id[mask],
            self.first_trade_id[mask],
            self.last_trade_id[mask],
            self.price[mask],
            self.qty[mask],
            self.buyer_is_maker[mask],
            self.ghost_ids,
        )

    def ticks(self) -> list[Tick]:
        """Unpack into :class:`Tick` records (for the ``ticks`` topic and dead letters)."""
        return [
            Tick(
                symbol=self.symbol,
                trade_id=int(tid),
                price=float(p),
                qty=float(q),
                ts=int(ts),
                recv_ts=int(rts),
                buyer_is_maker=bool(m),
                source=self.source,
                first_trade_id=int(f),
                last_trade_id=int(last),
            )
            for tid, p, q, ts, rts, m, f, last in zip(
                self.trade_id.tolist(),
                self.price.tolist(),
                self.qty.tolist(),
                self.ts.tolist(),
                self.recv_ts.tolist(),
                self.buyer_is_maker.tolist(),
                self.first_trade_id.tolist(),
                self.last_trade_id.tolist(),
                strict=True,
            )
        ]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The feed of ``symbol`` is healthy and complete up to exchange time ``ts`` (µs).

    Advances the symbol's watermark while it trades nothing, so quiet windows close as
    ``trades = 0`` bars. ``final`` marks the end of a replay: open windows close, and no
    quiet bar is made after the last trade.
    """

    symbol: str
    ts: int
    final: bool = False

    @property
    def key(self) -> str:
        """Stream key: the symbol."""
        return self.symbol


@dataclass(frozen=True, slots=True)
class FeedGap:
    """Trades of ``symbol`` with exchange time in ``[start, end)`` are missing for good.

    Published by a live source when a backfill cannot recover a range: no bar is made for
    a window inside it.
    """

    symbol: str
    start: int
    end: int
    reason: str

    @property
    def key(self) -> str:
        """Stream key: the symbol."""
        return self.symbol
