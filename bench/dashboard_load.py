"""Load bench: N concurrent headless Chromium sessions on one dashboard server for T seconds.

A writer appends one new bar pair + pair-statistics row to the store every second; each page
records (in the browser) when the new bar shows up in its chart source. Prints the server's
CPU and RSS over the run and the update latency "row committed to the store → in the page".

    .venv/bin/python bench/dashboard_load.py [--sessions 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.store import StoreReader, StoreWriter  # noqa: E402
from pairflow.records import Bar, PairStats, from_dict  # noqa: E402
from tests.ui.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    DATA,
    copy_store,
    dashboard_server,
    pairflow,
)

PAIR = "BTCUSDT/ETHUSDT"
WATCH = """() => { window.__seen = {}; const src = Bokeh.documents[0]
  .get_model_by_name('pair_source'); let n = -1;
  const check = () => { const t = src.data.t; if (t.length && t[t.length - 1] !== n) {
      n = t[t.length - 1]; window.__seen[n] = Date.now(); } };
  src.change.connect(check); src.streaming.connect(check); setInterval(check, 10); }"""
LOADED = """() => { const d = window.Bokeh && Bokeh.documents[0];
  const s = d && d.get_model_by_name('pair_source'); return !!s && s.data.t.length > 0 }"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="pairflow-bench-"))
    replay = work / "replay.db"
    pairflow("replay", *map(str, sorted(DATA.glob("*.gz"))), "--symbols", "BTCUSDT,ETHUSDT",
             "--pairs", "BTCUSDT/ETHUSDT,ETHUSDT/BTCUSDT", "--timeframes", "1s,1m",
             "--window", "120", "--store", str(replay))
    store = copy_store(replay, work / "store.db")
    with dashboard_server("--store", str(store)) as url, sync_playwright() as p:
        server = [c for c in psutil.Process().children(recursive=True)
                  if "app.dashboard" in " ".join(c.cmdline())][0]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = []
        for _ in range(args.sessions):
            page = browser.new_context(viewport={"width": 1400, "height": 1200}).new_page()
            page.goto(url)
            pages.append(page)
        for page in pages:
            page.wait_for_function(LOADED, timeout=120_000)
            page.evaluate(WATCH)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            server.cpu_percent()
            while not stop.wait(1.0):
                samples.append((server.cpu_percent(), server.memory_info().rss / 2**20))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        reader = StoreReader(store)
        writer = StoreWriter(store)
        last = list(reader.query("pairs", {"pair": PAIR, "timeframe": "1s"}, limit=1,
                                 descending=True))[0]
        bars = [list(reader.query("bars", {"symbol": s, "timeframe": "1s"}, limit=1,
                                  descending=True))[0] for s in ("BTCUSDT", "ETHUSDT")]
        written: dict[float, float] = {}
        started = time.time()
        ts = last["ts"]
        while time.time() - started < args.seconds:
            ts += 1_000_000
            records = [dataclasses.replace(from_dict(Bar, b), start=ts - 1_000_000, end=ts)
                       for b in bars]
            records.append(dataclasses.replace(from_dict(PairStats, last), ts=ts))
            writer.write(records)
            written[ts / 1000] = time.time() * 1000
            deadline = time.time() + 1.0
            for page in pages:  # keep the pages' event loops served while we wait
                page.wait_for_timeout(max(0, (deadline - time.time()) * 1000 / len(pages)))
            while time.time() < deadline:
                time.sleep(0.01)
        pages[0].wait_for_timeout(2000)
        stop.set()
        latencies, missing = [], 0
        for page in pages:
            seen = page.evaluate("() => window.__seen")
            for t, at in written.items():
                key = next((k for k in seen if abs(float(k) - t) < 0.5), None)
                if key is None:
                    missing += 1
                else:
                    latencies.append(seen[key] - at)
        browser.close()
    cpu = [c for c, _ in samples]
    rss = [r for _, r in samples]
    print(f"sessions {args.sessions}, {args.seconds:.0f} s, {len(written)} new bars, "
          f"{len(latencies)} observed updates, {missing} missed")
    print(f"update latency ms: p50 {percentile(latencies, 50):.0f}, "
          f"p95 {percentile(latencies, 95):.0f}, p99 {percentile(latencies, 99):.0f}, "
          f"max {max(latencies):.0f}")
    print(f"server CPU %: mean {statistics.mean(cpu):.1f}, max {max(cpu):.1f} "
          f"(100 = one core; {psutil.cpu_count()} cores)")
    third = max(1, len(rss) // 3)
    print(f"server RSS MiB: first {rss[0]:.0f}, first-third mean "
          f"{statistics.mean(rss[:third]):.0f}, last-third mean "
          f"{statistics.mean(rss[-third:]):.0f}, max {max(rss):.0f}")


if __name__ == "__main__":
    main()
