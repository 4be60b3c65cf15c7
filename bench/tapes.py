"""Benchmark inputs in every layout, made from real trades by a documented, deterministic loop.

Source: the real BTCUSDT + ETHUSDT spot ``@trade`` frames in ``pairflow/data`` (the tape of
``../shared/data/binance-spot-2024-08-08``). Loop ``k`` shifts every time (trade, event and
receive time) by ``k`` × (the tape's span + 1 s) and every trade id by ``k`` × the symbol's id
range, so the looped tape is one long, contiguous, duplicate-free record of real prices —
a transform of real data, not new data. Layouts written from it (cached under
``.cache/bench/``):

- ``spot_recording``: the looped frames as a gzip recording (what ``pairflow record`` writes);
- ``usdm_recording``: the same trades as USDⓈ-M ``@trade`` frames (``"X":"MARKET"``, no ``M``);
- ``trades_csv`` / ``aggtrades_csv``: data.binance.vision dumps of BTCUSDT (ms times; each
  aggregate holds one trade, as most real spot aggregates do);
- ``klines_csv``: BTCUSDT 1 s klines of the looped tape's traded seconds;
- ``ticks_parquet``: both symbols' ticks in pairflow's Parquet tick columns.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TAPE = sorted((ROOT / "pairflow" / "data").glob("*.gz"))
CACHE = ROOT / ".cache" / "bench"
LAYOUTS = ("spot_recording", "usdm_recording", "trades_csv", "aggtrades_csv", "klines_csv",
           "ticks_parquet")


def _frames() -> list[tuple[int, str, dict]]:
    """(receive ns, stream, payload) of every trade frame of the real tape, receive order."""
    out = []
    for path in TAPE:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                recv, _, frame = line.rstrip("\n").partition(" ")
                if '@trade"' in frame[:40]:
                    envelope = json.loads(frame)
                    out.append((int(recv), envelope["stream"], envelope["data"]))
    out.sort(key=lambda item: item[0])
    return out


def _shifts(frames: list[tuple[int, str, dict]]) -> tuple[int, dict[str, int]]:
    times = [d["T"] for _, _, d in frames]
    ids: dict[str, list[int]] = {}
    for _, _, d in frames:
        ids.setdefault(d["s"], []).append(d["t"])
    return max(times) - min(times) + 1000, {s: max(v) - min(v) + 1 for s, v in ids.items()}


def _columns(frames, symbol: str | None) -> dict[str, np.ndarray]:
    import numpy as np

    kept = [(r, d) for r, _, d in frames if symbol is None or d["s"] == symbol]
    return {"recv_ns": np.array([r for r, _ in kept], np.int64),
            "symbol": np.array([d["s"] for _, d in kept]),
            "id": np.array([d["t"] for _, d in kept], np.int64),
            "price": np.array([float(d["p"]) for _, d in kept]),
            "qty": np.array([float(d["q"]) for _, d in kept]),
            "time": np.array([d["T"] for _, d in kept], np.int64),
            "maker": np.array([d["m"] for _, d in kept], bool)}


def _looped(columns: dict[str, np.ndarray], loops: int, span_ms: int,
            id_range: dict[str, int]) -> dict[str, np.ndarray]:
    import numpy as np

    k = np.repeat(np.arange(loops, dtype=np.int64), len(columns["id"]))
    tiled = {name: np.tile(values, loops) for name, values in columns.items()}
    ranges = np.array([id_range[s] for s in tiled["symbol"]], np.int64)
    tiled["id"] = tiled["id"] + k * ranges
    tiled["time"] = tiled["time"] + k * span_ms
    tiled["recv_ns"] = tiled["recv_ns"] + k * span_ms * 1_000_000
    return tiled


def make(layout: str, min_rows: int) -> tuple[Path, int]:
    """The input file of ``layout`` with at least ``min_rows`` rows (made once), and its rows."""
    import numpy as np

    frames = _frames()
    span_ms, id_range = _shifts(frames)
    symbol = "BTCUSDT" if layout.endswith("_csv") else None
    base = _columns(frames, symbol)
    if layout == "klines_csv":
        seconds = len(np.unique(base["time"] // 1000))
        loops = -(-min_rows // seconds)
    else:
        loops = -(-min_rows // len(base["id"]))
    name = {"spot_recording": "recording-{}x.gz", "usdm_recording": "usdm-recording-{}x.gz",
            "trades_csv": "BTCUSDT-trades-looped{}x.csv", "aggtrades_csv":
            "BTCUSDT-aggTrades-looped{}x.csv", "klines_csv": "BTCUSDT-1s-looped{}x.csv",
            "ticks_parquet": "ticks-{}x.parquet"}[layout]
    path = CACHE / name.format(loops)
    looped = _looped(base, loops, span_ms, id_range)
    rows = len(looped["id"]) if layout != "klines_csv" else loops * seconds
    if path.exists():
        return path, rows
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    {"spot_recording": _recording, "usdm_recording": _recording, "trades_csv": _trades_csv,
     "aggtrades_csv": _trades_csv, "klines_csv": _klines_csv,
     "ticks_parquet": _parquet}[layout](tmp, looped, layout)
    os.replace(tmp, path)
    return path, rows


def _recording(path: Path, c: dict[str, np.ndarray], layout: str) -> None:
    futures = layout == "usdm_recording"
    with gzip.open(path, "wt", compresslevel=1) as out:
        for recv, symbol, trade_id, price, qty, time, maker in zip(
                c["recv_ns"].tolist(), c["symbol"].tolist(), c["id"].tolist(),
                c["price"].tolist(), c["qty"].tolist(), c["time"].tolist(),
                c["maker"].tolist(), strict=True):
            flag = "true" if maker else "false"
            tail = ',"X":"MARKET"' if futures else ',"M":true'
            out.write(f'{recv} {{"stream":"{symbol.lower()}@trade","data":{{"e":"trade",'
                      f'"E":{time + 1},"s":"{symbol}","t":{trade_id},"p":"{price!r}",'
                      f'"q":"{qty!r}","T":{time},"m":{flag}{tail}}}}}\n')


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.table(columns), path,
                    pacsv.WriteOptions(include_header=False, quoting_style="none"))


def _trades_csv(path: Path, c: dict[str, np.ndarray], layout: str) -> None:
    import numpy as np

    maker = np.where(c["maker"], "true", "false")
    if layout == "trades_csv":
        _write_csv(path, {"id": c["id"], "price": c["price"], "qty": c["qty"],
                          "quote": c["price"] * c["qty"], "time": c["time"], "maker": maker,
                          "best": np.full(len(maker), "true")})
    else:
        _write_csv(path, {"a": c["id"], "price": c["price"], "qty": c["qty"], "f": c["id"],
                          "l": c["id"], "time": c["time"], "maker": maker,
                          "best": np.full(len(maker), "true")})


def _klines_csv(path: Path, c: dict[str, np.ndarray], layout: str) -> None:
    import numpy as np

    second = c["time"] // 1000
    starts = np.flatnonzero(np.concatenate(([True], second[1:] != second[:-1])))
    ends = np.append(starts[1:], len(second))
    price, qty = c["price"], c["qty"]
    volume = np.add.reduceat(qty, starts)
    _write_csv(path, {
        "open_time": second[starts] * 1000, "open": price[starts],
        "high": np.maximum.reduceat(price, starts), "low": np.minimum.reduceat(price, starts),
        "close": price[ends - 1], "volume": volume,
        "close_time": second[starts] * 1000 + 999,
        "quote_volume": np.add.reduceat(price * qty, starts), "count": ends - starts,
        "taker_buy_volume": np.add.reduceat(np.where(c["maker"], 0.0, qty), starts),
        "taker_buy_quote": np.zeros(len(starts)), "ignore": np.zeros(len(starts), np.int64)})


def _parquet(path: Path, c: dict[str, np.ndarray], layout: str) -> None:
    import numpy as np

    from connectors.replay.parquet import ParquetTickWriter
    from pairflow.ticks import TickChunk

    writer = ParquetTickWriter(path)
    recv_us = c["recv_ns"] // 1000
    for start in range(0, len(recv_us), 1 << 18):
        part = slice(start, start + (1 << 18))
        for symbol in np.unique(c["symbol"][part]).tolist():
            mask = c["symbol"][part] == symbol
            ids = c["id"][part][mask]
            writer.write(TickChunk(symbol, "replay", c["time"][part][mask] * 1000,
                                   recv_us[part][mask], ids, ids, ids, c["price"][part][mask],
                                   c["qty"][part][mask], c["maker"][part][mask]))
    writer.close()


if __name__ == "__main__":
    # ``python bench/tapes.py LAYOUT ROWS`` prints the file and its rows (made if needed), so
    # a benchmark's own process stays small.
    made, count = make(sys.argv[1], int(sys.argv[2]))
    print(made, count)
