"""The real captured tape the test server replays: trade and quote frames of the recordings.

The captures in ``../shared/data/binance-spot-2024-08-08`` hold combined-stream frames of
``btcusdt@trade`` and ``ethusdt@trade``, ``@bookTicker`` and ``@depth`` (skipped here). A
:class:`Tape` is a slice of those trade frames in their original receive order, with per-symbol
views for the REST endpoints and a derived aggregate-trade view (consecutive trades of one
taker order — same time, price and side — form one aggregate, as Binance aggregates them).

With ``quotes``, the slice's ``@bookTicker`` frames come too (:class:`TapeQuote`). Futures
book tickers (the COIN-M capture, :data:`COINM_DIR`) are placed on the tape clock at their
``T``. Spot book tickers carry no time, so the tape places each at its receive time minus the
symbol's capture offset: the smallest ``receive − trade time`` over all the symbol's trades of
the capture (the recording machine's clock lag plus the smallest latency, about 1.3 s).
The futures view of a quote (:meth:`TapeQuote.futures_frame`) is *derived*: the same book with
``e``, and ``T`` = ``E`` = that tape time, as USDⓈ-M frames carry them. The mark prices
(:func:`mark_frames`) are *synthetic*: the captures have none.
"""

from __future__ import annotations

import bisect
import gzip
import json
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import msgspec

DATA_DIR = Path("/work/shared/data/binance-spot-2024-08-08")
#: The COIN-M capture (BTCUSD_PERP, ETHUSD_PERP: futures frames, book tickers with ``T``).
COINM_DIR = Path("/work/shared/data/binance-coinm-2024-08-09")
#: First aggregate id of the derived aggTrade view (any base works; ids stay contiguous).
AGG_BASE = 900_000_000


@dataclass(frozen=True, slots=True)
class TapeTrade:
    """One trade of the tape: the frame as recorded and its fields."""

    recv_ns: int
    stream: str
    symbol: str
    trade_id: int
    price: str
    qty: str
    time_ms: int
    maker: bool
    frame: bytes


@dataclass(frozen=True, slots=True)
class AggTrade:
    """A derived aggregate trade (fields as Binance's REST ``aggTrades`` rows)."""

    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's name
    T: int
    m: bool

    def rest(self) -> dict:
        """The REST row."""
        return {"a": self.a, "p": self.p, "q": self.q, "f": self.f, "l": self.l,
                "T": self.T, "m": self.m, "M": True}

    def frame(self, symbol: str) -> bytes:
        """A combined-stream ``@aggTrade`` frame."""
        data = {"e": "aggTrade", "E": self.T, "s": symbol, **self.rest()}
        return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data},
                          separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class TapeQuote:
    """One ``@bookTicker`` frame of the tape, placed on the tape clock at ``time_ms``."""

    recv_ns: int
    symbol: str
    update_id: int
    time_ms: int
    frame: bytes

    @property
    def stream(self) -> str:
        """The stream name, ``btcusdt@bookTicker``."""
        return f"{self.symbol.lower()}@bookTicker"

    def futures_frame(self) -> bytes:
        """The same book as a USDⓈ-M frame: ``e``, ``T`` = ``E`` = its tape time (derived)."""
        d = json.loads(self.frame)["data"]
        data = {"e": "bookTicker", "u": d["u"], "s": d["s"], "b": d["b"], "B": d["B"],
                "a": d["a"], "A": d["A"], "T": self.time_ms, "E": self.time_ms}
        return json.dumps({"stream": self.stream, "data": data},
                          separators=(",", ":")).encode()


#: The synthetic mark-price series: one update per whole tape second, funding this constant.
MARK_FUNDING_RATE = "0.00010000"
#: Perpetual funding every 8 h (00:00, 08:00, 16:00 UTC), ms.
FUNDING_EVERY_MS = 8 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class MarkUpdate:
    """One synthetic ``markPriceUpdate`` (see :func:`mark_frames`)."""

    symbol: str
    time_ms: int  # E
    price: str  # p = i = P
    next_funding_ms: int  # T

    @property
    def stream(self) -> str:
        """The stream name, ``btcusdt@markPrice@1s``."""
        return f"{self.symbol.lower()}@markPrice@1s"

    def frame(self) -> bytes:
        """The combined-stream frame."""
        data = {"e": "markPriceUpdate", "E": self.time_ms, "s": self.symbol, "p": self.price,
                "i": self.price, "P": self.price, "r": MARK_FUNDING_RATE,
                "T": self.next_funding_ms}
        return json.dumps({"stream": self.stream, "data": data},
                          separators=(",", ":")).encode()


class _BookIds(msgspec.Struct):
    s: str
    u: int
    T: int | None = None  # futures book tickers carry their time


class _BookFrame(msgspec.Struct):
    data: _BookIds


#: Reads only the symbol and update id of a captured book ticker (130 k of them, quickly).
_book_ids = msgspec.json.Decoder(list[_BookFrame])


@lru_cache(maxsize=2)
def _all_quotes(capture: Path) -> tuple[TapeQuote, ...]:
    offsets: dict[str, int] = {}
    for t in _all_trades(capture):
        lag = t.recv_ns - t.time_ms * 10**6
        offsets[t.symbol] = min(offsets.get(t.symbol, lag), lag)
    quotes = []
    for path in sorted(capture.glob("*.gz")):
        with gzip.open(path, "rb") as handle:
            lines = handle.read().splitlines()
        books = [line.partition(b" ") for line in lines if b'@bookTicker"' in line[:60]]
        decoded = _book_ids.decode(b"[" + b",".join(frame for _, _, frame in books) + b"]")
        for (recv, _, frame), book in zip(books, decoded, strict=True):
            recv_ns, d = int(recv), book.data
            time_ms = d.T if d.T is not None else (recv_ns - offsets[d.s]) // 10**6
            quotes.append(TapeQuote(recv_ns, d.s, d.u, time_ms, frame))
    quotes.sort(key=lambda q: (q.time_ms, q.recv_ns))
    return tuple(quotes)


@lru_cache(maxsize=2)
def _all_trades(capture: Path) -> tuple[TapeTrade, ...]:
    trades = []
    for path in sorted(capture.glob("*.gz")):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                recv, _, frame = line.rstrip(b"\n").partition(b" ")
                if b'@trade"' not in frame[:40]:
                    continue
                message = json.loads(frame)
                d = message["data"]
                trades.append(TapeTrade(int(recv), message["stream"], d["s"], d["t"], d["p"],
                                        d["q"], d["T"], d["m"], frame))
    trades.sort(key=lambda t: t.recv_ns)
    return tuple(trades)


@dataclass
class Tape:
    """A slice of the real tape (by trade time, seconds after the tape's first trade)."""

    trades: list[TapeTrade]
    by_symbol: dict[str, list[TapeTrade]] = field(default_factory=dict)
    aggs: dict[str, list[AggTrade]] = field(default_factory=dict)
    quotes: list[TapeQuote] = field(default_factory=list)

    def __post_init__(self) -> None:
        for t in self.trades:
            self.by_symbol.setdefault(t.symbol, []).append(t)
        for symbol, rows in self.by_symbol.items():
            rows.sort(key=lambda t: t.trade_id)
            self.aggs[symbol] = _aggregate(rows)
        self.times = [t.time_ms for t in self.trades]

    @classmethod
    def load(cls, start_s: float = 0.0, length_s: float | None = None,
             symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"), quotes: bool = False,
             capture: Path = DATA_DIR) -> Tape:
        """The trades (with ``quotes``, book tickers too) of tape time in a span.

        The span is ``[t0 + start_s, t0 + start_s + length_s)``, t0 the first trade's time;
        ``capture`` the directory of the recordings (spot, or :data:`COINM_DIR`).
        """
        everything = _all_trades(capture)
        t0 = min(t.time_ms for t in everything)
        lo = t0 + int(start_s * 1000)
        hi = lo + int(length_s * 1000) if length_s is not None else 1 << 62
        chosen = [t for t in everything if lo <= t.time_ms < hi and t.symbol in symbols]
        # Receive order on the recording can put a trade of a later T before an earlier
        # one across symbols; the server sends in trade-time order per symbol anyway.
        chosen.sort(key=lambda t: (t.time_ms, t.recv_ns))
        books = [q for q in _all_quotes(capture) if lo <= q.time_ms < hi
                 and q.symbol in symbols] if quotes else []
        return cls(chosen, quotes=books)

    def marks(self) -> list[MarkUpdate]:
        """The synthetic ``@markPrice@1s`` series of the tape's symbols, in time order.

        One update per symbol at each whole second ``E`` of the tape's span from the symbol's
        first trade on: mark, index and estimated settle price all the price of the symbol's
        last trade at or before ``E``; funding rate :data:`MARK_FUNDING_RATE`; next funding
        time the next 00:00, 08:00 or 16:00 UTC after ``E``.
        """
        out = []
        for symbol, trades in self.by_symbol.items():
            times = [t.time_ms for t in trades]
            for second in range(trades[0].time_ms // 1000 + 1, self.last_ms // 1000 + 1):
                at = second * 1000
                last = trades[bisect.bisect_right(times, at) - 1]
                out.append(MarkUpdate(symbol, at, last.price,
                                      (at // FUNDING_EVERY_MS + 1) * FUNDING_EVERY_MS))
        out.sort(key=lambda m: (m.time_ms, m.symbol))
        return out

    @property
    def first_ms(self) -> int:
        """Trade time of the first trade."""
        return self.trades[0].time_ms

    @property
    def last_ms(self) -> int:
        """Trade time of the last trade."""
        return self.trades[-1].time_ms

    def ids(self, symbol: str) -> list[int]:
        """Trade ids of a symbol, ascending."""
        return [t.trade_id for t in self.by_symbol.get(symbol, [])]

    def published(self, symbol: str, now_ms: int) -> list[TapeTrade]:
        """Trades of ``symbol`` with time <= ``now_ms``."""
        rows = self.by_symbol.get(symbol, [])
        return rows[:bisect.bisect_right([t.time_ms for t in rows], now_ms)]

    def ticker_24h(self) -> list[dict]:
        """Each symbol's ``GET /api/v3/ticker/24hr`` row over the whole tape (exact sums)."""
        rows = []
        for symbol, trades in sorted(self.by_symbol.items()):
            volume = sum((Decimal(t.qty) for t in trades), Decimal(0))
            quote = sum((Decimal(t.price) * Decimal(t.qty) for t in trades), Decimal(0))
            rows.append({"symbol": symbol, "openPrice": trades[0].price,
                         "lastPrice": trades[-1].price, "volume": f"{volume:f}",
                         "quoteVolume": f"{quote:f}", "openTime": trades[0].time_ms,
                         "closeTime": trades[-1].time_ms, "firstId": trades[0].trade_id,
                         "lastId": trades[-1].trade_id, "count": len(trades)})
        return rows

    def write_recording(self, path: str | Path) -> Path:
        """Write the slice as a recording (``<recv_ns> <frame>`` lines, gzip) for replay.

        Its quotes too, in receive order with the trades (as captured).
        """
        path = Path(path)
        lines = sorted([(t.recv_ns, t.frame) for t in self.trades]
                       + [(q.recv_ns, q.frame) for q in self.quotes])
        with gzip.open(path, "wb") as handle:
            for recv_ns, frame in lines:
                handle.write(b"%d %s\n" % (recv_ns, frame))
        return path


def _aggregate(rows: list[TapeTrade]) -> list[AggTrade]:
    out: list[AggTrade] = []
    group: list[TapeTrade] = []

    def close() -> None:
        qty = sum((Decimal(t.qty) for t in group), Decimal(0))
        out.append(AggTrade(AGG_BASE + len(out), group[0].price, f"{qty:f}",
                            group[0].trade_id, group[-1].trade_id, group[0].time_ms,
                            group[0].maker))

    for t in rows:
        if group and (t.time_ms, t.price, t.maker) != (group[-1].time_ms, group[-1].price,
                                                      group[-1].maker):
            close()
            group = []
        group.append(t)
    if group:
        close()
    return out


#: Trade ids of relabelled copy ``k`` start at ``k * COPY_ID_STRIDE`` (beyond the tape's own).
COPY_ID_STRIDE = 10**11
#: Seconds by which copy ``k`` rotates its source's tape: ``k * COPY_ROTATE_S``.
COPY_ROTATE_S = 7


def universe_tape(tape: Tape, size: int) -> Tape:
    """The tape with relabelled copies of its legs, ``size`` symbols in all (for universes).

    The documented deterministic transform: copy ``k`` (1, 2, …) of leg ``k % 2`` (BTCUSDT
    or ETHUSDT; named e.g. ``BTC01USDT``) takes that leg's real trades, rotates their times
    by ``k × 7`` s within the tape's span (trades pushed past its end wrap to its start), so
    the copies are lagged series rather than multiples of one another, multiplies prices by
    ``1 + k/100`` (8 decimals) and numbers the trades ``k × 10¹¹ + 0, 1, …`` in their new
    time order (contiguous, as the exchange's). Quantities, sides and each frame's receive
    latency are the source's. Real trades relabelled: never presented as new market data.
    """
    sources = sorted(tape.by_symbol)
    first, span = tape.first_ms, tape.last_ms - tape.first_ms + 1
    trades = list(tape.trades)
    for k in range(1, size - len(sources) + 1):
        source = sources[k % len(sources)]
        symbol = f"{source[:3]}{k:02d}{source[3:]}"
        factor = Decimal(100 + k) / 100
        rotated = sorted(((first + (t.time_ms - first + k * COPY_ROTATE_S * 1000) % span, t)
                          for t in tape.by_symbol[source]), key=lambda pair: pair[0])
        for index, (time_ms, t) in enumerate(rotated):
            price = f"{(Decimal(t.price) * factor).quantize(Decimal('1e-8'))}"
            trade_id = k * COPY_ID_STRIDE + index
            data = {**json.loads(t.frame)["data"], "E": time_ms, "s": symbol, "t": trade_id,
                    "p": price, "T": time_ms}
            stream = f"{symbol.lower()}@trade"
            frame = json.dumps({"stream": stream, "data": data}, separators=(",", ":"))
            recv_ns = t.recv_ns + (time_ms - t.time_ms) * 1_000_000
            trades.append(TapeTrade(recv_ns, stream, symbol, trade_id, price, t.qty, time_ms,
                                    t.maker, frame.encode()))
    trades.sort(key=lambda t: (t.time_ms, t.recv_ns))
    return Tape(trades)
