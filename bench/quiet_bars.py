"""Cost of quiet windows in the bar step: an illiquid symbol against a liquid one.

Both tapes are the real BTCUSDT trades of ``pairflow/data`` (prices, sizes, sides, order); only
their times are respaced, a documented deterministic transform: the *liquid* tape puts one
trade in every second, the *illiquid* one a trade every ``--every`` seconds (ids stay
contiguous, so every window between two trades is a quiet bar). Both go through
:class:`~pairflow.bars.BarBuilder` (1s, 1m, 5m) in chunks of ``--chunk`` ticks, as a replay
cuts them; the figure is CPU µs per 1 s bar emitted, side by side in this process.

Usage: ``python bench/quiet_bars.py [--every 60] [--chunk 256]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pairflow.bars import BarBuilder  # noqa: E402
from pairflow.ticks import Heartbeat, TickChunk  # noqa: E402
from tests.helpers import raw_trades  # noqa: E402

TAPE = sorted((ROOT / "pairflow" / "data").glob("*.gz"))
S = 1_000_000


def run(trades, spacing_s: int, chunk: int) -> tuple[float, int, int]:
    """(CPU seconds, 1 s bars, of which quiet) of the tape respaced to one trade per spacing."""
    n = len(trades)
    ts = (np.arange(n, dtype=np.int64) * spacing_s + 1_700_000_000) * S
    ids = np.arange(n, dtype=np.int64) + 1
    price = np.array([t.price for t in trades])
    qty = np.array([t.qty for t in trades])
    maker = np.array([t.buyer_is_maker for t in trades])
    builder = BarBuilder("BTCUSDT", ["1s", "1m", "5m"], lateness_us=0)
    bars = []
    started = time.process_time()
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        bars += builder.update(TickChunk("BTCUSDT", "replay", ts[part], ts[part], ids[part],
                                         ids[part], ids[part], price[part], qty[part],
                                         maker[part])).bars
    bars += builder.heartbeat(Heartbeat("BTCUSDT", 0, final=True)).bars
    elapsed = time.process_time() - started
    ones = [b for b in bars if b.timeframe == "1s"]
    return elapsed, len(ones), sum(1 for b in ones if b.trades == 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=60)
    parser.add_argument("--chunk", type=int, default=256)
    args = parser.parse_args()
    trades = raw_trades(TAPE)["BTCUSDT"]
    print(f"load average {os.getloadavg()[0]:.1f}; {len(trades):,} real trades, chunks of "
          f"{args.chunk}")
    liquid = run(trades, 1, args.chunk)
    quiet = run(trades, args.every, args.chunk)
    for name, (seconds, bars, quiet_bars) in (("liquid (1 trade/s)", liquid),
                                              (f"illiquid (1 trade/{args.every} s)", quiet)):
        print(f"{name:<26} {bars:>10,} 1s bars ({quiet_bars:,} quiet)  {seconds:6.2f} s CPU  "
              f"{seconds / bars * 1e6:6.2f} µs per 1 s bar")
    print(f"ratio per bar, illiquid / liquid: {quiet[0] / quiet[1] / (liquid[0] / liquid[1]):.2f}")


if __name__ == "__main__":
    main()
