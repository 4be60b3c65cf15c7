"""Replay throughput: file → bars → SQLite, pairflow's flow against a pandas baseline.

The input is the real BTCUSDT + ETHUSDT spot tape (``pairflow/data``, the `@trade` frames of
``../shared/data/binance-spot-2024-08-08``) looped until it holds at least ``--ticks`` trades.
The loop transform (:mod:`connectors.replay.loop`): loop ``k`` shifts every time (trade time
``T``, event time ``E``, receive time) by ``k`` times the tape's span plus one second and every
trade id by ``k`` times the tape's id range, so the looped tape is one long, contiguous,
duplicate-free recording — a deterministic transform of real data, not new data. It is written
once, gzip level 1, under ``.cache/bench/``.

Both paths run in this process on the same file and produce 1s/1m/5m bars of both symbols in an
SQLite file:

- pairflow: ``pairflow replay`` (Bytewax flow, one worker, no pairs);
- baseline: the seed prototype's way — every line ``json.loads``-ed, trades appended to a
  pandas DataFrame, ``DataFrame.resample(...).agg(...)`` per symbol and timeframe,
  ``DataFrame.to_sql``.

Usage: ``python bench/replay.py [--ticks 2000000] [--skip-baseline]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TAPE = sorted((ROOT / "pairflow" / "data").glob("*.gz"))
CACHE = ROOT / ".cache" / "bench"
TIMEFRAMES = ("1s", "1m", "5m")


def looped_tape(min_ticks: int) -> tuple[Path, int]:
    """The looped tape file (made once) and its number of trades."""
    from connectors.replay.loop import trade_lines, write_looped

    base = trade_lines(TAPE)
    loops = -(-min_ticks // len(base))
    path = CACHE / f"looped-{loops}x-{len(base)}.gz"
    if path.exists():
        return path, loops * len(base)
    return path, write_looped(base, loops, path)


def run_pairflow(tape: Path, store: Path) -> tuple[float, dict]:
    from bytewax.testing import run_main

    from connectors.metrics import CountTally
    from flows.pairs import build_flow
    from pairflow.config import load_config

    config = load_config({"source": "replay", "files": [str(tape)],
                          "symbols": "BTCUSDT,ETHUSDT", "timeframes": ",".join(TIMEFRAMES),
                          "store": str(store)}, env={})
    tally = CountTally()
    started = time.perf_counter()
    run_main(build_flow(config, tally))
    return time.perf_counter() - started, tally.totals()


def run_stages(tape: Path, store: Path) -> dict[str, float]:
    """Seconds spent in each stage alone, outside the dataflow: parse, bars, store."""
    from connectors.replay import MergedReplay, inspect_file
    from connectors.store import StoreWriter
    from pairflow.bars import BarBuilder

    started = time.perf_counter()
    replay = MergedReplay([inspect_file(tape)], frozenset({"BTCUSDT", "ETHUSDT"}))
    chunks = []
    while not replay.exhausted:
        chunks.extend(replay.read(16_384).chunks)
    parsed = time.perf_counter()
    builders = {s: BarBuilder(s, TIMEFRAMES, 2_000_000) for s in ("BTCUSDT", "ETHUSDT")}
    bars = [bar for chunk in chunks for bar in builders[chunk.symbol].update(chunk).bars]
    folded = time.perf_counter()
    writer = StoreWriter(store)
    for start in range(0, len(bars), 2_000):
        writer.write(bars[start : start + 2_000])
    writer.close()
    return {"parse": parsed - started, "bars": folded - parsed,
            "store": time.perf_counter() - folded}


def run_baseline(tape: Path, store: Path) -> float:
    import pandas as pd

    started = time.perf_counter()
    rows = []
    with gzip.open(tape, "rt") as handle:
        for line in handle:
            _, _, frame = line.partition(" ")
            data = json.loads(frame)["data"]
            rows.append({"symbol": data["s"], "ts": data["T"], "price": float(data["p"]),
                         "qty": float(data["q"]), "id": data["t"]})
    ticks = pd.DataFrame(rows)
    ticks["time"] = pd.to_datetime(ticks["ts"], unit="ms", utc=True)
    ticks["quote"] = ticks["price"] * ticks["qty"]
    connection = sqlite3.connect(store)
    for symbol, group in ticks.groupby("symbol"):
        indexed = group.set_index("time").sort_index()
        for timeframe in TIMEFRAMES:
            rule = {"1s": "1s", "1m": "1min", "5m": "5min"}[timeframe]
            bars = indexed.resample(rule).agg(
                {"price": ["first", "max", "min", "last"], "qty": "sum", "quote": "sum",
                 "id": ["count", "min", "max"]})
            bars.columns = ["open", "high", "low", "close", "volume", "quote_volume", "trades",
                            "first_trade_id", "last_trade_id"]
            bars["close"] = bars["close"].ffill()
            bars["symbol"], bars["timeframe"] = symbol, timeframe
            bars.reset_index().to_sql("bars", connection, if_exists="append", index=False)
    connection.commit()
    connection.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=2_000_000)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    tape, ticks = looped_tape(args.ticks)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"tape: {tape.name}, {ticks:,} trades, {tape.stat().st_size / 1e6:.1f} MB gzip")
    with tempfile.TemporaryDirectory() as tmp:
        elapsed, totals = run_pairflow(tape, Path(tmp) / "pairflow.db")
        bars = sum(v for k, v in totals.items() if k.startswith("bars:"))
        ours = ticks / elapsed
        print(f"pairflow replay : {elapsed:7.2f} s  {ours:>12,.0f} ticks/s  ({bars:,} bars)")
        for stage, seconds in run_stages(tape, Path(tmp) / "stages.db").items():
            print(f"  {stage:<6} alone : {seconds:7.2f} s  {ticks / seconds:>12,.0f} ticks/s")
        if not args.skip_baseline:
            base_elapsed = run_baseline(tape, Path(tmp) / "baseline.db")
            theirs = ticks / base_elapsed
            print(f"pandas baseline : {base_elapsed:7.2f} s  {theirs:>12,.0f} ticks/s")
            print(f"ratio           : {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
