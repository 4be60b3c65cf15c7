"""The universe scan through the whole flow: one process, then a 2-process Bytewax cluster.

Run: ``python bench/universe_flow.py`` (``--symbols 100``, ``--quick`` for 20 symbols).

Input: the real 5-minute candles of ten coins in ``../shared/data/candles-2018-01-5m``,
relabelled into N symbols by a documented, deterministic transform (no price is invented):
symbol ``k`` is coin ``k mod 10`` read ``k // 10`` hours later — its candle of open time
``t + (k // 10) h`` is written at ``t`` — and named ``<COIN><k // 10>BTC`` (``ADA3BTC``);
copies ``0`` keep the coin's own name. Every candle keeps its prices and volume; the files are
cut to the range every copy covers. So the N symbols are real price paths on one time grid,
and no two copies of a coin are the same path at the same time.

Each run replays the N candle files with ``--universe`` of all N (every pair scanned),
``--timeframes 5m --scan-timeframe 5m --scan-window 240 --scan-every 12`` (a scan each hour),
into a SQLite store:

* one process, one worker: ``pairflow replay …``;
* a cluster of two processes, one worker each: ``python -m bytewax.run flows.pairs:flow
  -i 0|1 -a host:port;host:port`` with the same settings as ``PAIRFLOW_*`` variables, each
  process writing its own store (the bar and pair steps spread over both; the single-key scan
  step runs on one).

A warm-up replay of three symbols first fills numba's kernel cache (not timed). It prints, per
run, the wall time, the CPU time of the process(es) (children's
``getrusage``: on a shared machine CPU time is what the runs would take on cores of their own),
the universe bars and scan rows per second of CPU, peak RSS — and checks that the cluster's
``scan`` and ``bars`` rows equal the single process's, row for row. Nothing is asserted about
speed.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_ports  # noqa: E402

CANDLES = ROOT.parent / "shared" / "data" / "candles-2018-01-5m"
HOUR_MS = 3_600_000
SCAN = ["--timeframes", "5m", "--scan-timeframe", "5m", "--scan-window", "240",
        "--scan-every", "12"]


def relabel(out: Path, symbols: int) -> list[Path]:
    """The N relabelled candle files (see the module docstring); returns their paths."""
    coins = sorted(CANDLES.glob("*-5m-2018-01.csv"))
    rows = {}
    for path in coins:
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows[path.name.split("-")[0]] = [r for r in reader]
    copies = (symbols + len(coins) - 1) // len(coins)
    first = max(int(r[0][0]) for r in rows.values())
    last = min(int(r[-1][0]) for r in rows.values()) - (copies - 1) * HOUR_MS
    paths = []
    for k in range(symbols):
        coin = sorted(rows)[k % len(coins)]
        copy = k // len(coins)
        name = coin if copy == 0 else f"{coin[:-3]}{copy}BTC"
        shift = copy * HOUR_MS
        path = out / f"{name}-5m-2018-01.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows[coin]:
                at = int(row[0]) - shift
                if first <= at <= last:
                    writer.writerow([at, *row[1:]])
        paths.append(path)
    return paths


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def children_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def one_process(files: list[Path], universe: str, store: Path) -> tuple[float, float]:
    cpu, wall = children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "app.cli", "replay", *map(str, files),
                    "--universe", universe, *SCAN, "--store", str(store)],
                   cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - wall, children_cpu() - cpu


def cluster(files: list[Path], universe: str, stores: list[Path]) -> tuple[float, float]:
    """Two processes of one worker each; tries fresh ports once if one could not listen."""
    settings = dict(zip(SCAN[::2], SCAN[1::2], strict=True))
    env = {**os.environ, "PAIRFLOW_SOURCE": "replay", "PAIRFLOW_FILES": ",".join(map(str, files)),
           "PAIRFLOW_UNIVERSE": universe, "PAIRFLOW_SYMBOLS": universe,
           **{f"PAIRFLOW_{flag[2:].replace('-', '_').upper()}": value
              for flag, value in settings.items()}}
    for attempt in range(2):
        addresses = ";".join(f"127.0.0.1:{port}" for port in free_ports(2))
        cpu, wall = children_cpu(), time.perf_counter()
        procs = [subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "flows.pairs:flow", "-i", str(index),
             "-a", addresses], cwd=ROOT, env={**env, "PAIRFLOW_STORE": str(store)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for index, store in
            enumerate(stores)]
        errors = [p.communicate()[1].decode() for p in procs]
        if all(p.returncode == 0 for p in procs):
            return time.perf_counter() - wall, children_cpu() - cpu
        if attempt or not any("Address already in use" in e for e in errors):
            raise RuntimeError("a cluster process failed:\n" + "\n".join(errors))
        for store in stores:
            store.unlink(missing_ok=True)
    raise AssertionError("unreachable")


def rows(stores: list[Path], table: str, order: str) -> list[tuple]:
    out = []
    for store in stores:
        with sqlite3.connect(store) as db:
            out += db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
    names = sqlite3.connect(stores[0]).execute(f"SELECT * FROM {table} LIMIT 0").description
    keys = [i for i, d in enumerate(names) if d[0] in order.split(",")]
    return sorted(out, key=lambda r: tuple(r[i] for i in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="20 symbols")
    args = parser.parse_args()
    symbols = 20 if args.quick else args.symbols
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = relabel(tmp, symbols)
        universe = ",".join(p.name.split("-")[0] for p in files)
        # Warm-up: the first run compiles the numba kernels into their cache; not timed.
        one_process(files[:3], ",".join(universe.split(",")[:3]), tmp / "warm.db")
        single = tmp / "one.db"
        wall_1, cpu_1 = one_process(files, universe, single)
        rss_1 = children_rss_mb()
        stores = [tmp / "node0.db", tmp / "node1.db"]
        wall_2, cpu_2 = cluster(files, universe, stores)
        scans = rows([single], "scan", "pair,timeframe,ts")
        bars = rows([single], "bars", "symbol,timeframe,start")
        same_scans = scans == rows(stores, "scan", "pair,timeframe,ts")
        same_bars = bars == rows(stores, "bars", "symbol,timeframe,start")
        with sqlite3.connect(single) as db:
            scored = db.execute("SELECT count(*) FROM scan WHERE beta IS NOT NULL").fetchone()[0]
    pairs = symbols * (symbols - 1) // 2
    bars_per_symbol = len(bars) / symbols
    print(f"# universe through the flow — {symbols} symbols, {pairs} pairs, "
          f"{bars_per_symbol:.0f} 5m bars each, scan window 240, every 12 bars")
    print(f"# {platform.python_version()}, {platform.machine()}, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    print(f"{'run':<28}{'wall s':>9}{'CPU s':>9}{'bars/s CPU':>13}{'scan rows/s CPU':>17}")
    for name, wall, cpu in (("1 process, 1 worker", wall_1, cpu_1),
                            ("2 processes, 1 worker each", wall_2, cpu_2)):
        print(f"{name:<28}{wall:>9.1f}{cpu:>9.1f}{len(bars) / cpu:>13,.0f}"
              f"{len(scans) / cpu:>17,.0f}")
    print(f"scan rows {len(scans):,} ({scored:,} with statistics), bar rows {len(bars):,}; "
          f"real time × at 5m bars, 1 process: {bars_per_symbol * 300 / wall_1:,.0f}")
    print(f"peak RSS of a child: {max(rss_1, children_rss_mb()):.0f} MB")
    print(f"cluster records identical to the single process: scan {same_scans}, "
          f"bars {same_bars}")


if __name__ == "__main__":
    main()
