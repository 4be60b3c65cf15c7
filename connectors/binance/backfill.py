"""REST catch-up of the live client: backfills, probes, and the recording of backfilled trades.

A backfill fills a symbol's hole from REST; a probe asks whether a quiet stream is quiet for
real; backfilled trades are recorded so a replay of a live run's recording gives its bars.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import Counter
from typing import Protocol

from connectors.binance.rest import BackfillError, BinanceRestClient, RestKind, trade_frame
from connectors.binance.sequencer import TradeSequencer, lost_range
from connectors.binance.state import SymbolState
from connectors.recorder import FrameRecorder
from pairflow.ticks import FeedGap, TickChunk

logger = logging.getLogger(__name__)

#: A REST page this long may have more behind it.
_FULL_PAGE = 1000


def backfill_keys(trade_ids: list[int], held_recv_us: dict[int, int], written_ns: int
                  ) -> list[int]:
    """Recording keys (receive time, ns) of backfilled trades, so a replay sees them in id order.

    Every live frame recorded so far was sequenced before the backfill is written, so a
    recorded frame with a later id than a backfilled trade is held behind the hole. A
    backfilled trade is keyed 1 µs before the earliest-received held tick with a later id;
    when none is held (REST is ahead of the stream), at ``written_ns``, after every frame
    recorded so far and before any recorded later. The keys grow with the ids.

    Args:
        trade_ids: the backfilled trade ids, ascending.
        held_recv_us: receive time (µs) of each held live tick, by trade id.
        written_ns: the receive clock (ns since the epoch) when the trades are written.
    """
    held_ids = sorted(held_recv_us)
    earliest_from = [0] * len(held_ids)  # earliest receive time of held ids from index i on
    earliest = None
    for i in range(len(held_ids) - 1, -1, -1):
        recv = held_recv_us[held_ids[i]]
        earliest = recv if earliest is None else min(earliest, recv)
        earliest_from[i] = earliest
    keys = []
    for trade_id in trade_ids:
        later = bisect.bisect_right(held_ids, trade_id)
        keys.append((earliest_from[later] - 1) * 1000 if later < len(held_ids) else written_ns)
    return keys


class BackfillRecorder:
    """Appends backfilled trades as trade frames, one file per symbol (keys there stay sorted).

    Keys follow :func:`backfill_keys`.

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

    def write(self, sequencer: TradeSequencer, chunk: TickChunk, written_ns: int) -> None:
        """Record the trades of ``chunk`` the sequencer has not seen yet.

        Args:
            sequencer: the symbol's sequencer, before it accepts ``chunk``.
            chunk: a REST page.
            written_ns: the receive clock now (ns since the epoch).
        """
        fresh = [i for i, trade_id in enumerate(chunk.trade_id.tolist())
                 if sequencer.is_new(trade_id)]
        if not fresh:
            return
        symbol = sequencer.symbol
        recorder = self._recorders.get(symbol)
        if recorder is None:
            recorder = self._recorders[symbol] = FrameRecorder(
                self.directory, f"binance-{self.part}-backfill-{symbol.lower()}")
        keys = backfill_keys([int(chunk.trade_id[i]) for i in fresh], sequencer.held_recv(),
                             written_ns)
        last_key = self._last_key.get(symbol, 0)
        for key, i in zip(keys, fresh, strict=True):
            last_key = max(key, last_key + 1)
            row = {"id": int(chunk.trade_id[i]), "ts_ms": int(chunk.ts[i]) // 1000,
                   "price": float(chunk.price[i]), "qty": float(chunk.qty[i]),
                   "maker": bool(chunk.buyer_is_maker[i]),
                   "first": int(chunk.first_trade_id[i]), "last": int(chunk.last_trade_id[i])}
            recorder.write(last_key, trade_frame(symbol, self.kind, row))
        self._last_key[symbol] = last_key

    def close(self) -> None:
        """Close every file."""
        for recorder in self._recorders.values():
            recorder.close()


class CatchUpHost(Protocol):
    """What the REST catch-up needs of the live client (:class:`.client.LiveClient`)."""

    tally: Counter

    def process_frames(self) -> None:
        """Sequence the live frames received so far."""

    def accept(self, st: SymbolState, chunk: TickChunk) -> int:
        """Sequence a chunk and emit what is in id order; return its new ticks."""

    def emit(self, st: SymbolState, items: list[TickChunk | FeedGap]) -> None:
        """Emit sequenced ticks and lost ranges."""

    def give_up(self, st: SymbolState, reason: str) -> None:
        """Declare the symbol's holes lost and emit what was held behind them."""

    def report_gap(self, st: SymbolState, gap: FeedGap) -> None:
        """Emit a lost range."""

    def exchange_now(self) -> int | None:
        """Estimated exchange time now, µs (None: no trade seen lately)."""

    def health_one(self, st: SymbolState, event: str | None) -> None:
        """Emit the symbol's health row."""

    def silent(self, st: SymbolState) -> None:
        """Replace the connection of a stream that stopped delivering."""


class RestCatchUp:
    """Backfills a symbol's holes and probes its quiet stream over REST, for the live client.

    Args:
        host: the live client (frames, sequencing, emission, health).
        rest: the REST client.
        kind: the stream kind (``trade`` or ``aggTrade``).
        margin_us: the heartbeat margin: how far before REST's answer a symbol is vouched for.
        recorder: where backfilled trades are recorded (None: not recorded).
    """

    def __init__(self, host: CatchUpHost, rest: BinanceRestClient, kind: RestKind,
                 margin_us: int, recorder: BackfillRecorder | None):
        self.host = host
        self.rest = rest
        self.kind = kind
        self.margin_us = margin_us
        self.recorder = recorder
        self._rest_seen = (0, 0)

    async def backfill(self, st: SymbolState) -> None:
        """Fetch ids from the next one until the hole is filled and REST has nothing newer."""
        host = self.host
        recovered = 0
        try:
            started_at = host.exchange_now()
            recovered, full_page = await self._fetch_missing(st)
            if st.sequence.pending and not full_page:
                # REST is at its present and the hole is still open: it cannot be filled.
                host.give_up(st, "backfill: ids missing at the exchange")
            if started_at is not None and not st.sequence.pending:
                st.verified_until = max(st.verified_until, started_at - self.margin_us)
        except BackfillError as error:
            logger.warning("backfill failed symbol=%s error=%s", st.symbol, error)
            host.give_up(st, f"backfill failed: {error}"[:200])
            now_ex, last_ts = host.exchange_now(), st.sequence.last_ts
            if now_ex is not None and last_ts is not None and now_ex > last_ts:
                # Whatever traded while we were blind is unknown: no bars for it.
                host.report_gap(st, lost_range(st.symbol, last_ts + 1, now_ex,
                                               "backfill failed"))
        finally:
            st.backfilling = False
            if not st.sequence.pending:
                st.caught_up = True
        if recovered:
            st.health.backfilled += recovered
            host.health_one(st, f"backfilled {recovered}")
        self._count_rest()

    async def _fetch_missing(self, st: SymbolState) -> tuple[int, bool]:
        """Page through REST from the next id; (new ticks, whether the last page was full)."""
        seq = st.sequence
        recovered = 0
        while True:
            from_id = seq.next_id
            chunk = await self.rest.trades_from(st.symbol, self.kind, from_id)
            self.host.process_frames()  # keep live frames flowing into the reorder buffer
            if len(chunk) and int(chunk.trade_id[0]) > from_id:
                # REST no longer has these ids (history limit): lost for good.
                self.host.emit(st, [seq.skip_to(int(chunk.trade_id[0]), int(chunk.ts[0]),
                                                "backfill: ids not available")])
            if self.recorder is not None and len(chunk):
                self.recorder.write(seq, chunk, time.time_ns())
            recovered += self.host.accept(st, chunk)
            full = len(chunk) >= _FULL_PAGE
            if not len(chunk) or not full and not seq.pending or seq.next_id == from_id:
                return recovered, full  # nothing more, or no progress: avoid a hot loop

    async def probe(self, st: SymbolState) -> None:
        """Ask REST for the newest id: quiet for real (heartbeats may pass) or silent stream."""
        try:
            asked_at = self.host.exchange_now()
            latest = await self.rest.latest_trade_id(st.symbol, self.kind)
        except BackfillError as error:
            logger.warning("probe failed symbol=%s error=%s", st.symbol, error)
            return
        finally:
            st.probing = False
            self._count_rest()
        if asked_at is None:
            return
        last_id = st.sequence.last_id
        if latest is None or last_id is None or latest[0] <= last_id:
            st.verified_until = max(st.verified_until, asked_at - self.margin_us)
        elif latest[1] < asked_at - self.margin_us:
            # The exchange has older trades the stream never delivered.
            st.health.gaps_found += 1
            self.host.tally["gaps_found"] += 1
            self.host.silent(st)

    def _count_rest(self) -> None:
        # The REST client keeps totals; counters flow as increments.
        self.host.tally["rest_requests"] += self.rest.requests - self._rest_seen[0]
        self.host.tally["rest_rate_limited"] += self.rest.rate_limited - self._rest_seen[1]
        self._rest_seen = (self.rest.requests, self.rest.rate_limited)
