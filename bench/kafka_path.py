"""The Kafka path, timed as whole processes: produce, one worker, two workers, close latency.

Needs a broker (``--bootstrap``, or one started here with ``tests.kafka_broker``). The input is
bench/tapes.py's looped spot recording (BTCUSDT + ETHUSDT, ``--ticks`` trades). Each phase runs the
real commands in subprocesses and times them from start to exit, the ``ticks`` topic in both
message forms side by side: tick batches (the default) and one tick per message (the baseline,
``kafka_tick_form = "tick"``):

1. **produce**: ``pairflow replay TAPE --ticks-to-kafka`` (1m bars to a store as well), once per
   form, each into its own topics (created before, as an operator would), against the same
   replay without Kafka (same process layout);
2. **one worker**: ``python -m bytewax.run flows.pairs:flow`` with ``source = "kafka"``,
   ``kafka_follow = false``, 1s/1m/5m bars to SQLite, reading each form's topic; its start-up
   and end alone are timed over an empty topic, so the rate after start-up is shown too; the
   bars of every run are compared with an in-process replay's;
3. **two workers**: the same flow as two processes (``-i 0/1 -a …``) over the batch topic;
4. **close latency**: ticks (as batches) and 50 ms heartbeats stamped with the wall clock are
   published at ``--rate`` ticks/s for ``--seconds``; one tailing worker publishes 1s bars to
   Kafka; the latency of a bar is when it is read from the ``bars`` topic minus when its window
   could close (its end plus the allowed lateness).

The ``ticks`` topic has 2 partitions: the keys BTCUSDT and ETHUSDT hash to different ones, so
each worker process owns one symbol (with 3 partitions both hash to partition 0).

Before them, the pieces side by side in this process on 200 k synthetic ticks: encoding,
encoding + producing (delivered) and decoding a poll, batch form against per-tick form.

Usage: ``python bench/kafka_path.py [--ticks 1000000] [--bootstrap HOST:PORT]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
import tapes  # noqa: E402

from tests.helpers import free_ports  # noqa: E402

PARTITIONS = 2
SYMBOLS = "BTCUSDT,ETHUSDT"


def _env(**settings: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    return {**base, **{f"PAIRFLOW_{k.upper()}": v for k, v in settings.items()}}


def _timed(commands: list[list[str]], envs: list[dict[str, str]]) -> tuple[float, float]:
    """Run the commands at once to their end: (wall seconds, CPU seconds of all of them).

    CPU seconds (user + system of the processes) are the figure that holds on a shared
    machine, where the wall time also counts waiting for a core.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for cmd, env in zip(commands, envs, strict=True)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{proc.args} failed ({proc.returncode}): {err[-2000:]}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _rate(ticks: int, timing: tuple[float, float]) -> str:
    wall, cpu = timing
    return (f"{ticks / wall / 1e3:6.0f} k ticks/s ({wall:5.1f} s wall), "
            f"{ticks / cpu / 1e3:6.0f} k ticks/CPU-s ({cpu:5.1f} s CPU)")


def _bars(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as db:
        return sorted(db.execute("SELECT * FROM bars"))


def _replay(tape: Path, store: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", "replay", str(tape), "--symbols", SYMBOLS,
            "--timeframes", "1m", "--store", str(store), *extra]


FORMS = ("batch", "tick")


def produce(tape: Path, ticks: int, bootstrap: str, prefixes: dict[str, str], work: Path) -> None:
    """Each form into its own topics (``prefixes[form]``, created first as an operator would),
    and the replay alone."""
    from connectors.kafka import TOPIC_SUFFIXES, ensure_topics

    for prefix in prefixes.values():
        ensure_topics(bootstrap, [prefix + suffix for suffix in TOPIC_SUFFIXES.values()],
                      PARTITIONS)
    env = _env(kafka_partitions=str(PARTITIONS))
    base = _timed([_replay(tape, work / "base.db")], [env])
    print(f"produce: replay alone                     {_rate(ticks, base)}")
    for form in FORMS:
        timing = _timed([_replay(tape, work / f"produce-{form}.db", "--kafka", bootstrap,
                                 "--kafka-prefix", prefixes[form], "--ticks-to-kafka",
                                 "--kafka-tick-form", form)], [env])
        print(f"         replay --ticks-to-kafka ({form:5}) {_rate(ticks, timing)}; Kafka "
              f"{(timing[1] - base[1]) / ticks * 1e6:.2f} us CPU per tick")


def workers(tape: Path, ticks: int, bootstrap: str, prefixes: dict[str, str],
            work: Path) -> None:
    """One worker per form, two workers over the batch topic; start-up alone over an empty
    topic, so the rates after start-up are shown too."""
    from connectors.kafka import TOPIC_SUFFIXES, ensure_topics

    flow = [sys.executable, "-m", "bytewax.run", "flows.pairs:flow"]
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    two_flows = [[*flow, "-i", str(i), "-a", addresses] for i in range(2)]

    def settings(prefix: str, store: str) -> dict[str, str]:
        return _env(source="kafka", kafka=bootstrap, kafka_prefix=prefix, kafka_follow="false",
                    kafka_partitions=str(PARTITIONS), symbols=SYMBOLS, timeframes="1s,1m,5m",
                    store=str(work / store))

    empty = f"empty{uuid.uuid4().hex[:8]}."
    ensure_topics(bootstrap, [empty + suffix for suffix in TOPIC_SUFFIXES.values()], PARTITIONS)
    idle = {1: _timed([flow], [settings(empty, "empty1.db")]),
            2: _timed(two_flows, [settings(empty, "empty2.db")] * 2)}
    print(f"start-up and end alone (an empty topic): one worker {idle[1][0]:.1f} s wall, "
          f"{idle[1][1]:.1f} s CPU; two workers {idle[2][0]:.1f} s wall, {idle[2][1]:.1f} s CPU")

    def line(name: str, workers: int, timing: tuple[float, float]) -> str:
        after = [ticks / (t - i) / 1e3 for t, i in zip(timing, idle[workers], strict=True)]
        return (f"{name}: {_rate(ticks, timing)} | after start-up {after[0]:.0f} k ticks/s, "
                f"{after[1]:.0f} k ticks/CPU-s")

    stores, runs = [], {}
    for form in FORMS:
        runs[form] = _timed([flow], [settings(prefixes[form], f"one-{form}.db")])
        stores.append(work / f"one-{form}.db")
        print(line(f"one worker ({form:5})", 1, runs[form]))
    two = _timed(two_flows, [settings(prefixes["batch"], "two.db")] * 2)
    stores.append(work / "two.db")
    one = runs["batch"]
    print(f"{line('two workers (batch)', 2, two)}\n"
          f"  two vs one: {one[0] / two[0]:.2f}x wall, after start-up "
          f"{(one[0] - idle[1][0]) / (two[0] - idle[2][0]):.2f}x")
    reference = _timed([[sys.executable, "-m", "app.cli", "replay", str(tape), "--symbols",
                         SYMBOLS, "--timeframes", "1s,1m,5m", "--store", str(work / "ref.db")]],
                       [_env()])
    expected = _bars(work / "ref.db")
    same = all(_bars(store) == expected for store in stores)
    print(f"in-process replay:   {_rate(ticks, reference)}\n"
          f"bars of every worker run identical to the in-process replay's: {same}")


def latency(bootstrap: str, prefix: str, work: Path, rate: int, seconds: float) -> None:
    import numpy as np
    from confluent_kafka import Consumer, TopicPartition

    from connectors.kafka import DeliveryStats, ensure_topics, topic_for
    from connectors.kafka.producer import DeliveringProducer, producer_config
    from connectors.kafka.wire import KIND_HEADER, TICKS_KIND, encode_batches, encode_mark
    from pairflow.ticks import Heartbeat, TickChunk

    lateness_s = 0.05
    ensure_topics(bootstrap, [topic_for(k, prefix) for k in ("tick", "bar")], PARTITIONS)
    worker = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.pairs:flow"], cwd=ROOT,
        env=_env(source="kafka", kafka=bootstrap, kafka_prefix=prefix, symbols=SYMBOLS,
                 timeframes="1s", lateness_s=str(lateness_s),
                 kafka_partitions=str(PARTITIONS)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    bars_topic = topic_for("bar", prefix)
    consumer.assign([TopicPartition(bars_topic, p, 0) for p in range(PARTITIONS)])
    arrivals: list[tuple[int, int]] = []  # (bar end µs, read at µs)
    stop = threading.Event()

    def read() -> None:
        import msgspec

        while not stop.is_set():
            for msg in consumer.consume(1000, 0.05):
                if msg.error() is None:
                    end = msgspec.json.decode(msg.value())["end"]
                    arrivals.append((end, time.time_ns() // 1000))

    reader = threading.Thread(target=read)
    reader.start()
    producer = DeliveringProducer(producer_config(bootstrap), DeliveryStats(), "bench")
    topic = topic_for("tick", prefix)
    time.sleep(3)  # the worker starts
    started = time.monotonic()
    trade_id = 1
    tick_every = 0.01
    while time.monotonic() - started < seconds:
        now = time.time_ns() // 1000
        n = max(1, int(rate * tick_every / 2))
        for symbol in SYMBOLS.split(","):
            ts = np.full(n, now, np.int64)
            ids = np.arange(trade_id, trade_id + n, dtype=np.int64)
            chunk = TickChunk(symbol, "live", ts, ts, ids, ids, ids, np.full(n, 100.0),
                              np.full(n, 0.1), np.zeros(n, bool))
            for value in encode_batches(chunk):
                producer.produce(topic, symbol, value, headers=[(KIND_HEADER, TICKS_KIND)])
            if int(now / 50_000) != int((now - tick_every * 1e6) / 50_000):
                kind, value = encode_mark(Heartbeat(symbol, now))
                producer.produce(topic, symbol, value, headers=[(KIND_HEADER, kind.encode())])
        trade_id += n
        producer.poll(0)
        time.sleep(tick_every)
    producer.close()
    time.sleep(2)
    worker.terminate()
    worker.wait(30)
    stop.set()
    reader.join()
    consumer.close()
    lat_ms = np.array([(read - (end + lateness_s * 1e6)) / 1000 for end, read in arrivals])
    lat_ms = lat_ms[2:]  # the first windows opened before the worker caught up
    print(f"close latency (1s bars, heartbeats every 50 ms, lateness {lateness_s * 1e3:.0f} ms,"
          f" {rate} ticks/s): {len(lat_ms)} bars, p50 {np.percentile(lat_ms, 50):.0f} ms,"
          f" p99 {np.percentile(lat_ms, 99):.0f} ms, max {lat_ms.max():.0f} ms")


def components(bootstrap: str, prefix: str, n: int = 200_000) -> None:
    """The tick path's pieces side by side in this process: batch form against per-tick form."""
    import numpy as np

    from connectors.kafka import DeliveryStats, ensure_topics, topic_for
    from connectors.kafka.producer import DeliveringProducer, producer_config
    from connectors.kafka.wire import (
        KIND_HEADER,
        TICKS_KIND,
        decode_poll,
        encode_batches,
        encode_ticks,
    )
    from pairflow.ticks import TickChunk

    rng = np.random.default_rng(1)
    ts = 1_723_161_255_342_000 + np.cumsum(rng.integers(0, 3_000, n))
    ids = 3_735_683_259 + np.arange(n)
    chunk = TickChunk("BTCUSDT", "replay", ts, ts + 900, ids, ids, ids,
                      np.round(61_000 + rng.standard_normal(n), 2), np.round(rng.random(n), 5),
                      rng.random(n) < 0.5)
    topic = topic_for("tick", prefix)
    ensure_topics(bootstrap, [topic], PARTITIONS)
    slices = [chunk.take(slice(start, start + 10_000)) for start in range(0, n, 10_000)]

    def timed(step) -> float:
        started = time.perf_counter()
        step()
        return n / (time.perf_counter() - started) / 1e3

    def ready_producer() -> DeliveringProducer:
        # A new idempotent producer delivers nothing until it has its producer id, which
        # takes a variable 0-1 s: one record delivered first keeps that out of the timing.
        producer = DeliveringProducer(producer_config(bootstrap), DeliveryStats(), "bench")
        producer.produce(topic, "warm-up", b"{}")
        producer.flush()
        return producer

    def produce_batches(producer: DeliveringProducer) -> None:
        for part in slices:
            for value in encode_batches(part):
                producer.produce(topic, "BTCUSDT", value, headers=[(KIND_HEADER, TICKS_KIND)])
        producer.close()

    def produce_ticks(producer: DeliveringProducer) -> None:
        for part in slices:
            producer.produce_values(topic, "BTCUSDT", encode_ticks(part))
        producer.close()

    # A poll's worth of messages (10 k ticks) at a time, as a worker decodes them.
    batches = [encode_batches(part) for part in slices]
    ticks = [encode_ticks(part) for part in slices]
    rates = {
        "encode": (timed(lambda: [encode_batches(p) for p in slices]),
                   timed(lambda: [encode_ticks(p) for p in slices])),
        "encode+produce, delivered": (timed(partial(produce_batches, ready_producer())),
                                      timed(partial(produce_ticks, ready_producer()))),
        "decode a poll": (timed(lambda: [decode_poll(v, [TICKS_KIND] * len(v)) for v in batches]),
                          timed(lambda: [decode_poll(v, [None] * len(v)) for v in ticks])),
    }
    print(f"components ({n} ticks, k ticks/s, batch form vs per-tick form): " + " | ".join(
        f"{name} {new:,.0f} vs {old:,.0f} ({new / old:.1f}x)"
        for name, (new, old) in rates.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", help="a running broker (default: start one)")
    parser.add_argument("--rate", type=int, default=2_000, help="ticks/s in the latency phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="latency phase length")
    parser.add_argument("--phases", default="components,workers,latency",
                        help="which phases to run (workers includes produce, which fills the "
                             "topics)")
    args = parser.parse_args()
    tape, ticks = tapes.make("spot_recording", args.ticks)
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        from tests.kafka_broker import KafkaBroker

        broker = KafkaBroker(num_partitions=PARTITIONS).start()
        bootstrap = broker.bootstrap
    print(f"{ticks} trades; load average {os.getloadavg()}; python {sys.version.split()[0]}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            prefixes = {form: f"bench{form}{uuid.uuid4().hex[:8]}." for form in FORMS}
            if "components" in args.phases:
                components(bootstrap, f"parts{uuid.uuid4().hex[:8]}.")
            if "workers" in args.phases:
                produce(tape, ticks, bootstrap, prefixes, work)
                workers(tape, ticks, bootstrap, prefixes, work)
            if "latency" in args.phases:
                latency(bootstrap, f"lat{uuid.uuid4().hex[:8]}.", work, args.rate, args.seconds)
    finally:
        if broker is not None:
            broker.close()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of a child process: {peak:.0f} MiB; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
