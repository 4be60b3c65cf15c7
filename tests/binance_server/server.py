"""A local Binance-compatible market-data server that replays the real tape and injects faults.

WebSocket (``websockets``): combined streams ``/stream?streams=btcusdt@trade/ethusdt@trade``
(``@trade`` frames exactly as captured, ``@aggTrade`` frames derived from them; with a tape
loaded with quotes, ``@bookTicker`` frames — spot and COIN-M: as captured; ``market="usdm"``:
the futures view derived from the spot ones — and, on ``usdm`` and ``cm``, a synthetic
``@markPrice@1s`` series, see
:mod:`tests.binance_server.tape`: the captures have no mark price), raw ``/ws``
with ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` (replies ``{"result":null,"id":1}``),
pings every ``ping_interval_s`` (answered pongs are handled by the library), more than 5
incoming messages a second closes with 1008 like Binance. HTTP (``aiohttp``):
``/api/v3/aggTrades``, ``/api/v3/historicalTrades``, ``/api/v3/trades``, ``/fapi/v1/aggTrades``,
``/dapi/v1/aggTrades``, ``/dapi/v1/historicalTrades`` answered from the same tape, only with
trades already "published" (trade time <= tape clock);
``/api/v3/ticker/24hr`` (and ``/fapi/v1/…``) with each symbol's totals over the whole tape;
``/dapi/v1/exchangeInfo`` with the tape's COIN-M symbols and their ``contractSize``.

The tape clock starts at the first WebSocket connection (so a client connecting first sees the
whole tape) and runs ``speed`` times real time. Faults (:class:`Faults`) are either scheduled at
tape times (abrupt TCP close, close 1006/1008, a silenced stream, refusing connections for a
while) or continuous (duplicated, reordered, malformed frames; a shortened 24 h connection
limit; REST 429/418 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from pairflow.records import is_coinm
from tests.binance_server.tape import Tape

MALFORMED = b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":'


@dataclass
class Faults:
    """What goes wrong, and when.

    Attributes:
        events: ``(tape_s, kind, arg)`` fired once when the tape clock passes ``tape_s``
            seconds after the first trade. Kinds: ``abrupt_close`` (TCP dropped, no close
            frame: the client sees 1006), ``close_1006`` (same), ``close_1008`` (close frame
            1008), ``silence`` (arg: stream name; that stream stops on the open connections
            while they stay up), ``refuse`` (arg: wall seconds during which new connections
            are dropped at once), ``forget`` (REST drops the history published so far, as
            the exchange's history limit would: older ids are gone for good).
        duplicate_every: send every N-th frame twice (0: never).
        reorder_every: swap every N-th frame with the next one (0: never).
        malformed_every: inject a truncated frame after every N-th frame (0: never).
        max_connection_age_s: close connections older than this (wall s), like Binance's 24 h.
        rest_429_every: answer every N-th REST request with ``rest_status`` (0: never).
        rest_429_first: answer the first N REST requests with ``rest_status``.
        rest_status: 429 or 418.
        retry_after_s: the ``Retry-After`` header value.
        start_with_connections: the tape clock starts once this many connections are open, so
            a client that spreads its streams over several connections sees the first trades
            on each (a stream opened later starts at its first trade, by design).
    """

    events: list[tuple[float, str, Any]] = field(default_factory=list)
    duplicate_every: int = 0
    reorder_every: int = 0
    malformed_every: int = 0
    max_connection_age_s: float | None = None
    rest_429_every: int = 0
    rest_429_first: int = 0
    rest_status: int = 429
    retry_after_s: int = 1
    start_with_connections: int = 1


@dataclass
class _Conn:
    ws: ServerConnection
    streams: set[str]
    opened: float
    silenced: set[str] = field(default_factory=set)
    cursor: int = 0
    extra_cursor: int = 0  # into the server's quote and mark-price frames
    serial: int = 0  # the connection's number, 1 for the first
    incoming: list[float] = field(default_factory=list)


class BinanceTestServer:
    """The server; ``start()`` runs it on 127.0.0.1 in a background thread.

    Args:
        tape: the trades (and quotes) to serve.
        speed: tape seconds per wall second.
        faults: fault switches.
        ping_interval_s: server pings (Binance: every 20 s).
        market: ``spot`` (book tickers as captured, no mark price), ``usdm`` (book tickers
            of the spot capture in the futures form, and the synthetic mark-price series) or
            ``cm`` (for the COIN-M capture: book tickers as captured, synthetic mark prices).
    """

    def __init__(self, tape: Tape, speed: float = 50.0, faults: Faults | None = None,
                 ping_interval_s: float = 20.0, market: str = "spot",
                 contract_sizes: dict[str, float] | None = None):
        self.tape = tape
        self.market = market
        #: ``contractSize`` of the COIN-M symbols ``/dapi/v1/exchangeInfo`` lists (default:
        #: Binance's specification, 100 USD for BTC contracts, 10 for others).
        self.contract_sizes = contract_sizes
        self.speed = speed
        self.faults = faults or Faults()
        self.ping_interval_s = ping_interval_s
        self.stats: Counter = Counter()
        #: What the server did, for tests to derive their expectations from: ``(kind, details)``
        #: per fired fault (``forget``: ``floor_ms``, what REST forgot; ``sent_until_ms``,
        #: the tape time up to which trades had been served, as frames or REST rows).
        self.log: list[tuple[str, dict[str, int]]] = []
        #: Tape time (ms) up to which trades were served, handed to a connection or in a REST
        #: answer (an upper bound of what a client received).
        self._sent_until_ms = -1
        self.ws_port = 0
        self.http_port = 0
        self._clock_start: float | None = None
        self._conns: list[_Conn] = []
        self._fired: set[int] = set()
        self._refuse_until = 0.0
        #: Tape time (ms) up to which REST no longer has trades (the ``forget`` fault).
        self._rest_floor_ms = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._times = tape.times
        self._agg_times = {s: [a.T for a in rows] for s, rows in tape.aggs.items()}
        self._agg_frames = sorted(
            ((a.T, a.a, s) for s, rows in tape.aggs.items() for a in rows))
        #: Quote and mark-price frames in tape-time order: (time ms, stream, frame).
        self._extra = sorted(
            [(q.time_ms, q.stream, q.futures_frame() if market == "usdm" else q.frame)
             for q in tape.quotes]
            + ([(m.time_ms, m.stream, m.frame()) for m in tape.marks()]
               if market != "spot" and tape.quotes else []), key=lambda e: e[0])
        self._extra_times = [e[0] for e in self._extra]
        #: Every quote and mark-price frame sent: (connection serial, frame), in sending order.
        self.sent_extra: list[tuple[int, bytes]] = []

    # ------------------------------------------------------------------ lifecycle

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL."""
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def rest_url(self) -> str:
        """Base REST URL."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> BinanceTestServer:
        """Start in a background thread; returns when both ports listen."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()),
                                        name="binance-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> BinanceTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        for path in ("/api/v3/aggTrades", "/fapi/v1/aggTrades", "/dapi/v1/aggTrades"):
            app.router.add_get(path, self._rest_aggs)
        for path in ("/api/v3/historicalTrades", "/api/v3/trades", "/dapi/v1/historicalTrades"):
            app.router.add_get(path, self._rest_trades)
        for path in ("/api/v3/ticker/24hr", "/fapi/v1/ticker/24hr"):
            app.router.add_get(path, self._rest_ticker)
        app.router.add_get("/dapi/v1/exchangeInfo", self._rest_exchange_info)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.http_port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]
        async with serve(self._handler, "127.0.0.1", self.ws_port, compression=None,
                         ping_interval=self.ping_interval_s, max_size=1 << 20) as server:
            self.ws_port = server.sockets[0].getsockname()[1] if hasattr(server, "sockets") \
                else list(server.server.sockets)[0].getsockname()[1]
            self._ready.set()
            ticker = asyncio.create_task(self._tick())
            await self._stop.wait()
            ticker.cancel()
            for conn in list(self._conns):
                conn.ws.transport.abort()
        await runner.cleanup()

    # ---------------------------------------------------------------------- clock

    def tape_now_ms(self) -> int:
        """The tape clock: trade time up to which trades are published."""
        if self._clock_start is None:
            return self.tape.first_ms - 1
        elapsed = time.monotonic() - self._clock_start
        return self.tape.first_ms - 1 + int(elapsed * self.speed * 1000)

    def logged(self, kind: str) -> dict[str, int]:
        """The details of the one logged ``kind`` event."""
        (details,) = [d for k, d in self.log if k == kind]
        return details

    @property
    def finished(self) -> bool:
        """True once the whole tape is published."""
        return self.tape_now_ms() >= self.tape.last_ms

    async def _tick(self) -> None:
        """Fire scheduled faults as the tape clock passes them."""
        while True:
            now = self.tape_now_ms()
            if self._clock_start is not None:
                for index, (at_s, kind, arg) in enumerate(self.faults.events):
                    if index not in self._fired and now >= self.tape.first_ms + at_s * 1000:
                        self._fired.add(index)
                        self.stats[f"fault:{kind}"] += 1
                        await self._fire(kind, arg)
            await asyncio.sleep(0.005)

    async def _fire(self, kind: str, arg: Any) -> None:
        if kind in ("abrupt_close", "close_1006"):
            for conn in list(self._conns):
                conn.ws.transport.abort()
        elif kind == "close_1008":
            for conn in list(self._conns):
                await conn.ws.close(1008, "policy violation (test)")
        elif kind == "silence":
            for conn in self._conns:
                conn.silenced.add(arg)
        elif kind == "forget":
            self._rest_floor_ms = self.tape_now_ms()
            self.log.append(("forget", {"floor_ms": self._rest_floor_ms,
                                        "sent_until_ms": self._sent_until_ms}))
        elif kind == "refuse":
            self._refuse_until = time.monotonic() + float(arg)
            for conn in list(self._conns):
                conn.ws.transport.abort()
        else:
            raise ValueError(f"unknown fault {kind!r}")

    # ------------------------------------------------------------------ websocket

    async def _handler(self, ws: ServerConnection) -> None:
        if time.monotonic() < self._refuse_until:
            self.stats["refused"] += 1
            ws.transport.abort()
            return
        request = urlparse(ws.request.path)
        streams: set[str] = set()
        if request.path == "/stream":
            for name in parse_qs(request.query).get("streams", [""])[0].split("/"):
                if name:
                    streams.add(name)
        elif not request.path.startswith("/ws"):
            await ws.close(1008, "unknown path")
            return
        conn = _Conn(ws, streams, time.monotonic())
        conn.cursor = bisect.bisect_right(self._times, self.tape_now_ms())
        conn.extra_cursor = bisect.bisect_right(self._extra_times, self.tape_now_ms())
        self._conns.append(conn)
        self.stats["connections"] += 1
        conn.serial = self.stats["connections"]
        if self._clock_start is None and \
                len(self._conns) >= self.faults.start_with_connections:
            self._clock_start = time.monotonic()
        self.stats["most_open"] = max(self.stats["most_open"], len(self._conns))
        sender = asyncio.create_task(self._send_loop(conn))
        try:
            async for message in ws:
                await self._on_message(conn, message)
        except Exception:  # noqa: BLE001, S110 - a dropped client is normal here
            pass
        finally:
            sender.cancel()
            if conn in self._conns:
                self._conns.remove(conn)

    async def _on_message(self, conn: _Conn, message: str | bytes) -> None:
        now = time.monotonic()
        conn.incoming = [t for t in conn.incoming if now - t < 1.0] + [now]
        if len(conn.incoming) > 5:
            # Binance: more than 5 incoming messages a second disconnects.
            self.stats["too_many_messages"] += 1
            await conn.ws.close(1008, "Too many requests")
            return
        try:
            request = json.loads(message)
            method, req_id = request["method"], request.get("id")
        except (ValueError, KeyError, TypeError):
            await conn.ws.send(json.dumps({"error": {"code": 2, "msg": "Invalid request"}}))
            return
        if method == "SUBSCRIBE":
            conn.streams.update(request.get("params", []))
            conn.silenced.difference_update(request.get("params", []))
            reply: Any = None
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(request.get("params", []))
            reply = None
        elif method == "LIST_SUBSCRIPTIONS":
            reply = sorted(conn.streams)
        else:
            await conn.ws.send(json.dumps({"error": {"code": 1, "msg": "Unknown method"},
                                           "id": req_id}))
            return
        await conn.ws.send(json.dumps({"result": reply, "id": req_id}))

    def _frames_between(self, conn: _Conn, end: int, extra_end: int) -> list[bytes]:
        """The connection's frames up to trade ``end`` and extra frame ``extra_end``, in tape
        time order (a trade before a quote of the same millisecond)."""
        out: list[tuple[int, int, bytes]] = []
        wanted = conn.streams - conn.silenced
        for t in self.tape.trades[conn.cursor:end]:
            if t.stream in wanted:
                out.append((t.time_ms, 0, t.frame))
            agg = f"{t.symbol.lower()}@aggTrade"
            if agg in wanted:
                # One aggTrade frame when the tape reaches the last trade of its aggregate.
                rows = self.tape.aggs[t.symbol]
                i = bisect.bisect_right([a.f for a in rows], t.trade_id) - 1
                if i >= 0 and rows[i].l == t.trade_id:
                    out.append((t.time_ms, 0, rows[i].frame(t.symbol)))
        for time_ms, stream, frame in self._extra[conn.extra_cursor:extra_end]:
            if stream in wanted:
                out.append((time_ms, 1, frame))
                self.sent_extra.append((conn.serial, frame))
        out.sort(key=lambda e: e[:2])
        return [frame for _, _, frame in out]

    async def _send_loop(self, conn: _Conn) -> None:
        f = self.faults
        sent = 0
        try:
            while True:
                now_ms = self.tape_now_ms()
                end = bisect.bisect_right(self._times, now_ms)
                extra_end = bisect.bisect_right(self._extra_times, now_ms)
                frames = self._frames_between(conn, end, extra_end)
                conn.cursor, conn.extra_cursor = end, extra_end
                out: list[bytes] = []
                for frame in frames:
                    sent += 1
                    out.append(frame)
                    if f.duplicate_every and sent % f.duplicate_every == 0:
                        out.append(frame)
                        self.stats["duplicated"] += 1
                    if f.malformed_every and sent % f.malformed_every == 0:
                        out.append(MALFORMED)
                        self.stats["malformed"] += 1
                    if f.reorder_every and sent % f.reorder_every == 0 and len(out) >= 2:
                        out[-1], out[-2] = out[-2], out[-1]
                        self.stats["reordered"] += 1
                # Before the sends: a connection cut mid-batch may still have delivered part of
                # it, so this stays an upper bound of what any client received.
                self._sent_until_ms = max(self._sent_until_ms, now_ms)
                for frame in out:
                    await conn.ws.send(frame.decode())
                self.stats["frames_sent"] += len(out)
                if f.max_connection_age_s is not None and \
                        time.monotonic() - conn.opened > f.max_connection_age_s:
                    self.stats["age_limit_closes"] += 1
                    await conn.ws.close(1000, "24h limit (test)")
                    return
                await asyncio.sleep(0.005)
        except Exception:  # noqa: BLE001, S110 - the connection went away
            return

    # ----------------------------------------------------------------------- REST

    def _rate_limited(self) -> web.Response | None:
        self.stats["rest_requests"] += 1
        n = self.stats["rest_requests"]
        f = self.faults
        if (f.rest_429_first and n <= f.rest_429_first) or \
                (f.rest_429_every and n % f.rest_429_every == 0):
            self.stats[f"rest_{f.rest_status}"] += 1
            return web.json_response(
                {"code": -1003, "msg": "Too many requests (test)."}, status=f.rest_status,
                headers={"Retry-After": str(f.retry_after_s)})
        return None

    @staticmethod
    def _limit(query: Any) -> int:
        return max(1, min(int(query.get("limit", 500)), 1000))

    async def _rest_trades(self, request: web.Request) -> web.Response:
        limited = self._rate_limited()
        if limited is not None:
            return limited
        symbol = request.query.get("symbol", "")
        if symbol not in self.tape.by_symbol:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        rows = [t for t in self.tape.published(symbol, self.tape_now_ms())
                if t.time_ms > self._rest_floor_ms]
        limit = self._limit(request.query)
        if "fromId" in request.query:
            ids = [t.trade_id for t in rows]
            start = bisect.bisect_left(ids, int(request.query["fromId"]))
            chosen = rows[start:start + limit]
        else:
            chosen = rows[-limit:]
        if chosen:
            self._sent_until_ms = max(self._sent_until_ms, chosen[-1].time_ms)
        return web.json_response([
            {"id": t.trade_id, "price": t.price, "qty": t.qty,
             "quoteQty": f"{float(t.price) * float(t.qty):.8f}", "time": t.time_ms,
             "isBuyerMaker": t.maker, "isBestMatch": True} for t in chosen])

    async def _rest_ticker(self, request: web.Request) -> web.Response:
        limited = self._rate_limited()
        return limited if limited is not None else web.json_response(self.tape.ticker_24h())

    async def _rest_exchange_info(self, request: web.Request) -> web.Response:
        """The COIN-M symbols of the tape with their ``contractSize`` (other fields omitted)."""
        limited = self._rate_limited()
        if limited is not None:
            return limited
        sizes = self.contract_sizes or {}
        return web.json_response({"timezone": "UTC", "symbols": [
            {"symbol": symbol, "contractType": "PERPETUAL", "contractStatus": "TRADING",
             "contractSize": sizes.get(symbol, 100 if symbol.startswith("BTCUSD_") else 10)}
            for symbol in sorted(self.tape.by_symbol) if is_coinm(symbol)]})

    async def _rest_aggs(self, request: web.Request) -> web.Response:
        limited = self._rate_limited()
        if limited is not None:
            return limited
        symbol = request.query.get("symbol", "")
        if symbol not in self.tape.aggs:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        rows = self.tape.aggs[symbol]
        now = self.tape_now_ms()
        # An aggregate is published once its last trade is (its trades share one time).
        rows = rows[bisect.bisect_right(self._agg_times[symbol], self._rest_floor_ms):
                    bisect.bisect_right(self._agg_times[symbol], now)]
        limit = self._limit(request.query)
        if "fromId" in request.query:
            start = bisect.bisect_left([a.a for a in rows], int(request.query["fromId"]))
            chosen = rows[start:start + limit]
        else:
            chosen = rows[-limit:]
        if chosen:
            self._sent_until_ms = max(self._sent_until_ms, chosen[-1].T)
        return web.json_response([a.rest() for a in chosen])
