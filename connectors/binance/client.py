"""The live client of one partition: its own thread and event loop, feeding a bounded deque.

It composes the :class:`~connectors.binance.supervisor.ConnectionSupervisor` (frames in), one
:class:`~connectors.binance.sequencer.TradeSequencer` and one
:class:`~connectors.binance.health.StreamHealth` per symbol, and owns the policies that tie them
together: when to backfill or probe over REST (the how is
:class:`~connectors.binance.backfill.RestCatchUp`), when a quiet stream is declared silent
(:meth:`LiveClient._watch_streams`), and how far heartbeats may go
(:meth:`LiveClient._heartbeats`). See :mod:`connectors.binance.source` for the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque

from connectors.binance.backfill import BackfillRecorder, RestCatchUp
from connectors.binance.health import StreamHealth
from connectors.binance.rest import BinanceRestClient, RestKind
from connectors.binance.sequencer import TradeSequencer
from connectors.binance.settings import LiveSettings
from connectors.binance.state import SymbolState
from connectors.binance.supervisor import ConnectionSupervisor, OpenKind
from connectors.binance.wire import FrameParser
from connectors.recorder import FrameRecorder
from pairflow.metrics import counts
from pairflow.quotes import QuoteChunk, QuoteGap
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

logger = logging.getLogger(__name__)

#: Marks the end of the client's items in the deque.
END = object()
#: How long the receive→trade offsets are remembered for the exchange clock, s.
OFFSET_MEMORY_S = 30.0
#: A running backfill may still complete what the run received; it gets this long at the end.
FINAL_BACKFILL_S = 5.0


class LiveClient:
    """The supervision loop of one partition; :meth:`run` in its own thread.

    Args:
        name: the partition name.
        symbols: the partition's symbols.
        settings: the live settings.
        resume: last emitted trade id per symbol.
        out: the deque ``next_batch`` drains (the client appends, :data:`END` last).
    """

    def __init__(self, name: str, symbols: tuple[str, ...], settings: LiveSettings,
                 resume: dict[str, int], out: deque):
        self.name = name
        self.settings = settings
        self.kind: RestKind = settings.kind
        self.out = out
        self.failure: BaseException | None = None
        self.parser = FrameParser(frozenset(symbols), "live", stage="live",
                                  quotes=settings.quotes)
        self.symbols = {s: SymbolState(TradeSequencer(s, resume.get(s), settings.max_pending_ticks),
                                   StreamHealth(s, stream, settings.health_every_s))
                        for s, stream in zip(symbols, settings.streams(symbols), strict=True)}
        for s, st in self.symbols.items():
            if settings.quotes:
                st.quote_health = StreamHealth(s, settings.quote_streams(s)[0],
                                               settings.health_every_s)
                if resume:
                    # A resumed run does not know the book since the snapshot: no quote bar
                    # for a window still open then, up to its first quote.
                    st.quote_outage_from = 0
        self.recorder = (FrameRecorder(settings.record_dir, f"binance-{name}")
                         if settings.record_dir else None)
        self.backfill_recorder = (BackfillRecorder(settings.record_dir, name, self.kind)
                                  if settings.record_dir else None)
        self.rest = BinanceRestClient(settings.base_rest_url, settings.market, settings.api_key)
        self.catch_up = RestCatchUp(self, self.rest, self.kind,
                                    int(settings.heartbeat_margin_s * 1e6), self.backfill_recorder)
        self.supervisor = ConnectionSupervisor(
            name, settings.stream_url(symbols),
            settings.supervision, self._on_frame, on_open=self._on_open, on_down=self._on_down,
            on_replace=self._on_replace,
            paused=lambda: len(self.out) > settings.max_buffered_items)
        self.frames: list[tuple[int, bytes]] = []
        self.offsets: deque = deque()  # (monotonic, max(T - recv) µs) per batch
        self.tally: Counter = Counter()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self._stop_requested = False
        self._tasks: set[asyncio.Task] = set()

    # -------------------------------------------------------------------- lifecycle

    def run(self) -> None:
        """Run the loop until stopped or the duration ends; failures are kept in ``failure``."""
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - reported by next_batch
            self.failure = error
            logger.exception("binance client %s failed", self.name)
        finally:
            if self.recorder is not None:
                self.recorder.close()
            if self.backfill_recorder is not None:
                self.backfill_recorder.close()

    def stop(self) -> None:
        """Ask the loop to stop (from any thread)."""
        self._stop_requested = True
        if self.loop is not None and self.stopping is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.stopping.set)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        if self._stop_requested:
            self.stopping.set()
        started = time.monotonic()
        self.supervisor.start()
        next_hb = next_health = time.monotonic()
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if self.settings.duration_s is not None and now - started >= \
                        self.settings.duration_s:
                    break
                self.process_frames()
                self._watch_streams(now)
                if now >= next_hb:
                    self._heartbeats()
                    next_hb = now + self.settings.heartbeat_every_s
                if now >= next_health:
                    self._health(None)
                    next_health = now + self.settings.health_every_s
                self._flush_tally()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 0.01)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        await self.supervisor.close()
        deadline = time.monotonic() + FINAL_BACKFILL_S
        while any(st.backfilling for st in self.symbols.values()) and \
                time.monotonic() < deadline and not self._stop_requested:
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        self.process_frames()
        for st in self.symbols.values():
            self.give_up(st, "stopped")
        self._health("stopped")
        self._flush_tally()
        for symbol in self.symbols:
            self.out.append(Heartbeat(symbol, 0, final=True))
        self.out.append(END)
        await self.rest.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ connections

    def _on_frame(self, recv_ns: int, frame: bytes) -> None:
        if self.recorder is not None:
            self.recorder.write(recv_ns, frame)
        self.frames.append((recv_ns // 1000, frame))

    def _on_open(self, kind: OpenKind) -> None:
        if kind == "rollover":
            return
        if kind == "reconnect":
            self.tally["reconnects"] += 1
            self._health("reconnected")
        # Trades may have happened while no connection was up (or before a resume): fetch
        # them before trusting the stream, and hold heartbeats until then.
        for st in self.symbols.values():
            if st.sequence.last_id is not None:
                st.caught_up = False
                st.backfill_due = True

    def _on_down(self, reason: str) -> None:
        # Everything the lost connection delivered is taken first, so the quotes after the
        # outage are told from the ones before it.
        self.process_frames()
        for st in self.symbols.values():
            st.caught_up = False
            if st.quote_outage_from is None:
                st.quote_outage_from = st.last_quote_ts
        self._health(f"disconnected: {reason}"[:200])

    def _on_replace(self, why: str) -> None:
        self.tally[f"replaced:{why}"] += 1
        self._health(why)

    # ---------------------------------------------------------------------- watchdog

    def _watch_streams(self, now: float) -> None:
        """Start due backfills; probe quiet streams; replace the connection of a silent one."""
        s = self.settings
        up = self.supervisor.up
        for st in self.symbols.values():
            if st.backfill_due and up and not st.backfilling:
                self._start_backfill(st)
            elif st.sequence.pending and not st.backfilling and st.hole_since is not None and (
                    now - st.hole_since > s.reorder_grace_s or st.sequence.overfull):
                st.health.gaps_found += 1
                self.tally["gaps_found"] += 1
                self._start_backfill(st)
            if up and st.caught_up and not st.sequence.pending and not st.backfilling \
                    and st.last_msg is not None:
                self._check_silence(st, now)

    def _check_silence(self, st: SymbolState, now: float) -> None:
        s = self.settings
        silent = now - st.last_msg
        expected = max(s.probe_after_s, 5 * (st.interarrival_s or 0.0))
        if silent > expected and now >= st.next_probe and not st.probing:
            st.probing = True
            st.next_probe = now + s.probe_every_s
            self._spawn(self.catch_up.probe(st))
        limit = min(s.silence_limit_s, max(s.silence_min_s,
                                           20 * (st.interarrival_s or s.silence_limit_s)))
        recently_verified = st.verified_until >= (self.exchange_now() or 0) - \
            int(limit * 1e6) - int(s.heartbeat_margin_s * 1e6)
        if silent > limit and not recently_verified:
            st.last_msg = now  # one replacement per silence
            self.silent(st)

    def silent(self, st: SymbolState) -> None:
        """Replace the connection of a stream that stopped delivering; backfill after."""
        logger.warning("silent stream part=%s stream=%s", self.name, st.stream)
        self.tally["silent_streams"] += 1
        st.backfill_due = True
        st.caught_up = False
        self.supervisor.replace("silent_stream")
        self.health_one(st, "silent_stream")

    # ------------------------------------------------------------------ frames, ids

    def process_frames(self) -> None:
        """Parse and sequence the frames received since the last call."""
        if not self.frames:
            return
        frames, self.frames = self.frames, []
        parsed = self.parser.parse(frames)
        self.tally["frames"] += parsed.frames
        self.tally.update({f"skipped:{k}": v for k, v in parsed.skipped.items()})
        self.out.extend(parsed.dead)
        now = time.monotonic()
        for symbol, chunk in parsed.chunks.items():
            st = self.symbols[symbol]
            if len(chunk):
                self.offsets.append((now, int((chunk.ts - chunk.recv_ts).max())))
                st.health.on_trades(((chunk.recv_ts - chunk.ts) / 1000.0).tolist())
                if st.last_msg is not None:
                    gap = (now - st.last_msg) / len(chunk)
                    st.interarrival_s = gap if st.interarrival_s is None else \
                        0.9 * st.interarrival_s + 0.1 * gap
                st.last_msg = now
            self.accept(st, chunk)
        # Marks before the batch's quotes: a quote that closes a window must find the marks
        # published before its end in place.
        self.out.extend(parsed.marks.values())
        self.tally["marks_read"] += sum(len(m) for m in parsed.marks.values())
        self.tally["quotes_read"] += sum(len(q) for q in parsed.quotes.values())
        for symbol, quotes in parsed.quotes.items():
            self._take_quotes(self.symbols[symbol], quotes, now)
        while self.offsets and now - self.offsets[0][0] > OFFSET_MEMORY_S:
            self.offsets.popleft()

    def _take_quotes(self, st: SymbolState, quotes: QuoteChunk, now: float) -> None:
        """Emit a symbol's quotes, after the gap of an outage they end (if any).

        Quotes cannot be fetched again: from the last quote before an outage to the first one
        after it the book is unknown, and the quote step makes no bar for a window over it.
        """
        first = int(quotes.ts.min())
        if st.quote_outage_from is not None:
            if first > st.quote_outage_from:
                self.out.append(QuoteGap(st.symbol, st.quote_outage_from, first))
                st.quote_health.gaps_unrecovered += 1
                self.quote_health_one(st, "quote_gap")
            st.quote_outage_from = None
        last = int(quotes.ts.max())
        st.last_quote_ts = last if st.last_quote_ts is None else max(st.last_quote_ts, last)
        st.last_quote_msg = now
        # Spot quotes are timed from their receive time: they have no latency of their own.
        latencies = [] if self.settings.market == "spot" else (
            (quotes.recv_ts - quotes.ts) / 1000.0).tolist()
        st.quote_health.on_quotes(len(quotes), latencies)
        self.out.append(quotes)

    def exchange_now(self) -> int | None:
        """Estimated exchange time now (µs): local time + the smallest latency seen lately."""
        if not self.offsets:
            return None
        return time.time_ns() // 1000 + max(o for _, o in self.offsets)

    def accept(self, st: SymbolState, chunk: TickChunk) -> int:
        """Sequence a chunk (live or backfill); emit what is in id order; return new ticks."""
        done = st.sequence.accept(chunk)
        if done.duplicates:
            self.tally["source_duplicates"] += done.duplicates
        self.emit(st, done.out)
        return done.fresh

    def give_up(self, st: SymbolState, reason: str) -> None:
        """Declare the symbol's holes lost and emit what was held behind them."""
        self.emit(st, st.sequence.give_up(reason, self.exchange_now() or 0))

    def emit(self, st: SymbolState, items: list[TickChunk | FeedGap]) -> None:
        """Append sequenced ticks and lost ranges to the output; track the hole's age."""
        for item in items:
            if isinstance(item, FeedGap):
                self.report_gap(st, item)
                continue
            self.tally["ticks_read"] += len(item)
            if item.source == "backfill":
                self.tally["backfilled"] += len(item)
            self.out.append(item)
        if not st.sequence.pending:
            st.hole_since = None
        elif st.hole_since is None:
            st.hole_since = time.monotonic()

    def report_gap(self, st: SymbolState, gap: FeedGap) -> None:
        """Append a lost range to the output, logged and counted."""
        logger.warning("feed gap symbol=%s start=%d end=%d reason=%s", gap.symbol, gap.start,
                       gap.end, gap.reason)
        st.health.gaps_unrecovered += 1
        self.tally["feed_gaps_declared"] += 1
        self.out.append(gap)
        self.health_one(st, f"gap_unrecovered: {gap.reason}"[:200])

    # --------------------------------------------------------------------- backfill

    def _start_backfill(self, st: SymbolState) -> None:
        st.backfill_due = False
        st.backfilling = True
        st.caught_up = False
        self._spawn(self.catch_up.backfill(st))

    # ------------------------------------------------------------ heartbeats, health

    def _heartbeats(self) -> None:
        """The bar watermark of each complete symbol: exchange time now minus the margin.

        Never past what is known complete (the last trade, or what a probe vouched for) unless
        ``heartbeat_wallclock`` and frames flow; none while disconnected or behind a hole.
        """
        if not self.supervisor.up:
            return
        now_ex = self.exchange_now()
        if now_ex is None:
            return
        margin = int(self.settings.heartbeat_margin_s * 1e6)
        # Wall-clock heartbeats only while some stream delivered a frame within half the
        # margin-free lateness: a stalled connection keeps every symbol capped.
        last_frames = [st.last_msg for st in self.symbols.values() if st.last_msg is not None]
        frames_flowing = bool(last_frames) and time.monotonic() - max(last_frames) < 1.0
        for st in self.symbols.values():
            last_ts = st.sequence.last_ts
            if not st.quiet_and_complete or last_ts is None:
                continue
            beat = now_ex - margin
            if not (self.settings.heartbeat_wallclock and frames_flowing):
                beat = min(beat, max(last_ts, st.verified_until))
            if beat > st.last_hb:
                st.last_hb = beat
                self.out.append(Heartbeat(st.symbol, beat))

    def _health(self, event: str | None) -> None:
        for st in self.symbols.values():
            self.health_one(st, event)
            if st.quote_health is not None:
                self.quote_health_one(st, event)

    def quote_health_one(self, st: SymbolState, event: str | None) -> None:
        """Append the health row of the symbol's quote stream to the output."""
        self.out.append(st.quote_health.record(
            connected=self.supervisor.up, reconnects=self.supervisor.reconnects,
            last_message=st.last_quote_msg, event=event))

    def health_one(self, st: SymbolState, event: str | None) -> None:
        """Append the symbol's health row to the output."""
        self.out.append(st.health.record(
            connected=self.supervisor.up, reconnects=self.supervisor.reconnects,
            last_message=st.last_msg, event=event))

    def _flush_tally(self) -> None:
        if self.tally:
            self.out.extend(counts(self.tally))
            self.tally = Counter()
