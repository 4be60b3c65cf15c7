"""Soak: a day of exchange time through the flow at full speed, with RSS sampled all along.

**Input — real tape, rearranged, not new data.** The bundled BTCUSDT + ETHUSDT spot tape
(``pairflow/data/*.gz``: the ``@trade`` frames of ``../shared/data/binance-spot-2024-08-08``,
10 min 50 s of exchange time, 34,419 trades) is fanned out to ``2 × --copies`` symbols
(default 8: ``BTC0USDT`` … ``BTC3USDT`` and ``ETH0USDT`` … ``ETH3USDT``) and looped to cover
``--hours`` of exchange time (default 24) by a deterministic transform, as ``bench/replay.py``
loops it:

- copy ``j`` of a symbol is the symbol's real trades renamed (stream ``btc<j>usdt@trade``,
  ``"s": "BTC<j>USDT"``), prices, sizes and sides byte for byte as recorded;
- loop ``k`` of copy ``j`` shifts every time (trade time ``T``, event time ``E``, receive time)
  by ``k × span − j × 157.3 s`` (``span`` = the tape's span + 1 s) and every trade id by
  ``k × id range``: each copy is one long, contiguous, duplicate-free recording, and copy ``j``
  runs ``j × 157.3 s`` ahead in the tape, so ``BTC1USDT`` is not ``BTC0USDT`` in lockstep
  (the 0.3 s also moves every trade to another place inside its 1 s bar);
- every copy is cut to the same exchange-time range, ``[tape start, tape start + hours)``.

So ``BTC0USDT/ETH0USDT`` is the real pair as it traded; the other pairs pair real legs at
other times. Prices repeat every 10 min 50 s. The files (one per symbol, gzip level 1) are
written once under ``.cache/bench/soak-<hours>h-<copies>/``.

**Run.** 20 pairs over those symbols (``BTC<i>/ETH<j>`` for all i, j < 4 and
``BTC0/BTC1``, ``BTC2/BTC3``, ``ETH0/ETH1``, ``ETH2/ETH3``; with other ``--copies``, the
first 20 of all ``Y/X`` combinations in that order), timeframes 1s, 1m, 5m, window 300, into a
fresh SQLite store (and Kafka with ``--kafka BOOTSTRAP``). The flow runs in a child process
(this script with ``--child``: the same ``build_flow`` + ``bytewax.run.cli_main`` as
``pairflow replay``, one worker) which writes its counters to a small JSON file twice a second;
this process samples the child's RSS (psutil) and those counters every ``--interval`` s.

**Report.** RSS over time; the least-squares slope of RSS after warm-up (the first quarter of
the run's exchange time, at least the 5 min a 1 s window of 300 bars needs) against exchange
hours (MB/h) and against ticks (MB per million ticks); per-stage counters; elapsed; ticks/s.
Exchange time done = 1 s bars / symbols. The plot goes to ``docs/img/soak_rss.png``
(Pillow; matplotlib is not a dependency), the samples to ``.cache/bench/soak-samples.csv``.

Usage::

    python bench/soak.py                 # 24 h of exchange time (the documented full run)
    python bench/soak.py --quick         # 1 h, a smoke run
    python bench/soak.py --hours 6 --kafka 127.0.0.1:9092
    python bench/soak.py --hours 1 --trace   # tracemalloc top growth, in the child (slow)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TAPE = sorted((ROOT / "pairflow" / "data").glob("*.gz"))
CACHE = ROOT / ".cache" / "bench"
PLOT = ROOT / "docs" / "img" / "soak_rss.png"
TIMEFRAMES = ("1s", "1m", "5m")
WINDOW = 300
PHASE_MS = 157_300  # copy j runs j × 157.3 s ahead in the tape
PAIRS = 20


# ------------------------------------------------------------------------------ the input


def _base_trades() -> dict[str, list[tuple[int, int, int, int, str]]]:
    """Per real symbol: (recv_ns, E, T, t, rest of the payload after ``"t":…,``)."""
    out: dict[str, list] = {}
    for path in TAPE:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                recv, _, frame = line.rstrip("\n").partition(" ")
                if '@trade"' not in frame[:40]:
                    continue
                data = json.loads(frame)["data"]
                rest = (f'"p":"{data["p"]}","q":"{data["q"]}","T":{{T}},'
                        f'"m":{json.dumps(data["m"])},"M":{json.dumps(data["M"])}}}}}')
                out.setdefault(data["s"], []).append(
                    (int(recv), data["E"], data["T"], data["t"], rest))
    for rows in out.values():
        rows.sort(key=lambda row: row[0])
    return out


def soak_symbols(copies: int) -> list[str]:
    """``BTC0USDT`` … ``BTC<copies-1>USDT``, then the ETH copies."""
    return [f"{base}{j}USDT" for base in ("BTC", "ETH") for j in range(copies)]


def soak_pairs(copies: int) -> list[str]:
    """20 pairs: every BTC<i>/ETH<j>, then same-coin pairs of neighbouring copies."""
    btc = [f"BTC{j}USDT" for j in range(copies)]
    eth = [f"ETH{j}USDT" for j in range(copies)]
    pairs = [f"{y}/{x}" for y in btc for x in eth]
    for coin in (btc, eth):
        pairs += [f"{coin[j]}/{coin[j + 1]}" for j in range(0, copies - 1, 2)]
    pairs += [f"{y}/{x}" for y, x in combinations(btc + eth, 2) if f"{y}/{x}" not in pairs]
    return pairs[:PAIRS]


def soak_tape(hours: float, copies: int) -> tuple[list[Path], int]:
    """The looped, fanned-out tape (written once) and its number of trades."""
    directory = CACHE / f"soak-{hours:g}h-{copies}"
    done = directory / "trades.json"
    if done.exists():
        return sorted(directory.glob("*.gz")), json.loads(done.read_text())["trades"]
    base = _base_trades()
    start_ms = min(rows[0][2] for rows in base.values())
    end_ms = max(row[2] for rows in base.values() for row in rows)
    span_ms = end_ms - start_ms + 1000
    stop_ms = start_ms + int(hours * 3_600_000)
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for coin, rows in sorted(base.items()):
        id_range = max(r[3] for r in rows) - min(r[3] for r in rows) + 1
        for j in range(copies):
            symbol = coin.replace("USDT", f"{j}USDT")
            head = f'{{"stream":"{symbol.lower()}@trade","data":{{"e":"trade","E":'
            path = directory / f"{symbol.lower()}.gz"
            written = 0
            with gzip.open(path.with_suffix(".tmp"), "wt", compresslevel=1) as out:
                for k in range(int((hours * 3_600_000 + j * PHASE_MS) // span_ms) + 2):
                    shift = k * span_ms - j * PHASE_MS
                    if end_ms + shift < start_ms:
                        continue
                    if start_ms + shift >= stop_ms:
                        break
                    lines = []
                    for recv, event, trade, trade_id, rest in rows:
                        when = trade + shift
                        if start_ms <= when < stop_ms:
                            lines.append(f"{recv + shift * 1_000_000} {head}{event + shift},"
                                         f'"s":"{symbol}","t":{trade_id + k * id_range},'
                                         + rest.replace("{T}", str(when)) + "\n")
                    out.write("".join(lines))
                    written += len(lines)
            os.replace(path.with_suffix(".tmp"), path)
            total += written
    done.write_text(json.dumps({"trades": total, "hours": hours, "copies": copies}))
    return sorted(directory.glob("*.gz")), total


# ------------------------------------------------------------------------------ the child


def run_child(args: argparse.Namespace) -> None:
    """Run the flow here; write counters to ``args.stats`` twice a second."""
    from bytewax.run import cli_main

    from connectors.metrics import CountTally
    from flows.pairs import build_flow
    from pairflow.config import load_config

    settings = json.loads(args.child)
    config = load_config(settings, env={})
    tally = CountTally()
    progress = [0.0, 0.0]
    stop = threading.Event()
    trace: dict = {}
    if args.trace:
        import tracemalloc

        tracemalloc.start(8)

    def write_stats() -> None:
        while not stop.wait(0.5):
            state = {"t": time.time(), "counts": tally.totals(), "done": progress[0],
                     "total": progress[1]}
            if args.trace and progress[1]:
                _trace_step(trace, progress[0] / progress[1])
            tmp = args.stats + ".tmp"
            with open(tmp, "w") as handle:
                json.dump(state, handle)
            os.replace(tmp, args.stats)

    def on_progress(done: float, total: float) -> None:
        progress[0], progress[1] = done, total

    writer = threading.Thread(target=write_stats, daemon=True)
    writer.start()
    started = time.perf_counter()
    cli_main(build_flow(config, tally, on_progress), workers_per_process=1)
    elapsed = time.perf_counter() - started
    stop.set()
    writer.join()
    with open(args.stats + ".final", "w") as handle:
        json.dump({"counts": tally.totals(), "elapsed": elapsed,
                   "trace": trace.get("report")}, handle)


def _trace_step(trace: dict, fraction: float) -> None:
    """tracemalloc snapshots at 30 % and 90 % of the input; the top growth between them."""
    import tracemalloc

    if "first" not in trace and fraction >= 0.3:
        trace["first"] = tracemalloc.take_snapshot()
    elif "first" in trace and "report" not in trace and fraction >= 0.9:
        diff = tracemalloc.take_snapshot().compare_to(trace["first"], "traceback")
        lines = []
        for stat in diff[:12]:
            # Most recent frame first: where the memory was allocated, then its callers.
            frames = " <- ".join(f"{Path(f.filename).name}:{f.lineno}"
                                 for f in list(stat.traceback)[::-1][:4])
            lines.append(f"{stat.size_diff / 1e6:+8.2f} MB {stat.count_diff:+9d} blocks  "
                         f"{frames}")
        trace["report"] = lines


# ----------------------------------------------------------------------------- the parent


def sample(child: subprocess.Popen, stats: Path, interval: float) -> list[dict]:
    """RSS and counters of the running child every ``interval`` s until it ends."""
    import psutil

    process = psutil.Process(child.pid)
    started = time.monotonic()
    samples = []
    while child.poll() is None:
        try:
            rss = process.memory_info().rss
        except psutil.NoSuchProcess:
            break
        try:
            state = json.loads(stats.read_text())
        except (OSError, ValueError):
            state = {"counts": {}, "done": 0, "total": 0}
        samples.append({"wall_s": time.monotonic() - started, "rss_mb": rss / 1e6,
                        "counts": state["counts"], "done": state["done"],
                        "total": state["total"]})
        time.sleep(interval)
    return samples


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of ys on xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return slope, my - slope * mx


def analyse(samples: list[dict], n_symbols: int) -> dict:
    """Exchange hours and ticks per sample; the post-warm-up RSS fit."""
    for s in samples:
        s["hours"] = s["counts"].get("bars:1s", 0) / n_symbols / 3600
        s["ticks"] = s["counts"].get("ticks_read", 0)
    hours = max((s["hours"] for s in samples), default=0.0)
    warm = max(hours / 4, 300 / 3600)
    # Once the last bar is out the flow tears down (RSS falls): not part of the steady state.
    steady = [s for s in samples if warm <= s["hours"] < hours and s["ticks"] > 0
              and s["rss_mb"] > 0]
    result = {"warmup_hours": warm, "samples_fitted": len(steady)}
    if len(steady) >= 3:
        slope_h, intercept = fit([s["hours"] for s in steady], [s["rss_mb"] for s in steady])
        slope_t, _ = fit([s["ticks"] / 1e6 for s in steady], [s["rss_mb"] for s in steady])
        rss = [s["rss_mb"] for s in steady]
        result.update(slope_mb_per_hour=slope_h, intercept_mb=intercept,
                      slope_mb_per_mticks=slope_t, rss_min=min(rss), rss_max=max(rss),
                      rss_first=rss[0], rss_last=rss[-1],
                      growth_mb=slope_h * (steady[-1]["hours"] - steady[0]["hours"]))
    return result


def plot(samples: list[dict], result: dict, title: str, path: Path) -> None:
    """RSS against exchange hours, warm-up shaded, the fit drawn; a PNG via Pillow."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, left, right, top, bottom = 1000, 520, 80, 30, 60, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    last = max(s["hours"] for s in samples)
    running = [s for s in samples if s["ticks"] > 0 and s["hours"] < last and s["rss_mb"] > 0]
    points = [(s["hours"], s["rss_mb"]) for s in running]
    if not points:
        return
    x_max = max(p[0] for p in points) or 1.0
    y_top = max(p[1] for p in points) * 1.15
    y_low = 0.0

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (width - left - right) * x / x_max,
                height - bottom - (height - top - bottom) * (y - y_low) / (y_top - y_low))

    warm = result["warmup_hours"]
    draw.rectangle([to_px(0, y_top), to_px(min(warm, x_max), y_low)], fill=(238, 238, 238))
    draw.text((to_px(0, y_top)[0] + 6, top + 4), "warm-up", fill=(120, 120, 120), font=font)
    for k in range(6):
        y = y_low + (y_top - y_low) * k / 5
        px = to_px(0, y)
        draw.line([px, to_px(x_max, y)], fill=(225, 225, 225))
        draw.text((8, px[1] - 8), f"{y:6.0f}", fill="black", font=font)
        x = x_max * k / 5
        px = to_px(x, y_low)
        draw.text((px[0] - 14, height - bottom + 8), f"{x:.1f}", fill="black", font=font)
    draw.rectangle([to_px(0, y_top), to_px(x_max, y_low)], outline="black")
    draw.line([to_px(*p) for p in points], fill=(31, 119, 180), width=2)
    if "slope_mb_per_hour" in result:
        a, b = result["slope_mb_per_hour"], result["intercept_mb"]
        draw.line([to_px(warm, a * warm + b), to_px(x_max, a * x_max + b)],
                  fill=(214, 39, 40), width=2)
    draw.text((left, 12), title, fill="black", font=font)
    draw.text((left, 32), "RSS (MB) of the flow process vs exchange time processed (h); red: "
              "least-squares fit after warm-up; teardown not shown", fill=(80, 80, 80),
              font=font)
    draw.text((width // 2 - 60, height - 28), "exchange hours", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0,
                        help="exchange hours to replay [24]")
    parser.add_argument("--quick", action="store_true", help="a 1 h smoke run")
    parser.add_argument("--copies", type=int, default=4, help="copies of each real symbol [4]")
    parser.add_argument("--kafka", help="also write to Kafka at this bootstrap address")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling period, s [1]")
    parser.add_argument("--plot", type=Path, default=PLOT, help="PNG to write")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--trace", action="store_true",
                        help="tracemalloc in the child: top growth from 30 %% to 90 %% of input")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    hours = 1.0 if args.quick else args.hours
    made = time.perf_counter()
    files, trades = soak_tape(hours, args.copies)
    made = time.perf_counter() - made
    symbols = soak_symbols(args.copies)
    pairs = soak_pairs(args.copies)
    work = CACHE / "soak-run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = {"source": "replay", "files": [str(f) for f in files],
                "symbols": ",".join(symbols), "pairs": ",".join(pairs),
                "timeframes": ",".join(TIMEFRAMES), "window": WINDOW,
                "store": str(work / "soak.db"), "kafka": args.kafka,
                "kafka_prefix": f"soak{int(time.time())}." if args.kafka else None}
    stats = work / "stats.json"
    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; load average before: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"tape: {len(files)} files, {trades:,} trades, {hours:g} h of exchange time, "
          f"{sum(f.stat().st_size for f in files) / 1e6:.0f} MB gzip "
          f"({f'made in {made:.0f} s' if made > 5 else 'cached'})")
    print(f"flow: {len(symbols)} symbols, {len(pairs)} pairs, {','.join(TIMEFRAMES)}, "
          f"window {WINDOW}, store{' + Kafka' if args.kafka else ''}")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(settings),
               "--stats", str(stats)] + (["--trace"] if args.trace else [])
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT)
    samples = sample(child, stats, args.interval)
    code = child.wait()
    wall = time.perf_counter() - started
    if code != 0:
        sys.exit(f"the flow failed with exit code {code}")
    final = json.loads((work / "stats.json.final").read_text())
    totals = Counter(final["counts"])
    result = analyse(samples, len(symbols))
    with open(CACHE / "soak-samples.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["wall_s", "rss_mb", "exchange_hours", "ticks", "bars_1s", "pairs"])
        for s in samples:
            out.writerow([f"{s['wall_s']:.2f}", f"{s['rss_mb']:.1f}", f"{s['hours']:.4f}",
                          s["ticks"], s["counts"].get("bars:1s", 0),
                          s["counts"].get("pairs", 0)])
    _report(final, totals, samples, result, symbols, pairs, hours, wall, args)


def _report(final: dict, totals: Counter, samples: list, result: dict, symbols: list,
            pairs: list, hours: float, wall: float, args: argparse.Namespace) -> None:
    """Print the run's figures and draw the RSS plot."""
    load = os.getloadavg()
    elapsed = final["elapsed"]
    done_hours = totals.get("bars:1s", 0) / len(symbols) / 3600
    print(f"elapsed: {elapsed:.1f} s in the flow ({wall:.1f} s with start-up); "
          f"{totals['ticks_read'] / elapsed:,.0f} ticks/s; "
          f"{done_hours * 3600 / elapsed:,.0f}x real time; "
          f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("counters:")
    for name in ("frames", "ticks_read", "duplicates", "bars:1s", "bars:1m", "bars:5m",
                 "pairs", "alerts"):
        print(f"  {name:<12} {totals.get(name, 0):>12,}")
    for name, value in sorted(totals.items()):
        if name.startswith(("dead:", "skipped:")):
            print(f"  {name:<12} {value:>12,}")
    print(f"  {'dead total':<12} "
          f"{sum(v for k, v in totals.items() if k.startswith('dead:')):>12,}")
    peak = max(s["rss_mb"] for s in samples)
    print(f"RSS: {len(samples)} samples, peak {peak:.0f} MB; warm-up = first "
          f"{result['warmup_hours']:.2f} exchange h")
    if "slope_mb_per_hour" in result:
        print(f"RSS after warm-up: {result['rss_first']:.0f} → {result['rss_last']:.0f} MB "
              f"(min {result['rss_min']:.0f}, max {result['rss_max']:.0f}); least-squares "
              f"slope {result['slope_mb_per_hour']:+.2f} MB per exchange hour, "
              f"{result['slope_mb_per_mticks']:+.2f} MB per million ticks "
              f"({result['samples_fitted']} samples)")
        if hours < 12:
            print("  (the 1 m windows fill for 5 exchange h: a run this short is mostly warm-up "
                  "and its slope says little; use --hours 24)")
    if final.get("trace"):
        print("tracemalloc, top growth from 30 % to 90 % of the input:")
        for line in final["trace"]:
            print("  " + line)
    if not args.no_plot and samples:
        title = (f"pairflow soak: {done_hours:.1f} exchange h, "
                 f"{totals['ticks_read'] / 1e6:.1f} M ticks, {len(symbols)} symbols, "
                 f"{len(pairs)} pairs x 1s/1m/5m, window {WINDOW}")
        if "slope_mb_per_hour" in result:
            title += f"; slope {result['slope_mb_per_hour']:+.2f} MB/h"
        plot(samples, result, title, args.plot)
        shown = args.plot.relative_to(ROOT) if args.plot.is_relative_to(ROOT) else args.plot
        print(f"plot: {shown}")


if __name__ == "__main__":
    main()
