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
- **rollover** before ``max_connection_age_s`` (Binance cuts at 24 h) and **reconnect** with
  capped exponential backoff and jitter, under Binance's 300 connections per 5 minutes: the
  :class:`~connectors.binance.supervisor.ConnectionSupervisor`; the overlap is deduplicated
  by id.

With ``quotes``, each symbol's ``@bookTicker`` (and a perpetual's ``@markPrice@1s``) rides on
its trades' connection. Quotes go out as received (the parser drops those whose update id does
not advance); they cannot be backfilled, so after each outage a ``QuoteGap`` per symbol spans
the quote time from its last quote before to its first after, and the quote step makes no bar
over it.

Where each part lives: ids in :mod:`~connectors.binance.sequencer`, health counters in
:mod:`~connectors.binance.health`, backfill, watchdog and heartbeat policy in
:class:`~connectors.binance.client.LiveClient`, settings in :mod:`~connectors.binance.settings`.

Delivery guarantee: every trade id from the first one seen (or the snapshot's last id + 1 on
resume) is emitted exactly once per run, in id order, or covered by a ``FeedGap``. Snapshot =
last emitted id per symbol; a resume backfills from there.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.binance.client import END, LiveClient
from connectors.binance.settings import LiveSettings
from pairflow.config import PairflowConfig
from pairflow.errors import ConfigError
from pairflow.metrics import Count
from pairflow.quotes import MarkChunk, QuoteChunk, QuoteGap
from pairflow.records import SYMBOL_PATTERN, DeadLetter, Health
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

logger = logging.getLogger(__name__)

LiveItem = (TickChunk | QuoteChunk | MarkChunk | QuoteGap | Heartbeat | FeedGap | DeadLetter
            | Health | Count)


class BinanceTradeSource(FixedPartitionedSource[LiveItem, dict]):
    """Binance trades (``@trade`` / ``@aggTrade``) over WebSocket, gap-free by trade id.

    Unit of parallelism: one partition per connection, i.e. per group of
    ``symbols_per_connection`` symbols; a symbol's ticks come from one partition, in id order.
    Emits per-symbol :class:`TickChunk` s (``source`` ``live`` or ``backfill``),
    :class:`Heartbeat` s, :class:`FeedGap` s, :class:`DeadLetter` s for bad frames,
    :class:`Health` per stream and :class:`Count` s; with a duration, a final heartbeat per
    symbol and then the end. With ``quotes``, also the symbols' quotes (:class:`QuoteChunk`,
    as received, duplicates dropped by update id), perpetuals' mark prices
    (:class:`MarkChunk`) and, after each outage of the connection, a :class:`QuoteGap` per
    symbol (the book was unknown from its last quote before the outage to its first after).

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
        size = settings.symbols_per_connection
        self.groups = {f"{settings.market}-{i // size}": self.symbols[i:i + size]
                       for i in range(0, len(self.symbols), size)}

    @classmethod
    def from_config(cls, config: PairflowConfig,
                    env: Mapping[str, str] | None = None) -> BinanceTradeSource:
        """The source for a pairflow configuration (plus ``PAIRFLOW_LIVE_*`` tuning)."""
        settings = LiveSettings.from_env(
            env, market=config.market, ws_url=config.ws_url, rest_url=config.rest_url,
            duration_s=config.duration_s, record_dir=config.record_dir, quotes=config.quotes)
        return cls(config.symbols, settings)

    def list_parts(self) -> list[str]:
        """One partition per connection group."""
        return list(self.groups)

    def build_part(self, step_id: str, for_part: str,
                   resume_state: dict | None) -> _BinanceWsPartition:
        """Start the connection of one group; resume from its last emitted ids."""
        return _BinanceWsPartition(for_part, self.groups[for_part], self.settings,
                                   resume_state or {})



class _BinanceWsPartition(StatefulSourcePartition[LiveItem, dict]):
    def __init__(self, name: str, symbols: tuple[str, ...], settings: LiveSettings,
                 resume: dict[str, int]):
        self._items: deque = deque()
        self._emitted: dict[str, int] = dict(resume)
        self._ended = False
        self._awake: datetime | None = None
        self._client = LiveClient(name, symbols, settings, resume, self._items)
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
            if item is END:
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
