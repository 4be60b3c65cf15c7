"""Quote throughput from recordings: ``@bookTicker`` frames → quote chunks → quote bars.

Input: the real shared tapes (spot BTCUSDT + ETHUSDT, both days, and COIN-M BTCUSD_PERP +
ETHUSD_PERP: 180,902 ``@bookTicker`` frames), read ``--repeat`` times.
Side by side in this process, CPU time of the parse (files → columns) and the quote-bar fold
(1s, 1m, 5m):

- **trades only**: the replay reader as without ``--quotes`` (quotes counted and skipped);
- **with quotes**: the same plus ``@bookTicker`` decoded into quote chunks (spot quotes timed
  by the trades' clock offset) and folded into quote bars by :class:`QuoteBarBuilder`;
- **baseline**: the obvious way — ``json.loads`` per ``@bookTicker`` line into Python rows,
  then a pandas frame and ``groupby`` per window for the last bid/ask and the count (no
  time-weighting, no lateness: less than the contract).

Usage: ``python bench/quotes.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.replay import MergedReplay, inspect_file  # noqa: E402
from pairflow.quotes import QuoteBarBuilder  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FILES = sorted((DATA / "binance-spot-2024-08-08").glob("*.gz")) + sorted(
    (DATA / "binance-coinm-2024-08-09").glob("*.gz"))
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BTCUSD_PERP", "ETHUSD_PERP")
TIMEFRAMES = ("1s", "1m", "5m")


def pairflow(quotes: bool) -> tuple[float, int, int]:
    """(CPU seconds, quotes, quote bars) of one pass over the files."""
    start = time.process_time()
    replay = MergedReplay([inspect_file(p) for p in FILES], frozenset(SYMBOLS), quotes=quotes)
    builders = {s: QuoteBarBuilder(s, TIMEFRAMES, 2_000_000) for s in SYMBOLS}
    count = bars = 0
    while not replay.exhausted:
        for chunk in replay.read(16_384).quotes:
            count += len(chunk)
            bars += len(builders[chunk.symbol].update(chunk).bars)
    bars += sum(len(b.flush().bars) for b in builders.values())
    return time.process_time() - start, count, bars


def baseline() -> tuple[float, int, int]:
    """(CPU seconds, quotes, quote bars) the obvious way (futures time only; spot: receive)."""
    start = time.process_time()
    rows = []
    for path in FILES:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                head, _, frame = line.partition(" ")
                if "@bookTicker" not in frame[:40]:
                    continue
                data = json.loads(frame)["data"]
                rows.append((data["s"], data.get("T", int(head) // 1_000_000),
                             float(data["b"]), float(data["a"])))
    frame = pd.DataFrame(rows, columns=["symbol", "ts", "bid", "ask"])
    bars = 0
    for ms in (1_000, 60_000, 300_000):  # 1s, 1m, 5m
        grouped = frame.assign(window=frame.ts // ms).groupby(["symbol", "window"])
        bars += len(grouped.agg(bid=("bid", "last"), ask=("ask", "last"), n=("bid", "size")))
    return time.process_time() - start, len(rows), bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {len(FILES)} files, repeat {args.repeat}")
    runs = {"trades only": [], "with quotes": [], "baseline": []}
    for _ in range(args.repeat):  # alternating, so load changes hit all sides alike
        runs["trades only"].append(pairflow(False))
        runs["with quotes"].append(pairflow(True))
        runs["baseline"].append(baseline())
    best = {name: min(r, key=lambda x: x[0]) for name, r in runs.items()}
    quotes = best["with quotes"][1]
    extra = best["with quotes"][0] - best["trades only"][0]
    print(f"{'path':<14}{'CPU s':>8}{'quotes':>10}{'bars':>9}{'quotes/s':>12}")
    for name, (seconds, count, bars) in best.items():
        rate = f"{quotes / seconds:,.0f}" if name != "trades only" else ""
        print(f"{name:<14}{seconds:>8.2f}{count:>10,}{bars:>9,}{rate:>12}")
    print(f"quotes' own cost: {extra:.2f} s, {quotes / extra:,.0f} quotes/s "
          f"({extra / quotes * 1e6:.2f} µs per quote) on top of the trades")
    print(f"with quotes vs baseline: {best['baseline'][0] / best['with quotes'][0]:.1f}x")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
