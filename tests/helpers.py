"""Shared helpers of the replay, bar and flow tests.

The reference ("plain") bar computation here is deliberately independent of pairflow: it reads
raw recording lines with the stdlib ``json`` module, keeps prices as Python floats parsed from
the decimal strings, and aggregates with ordinary loops. Tests compare pairflow's output with it.
"""

from __future__ import annotations

import gzip
import json
import math
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPOT_DIR = SHARED_DATA / "binance-spot-2024-08-08"
SPOT_FILES = sorted(SPOT_DIR.glob("*.gz"))
REST_DIR = SHARED_DATA / "binance-rest"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
TIMEFRAMES_US = {"1s": 1_000_000, "1m": 60_000_000, "5m": 300_000_000}
BAR_FIELDS = ("symbol", "timeframe", "start", "end", "open", "high", "low", "close", "volume",
              "quote_volume", "vwap", "trades", "taker_buy_volume", "first_trade_id",
              "last_trade_id")
#: Fields compared exactly; the rest (sums) to a relative tolerance.
EXACT_FIELDS = ("symbol", "timeframe", "start", "end", "open", "high", "low", "close", "trades",
                "first_trade_id", "last_trade_id")
REL_FIELDS = ("volume", "quote_volume", "vwap", "taker_buy_volume")
REL_TOL = 1e-9


@dataclass(frozen=True)
class RawTrade:
    """One trade as the plain reference sees it (ids of the exchange trades it covers)."""

    symbol: str
    trade_id: int
    price: float
    qty: float
    ts_us: int
    buyer_is_maker: bool
    first_id: int
    last_id: int
    recv_ns: int = 0


def open_text(path: Path):
    """Open a recording, gzip or plain, as text."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def raw_lines(paths: Iterable[Path]) -> list[str]:
    """Every non-empty line of the given recordings, file after file."""
    lines: list[str] = []
    for path in paths:
        with open_text(path) as handle:
            lines.extend(line.rstrip("\n") for line in handle if line.strip())
    return lines


def trade_from_payload(data: dict[str, Any], recv_ns: int = 0) -> RawTrade | None:
    """A plain trade from a Binance trade/aggTrade payload (None for non-market fills)."""
    if data.get("X", "MARKET") != "MARKET":
        return None
    ts = int(data["T"])
    ts_us = ts if ts >= 10**14 else ts * 1000
    if data["e"] == "aggTrade":
        trade_id, first, last = int(data["a"]), int(data["f"]), int(data["l"])
    else:
        trade_id = first = last = int(data["t"])
    return RawTrade(data["s"], trade_id, float(data["p"]), float(data["q"]), ts_us,
                    bool(data["m"]), first, last, recv_ns)


def raw_trades(paths: Iterable[Path]) -> dict[str, list[RawTrade]]:
    """Trades per symbol from recordings (stdlib json), in file order, duplicates kept."""
    out: dict[str, list[RawTrade]] = {}
    for line in raw_lines(paths):
        head, _, frame = line.partition(" ")
        obj = json.loads(frame)
        data = obj.get("data", obj)
        if not isinstance(data, dict) or data.get("e") not in ("trade", "aggTrade"):
            continue
        trade = trade_from_payload(data, int(head))
        if trade is not None:
            out.setdefault(trade.symbol, []).append(trade)
    return out


def plain_bars(trades: Iterable[RawTrade], symbol: str, timeframe: str,
               quiet: bool = True, contract_usd: float | None = None) -> list[dict[str, Any]]:
    """Bars of one symbol computed the obvious way, as dicts in the Bar field order.

    ``contract_usd``: the trades count COIN-M contracts of that many USD each; volumes are
    then in coins (USD / price per trade) and the quote volume in USD.

    Duplicates (same trade id) count once. Windows ``[k·L, (k+1)·L)`` on trade time; open is
    the trade with the smallest (ts, id), close the largest. With ``quiet``, every window
    between the first and the last traded window without trades is a ``trades = 0`` bar at
    the previous close.
    """
    length = TIMEFRAMES_US[timeframe] if timeframe in TIMEFRAMES_US else _tf_us(timeframe)
    seen: set[int] = set()
    windows: dict[int, list[RawTrade]] = {}
    for trade in trades:
        if trade.symbol != symbol or trade.trade_id in seen:
            continue
        seen.add(trade.trade_id)
        windows.setdefault(trade.ts_us // length, []).append(trade)
    bars: list[dict[str, Any]] = []
    if not windows:
        return bars
    previous_close = None
    for wid in range(min(windows), max(windows) + 1):
        start, end = wid * length, (wid + 1) * length
        group = windows.get(wid)
        if not group:
            if quiet:
                bars.append(dict(zip(BAR_FIELDS, (
                    symbol, timeframe, start, end, previous_close, previous_close,
                    previous_close, previous_close, 0.0, 0.0, None, 0, 0.0, None, None),
                    strict=True)))
            continue
        group = sorted(group, key=lambda t: (t.ts_us, t.trade_id))
        usd = [contract_usd * t.qty for t in group] if contract_usd else None
        coins = ([u / t.price for u, t in zip(usd, group, strict=True)] if usd
                 else [t.qty for t in group])
        volume = math.fsum(coins)
        quote = math.fsum(usd) if usd else math.fsum(t.price * t.qty for t in group)
        bars.append({
            "symbol": symbol, "timeframe": timeframe, "start": start, "end": end,
            "open": group[0].price, "high": max(t.price for t in group),
            "low": min(t.price for t in group), "close": group[-1].price,
            "volume": volume, "quote_volume": quote, "vwap": quote / volume,
            "trades": sum(t.last_id - t.first_id + 1 for t in group),
            "taker_buy_volume": math.fsum(c for c, t in zip(coins, group, strict=True)
                                          if not t.buyer_is_maker),
            "first_trade_id": min(t.first_id for t in group),
            "last_trade_id": max(t.last_id for t in group),
        })
        previous_close = group[-1].price
    return bars


def _tf_us(name: str) -> int:
    unit = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}[name[-1]]
    return int(name[:-1]) * unit


def close_enough(a: Any, b: Any) -> bool:
    """Relative comparison at REL_TOL (None only equals None)."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def bar_mismatches(actual: list[dict[str, Any]], expected: list[dict[str, Any]],
                   limit: int = 5) -> list[str]:
    """Human-readable differences between two bar lists (empty when they agree)."""
    problems: list[str] = []
    if len(actual) != len(expected):
        a_starts = {b["start"] for b in actual}
        e_starts = {b["start"] for b in expected}
        extra, missing = sorted(a_starts - e_starts)[:5], sorted(e_starts - a_starts)[:5]
        problems.append(f"{len(actual)} bars, expected {len(expected)}; extra starts "
                        f"{extra}, missing {missing}")
    for got, want in zip(actual, expected, strict=False):
        for name in EXACT_FIELDS:
            if got[name] != want[name]:
                problems.append(f"{want['symbol']} {want['timeframe']} start={want['start']}: "
                                f"{name}={got[name]!r}, expected {want[name]!r}")
        for name in REL_FIELDS:
            if not close_enough(got[name], want[name]):
                problems.append(f"{want['symbol']} {want['timeframe']} start={want['start']}: "
                                f"{name}={got[name]!r}, expected {want[name]!r}")
        if len(problems) >= limit:
            break
    return problems


def bar_dicts(bars: Iterable[Any]) -> list[dict[str, Any]]:
    """pairflow Bar records as dicts in field order."""
    return [{name: getattr(b, name) for name in BAR_FIELDS} for b in bars]


# ------------------------------------------------------------------------- store and flow


def table_rows(db: Path, table: str) -> list[tuple]:
    """Every row of a store table, sorted (for content comparisons)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute(f"SELECT * FROM {table}").fetchall()
    return sorted(rows, key=repr)


STORE_TABLES = ("bars", "pairs", "alerts", "deadletter")


def store_content(db: Path) -> dict[str, list[tuple]]:
    """All record tables of a store, each sorted."""
    return {table: table_rows(db, table) for table in STORE_TABLES}


def _as_compared(records: Iterable[dict[str, Any]]) -> list[tuple]:
    """Records as sorted ``(field, value)`` tuples, in a fixed order (for content comparisons)."""
    return sorted((tuple(sorted(r.items())) for r in records), key=repr)


def store_records(db: Path, tables: Iterable[str]) -> dict[str, list[tuple]]:
    """Record tables of a store read through ``StoreReader``, as ``_as_compared`` lists."""
    from connectors.store import StoreReader

    reader = StoreReader(db)
    content = {table: _as_compared(reader.query(table)) for table in tables}
    reader.close()
    return content


def _kafka_identity(table: str, key: str | None, value: dict[str, Any]) -> Any:
    """What a consumer deduplicates a record by, as docs/kafka.md says: key + time."""
    if table == "bars":
        return key, value["end"]
    if table == "alerts":
        return value["alert_id"]
    if table == "deadletter":
        return key, value["ts"], value["raw"]
    return key, value["ts"]


def kafka_deduplicated(bootstrap: str, prefix: str,
                       tables: Iterable[str]) -> tuple[dict[str, list[tuple]], int]:
    """Record topics read whole and deduplicated by ``_kafka_identity``, comparable with
    ``store_records``; and how many repeated copies were dropped. A repeat that differs from
    its first copy fails."""
    from tests.kafka_helpers import consume_records

    content, repeats = {}, 0
    for table in tables:
        latest: dict[Any, dict[str, Any]] = {}
        records = consume_records(bootstrap, f"{prefix}{table}")
        for key, value in records:
            value.pop("v")
            identity = _kafka_identity(table, key, value)
            assert latest.get(identity, value) == value, "a repeat differs from its first copy"
            latest[identity] = value
        repeats += len(records) - len(latest)
        content[table] = _as_compared(latest.values())
    return content, repeats


def store_bars(db: Path, symbol: str, timeframe: str) -> list[dict[str, Any]]:
    """Bars of one symbol and timeframe from a store, in start order."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        cursor = connection.execute(
            f"SELECT {', '.join(chr(34) + f + chr(34) for f in BAR_FIELDS)} FROM bars "
            "WHERE symbol = ? AND timeframe = ? ORDER BY start", (symbol, timeframe))
        return [dict(zip(BAR_FIELDS, row, strict=True)) for row in cursor]


def dead_letters(db: Path) -> list[dict[str, Any]]:
    """Dead letters from a store."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        cursor = connection.execute("SELECT stage, reason, raw, ts, origin FROM deadletter")
        return [dict(zip(("stage", "reason", "raw", "ts", "origin"), row, strict=True))
                for row in cursor]


def run_replay(files: Iterable[Path | str], store: Path, *, workers: int = 1,
               **settings: Any):
    """Replay files through the real flow into ``store``; return the run's counter totals."""
    from bytewax.testing import cluster_main, run_main

    from connectors.metrics import CountTally
    from flows.pairs import build_flow
    from pairflow.config import load_config

    cli = {"source": "replay", "files": [str(f) for f in files], "store": str(store),
           "symbols": ",".join(settings.pop("symbols", SYMBOLS)),
           "timeframes": settings.pop("timeframes", "1s,1m,5m")}
    cli.update(settings)
    config = load_config(cli, env={})
    tally = CountTally()
    flow = build_flow(config, tally)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return tally.totals()


# ---------------------------------------------------------------------- tick chunks / frames


def make_chunk(symbol: str, ts: Iterable[int], ids: Iterable[int], prices: Iterable[float],
               qty: Iterable[float] | None = None, maker: Iterable[bool] | None = None,
               first: Iterable[int] | None = None, last: Iterable[int] | None = None,
               ghosts: Iterable[int] = ()):
    """A TickChunk from plain lists (recv_ts = ts)."""
    from pairflow.ticks import TickChunk

    ts = np.asarray(list(ts), np.int64)
    ids = np.asarray(list(ids), np.int64)
    n = len(ts)
    return TickChunk(
        symbol, "replay", ts, ts.copy(), ids,
        np.asarray(list(first) if first is not None else ids, np.int64),
        np.asarray(list(last) if last is not None else ids, np.int64),
        np.asarray(list(prices), np.float64),
        np.asarray(list(qty) if qty is not None else np.ones(n), np.float64),
        np.asarray(list(maker) if maker is not None else np.zeros(n, bool), np.bool_),
        np.asarray(list(ghosts), np.int64),
    )


def chunk_of(trades: list[RawTrade]):
    """A TickChunk of plain trades (one symbol), in list order."""
    return make_chunk(trades[0].symbol, [t.ts_us for t in trades], [t.trade_id for t in trades],
                      [t.price for t in trades], [t.qty for t in trades],
                      [t.buyer_is_maker for t in trades], [t.first_id for t in trades],
                      [t.last_id for t in trades])


def trade_frame(symbol: str, trade_id: int, price: str, qty: str, ts_ms: int,
                maker: bool = False, envelope: bool = True, **extra: Any) -> str:
    """A spot @trade frame as Binance sends it (JSON text)."""
    data = {"e": "trade", "E": ts_ms + 1, "s": symbol, "t": trade_id, "p": price, "q": qty,
            "T": ts_ms, "m": maker, "M": True}
    data.update(extra)
    data = {k: v for k, v in data.items() if v is not None}
    if not envelope:
        return json.dumps(data, separators=(",", ":"))
    return json.dumps({"stream": f"{symbol.lower()}@trade", "data": data},
                      separators=(",", ":"))


def write_recording(path: Path, lines: Iterable[str], compress: bool | None = None) -> Path:
    """Write recording lines (gzip when the name ends in .gz or ``compress``)."""
    text = "".join(line + "\n" for line in lines).encode()
    if compress or (compress is None and path.suffix == ".gz"):
        path.write_bytes(gzip.compress(text, mtime=0))
    else:
        path.write_bytes(text)
    return path


def bars_written(store: Path) -> int:
    """Bars in a store a run is writing: 0 before its file or its tables exist."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT count(*) FROM bars").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def wait_for_bars(store: Path, process: subprocess.Popen | None = None, *, above: int = 0,
                  timeout_s: float = 120.0, run_may_end: bool = False) -> None:
    """Wait until a run has written more than ``above`` bars (on a busy machine its start-up
    alone may outlast any fixed delay).

    A run that ends first fails the wait with its stderr, unless ``run_may_end``.
    """
    deadline = time.monotonic() + timeout_s
    while bars_written(store) <= above:
        if process is not None and process.poll() is not None:
            if run_may_end:
                return
            raise AssertionError(f"the run ended before writing bars: {process.communicate()}")
        assert time.monotonic() < deadline, f"the run wrote no bars in {timeout_s:g} s"
        time.sleep(0.2)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free now (for a worker cluster)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def hedged_legs(symbols: tuple[str, str], n: int, ask_markup: float, spread_bps: float
                ) -> tuple[list[list[Any]], list[list[Any]]]:
    """Bars and quote bars of two legs on 10 µs bars, one per leg: leg 1 a log random walk,
    leg 0 twice it times noise (a cointegrated pair, seed 11); quotes at the close − 1 bp and
    the close × ``ask_markup``, with ``spread_bps`` as every spread statistic."""
    from pairflow.records import Bar, QuoteBar

    rng = np.random.default_rng(11)
    walk = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    hedged = 100.0 * (walk / 50.0) * np.exp(rng.normal(0, 0.01, n))
    bars, quotes = [], []
    for symbol, closes in zip(symbols, (hedged, walk), strict=True):
        bars.append([Bar(symbol, "1s", i * 10, i * 10 + 10, c, c, c, c, 1.0, c, c, 1, 0.0, i, i)
                     for i, c in enumerate(closes.tolist())])
        quotes.append([QuoteBar(symbol, "1s", i * 10, i * 10 + 10, c * 0.9999, 1.0,
                                c * ask_markup, 1.0, spread_bps, spread_bps, spread_bps, 0.0,
                                0.0, c, 3, None, None, None)
                       for i, c in enumerate(closes.tolist())])
    return bars, quotes
