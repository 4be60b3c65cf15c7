"""Live Binance trades as a Bytewax source that loses no trade and invents none.

One partition = one WebSocket connection's symbol group (combined stream
``/stream?streams=a@trade/b@trade``, at most 1 024 streams). Each partition runs its client in
its own thread and asyncio loop (ENGINE.md: ``next_batch`` must never block) and hands ready
items to ``next_batch`` through a bounded deque.

What the loop thread does, per symbol:

- **ids in order.** Trade ids (``t``, or the aggregate id ``a``) are contiguous on Binance.
  Ticks are emitted strictly in id order: the fast path passes a contiguous chunk straight
  through; anything else waits in a reorder buffer until the ids before it arrive. So a
  duplicated frame (reconnect overlap, rollover overlap, a replayed frame) is dropped here, a
  reordered frame is put back in order, and a hole holds later ticks back, so the bar step never
  sees them out of order or late.
- **holes are backfilled.** A hole older than ``reorder_grace_s``, and every reconnect, starts a
  REST backfill from the last id + 1 (:mod:`connectors.binance.rest`); recovered trades go out
  with ``source = "backfill"`` ahead of the live ones held behind them. A range REST cannot
  give back becomes a :class:`~pairflow.ticks.FeedGap` (no bar is made inside it).
- **heartbeats** (the bar watermark for quiet symbols) come from the wall clock mapped to
  exchange time by the receive→trade offset observed, minus ``heartbeat_margin_s``, and never
  pass what is known complete: the symbol's last trade, or the time a REST probe confirmed
  that no newer trade exists. No heartbeat is sent while disconnected or while a backfill is
  due, so the bars of a down period wait for its trades.
- **watchdog.** A stream silent longer than its expected inter-arrival is probed over REST;
  if the exchange has trades the stream did not deliver, that is a silent stream: health
  event, backfill and a replacement connection. A stream silent beyond ``silence_limit_s``
  (adapted down to its observed rate) without a probe confirming it is quiet is also replaced.
- **rollover.** Before ``max_connection_age_s`` (Binance cuts at 24 h) a replacement connection
  is opened; the old one closes once the new one delivers, the overlap deduplicated by id.
- **reconnect** with capped exponential backoff and jitter, forever, the reason logged;
  connection attempts kept under Binance's 300 per 5 minutes.

Delivery guarantee: every trade id from the first one seen (or the snapshot's last id + 1 on
resume) is emitted exactly once per run, in id order, or covered by a ``FeedGap``. Snapshot =
last emitted id per symbol; a resume backfills from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.binance.rest import (
    USDM_REST_URL,
    BackfillError,
    BinanceRestClient,
    RestKind,
    trade_frame,
)
from connectors.binance.wire import FrameParser
from connectors.recorder import FrameRecorder
from pairflow.config import PairflowConfig
from pairflow.errors import ConfigError
from pairflow.metrics import Count, counts
from pairflow.records import SYMBOL_PATTERN, DeadLetter, Health
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

logger = logging.getLogger(__name__)

SPOT_WS_URL = "wss://stream.binance.com:9443"
USDM_WS_URL = "wss://fstream.binance.com/market"
SPOT_REST_URL_DEFAULT = "https://api.binance.com"
#: Binance's limit of streams per connection.
MAX_STREAMS = 1024
#: Binance's limit of new connections per 5 minutes per IP.
MAX_CONNECTS_PER_5MIN = 300

LiveItem = TickChunk | Heartbeat | FeedGap | DeadLetter | Health | Count


@dataclass(frozen=True)
class LiveSettings:
    """Tuning of the live source; every field can be set by ``PAIRFLOW_LIVE_<NAME>``.

    Attributes:
        market: ``spot`` or ``usdm``.
        stream_kind: ``trade`` or ``aggTrade``; None: ``trade`` on spot, ``aggTrade`` on usdm.
        ws_url: base WebSocket URL (None: Binance's for the market).
        rest_url: base REST URL (None: Binance's for the market).
        api_key: sent as ``X-MBX-APIKEY`` to REST (``PAIRFLOW_BINANCE_API_KEY``).
        streams_per_connection: symbols per connection (= per partition), at most 1 024.
        max_connection_age_s: roll over to a new connection after this long (Binance: 24 h).
        rollover_overlap_s: longest overlap of old and new connection during a rollover.
        silence_limit_s: longest silence of a stream before its connection is replaced
            (unless a REST probe confirmed the symbol is quiet).
        silence_min_s: the silence limit never adapts below this.
        probe_after_s: silence after which a quiet stream is checked over REST.
        probe_every_s: least time between two probes of one symbol.
        reorder_grace_s: how long a hole in the ids may wait for reordered frames before a
            backfill is started.
        heartbeat_margin_s: heartbeats stay this far behind the estimated exchange time.
        heartbeat_every_s: heartbeat period.
        heartbeat_wallclock: let heartbeats run ahead of a symbol's last trade on the wall
            clock (minus the margin) while its connection delivers frames, so a quiet
            symbol's windows close within ~margin of their end instead of at its next trade.
            The bet: a stream that went silent alone, before the watchdog notices, has its
            missed trades recovered as late dead letters instead of bars. Off by default.
        health_every_s: health record period.
        backoff_initial_s: first reconnect delay.
        backoff_max_s: reconnect delay cap.
        duration_s: stop after this many seconds (None: run until stopped).
        record_dir: record raw frames there (None: no recording).
        max_buffered_items: bound of the queue between the client thread and ``next_batch``.
        max_pending_ticks: ticks one symbol may hold behind a hole before it is declared lost.
    """

    market: str = "spot"
    stream_kind: str | None = None
    ws_url: str | None = None
    rest_url: str | None = None
    api_key: str | None = None
    streams_per_connection: int = 200
    max_connection_age_s: float = 23.5 * 3600
    rollover_overlap_s: float = 5.0
    silence_limit_s: float = 30.0
    silence_min_s: float = 5.0
    probe_after_s: float = 2.0
    probe_every_s: float = 2.0
    reorder_grace_s: float = 0.5
    heartbeat_margin_s: float = 1.0
    heartbeat_every_s: float = 0.25
    heartbeat_wallclock: bool = False
    health_every_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    duration_s: float | None = None
    record_dir: str | None = None
    max_buffered_items: int = 20_000
    max_pending_ticks: int = 500_000

    def __post_init__(self) -> None:
        if self.market not in ("spot", "usdm"):
            raise ConfigError(f"market {self.market!r} is not spot or usdm")
        if self.stream_kind not in (None, "trade", "aggTrade"):
            raise ConfigError(f"stream kind {self.stream_kind!r} is not trade or aggTrade")
        if not 1 <= self.streams_per_connection <= MAX_STREAMS:
            raise ConfigError(f"streams per connection must be 1..{MAX_STREAMS}, "
                              f"got {self.streams_per_connection}")
        if self.max_connection_age_s <= 2 * self.rollover_overlap_s:
            raise ConfigError("max_connection_age_s must exceed twice rollover_overlap_s")
        for name in ("silence_limit_s", "silence_min_s", "probe_after_s", "heartbeat_every_s",
                     "health_every_s", "backoff_initial_s", "backoff_max_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")

    @property
    def kind(self) -> RestKind:
        """The stream kind used."""
        if self.stream_kind:
            return self.stream_kind  # type: ignore[return-value]
        return "trade" if self.market == "spot" else "aggTrade"

    @property
    def base_ws_url(self) -> str:
        """The WebSocket base URL."""
        return (self.ws_url or (SPOT_WS_URL if self.market == "spot" else USDM_WS_URL)).rstrip("/")

    @property
    def base_rest_url(self) -> str:
        """The REST base URL."""
        return self.rest_url or (SPOT_REST_URL_DEFAULT if self.market == "spot"
                                 else USDM_REST_URL)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> LiveSettings:
        """Settings from ``given`` values over ``PAIRFLOW_LIVE_*`` variables over defaults.

        Raises:
            ConfigError: on a value of the wrong type.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            text = env.get(f"PAIRFLOW_LIVE_{f.name.upper()}")
            if text is None or text == "":
                continue
            kind = str(f.type)
            try:
                if kind == "bool":
                    if text.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError("use true or false")
                    values[f.name] = text.strip().lower() in ("1", "true", "yes")
                elif "float" in kind:
                    values[f.name] = float(text)
                elif "int" in kind:
                    values[f.name] = int(text)
                else:
                    values[f.name] = text
            except ValueError as error:
                raise ConfigError(f"PAIRFLOW_LIVE_{f.name.upper()}={text!r}: {error}") from error
        if env.get("PAIRFLOW_BINANCE_API_KEY"):
            values["api_key"] = env["PAIRFLOW_BINANCE_API_KEY"]
        values.update({k: v for k, v in given.items() if v is not None})
        return cls(**values)


class BinanceTradeSource(FixedPartitionedSource[LiveItem, dict]):
    """Binance trades (``@trade`` / ``@aggTrade``) over WebSocket, gap-free by trade id.

    Unit of parallelism: one partition per connection, i.e. per group of
    ``streams_per_connection`` symbols; a symbol's ticks come from one partition, in id order.
    Emits per-symbol :class:`TickChunk` s (``source`` ``live`` or ``backfill``),
    :class:`Heartbeat` s, :class:`FeedGap` s, :class:`DeadLetter` s for bad frames,
    :class:`Health` per stream and :class:`Count` s; with a duration, a final heartbeat per
    symbol and then the end.

    Delivery: exactly once per trade id within a run (deduplicated by id), in id order;
    at-least-once across a resume (state = last emitted id per symbol, the gap backfilled; the
    bar step drops duplicates).

    Args:
        symbols: upper-case symbols.
        settings: connection, watchdog, backfill and recording settings.
    """

    def __init__(self, symbols: list[str] | tuple[str, ...], settings: LiveSettings):
        bad = [s for s in symbols if not SYMBOL_PATTERN.match(s)]
        if bad or not symbols:
            raise ConfigError(f"live source needs upper-case symbols like BTCUSDT, got {bad}")
        self.symbols = tuple(symbols)
        self.settings = settings
        size = settings.streams_per_connection
        self.groups = {f"{settings.market}-{i // size}": self.symbols[i:i + size]
                       for i in range(0, len(self.symbols), size)}

    @classmethod
    def from_config(cls, config: PairflowConfig,
                    env: Mapping[str, str] | None = None) -> BinanceTradeSource:
        """The source for a pairflow configuration (plus ``PAIRFLOW_LIVE_*`` tuning)."""
        settings = LiveSettings.from_env(
            env, market=config.market, ws_url=config.ws_url, rest_url=config.rest_url,
            duration_s=config.duration_s, record_dir=config.record_dir)
        return cls(config.symbols, settings)

    def list_parts(self) -> list[str]:
        """One partition per connection group."""
        return list(self.groups)

    def build_part(self, step_id: str, for_part: str,
                   resume_state: dict | None) -> _BinanceWsPartition:
        """Start the connection of one group; resume from its last emitted ids."""
        return _BinanceWsPartition(for_part, self.groups[for_part], self.settings,
                                   resume_state or {})


_END = object()


class _BinanceWsPartition(StatefulSourcePartition[LiveItem, dict]):
    def __init__(self, name: str, symbols: tuple[str, ...], settings: LiveSettings,
                 resume: dict[str, int]):
        self._items: deque = deque()
        self._emitted: dict[str, int] = dict(resume)
        self._ended = False
        self._awake: datetime | None = None
        self._client = _Client(name, symbols, settings, resume, self._items)
        self._thread = threading.Thread(target=self._client.run, name=f"binance-{name}",
                                        daemon=True)
        self._thread.start()

    def next_batch(self) -> list[LiveItem]:
        if self._ended:
            raise StopIteration
        out: list[LiveItem] = []
        items = self._items
        while items and len(out) < 5000:
            item = items.popleft()
            if item is _END:
                self._ended = True
                break
            if isinstance(item, TickChunk) and len(item):
                self._emitted[item.symbol] = max(self._emitted.get(item.symbol, -1),
                                                 int(item.trade_id.max()))
            out.append(item)
        if not self._thread.is_alive() and not items and not self._ended:
            # The client thread died without its end marker: never a silent death.
            raise RuntimeError(f"binance client thread {self._thread.name} died: "
                               f"{self._client.failure!r}")
        self._awake = None if out else datetime.now(UTC) + timedelta(milliseconds=20)
        return out

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> dict:
        return dict(self._emitted)

    def close(self) -> None:
        self._client.stop()
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            logger.warning("binance client thread %s did not stop", self._thread.name)


# ------------------------------------------------------------------------------ client


_connect_times: deque = deque()
_connect_lock = threading.Lock()


def _connect_delay_s() -> float:
    """Seconds to wait so this process stays under 300 new connections per 5 minutes."""
    with _connect_lock:
        now = time.monotonic()
        while _connect_times and now - _connect_times[0] > 300:
            _connect_times.popleft()
        if len(_connect_times) >= MAX_CONNECTS_PER_5MIN - 10:
            return 300 - (now - _connect_times[0]) + 0.1
        _connect_times.append(now)
        return 0.0


@dataclass
class _Symbol:
    """Per-symbol state of the client (loop thread only)."""

    symbol: str
    stream: str
    hi: int | None = None  # every id <= hi was emitted (or declared lost)
    pending: dict = field(default_factory=dict)  # id -> row (None: ghost id, no tick)
    hole_since: float | None = None
    caught_up: bool = True
    backfilling: bool = False
    backfill_due: bool = False
    last_ts: int | None = None  # exchange time of the last emitted tick, µs
    verified_until: int = -1  # exchange time up to which REST confirmed no newer trade
    last_hb: int = -1
    last_msg: float | None = None  # monotonic time of the stream's last trade frame
    interarrival_s: float | None = None  # EWMA
    next_probe: float = 0.0
    probing: bool = False
    # Health counters: totals and this interval's samples.
    gaps_found: int = 0
    backfilled: int = 0
    gaps_unrecovered: int = 0
    messages: int = 0
    latencies_ms: list = field(default_factory=list)
    skew_flagged: bool = False
    health_at: float | None = None


@dataclass
class _Conn:
    conn_id: int
    opened: float = 0.0
    up: bool = False
    got_data: bool = False
    ws: Any = None
    task: asyncio.Task | None = None
    replacing: _Conn | None = None  # the connection this one will replace (rollover)


class _Client:
    """The supervision loop of one partition; runs in its own thread and event loop."""

    def __init__(self, name: str, symbols: tuple[str, ...], settings: LiveSettings,
                 resume: dict[str, int], out: deque):
        self.name = name
        self.settings = settings
        self.kind: RestKind = settings.kind
        self.out = out
        self.failure: BaseException | None = None
        self.parser = FrameParser(frozenset(symbols), "live", stage="live")
        self.symbols = {s: _Symbol(s, f"{s.lower()}@{self.kind}", hi=resume.get(s))
                        for s in symbols}
        self.url = f"{settings.base_ws_url}/stream?streams=" + "/".join(
            st.stream for st in self.symbols.values())
        self.recorder = (FrameRecorder(settings.record_dir, f"binance-{name}")
                         if settings.record_dir else None)
        self.backfill_recorders: dict[str, FrameRecorder] = {}
        self.backfill_keys: dict[str, int] = {}
        self.rest = BinanceRestClient(settings.base_rest_url, settings.market, settings.api_key)
        self.frames: list[tuple[int, bytes]] = []
        self.conns: list[_Conn] = []
        self.next_conn_id = 0
        self.reconnects = 0
        self.ever_connected = False
        self.offsets: deque = deque()  # (monotonic, max(T - recv) µs) per batch
        self.tally: Counter = Counter()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self._stop_requested = False
        self._tasks: set[asyncio.Task] = set()
        self._rest_seen = (0, 0)

    # -------------------------------------------------------------------- lifecycle

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - reported by next_batch
            self.failure = error
            logger.exception("binance client %s failed", self.name)
        finally:
            if self.recorder is not None:
                self.recorder.close()
            for recorder in self.backfill_recorders.values():
                recorder.close()

    def stop(self) -> None:
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
        self._open_connection()
        next_hb = next_health = time.monotonic()
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if self.settings.duration_s is not None and now - started >= \
                        self.settings.duration_s:
                    break
                self._process_frames()
                self._supervise(now)
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
        for conn in list(self.conns):
            if conn.task is not None:
                conn.task.cancel()
        # A running backfill may still complete what the run received; give it a moment.
        deadline = time.monotonic() + 5.0
        while any(st.backfilling for st in self.symbols.values()) and \
                time.monotonic() < deadline and not self._stop_requested:
            await asyncio.sleep(0.02)
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self.conns):
            if conn.task is not None:
                with contextlib.suppress(BaseException):
                    await conn.task
        self._process_frames()
        for st in self.symbols.values():
            self._flush_pending(st, "stopped")
        self._health("stopped")
        self._flush_tally()
        for symbol in self.symbols:
            self.out.append(Heartbeat(symbol, 0, final=True))
        self.out.append(_END)
        await self.rest.close()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ connections

    def _open_connection(self, replacing: _Conn | None = None) -> _Conn:
        conn = _Conn(self.next_conn_id, replacing=replacing)
        self.next_conn_id += 1
        self.conns.append(conn)
        conn.task = self._spawn(self._connection(conn))
        return conn

    async def _connection(self, conn: _Conn) -> None:
        """Keep one connection up: connect, read, reconnect with backoff, forever."""
        from websockets.asyncio.client import connect

        backoff = self.settings.backoff_initial_s
        host = urlparse(self.settings.base_ws_url).hostname
        proxy = None if host in ("127.0.0.1", "localhost", "::1") else True
        while True:
            delay = _connect_delay_s()
            if delay:
                logger.warning("connection rate limit reached; waiting %.1f s", delay)
                await asyncio.sleep(delay)
            reason = "closed"
            try:
                async with connect(self.url, proxy=proxy, max_size=1 << 24, open_timeout=10,
                                   ping_interval=20, ping_timeout=20, close_timeout=2,
                                   compression=None) as ws:
                    conn.ws, conn.up, conn.opened = ws, True, time.monotonic()
                    self._on_open(conn)
                    while True:
                        frame = await ws.recv(decode=False)
                        recv_ns = time.time_ns()
                        if not conn.got_data:
                            conn.got_data = True
                            backoff = self.settings.backoff_initial_s
                        if frame.startswith(b'{"result"') or frame.startswith(b'{"id"'):
                            continue  # a reply to SUBSCRIBE / LIST_SUBSCRIPTIONS
                        if self.recorder is not None:
                            self.recorder.write(recv_ns, frame)
                        self.frames.append((recv_ns // 1000, frame))
                        while len(self.out) > self.settings.max_buffered_items:
                            # The flow is behind: stop reading so TCP pushes back.
                            await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                conn.up = False
                raise
            except Exception as error:  # noqa: BLE001 - every failure reconnects
                reason = f"{type(error).__name__}: {error}"
            conn.up, conn.ws, conn.got_data = False, None, False
            if conn not in self.conns:
                return  # replaced (rollover / watchdog): this connection is done
            self._on_lost(conn, reason)
            delay = backoff * (0.5 + random.random() / 2)
            logger.warning("binance connection lost part=%s reason=%s retry_in_s=%.2f",
                           self.name, reason, delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.settings.backoff_max_s)

    def _on_open(self, conn: _Conn) -> None:
        logger.info("binance connected part=%s conn=%d url=%s", self.name, conn.conn_id,
                    self.url)
        rollover = conn.replacing is not None and conn.replacing.up
        if self.ever_connected and not rollover:
            self.reconnects += 1
            self.tally["reconnects"] += 1
            self._health("reconnected")
        if not rollover:
            # Trades may have happened while no connection was up (or before a resume):
            # fetch them before trusting the stream, and hold heartbeats until then.
            for st in self.symbols.values():
                if st.hi is not None:
                    st.caught_up = False
                    st.backfill_due = True
        self.ever_connected = True

    def _on_lost(self, conn: _Conn, reason: str) -> None:
        if any(c.up for c in self.conns):
            return  # another connection (rollover) still carries the streams
        for st in self.symbols.values():
            st.caught_up = False
        self._health(f"disconnected: {reason}"[:200])

    def _replace(self, old: _Conn, why: str) -> None:
        """Open a replacement for ``old``; ``_supervise`` closes ``old`` once it delivers."""
        if any(c.replacing is old for c in self.conns):
            return
        logger.info("binance replacing connection part=%s conn=%d why=%s", self.name,
                    old.conn_id, why)
        self.tally[f"replaced:{why}"] += 1
        self._open_connection(replacing=old)
        self._health(why)

    def _retire(self, old: _Conn) -> None:
        if old in self.conns:
            self.conns.remove(old)
        for c in self.conns:
            if c.replacing is old:
                c.replacing = None
        if old.task is not None:
            old.task.cancel()

    def _supervise(self, now: float) -> None:
        s = self.settings
        for conn in list(self.conns):
            new = next((c for c in self.conns if c.replacing is conn), None)
            if new is not None:
                # Switch once the replacement delivers (or the overlap ran out while it is up),
                # or at once when the old one is down anyway.
                if not conn.up or (new.up and (new.got_data or
                                               now - new.opened > s.rollover_overlap_s)):
                    self._retire(conn)
                continue
            if conn.up and now - conn.opened > s.max_connection_age_s:
                self._replace(conn, "rollover")
        up = any(c.up for c in self.conns)
        for st in self.symbols.values():
            if st.backfill_due and up and not st.backfilling:
                self._start_backfill(st)
            elif st.pending and not st.backfilling and st.hole_since is not None and (
                    now - st.hole_since > s.reorder_grace_s
                    or len(st.pending) > s.max_pending_ticks):
                st.gaps_found += 1
                self.tally["gaps_found"] += 1
                self._start_backfill(st)
            if up and st.caught_up and not st.pending and not st.backfilling \
                    and st.last_msg is not None:
                silent = now - st.last_msg
                expected = max(s.probe_after_s, 5 * (st.interarrival_s or 0.0))
                if silent > expected and now >= st.next_probe and not st.probing:
                    st.probing = True
                    st.next_probe = now + s.probe_every_s
                    self._spawn(self._probe(st))
                limit = min(s.silence_limit_s, max(s.silence_min_s,
                                                   20 * (st.interarrival_s or s.silence_limit_s)))
                recently_verified = st.verified_until >= (self._exchange_now() or 0) - \
                    int(limit * 1e6) - int(s.heartbeat_margin_s * 1e6)
                if silent > limit and not recently_verified:
                    st.last_msg = now  # one replacement per silence
                    self._silent(st)

    def _silent(self, st: _Symbol) -> None:
        logger.warning("silent stream part=%s stream=%s", self.name, st.stream)
        self.tally["silent_streams"] += 1
        st.backfill_due = True
        st.caught_up = False
        current = [c for c in self.conns if c.up and c.replacing is None]
        for conn in current:
            self._replace(conn, "silent_stream")
        self._health_one(st, "silent_stream")

    # ------------------------------------------------------------------ frames, ids

    def _process_frames(self) -> None:
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
                offsets = chunk.ts - chunk.recv_ts
                self.offsets.append((now, int(offsets.max())))
                st.latencies_ms.extend(((chunk.recv_ts - chunk.ts) / 1000.0).tolist())
                st.messages += len(chunk)
                if st.last_msg is not None:
                    gap = (now - st.last_msg) / len(chunk)
                    st.interarrival_s = gap if st.interarrival_s is None else \
                        0.9 * st.interarrival_s + 0.1 * gap
                st.last_msg = now
            self._accept(st, chunk)
        while self.offsets and now - self.offsets[0][0] > 30:
            self.offsets.popleft()

    def _exchange_now(self) -> int | None:
        """Estimated exchange time now (µs): local time + the smallest latency seen lately."""
        if not self.offsets:
            return None
        return time.time_ns() // 1000 + max(o for _, o in self.offsets)

    def _accept(self, st: _Symbol, chunk: TickChunk) -> int:
        """Take a chunk (live or backfill); emit what is in id order; return new ticks."""
        ids = chunk.trade_id
        if st.hi is None:
            if not len(ids) and not len(chunk.ghost_ids):
                return 0
            lowest = min(int(ids.min()) if len(ids) else 1 << 62,
                         int(chunk.ghost_ids.min()) if len(chunk.ghost_ids) else 1 << 62)
            st.hi = lowest - 1
        if not st.pending and not len(chunk.ghost_ids) and len(ids) and ids[0] == st.hi + 1 \
                and (len(ids) == 1 or bool((np.diff(ids) == 1).all())):
            st.hi = int(ids[-1])
            self._emit(st, chunk)
            return len(chunk)
        fresh = 0
        dups = 0
        hi, pending = st.hi, st.pending
        for row in zip(chunk.ts.tolist(), chunk.recv_ts.tolist(), ids.tolist(),
                       chunk.first_trade_id.tolist(), chunk.last_trade_id.tolist(),
                       chunk.price.tolist(), chunk.qty.tolist(), chunk.buyer_is_maker.tolist(),
                       strict=True):
            tid = row[2]
            if tid <= hi or tid in pending:
                dups += 1
                continue
            pending[tid] = (*row, chunk.source)
            fresh += 1
        for gid in chunk.ghost_ids.tolist():
            if gid > hi and gid not in pending:
                pending[gid] = None
        if dups:
            self.tally["source_duplicates"] += dups
        self._drain(st)
        return fresh

    def _drain(self, st: _Symbol) -> None:
        """Emit pending ticks that now follow ``hi`` without a hole."""
        rows = []
        pending = st.pending
        while st.hi + 1 in pending:
            st.hi += 1
            row = pending.pop(st.hi)
            if row is not None:
                rows.append(row)
        if rows:
            self._emit_rows(st, rows)
        if pending:
            if st.hole_since is None:
                st.hole_since = time.monotonic()
        else:
            st.hole_since = None

    def _emit_rows(self, st: _Symbol, rows: list) -> None:
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i][8] != rows[start][8]:
                part = rows[start:i]
                cols = list(zip(*part, strict=True))
                chunk = TickChunk(
                    st.symbol, part[0][8], np.array(cols[0], np.int64),
                    np.array(cols[1], np.int64), np.array(cols[2], np.int64),
                    np.array(cols[3], np.int64), np.array(cols[4], np.int64),
                    np.array(cols[5], np.float64), np.array(cols[6], np.float64),
                    np.array(cols[7], np.bool_))
                self._emit(st, chunk)
                start = i

    def _emit(self, st: _Symbol, chunk: TickChunk) -> None:
        st.last_ts = int(chunk.ts.max()) if st.last_ts is None else max(st.last_ts,
                                                                         int(chunk.ts.max()))
        self.tally["ticks_read"] += len(chunk)
        if chunk.source == "backfill":
            self.tally["backfilled"] += len(chunk)
        self.out.append(chunk)

    def _flush_pending(self, st: _Symbol, reason: str) -> None:
        """Give up on the hole before the pending ticks: declare it lost, emit the rest."""
        if not st.pending:
            return
        first = min(st.pending)
        row = st.pending[first]
        end = (row[0] + 1) if row is not None else (self._exchange_now() or 0)
        self._declare_gap(st, st.last_ts if st.last_ts is not None else end - 1, end, reason)
        st.hi = first - 1
        self._drain(st)
        if st.pending:
            self._flush_pending(st, reason)

    def _declare_gap(self, st: _Symbol, start: int, end: int, reason: str) -> None:
        if end <= start:
            end = start + 1
        logger.warning("feed gap symbol=%s start=%d end=%d reason=%s", st.symbol, start, end,
                       reason)
        st.gaps_unrecovered += 1
        self.tally["feed_gaps_declared"] += 1
        self.out.append(FeedGap(st.symbol, start, end, reason))
        self._health_one(st, f"gap_unrecovered: {reason}"[:200])

    # --------------------------------------------------------------------- backfill

    def _start_backfill(self, st: _Symbol) -> None:
        st.backfill_due = False
        st.backfilling = True
        st.caught_up = False
        self._spawn(self._backfill(st))

    async def _backfill(self, st: _Symbol) -> None:
        """Fetch ids from ``hi + 1`` until the hole is filled and REST has nothing newer."""
        recovered = 0
        try:
            started_at = self._exchange_now()
            while True:
                from_id = st.hi + 1
                chunk = await self.rest.trades_from(st.symbol, self.kind, from_id)
                self._process_frames()  # keep live frames flowing into the reorder buffer
                if len(chunk) and int(chunk.trade_id[0]) > from_id:
                    # REST no longer has these ids (history limit): lost for good.
                    first = int(chunk.trade_id[0])
                    self._declare_gap(st, st.last_ts or int(chunk.ts[0]) - 1,
                                      int(chunk.ts[0]) + 1, "backfill: ids not available")
                    for tid in [t for t in st.pending if t < first]:
                        del st.pending[tid]
                    st.hi = first - 1
                self._record_backfill(st, chunk)
                new = self._accept(st, chunk)
                recovered += new
                if len(chunk) < 1000 and (not st.pending or st.hi + 1 not in st.pending and
                                          not len(chunk)):
                    break
                if not len(chunk):
                    break
                if st.hi + 1 == from_id:
                    break  # no progress: avoid a hot loop
            if st.pending and len(chunk) < 1000:
                # REST is at its present and the hole is still open: it cannot be filled.
                self._flush_pending(st, "backfill: ids missing at the exchange")
            if started_at is not None and not st.pending:
                st.verified_until = max(st.verified_until, started_at -
                                        int(self.settings.heartbeat_margin_s * 1e6))
        except BackfillError as error:
            logger.warning("backfill failed symbol=%s error=%s", st.symbol, error)
            self._flush_pending(st, f"backfill failed: {error}"[:200])
            now_ex = self._exchange_now()
            if now_ex is not None and st.last_ts is not None and now_ex > st.last_ts:
                # Whatever traded while we were blind is unknown: no bars for it.
                self._declare_gap(st, st.last_ts + 1, now_ex, "backfill failed")
        finally:
            st.backfilling = False
            if not st.pending:
                st.caught_up = True
        if recovered:
            st.backfilled += recovered
            self._health_one(st, f"backfilled {recovered}")
        self._count_rest()

    def _record_backfill(self, st: _Symbol, chunk: TickChunk) -> None:
        """Append the new backfilled trades to the symbol's backfill recording.

        Replaying a recording must give the live run's bars, so backfilled trades are recorded
        too, as trade frames built from the REST rows, in a file of their own per symbol (keys
        there stay sorted). Their key is set just before the receive time of the first live
        frame held behind the hole, so a replay sees the symbol's trades in id order.
        """
        if self.recorder is None or not len(chunk):
            return
        hi = st.hi if st.hi is not None else -1
        fresh = [i for i, tid in enumerate(chunk.trade_id.tolist())
                 if tid > hi and tid not in st.pending]
        if not fresh:
            return
        recorder = self.backfill_recorders.get(st.symbol)
        if recorder is None:
            recorder = self.backfill_recorders[st.symbol] = FrameRecorder(
                self.settings.record_dir, f"binance-{self.name}-backfill-{st.symbol.lower()}")
        held = [row[1] for row in st.pending.values() if row is not None]
        base = (min(held) if held else time.time_ns() // 1000) * 1000 - 10_000_000
        last_key = self.backfill_keys.get(st.symbol, 0)
        for n, i in enumerate(fresh):
            key = max(base + n, last_key + 1)
            last_key = key
            row = {"id": int(chunk.trade_id[i]), "ts_ms": int(chunk.ts[i]) // 1000,
                   "price": float(chunk.price[i]), "qty": float(chunk.qty[i]),
                   "maker": bool(chunk.buyer_is_maker[i]),
                   "first": int(chunk.first_trade_id[i]), "last": int(chunk.last_trade_id[i])}
            recorder.write(key, trade_frame(st.symbol, self.kind, row))
        self.backfill_keys[st.symbol] = last_key

    async def _probe(self, st: _Symbol) -> None:
        """Ask REST for the newest id: quiet for real (heartbeats may pass) or silent stream."""
        try:
            asked_at = self._exchange_now()
            latest = await self.rest.latest_trade_id(st.symbol, self.kind)
        except BackfillError as error:
            logger.warning("probe failed symbol=%s error=%s", st.symbol, error)
            return
        finally:
            st.probing = False
            self._count_rest()
        if asked_at is None:
            return
        margin = int(self.settings.heartbeat_margin_s * 1e6)
        if latest is None or st.hi is None or latest[0] <= st.hi:
            st.verified_until = max(st.verified_until, asked_at - margin)
        elif latest[1] < asked_at - margin:
            # The exchange has older trades the stream never delivered.
            st.gaps_found += 1
            self.tally["gaps_found"] += 1
            self._silent(st)

    # ------------------------------------------------------------ heartbeats, health

    def _heartbeats(self) -> None:
        if not any(c.up for c in self.conns):
            return
        now_ex = self._exchange_now()
        if now_ex is None:
            return
        margin = int(self.settings.heartbeat_margin_s * 1e6)
        # Wall-clock heartbeats only while some stream delivered a frame within half the
        # margin-free lateness: a stalled connection keeps every symbol capped.
        last_frames = [st.last_msg for st in self.symbols.values() if st.last_msg is not None]
        frames_flowing = bool(last_frames) and time.monotonic() - max(last_frames) < 1.0
        for st in self.symbols.values():
            if not st.caught_up or st.pending or st.backfilling or st.backfill_due \
                    or st.last_ts is None:
                continue
            beat = now_ex - margin
            if not (self.settings.heartbeat_wallclock and frames_flowing):
                beat = min(beat, max(st.last_ts, st.verified_until))
            if beat > st.last_hb:
                st.last_hb = beat
                self.out.append(Heartbeat(st.symbol, beat))

    def _health(self, event: str | None) -> None:
        for st in self.symbols.values():
            self._health_one(st, event)

    def _health_one(self, st: _Symbol, event: str | None) -> None:
        now = time.monotonic()
        up = any(c.up for c in self.conns)
        lat = np.asarray(st.latencies_ms, np.float64)
        since = st.health_at if st.health_at is not None else now - self.settings.health_every_s
        elapsed = max(now - since, 1e-3)
        skew = None
        if len(lat):
            low = float(lat.min())
            skew = round(-low, 3) if low < 0 else 0.0
            if skew > 500 and not st.skew_flagged:
                st.skew_flagged = True
                logger.warning("clock skew stream=%s local clock behind by ~%.0f ms",
                               st.stream, skew)
                event = event or f"clock_skew: local clock ~{skew:.0f} ms behind the exchange"
        record = Health(
            stream=st.stream, symbol=st.symbol, ts=time.time_ns() // 1000, connected=up,
            last_message_age_s=None if st.last_msg is None else round(now - st.last_msg, 3),
            messages_per_s=round(st.messages / elapsed, 3), reconnects=self.reconnects,
            gaps_found=st.gaps_found, trades_backfilled=st.backfilled,
            gaps_unrecovered=st.gaps_unrecovered,
            latency_p50_ms=round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
            latency_p99_ms=round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
            clock_skew_ms=skew, event=event)
        if event is None:
            st.messages = 0
            st.latencies_ms = []
            st.health_at = now
        self.out.append(record)

    def _count_rest(self) -> None:
        # The REST client keeps totals; counters flow as increments.
        self.tally["rest_requests"] += self.rest.requests - self._rest_seen[0]
        self.tally["rest_rate_limited"] += self.rest.rate_limited - self._rest_seen[1]
        self._rest_seen = (self.rest.requests, self.rest.rate_limited)

    def _flush_tally(self) -> None:
        if self.tally:
            self.out.extend(counts(self.tally))
            self.tally = Counter()


