"""Load bench of the dashboard: the server's cost per session, and one browser's frame time.

Two measurements, kept apart so that neither pays for the other (issue 16):

* ``--mode server``: N Bokeh sessions, each opened like a browser does (the page's GET creates
  the session, a websocket subscribes to it) but by a bare websocket client that only counts the
  bytes it receives. A writer appends one new bar (two legs' bars and the pair statistics) per
  second. Measured: the server's CPU time with N sessions against the same run with none (same
  process, side by side), bytes sent per new bar per session, RSS per session.
* ``--mode browser``: one headless Chromium page; the same writer. Measured in the page: the
  time from a websocket message's arrival to the end of the next painted frame, per new bar
  (the whole update: Bokeh applying the patches, the charts' re-fit and repaint), and the
  browser's long-animation-frame entries (frames over 50 ms).

    .venv/bin/python bench/dashboard_load.py --mode server --sessions 50 --seconds 30
    .venv/bin/python bench/dashboard_load.py --mode browser --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
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
LOADED = """() => { const d = window.Bokeh && Bokeh.documents[0];
  const s = d && d.get_model_by_name('pair_source'); return !!s && s.data.t.length > 0 }"""
#: In the page, before Bokeh loads: stamp each websocket message's arrival, then the end of the
#: frame painted after it (two animation frames later the paint is done).
FRAME_PROBE = """
window.__frames = []; window.__loaf = [];
const Orig = window.WebSocket;
window.WebSocket = function (...a) {
  const ws = new Orig(...a);
  ws.addEventListener('message', () => {
    const t0 = performance.now();
    if (window.__pending == null) {
      window.__pending = t0;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        window.__frames.push([window.__pending, performance.now()]); window.__pending = null }));
    }
  });
  return ws;
};
window.WebSocket.prototype = Orig.prototype;
Object.assign(window.WebSocket, Orig);
try {
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__loaf.push(e.duration) })
    .observe({type: 'long-animation-frame', buffered: true});
} catch (e) {}
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class BarWriter:
    """Appends one new bar of ``PAIR`` (1 s) per second to the store, on a thread."""

    def __init__(self, store: Path) -> None:
        reader = StoreReader(store)
        self.last = list(reader.query("pairs", {"pair": PAIR, "timeframe": "1s"}, limit=1,
                                      descending=True))[0]
        self.bars = [list(reader.query("bars", {"symbol": s, "timeframe": "1s"}, limit=1,
                                       descending=True))[0] for s in ("BTCUSDT", "ETHUSDT")]
        reader.close()
        self.store = store
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        writer = StoreWriter(self.store)
        ts = self.last["ts"]
        next_at = time.monotonic()
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            ts += 1_000_000
            records = [dataclasses.replace(from_dict(Bar, b), start=ts - 1_000_000, end=ts)
                       for b in self.bars]
            records.append(dataclasses.replace(from_dict(PairStats, self.last), ts=ts))
            writer.write(records)
            self.written += 1
            next_at += 1.0
        writer.close()

    def __enter__(self) -> BarWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_store() -> Path:
    work = Path(tempfile.mkdtemp(prefix="pairflow-bench-"))
    replay = work / "replay.db"
    pairflow("replay", *map(str, sorted(DATA.glob("*.gz"))), "--symbols", "BTCUSDT,ETHUSDT",
             "--pairs", "BTCUSDT/ETHUSDT,ETHUSDT/BTCUSDT", "--timeframes", "1s,1m",
             "--window", "120", "--store", str(replay))
    return copy_store(replay, work / "store.db")


def server_process() -> psutil.Process:
    return [c for c in psutil.Process().children(recursive=True)
            if "app.dashboard" in " ".join(c.cmdline())][0]


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


async def _session(url: str, received: list[int], ready: asyncio.Event,
                   stop: asyncio.Event) -> None:
    """One session as a browser opens it; counts the bytes the server sends it."""
    import websockets

    page = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
    token = re.search(r'"token":\s*"([^"]+)"', page).group(1)
    ws_url = url.replace("http://", "ws://").rstrip("/") + "/ws"
    async with websockets.connect(ws_url, subprotocols=["bokeh", token], max_size=None,
                                  origin=url.rstrip("/"), open_timeout=300) as ws:
        ready.set()
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            received[0] += len(message)


def bench_server(url: str, store: Path, sessions: int, seconds: float) -> None:
    server = server_process()
    rss0 = server.memory_info().rss
    with BarWriter(store) as writer:  # no session: the server's own cost (feed, idle)
        time.sleep(2.0)
        c0, n0 = cpu_s(server), writer.written
        time.sleep(seconds)
        idle_cpu, idle_bars = cpu_s(server) - c0, writer.written - n0

    async def run() -> tuple[float, int, list[int], float]:
        counters = [[0] for _ in range(sessions)]
        stop = asyncio.Event()
        readies = [asyncio.Event() for _ in range(sessions)]
        tasks = []
        for i in range(sessions):  # one after the other, as users arrive
            tasks.append(asyncio.create_task(_session(url, counters[i], readies[i], stop)))
            ready, task = readies[i], tasks[i]
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait({waiter, task}, timeout=300, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # a session that failed to open: its error
            if not ready.is_set():
                raise TimeoutError("a session did not open within 300 s")
        await asyncio.sleep(5.0)  # the sessions' first tick and history sent
        rss = server.memory_info().rss
        with BarWriter(store) as writer:
            await asyncio.sleep(2.0)
            before = [c[0] for c in counters]
            c0, n0 = cpu_s(server), writer.written
            await asyncio.sleep(seconds)
            cpu, bars = cpu_s(server) - c0, writer.written - n0
            sent = [c[0] - b for c, b in zip(counters, before, strict=True)]
        stop.set()
        await asyncio.gather(*tasks)
        return cpu, bars, sent, rss

    cpu, bars, sent, rss = asyncio.run(run())
    idle_ms_per_s = 1000 * idle_cpu / seconds
    load_ms_per_s = 1000 * cpu / seconds
    per_session_bar = (load_ms_per_s - idle_ms_per_s) / sessions  # one bar per second
    print(f"server, {sessions} sessions, {seconds:.0f} s, {bars} new bars (1/s); baseline "
          f"without sessions {idle_bars} bars")
    print(f"  server CPU ms/s: no session {idle_ms_per_s:.1f}, {sessions} sessions "
          f"{load_ms_per_s:.1f} ({load_ms_per_s / 10:.1f} % of one core)")
    print(f"  per session per new bar: CPU {per_session_bar:.2f} ms, sent "
          f"{statistics.mean(sent) / max(bars, 1) / 1024:.2f} KiB (min "
          f"{min(sent) / max(bars, 1) / 1024:.2f}, max {max(sent) / max(bars, 1) / 1024:.2f})")
    print(f"  → sessions within one core at 1 bar/s: {1000 / max(per_session_bar, 1e-9):.0f}")
    print(f"  server RSS MiB: before sessions {rss0 / 2**20:.0f}, with {sessions} "
          f"{rss / 2**20:.0f} → {(rss - rss0) / sessions / 2**20:.2f} MiB per session; peak "
          f"bench RSS {psutil.Process().memory_info().rss / 2**20:.0f} MiB")


def bench_browser(url: str, store: Path, seconds: float) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        page.add_init_script(FRAME_PROBE)
        page.goto(url + f"?pair={PAIR}&timeframe=1s")
        page.wait_for_function(LOADED, timeout=120_000)
        page.wait_for_timeout(3000)
        page.evaluate("() => { window.__frames = []; window.__loaf = [] }")
        with BarWriter(store) as writer:
            page.wait_for_timeout(seconds * 1000)
        frames = [end - start for start, end in page.evaluate("() => window.__frames")]
        loaf = page.evaluate("() => window.__loaf")
        browser.close()
    print(f"browser, 1 page 1600×1000, {seconds:.0f} s, {writer.written} new bars, "
          f"{len(frames)} updates painted")
    print(f"  message → painted frame ms: p50 {percentile(frames, 50):.1f}, p95 "
          f"{percentile(frames, 95):.1f}, max {max(frames):.1f}")
    print(f"  long animation frames (> 50 ms): {len(loaf)}"
          + (f", longest {max(loaf):.0f} ms" if loaf else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("server", "browser"), default="server")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    store = make_store()
    print(f"load average {' '.join(f'{v:.2f}' for v in psutil.getloadavg())}, "
          f"{psutil.cpu_count()} cores")
    with dashboard_server("--store", str(store)) as url:
        if args.mode == "server":
            bench_server(url, store, args.sessions, args.seconds)
        else:
            bench_browser(url, store, args.seconds)


if __name__ == "__main__":
    main()
