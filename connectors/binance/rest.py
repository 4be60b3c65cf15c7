"""Binance REST trade history for gap backfill: client and response parser.

Endpoints (spot ``/api/v3``, USDⓈ-M futures ``/fapi/v1``, COIN-M futures ``/dapi/v1``):

- ``historicalTrades?symbol=&fromId=&limit=`` — plain trades from a trade id (spot ``@trade``
  streams; Binance asks for an ``X-MBX-APIKEY`` header on some API versions, so the key is
  optional configuration);
- ``aggTrades?symbol=&fromId=&limit=`` — aggregate trades from an aggregate id (``@aggTrade``
  streams), and, without ``fromId``, the latest aggregate trade: its ``l`` is the newest exchange
  trade id, which the live source uses to check that a quiet stream is really quiet.

Rate limits: a ``429`` (too many requests) or ``418`` (IP banned for ignoring 429s) carries a
``Retry-After`` header in seconds; the client sleeps that long (bounded) before retrying and
never hammers the server. Other failures are retried with capped exponential backoff, then
raised as :class:`BackfillError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Literal

import aiohttp
import msgspec
import numpy as np

from pairflow.config import check_market
from pairflow.errors import PairflowError
from pairflow.records import exchange_time_us
from pairflow.ticks import TickChunk

logger = logging.getLogger(__name__)

RestKind = Literal["trade", "aggTrade"]
SPOT_REST_URL = "https://api.binance.com"
USDM_REST_URL = "https://fapi.binance.com"
CM_REST_URL = "https://dapi.binance.com"
#: The REST path prefix of each market.
REST_PREFIX = {"spot": "/api/v3", "usdm": "/fapi/v1", "cm": "/dapi/v1"}
#: Rows per request; Binance's maximum for both endpoints.
MAX_LIMIT = 1000


class BackfillError(PairflowError):
    """A REST backfill request failed for good (after retries)."""


class RestTrade(msgspec.Struct):
    """A row of ``/api/v3/trades`` or ``/api/v3/historicalTrades``, spelled as on the wire."""

    id: int  # trade id (the WebSocket ``t``)
    price: float  # price (decimal string on the wire)
    qty: float  # base quantity (decimal string on the wire)
    time: int  # trade time, ms (µs on timeUnit=MICROSECOND)
    isBuyerMaker: bool  # noqa: N815 - was the buyer the maker?
    quoteQty: float | None = None  # noqa: N815 - quote quantity
    isBestMatch: bool | None = None  # noqa: N815 - ignore


class RestAggTrade(msgspec.Struct):
    """A row of ``/api/v3/aggTrades``, ``/fapi/v1/aggTrades`` or ``/dapi/v1/aggTrades``."""

    a: int  # aggregate trade id (the WebSocket ``a``)
    p: float  # price
    q: float  # quantity
    f: int  # first exchange trade id
    l: int  # noqa: E741 - last exchange trade id, Binance's own name
    T: int  # trade time, ms
    m: bool  # was the buyer the maker?
    M: bool | None = None  # ignore (spot only)
    nq: float | None = None  # futures quantity without RPI orders


_trades = msgspec.json.Decoder(list[RestTrade], strict=False)
_aggs = msgspec.json.Decoder(list[RestAggTrade], strict=False)


def parse_rest_trades(symbol: str, kind: RestKind, body: bytes, recv_ts_us: int) -> TickChunk:
    """Parse a REST trades / aggTrades response into a chunk with ``source = "backfill"``.

    Args:
        symbol: the symbol queried (REST rows do not carry it).
        kind: ``trade`` for (historical) trades, ``aggTrade`` for aggregate trades.
        body: the JSON array as received.
        recv_ts_us: local receive time of the response, µs.

    Raises:
        BackfillError: when the body is not the expected JSON array.
    """
    try:
        rows = (_trades if kind == "trade" else _aggs).decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise BackfillError(f"bad {kind} REST response for {symbol}: {error}") from error
    n = len(rows)
    if kind == "trade":
        ids = np.fromiter((r.id for r in rows), np.int64, n)
        first = last = ids
        ts = np.fromiter((exchange_time_us(r.time) for r in rows), np.int64, n)
        price = np.fromiter((r.price for r in rows), np.float64, n)
        qty = np.fromiter((r.qty for r in rows), np.float64, n)
        maker = np.fromiter((r.isBuyerMaker for r in rows), np.bool_, n)
    else:
        ids = np.fromiter((r.a for r in rows), np.int64, n)
        first = np.fromiter((r.f for r in rows), np.int64, n)
        last = np.fromiter((r.l for r in rows), np.int64, n)
        ts = np.fromiter((exchange_time_us(r.T) for r in rows), np.int64, n)
        price = np.fromiter((r.p for r in rows), np.float64, n)
        qty = np.fromiter((r.q for r in rows), np.float64, n)
        maker = np.fromiter((r.m for r in rows), np.bool_, n)
    return TickChunk(symbol, "backfill", ts, np.full(n, recv_ts_us, np.int64), ids,
                     first.copy(), last.copy(), price, qty, maker)


def trade_frame(chunk_symbol: str, kind: RestKind, row: dict) -> bytes:
    """A combined-stream frame for a backfilled row, so recordings replay complete.

    Args:
        chunk_symbol: the symbol (upper case).
        kind: ``trade`` or ``aggTrade``.
        row: ``{"id", "price", "qty", "ts_ms", "maker", "first", "last"}``.
    """
    stream = f"{chunk_symbol.lower()}@{kind}"
    data: dict = {"e": kind, "E": row["ts_ms"], "s": chunk_symbol}
    if kind == "trade":
        data["t"] = row["id"]
    else:
        data.update(a=row["id"], f=row["first"], l=row["last"])
    data.update(p=repr(row["price"]), q=repr(row["qty"]), T=row["ts_ms"], m=row["maker"])
    return msgspec.json.encode({"stream": stream, "data": data})


class BinanceRestClient:
    """Async client of Binance's trade-history endpoints, polite about rate limits.

    Args:
        base_url: ``https://api.binance.com`` (spot), ``https://fapi.binance.com`` (USDⓈ-M)
            or a test server's ``http://127.0.0.1:PORT``.
        market: ``spot`` or ``usdm`` (picks ``/api/v3`` or ``/fapi/v1``).
        api_key: sent as ``X-MBX-APIKEY`` when given.
        max_attempts: attempts per request before :class:`BackfillError` (429/418 waits
            do not count).
        max_retry_after_s: cap on one ``Retry-After`` wait.
        timeout_s: total timeout of one request.
    """

    def __init__(
        self,
        base_url: str,
        market: str = "spot",
        api_key: str | None = None,
        max_attempts: int = 5,
        max_retry_after_s: float = 120.0,
        timeout_s: float = 10.0,
    ):
        check_market(market)
        self.base_url = base_url.rstrip("/")
        self.prefix = REST_PREFIX[market]
        self.market = market
        self.api_key = api_key
        self.max_attempts = max_attempts
        self.max_retry_after_s = max_retry_after_s
        self.timeout_s = timeout_s
        self.rate_limited = 0
        self.requests = 0
        self._session: aiohttp.ClientSession | None = None
        #: Monotonic time before which no request may go (a 429/418 told us to wait).
        self._blocked_until = 0.0

    async def _get(self, path: str, params: dict) -> bytes:
        if self._session is None:
            headers = {"X-MBX-APIKEY": self.api_key} if self.api_key else {}
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        url = f"{self.base_url}{self.prefix}/{path}"
        attempt = 0
        while True:
            wait = self._blocked_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.requests += 1
            try:
                async with self._session.get(url, params=params) as response:
                    body = await response.read()
                    if response.status in (429, 418):
                        # Binance bans IPs that keep calling after a 429: honour Retry-After
                        # for every request of this client, not just this one.
                        self.rate_limited += 1
                        retry_after = _retry_after_s(response.headers.get("Retry-After"))
                        retry_after = min(retry_after, self.max_retry_after_s)
                        self._blocked_until = time.monotonic() + retry_after
                        logger.warning("rest rate limited status=%s retry_after_s=%.1f url=%s",
                                       response.status, retry_after, url)
                        continue
                    if response.status != 200:
                        raise BackfillError(
                            f"GET {url} {params} answered {response.status}: {body[:200]!r}")
                    return body
            except (aiohttp.ClientError, TimeoutError, BackfillError) as error:
                attempt += 1
                if attempt >= self.max_attempts:
                    raise BackfillError(f"GET {url} {params} failed {attempt} times: "
                                        f"{error}") from error
                delay = min(0.2 * 2**attempt, 10.0) * (0.5 + random.random())
                logger.warning("rest retry attempt=%d delay_s=%.2f error=%s", attempt, delay,
                               error)
                await asyncio.sleep(delay)

    async def trades_from(self, symbol: str, kind: RestKind, from_id: int,
                          limit: int = MAX_LIMIT) -> TickChunk:
        """Trades (``kind="trade"``) or aggregate trades from id ``from_id``, in id order."""
        path = "historicalTrades" if kind == "trade" else "aggTrades"
        body = await self._get(path, {"symbol": symbol, "fromId": str(from_id),
                                      "limit": str(limit)})
        return parse_rest_trades(symbol, kind, body, time.time_ns() // 1000)

    async def latest_trade_id(self, symbol: str, kind: RestKind) -> tuple[int, int] | None:
        """(newest id of ``kind``, its trade time µs), or None when the symbol never traded.

        Uses ``aggTrades?limit=1`` (weight 4 on spot, cheaper than ``trades``): for plain
        trades the newest trade id is the aggregate's last id ``l``.
        """
        body = await self._get("aggTrades", {"symbol": symbol, "limit": "1"})
        rows = parse_rest_trades(symbol, "aggTrade", body, 0)
        if not len(rows):
            return None
        newest = int(rows.last_trade_id[-1] if kind == "trade" else rows.trade_id[-1])
        return newest, int(rows.ts[-1])

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after_s(value: str | None) -> float:
    try:
        return max(float(value), 0.0) if value is not None else 1.0
    except ValueError:
        return 1.0
