"""End-to-end latency of 1 s bars and pair records in a live run at real-time pace.

**Setup (one process tree).** This process starts a real Kafka broker
(:class:`tests.kafka_broker.KafkaBroker`), the local Binance test server
(``tests.binance_server``) in a child process replaying ``--seconds`` of the real tape from tape
offset ``--start`` at speed 1, and ``pairflow live --symbols BTCUSDT,ETHUSDT --pairs
BTCUSDT/ETHUSDT --timeframes 1s --kafka … --store … --ws-url … --rest-url …`` in another child
(``PAIRFLOW_LIVE_*`` variables of this process are passed on). While the flow runs, this
process tails the ``bars`` and ``pairs`` topics (a consumer assigned to every partition,
``fetch.wait.max.ms`` 5) and polls the SQLite store every ``--poll-ms`` ms (read-only, WAL),
noting the wall time each record is first seen.

**Tape time → wall time.** The server's tape clock starts at the first WebSocket connection
(``clock_start``, ``time.monotonic``) and publishes a trade of time ``T`` (ms) once
``tape_now = first_ms − 1 + int(elapsed · speed · 1000) >= T``, i.e. at

    W(T) = clock_start_wall + (T − first_ms + 1) / (1000 · speed)

where ``clock_start_wall`` is ``clock_start`` + (``time.time()`` − ``time.monotonic()``) in the
server process (offset sampled 200 times, the tightest pair kept). Its send loop then sends
within one 5 ms tick. Every process runs on one host, so Kafka ``CreateTime`` (set by
librdkafka at ``produce()``, ms), the consumer's and the store poller's wall times and ``W`` share
one clock.

**Measures** (1 s windows ``[E − 1 s, E)``, lateness ``L`` as configured, ``--lateness``):

- closable = ``W(E + L)``: the instant the watermark *could* reach ``E`` (a trade or heartbeat
  of time ``E + L`` published);
- closing trade = ``W(Tc)``, ``Tc`` the symbol's first tape trade with time ``>= E + L`` (for a
  pair, the later of the two legs): when data actually moved the watermark past ``E``;
- (a) closable → Kafka ``CreateTime``, split into closable → closing trade (waiting for data)
  and closing trade → ``CreateTime`` (the pipeline); also → consumer receive;
- (b) trade time → ``CreateTime`` − ``L``: for the last trade of the window, and over every
  trade of the window (each trade weighs once);
- (c) the same from closable / closing trade to first seen in the store.

Windows counted: ends from ``first_ms + --warmup`` to the last tape trade − ``L``; bars and
pairs are matched by key (``SYMBOL|1s`` + start, ``Y/X|1s`` + ts).

Run: ``.venv/bin/python bench/latency.py --seconds 90`` (figures in ``BENCHMARKS.latency.md``).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SYMBOLS = ("BTCUSDT", "ETHUSDT")
PAIR = "BTCUSDT/ETHUSDT"


# ------------------------------------------------------------------------------- server child


def _wall_minus_mono() -> float:
    """``time.time() − time.monotonic()``, from the tightest of 200 samples."""
    best = None
    for _ in range(200):
        a = time.monotonic()
        w = time.time()
        b = time.monotonic()
        if best is None or b - a < best[0]:
            best = (b - a, w - (a + b) / 2)
    return best[1]


def serve(start: float, seconds: float, speed: float) -> None:
    """Child: run the test server; print its URLs, then the wall time of its tape clock start."""
    from tests.binance_server import BinanceTestServer, Tape

    tape = Tape.load(start, seconds)
    with BinanceTestServer(tape, speed) as server:
        print(json.dumps({"ws": server.ws_url, "rest": server.rest_url,
                          "first_ms": tape.first_ms, "last_ms": tape.last_ms,
                          "trades": len(tape.trades)}), flush=True)
        while server._clock_start is None:  # noqa: SLF001 - the tape clock's origin
            time.sleep(0.001)
        wall = server._clock_start + _wall_minus_mono()  # noqa: SLF001
        print(json.dumps({"clock_start_wall": wall}), flush=True)
        sys.stdin.read()  # until the parent closes our stdin
        print(json.dumps({"stats": dict(server.stats)}), flush=True)


# ------------------------------------------------------------------------------- flow child


def flow_child(argv: list[str]) -> None:
    """Child: ``pairflow`` with ``argv``."""
    from app.cli import main

    sys.argv = ["pairflow", *argv]
    main()


# ------------------------------------------------------------------------------- observers


class StorePoller(threading.Thread):
    """Poll the store; first-seen wall time of each 1 s bar and pair row."""

    def __init__(self, path: Path, every_s: float):
        super().__init__(daemon=True, name="store-poller")
        self.path, self.every_s = path, every_s
        self.seen: dict[tuple, float] = {}
        self.stop = threading.Event()
        self.polls = 0

    def run(self) -> None:
        con = None
        rowids = {"bars": 0, "pairs": 0}
        while not self.stop.is_set():
            try:
                if con is None:
                    if not self.path.exists():
                        time.sleep(self.every_s)
                        continue
                    con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1)
                for table, sql in (
                        ("bars", "SELECT rowid, symbol, start FROM bars WHERE rowid > ? "
                                 "AND timeframe = '1s'"),
                        ("pairs", "SELECT rowid, pair, ts FROM pairs WHERE rowid > ? "
                                  "AND timeframe = '1s'")):
                    rows = con.execute(sql, (rowids[table],)).fetchall()
                    now = time.time()
                    for rowid, key, ts in rows:
                        self.seen.setdefault((table, key, ts), now)
                        rowids[table] = max(rowids[table], rowid)
                self.polls += 1
            except sqlite3.Error:
                pass  # table not created yet, or busy: next poll
            time.sleep(self.every_s)


class KafkaTail(threading.Thread):
    """Tail the bars and pairs topics: (CreateTime ms, receive wall s, value) per record."""

    def __init__(self, bootstrap: str, topics: list[str]):
        super().__init__(daemon=True, name="kafka-tail")
        self.bootstrap, self.topics = bootstrap, topics
        self.got: list[tuple[str, int, float, dict]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import msgspec
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "latency-bench",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 5,
                             "fetch.min.bytes": 1, "log_level": 3})
        parts = []
        for topic in self.topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(parts)
        try:
            while not self.stop.is_set():
                for msg in consumer.consume(500, 0.05):
                    now = time.time()
                    if msg.error() is not None:
                        continue
                    self.got.append((msg.topic(), msg.timestamp()[1], now,
                                     msgspec.json.decode(msg.value())))
        finally:
            consumer.close()


# ------------------------------------------------------------------------------- analysis


def _pct(values: list[float]) -> tuple[int, float, float, float, float]:
    import numpy as np

    if not values:
        return 0, float("nan"), float("nan"), float("nan"), float("nan")
    a = np.asarray(values, np.float64)
    return (len(a), float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max()),
            float(a.min()))


class _Latencies:
    """Latency samples per label, in ms, of the 1 s records a run published."""

    def __init__(self, tape, clock_wall: float, lateness_s: float, warmup_s: float,
                 store: dict) -> None:
        self.first = tape.first_ms
        self.clock_wall = clock_wall
        self.lateness_s = lateness_s
        self.lat_ms = int(round(lateness_s * 1000))
        self.times = {s: sorted(t.time_ms for t in tape.by_symbol.get(s, [])) for s in SYMBOLS}
        self.lo_end = self.first + int(warmup_s * 1000)
        self.hi_end = tape.last_ms - self.lat_ms
        self.store = store
        self.rows: dict[str, list[float]] = {}

    def wall(self, t_ms: float) -> float:
        return self.clock_wall + (t_ms - self.first + 1) / 1000.0

    def closing_ms(self, symbol: str, end_ms: int) -> int | None:
        ts = self.times[symbol]
        i = bisect.bisect_left(ts, end_ms + self.lat_ms)
        return ts[i] if i < len(ts) else None

    def window_trades(self, legs: list[str], end_ms: int) -> list[int]:
        return [t for s in legs for t in self.times[s][
            bisect.bisect_left(self.times[s], end_ms - 1000):
            bisect.bisect_left(self.times[s], end_ms)]]

    def add(self, label: str, value: float) -> None:
        self.rows.setdefault(label, []).append(value * 1000.0)

    def record(self, kind: str, create_ms: float, recv: float, value: dict) -> None:
        end_ms = (value["end"] if kind == "bars" else value["ts"]) // 1000
        if not self.lo_end <= end_ms <= self.hi_end:
            return
        legs = [value["symbol"]] if kind == "bars" else PAIR.split("/")
        closings = [self.closing_ms(s, end_ms) for s in legs]
        if any(c is None for c in closings):
            return
        closable = self.wall(end_ms + self.lat_ms)
        closing = self.wall(max(closings))
        create = create_ms / 1000.0
        add = self.add
        add(f"{kind}: (a) closable -> Kafka CreateTime", create - closable)
        add(f"{kind}:     closable -> closing trade published", closing - closable)
        add(f"{kind}:     closing trade -> Kafka CreateTime", create - closing)
        add(f"{kind}:     closable -> consumer receive", recv - closable)
        add(f"{kind}:     Kafka CreateTime -> consumer receive", recv - create)
        window = self.window_trades(legs, end_ms)
        last = self.wall(max(window)) + self.lateness_s if window else None
        if window:
            add(f"{kind}: (b) last trade -> Kafka - L", create - last)
            for t in window:
                add(f"{kind}: (b) every trade -> Kafka - L",
                    create - self.wall(t) - self.lateness_s)
        key = (kind, value["symbol"] if kind == "bars" else value["pair"],
               value["start"] if kind == "bars" else value["ts"])
        seen = self.store.get(key)
        if seen is not None:
            add(f"{kind}: (c) closable -> store first seen", seen - closable)
            add(f"{kind}:     closing trade -> store first seen", seen - closing)
            if window:
                add(f"{kind}: (c) last trade -> store - L", seen - last)


def analyse(tape, clock_wall: float, lateness_s: float, warmup_s: float, kafka: list,
            store: dict) -> list[tuple[str, tuple]]:
    """Rows ``(label, (n, p50, p99, max, min))`` in ms."""
    latencies = _Latencies(tape, clock_wall, lateness_s, warmup_s, store)
    for topic, create_ms, recv, value in kafka:
        if value.get("timeframe") == "1s":
            latencies.record("bars" if topic.endswith("bars") else "pairs", create_ms, recv,
                             value)
    rows = latencies.rows
    order = sorted(rows, key=lambda k: (k.split(":")[0] != "bars", list(rows).index(k)))
    return [(label, _pct(rows[label])) for label in order]


# ------------------------------------------------------------------------------- driver


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="tape slice, s (60–120)")
    parser.add_argument("--start", type=float, default=200.0, help="tape offset, s")
    parser.add_argument("--speed", type=float, default=1.0, help="tape seconds per second")
    parser.add_argument("--lateness", type=float, default=2.0, help="flow lateness, s")
    parser.add_argument("--warmup", type=float, default=5.0, help="tape s not counted")
    parser.add_argument("--poll-ms", type=float, default=3.0, help="store poll period")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--heartbeat", choices=("source", "wallclock"), default="source",
                        help="source: heartbeats capped at each symbol's last trade (default "
                             "live setting); wallclock: PAIRFLOW_LIVE_HEARTBEAT_WALLCLOCK=true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flow-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flow_child is not None:
        flow_child(args.flow_child)
        return 0
    if args.serve:
        serve(args.start, args.seconds, args.speed)
        return 0

    from connectors.kafka import ensure_topics, topic_for
    from tests.binance_server import Tape
    from tests.kafka_broker import KafkaBroker

    tape = Tape.load(args.start, args.seconds)
    work = Path(tempfile.mkdtemp(prefix="pairflow-latency-"))
    store_path = work / "live.db"
    load0 = os.getloadavg()
    with KafkaBroker(data_dir=work / "kafka") as broker:
        topics = [topic_for("bar"), topic_for("pair")]
        ensure_topics(broker.bootstrap, [topic_for(k) for k in
                                         ("tick", "bar", "pair", "alert", "deadletter",
                                          "health")], 3)
        tail = KafkaTail(broker.bootstrap, topics)
        tail.start()
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--start", str(args.start), "--seconds",
             str(args.seconds), "--speed", str(args.speed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        info = json.loads(server.stdout.readline())
        poller = StorePoller(store_path, args.poll_ms / 1000)
        poller.start()
        duration = args.seconds / args.speed + 4
        flow = subprocess.Popen(
            [sys.executable, __file__, "--flow-child", "live",
             "--symbols", ",".join(SYMBOLS), "--pairs", PAIR, "--timeframes", "1s",
             "--kafka", broker.bootstrap, "--store", str(store_path),
             "--ws-url", info["ws"], "--rest-url", info["rest"], "--duration", str(duration),
             "--lateness", str(args.lateness)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PAIRFLOW_LIVE_HEARTBEAT_WALLCLOCK":
                 "true" if args.heartbeat == "wallclock" else "false"})
        clock = json.loads(server.stdout.readline())["clock_start_wall"]
        out, _ = flow.communicate(timeout=duration + 120)
        time.sleep(1.0)  # the tail catches up
        load1 = os.getloadavg()
        server.stdin.close()
        stats = server.stdout.read()
        server.wait(30)
        poller.stop.set()
        tail.stop.set()
        tail.join(10)
        poller.join(10)
    if flow.returncode != 0:
        print(out)
        print(f"flow exited {flow.returncode}")
        return 1
    table = analyse(tape, clock, args.lateness, args.warmup, tail.got, poller.seen)
    print(f"heartbeat {args.heartbeat}, PAIRFLOW_LIVE_* "
          f"{ {k: v for k, v in os.environ.items() if k.startswith('PAIRFLOW_LIVE_')} }")
    print(f"tape {args.start:g}+{args.seconds:g} s ({info['trades']} trades), speed "
          f"{args.speed:g}, lateness {args.lateness:g} s, records {len(tail.got)}, store polls "
          f"{poller.polls}, load {load0[0]:.2f} -> {load1[0]:.2f}")
    print(f"server {stats.strip()}")
    print("flow: " + " | ".join(line.strip() for line in out.strip().splitlines()[-8:]))
    print(f"{'measure (ms)':<48}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}{'min':>9}")
    for label, (n, p50, p99, mx, mn) in table:
        print(f"{label:<48}{n:>6}{p50:>9.1f}{p99:>9.1f}{mx:>9.1f}{mn:>9.1f}")
    goal = dict(table).get("bars: (a) closable -> Kafka CreateTime")
    if goal:
        print(f"goal: window close -> Kafka p99 <= 100 ms: bars p99 {goal[2]:.1f} ms "
              f"({'met' if goal[2] <= 100 else 'missed'})")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "load": [load0, load1], "rows": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
