"""Tuning of the live Binance source, read like every pairflow setting (``load_settings``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.binance.rest import CM_REST_URL, SPOT_REST_URL, USDM_REST_URL, RestKind
from connectors.binance.supervisor import SupervisorSettings
from pairflow.config import check_market, load_settings
from pairflow.errors import ConfigError
from pairflow.records import is_perpetual

#: Binance's WebSocket base URL of each market.
WS_URLS = {"spot": "wss://stream.binance.com:9443", "usdm": "wss://fstream.binance.com/market",
           "cm": "wss://dstream.binance.com"}
#: Binance's REST base URL of each market.
REST_URLS = {"spot": SPOT_REST_URL, "usdm": USDM_REST_URL, "cm": CM_REST_URL}
#: Binance's limit of streams per connection.
MAX_STREAMS = 1024
#: The variable holding the REST API key (besides ``PAIRFLOW_LIVE_API_KEY``).
API_KEY_VARIABLE = "PAIRFLOW_BINANCE_API_KEY"


@dataclass(frozen=True)
class LiveSettings:
    """Tuning of the live source; every field can be set by ``PAIRFLOW_LIVE_<NAME>``.

    Attributes:
        market: ``spot``, ``usdm`` (USDⓈ-M futures) or ``cm`` (COIN-M futures).
        stream_kind: ``trade`` or ``aggTrade``; None: ``trade`` on spot, ``aggTrade`` on
            futures.
        ws_url: base WebSocket URL (None: Binance's for the market).
        rest_url: base REST URL (None: Binance's for the market).
        api_key: sent as ``X-MBX-APIKEY`` to REST (``PAIRFLOW_BINANCE_API_KEY``).
        streams_per_connection: streams per connection (= per partition), at most 1 024; a
            symbol takes one (its trades), or with ``quotes`` two on spot (+ ``@bookTicker``)
            and three on futures (+ ``@markPrice@1s``), so a connection carries
            ``streams_per_connection`` // that many symbols.
        quotes: also subscribe each symbol's ``@bookTicker`` and, for a futures perpetual, its
            ``@markPrice@1s`` on the trades' connection.
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
    quotes: bool = False
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
        check_market(self.market)
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
        return (self.ws_url or WS_URLS[self.market]).rstrip("/")

    @property
    def base_rest_url(self) -> str:
        """The REST base URL."""
        return self.rest_url or REST_URLS[self.market]

    @property
    def supervision(self) -> SupervisorSettings:
        """The connection supervisor's timing."""
        return SupervisorSettings(self.backoff_initial_s, self.backoff_max_s,
                                  self.max_connection_age_s, self.rollover_overlap_s)

    def streams(self, symbols: tuple[str, ...] | list[str]) -> list[str]:
        """The trade stream names of ``symbols`` (``btcusdt@trade``)."""
        return [f"{symbol.lower()}@{self.kind}" for symbol in symbols]

    def quote_streams(self, symbol: str) -> list[str]:
        """The quote streams of ``symbol``: none without ``quotes``.

        ``btcusdt@bookTicker``, and ``btcusdt@markPrice@1s`` for a futures perpetual.
        """
        if not self.quotes:
            return []
        name = symbol.lower()
        marks = [f"{name}@markPrice@1s"] if is_perpetual(symbol, self.market) else []
        return [f"{name}@bookTicker", *marks]

    @property
    def symbols_per_connection(self) -> int:
        """How many symbols one connection carries (each takes its trade and quote streams)."""
        per_symbol = 1 + (0 if not self.quotes else 1 if self.market == "spot" else 2)
        return max(1, self.streams_per_connection // per_symbol)

    def stream_url(self, symbols: tuple[str, ...] | list[str]) -> str:
        """The combined-stream URL carrying ``symbols`` (trades, then quotes if asked)."""
        names = [*self.streams(symbols), *(q for s in symbols for q in self.quote_streams(s))]
        return f"{self.base_ws_url}/stream?streams=" + "/".join(names)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **given: Any) -> LiveSettings:
        """Settings from ``given`` values over ``PAIRFLOW_LIVE_*`` variables over defaults.

        ``PAIRFLOW_BINANCE_API_KEY``, when set, gives ``api_key`` over
        ``PAIRFLOW_LIVE_API_KEY``.

        Raises:
            ConfigError: on a value of the wrong type or out of range.
        """
        env = os.environ if env is None else env
        if env.get(API_KEY_VARIABLE) and given.get("api_key") is None:
            given = {**given, "api_key": env[API_KEY_VARIABLE]}
        return load_settings(cls, env_prefix="PAIRFLOW_LIVE_", env=env, given=given)
