"""Replay throughput for every input layout: pairflow against the parse limit and pandas.

For each layout of ``bench/tapes.py`` (≥ ``--rows`` rows each, made from the real spot tape by
the documented loop), three runs side by side, each a whole process timed from start to exit,
with its peak RSS:

- **pairflow**: ``pairflow replay FILE --timeframes 1s,1m,5m --store DB`` (ticks → bars →
  SQLite; candles → bars);
- **parse limit**: the bare columnar read of the same file — Arrow's CSV reader (typed
  columns) for CSV, ``pyarrow.parquet`` for Parquet, inflate + line split + one msgspec decode
  of all frames per 16 k lines for recordings — nothing else;
- **pandas baseline**: what a hand-rolled notebook does — ``pd.read_csv`` / ``read_parquet`` /
  ``json.loads`` per line, ``DataFrame.resample`` per timeframe, ``to_sql``.

Usage: ``python bench/replay.py [--rows 3000000] [--layouts trades_csv,…] [--skip-baseline]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tapes import LAYOUTS  # noqa: E402

TIMEFRAMES = ("1s", "1m", "5m")
SYMBOLS = {"trades_csv": "BTCUSDT", "aggtrades_csv": "BTCUSDT", "klines_csv": "BTCUSDT"}


def timed(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a command run to its end as its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}")
    return elapsed, usage.ru_maxrss / 1024


def parse_limit(layout: str, path: Path) -> int:
    """Read ``path`` with nothing but the columnar reader; returns the rows read."""
    if layout.endswith("_csv"):
        import pyarrow.csv as pacsv

        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            parse_options=pacsv.ParseOptions(quote_char=False))
        return sum(batch.num_rows for batch in reader)
    if layout == "ticks_parquet":
        import pyarrow.parquet as pq

        return sum(b.num_rows for b in pq.ParquetFile(path).iter_batches(batch_size=1 << 18))
    from connectors.binance.wire import _ENVELOPE_BATCHES
    from connectors.json_batch import decode_batch
    from connectors.replay.files import iter_lines

    rows = 0
    for lines in iter_lines(path):
        for start in range(0, len(lines), 16_384):
            frames = [line[20:] for line in lines[start:start + 16_384] if line]
            rows += len(decode_batch(frames, *_ENVELOPE_BATCHES))
    return rows


def baseline(layout: str, path: Path, store: Path) -> None:
    """The pandas way: load everything, resample per timeframe, ``to_sql``."""
    import json
    import sqlite3

    import pandas as pd

    if layout == "klines_csv":
        names = ["open_time", "open", "high", "low", "close", "volume", "close_time",
                 "quote_volume", "count", "taker_buy_volume", "taker_buy_quote", "ignore"]
        bars = pd.read_csv(path, header=None, names=names)
        with sqlite3.connect(store) as connection:
            bars.to_sql("bars", connection, index=False)
        return
    if layout.endswith("_csv"):
        columns = [0, 1, 2, 4] if layout == "trades_csv" else [0, 1, 2, 5]
        ticks = pd.read_csv(path, header=None, usecols=columns)
        ticks.columns = ["id", "price", "qty", "ts"]
        ticks["symbol"] = "BTCUSDT"
    elif layout == "ticks_parquet":
        ticks = pd.read_parquet(path, columns=["symbol", "trade_id", "price", "qty", "ts"])
        ticks = ticks.rename(columns={"trade_id": "id"})
        ticks["ts"] //= 1000
    else:
        from connectors.replay.files import iter_lines

        rows = []
        for lines in iter_lines(path):
            for line in lines:
                data = json.loads(line.partition(b" ")[2])["data"]
                rows.append((data["s"], data["t"], float(data["p"]), float(data["q"]), data["T"]))
        ticks = pd.DataFrame(rows, columns=["symbol", "id", "price", "qty", "ts"])
    ticks["time"] = pd.to_datetime(ticks["ts"], unit="ms", utc=True)
    ticks["quote"] = ticks["price"] * ticks["qty"]
    with sqlite3.connect(store) as connection:
        for symbol, group in ticks.groupby("symbol"):
            indexed = group.set_index("time").sort_index()
            for timeframe in TIMEFRAMES:
                rule = {"1s": "1s", "1m": "1min", "5m": "5min"}[timeframe]
                bars = indexed.resample(rule).agg(
                    {"price": ["first", "max", "min", "last"], "qty": "sum", "quote": "sum",
                     "id": ["count", "min", "max"]})
                bars.columns = ["open", "high", "low", "close", "volume", "quote_volume",
                                "trades", "first_trade_id", "last_trade_id"]
                bars["close"] = bars["close"].ffill()
                bars["symbol"], bars["timeframe"] = symbol, timeframe
                bars.reset_index().to_sql("bars", connection, if_exists="append", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--stage", nargs=3, metavar=("KIND", "LAYOUT", "FILE"),
                        help=argparse.SUPPRESS)  # one side, run as its own process
    args = parser.parse_args()
    if args.stage:
        kind, layout, path = args.stage
        if kind == "limit":
            parse_limit(layout, Path(path))
        else:
            baseline(layout, Path(path), Path(tempfile.mkdtemp()) / "baseline.db")
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'layout':<15} {'rows':>10} {'pairflow s':>10} {'ticks/s':>11} {'RSS MB':>7} "
          f"{'limit s':>8} {'limit/s':>11} {'RSS MB':>7} {'% limit':>8} {'pandas s':>9} "
          f"{'RSS MB':>7} {'× pandas':>8}")
    for layout in args.layouts.split(","):
        # Made in a process of its own: a child's peak RSS counts what it inherited.
        made = subprocess.run([sys.executable, str(ROOT / "bench" / "tapes.py"), layout,
                               str(args.rows)], cwd=ROOT, check=True, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        name, count = made.stdout.split()
        path, rows = Path(name), int(count)
        with tempfile.TemporaryDirectory() as tmp:
            symbols = SYMBOLS.get(layout, "BTCUSDT,ETHUSDT")
            ours, our_rss = timed([sys.executable, "-m", "app.cli", "replay", str(path),
                                   "--symbols", symbols, "--timeframes", ",".join(TIMEFRAMES),
                                   "--store", str(Path(tmp) / "pairflow.db")])
        me = [sys.executable, str(Path(__file__).resolve()), "--stage"]
        limit, limit_rss = timed([*me, "limit", layout, str(path)])
        line = (f"{layout:<15} {rows:>10,} {ours:>10.2f} {rows / ours:>11,.0f} {our_rss:>7.0f} "
                f"{limit:>8.2f} {rows / limit:>11,.0f} {limit_rss:>7.0f} "
                f"{100 * limit / ours:>7.0f}%")
        if not args.skip_baseline:
            theirs, their_rss = timed([*me, "baseline", layout, str(path)])
            line += f" {theirs:>9.2f} {their_rss:>7.0f} {theirs / ours:>7.1f}×"
        print(line, flush=True)


if __name__ == "__main__":
    main()
