"""The whole dataflow: lateness to dead letters, idempotent store, 1 worker == 2 workers."""

from __future__ import annotations

import json
import random

import pytest

from connectors.store import StoreWriter, dead_letter_id
from flows.pairs import build_flow
from pairflow.config import load_config
from pairflow.errors import ConfigError
from pairflow.records import Bar, DeadLetter
from tests.helpers import (
    SPOT_FILES,
    SYMBOLS,
    bar_mismatches,
    dead_letters,
    plain_bars,
    raw_lines,
    run_replay,
    store_bars,
    store_content,
    trade_from_payload,
    write_recording,
)

pytestmark = pytest.mark.skipif(len(SPOT_FILES) != 4, reason="real spot tape not found")

LATENESS_S = 2.0
SETTINGS = {"timeframes": "1s,1m,5m", "pairs": "BTCUSDT/ETHUSDT", "window": 30,
            "entry_z": 1.5, "exit_z": 0.3, "lateness_s": LATENESS_S}


@pytest.fixture(scope="module")
def disordered(tmp_path_factory):
    """The first day's tape with some trades delivered 1–6 s late, plus bad lines.

    Returns the recording and, per symbol, the trades in arrival order.
    """
    rng = random.Random(42)
    lines = []
    for line in raw_lines([SPOT_FILES[0], SPOT_FILES[2]]):
        head, _, frame = line.partition(" ")
        recv = int(head)
        if "@trade" in frame[:40] and rng.random() < 0.01:
            recv += rng.randrange(1_000_000_000, 6_000_000_000)
        lines.append((recv, frame))
    lines.append((lines[500][0], '{"stream":"btcusdt@trade","data":{"e":"trade"'))
    lines.append((lines[900][0], '{"stream":"ethusdt@trade","data":{"e":"trade","E":1,'
                  '"s":"ETHUSDT","t":1,"p":"-2","q":"1","T":1723161300000,"m":true}}'))
    lines.sort(key=lambda item: item[0])
    path = write_recording(tmp_path_factory.mktemp("flow") / "late.gz",
                           [f"{recv} {frame}" for recv, frame in lines])
    arrivals: dict[str, list] = {}
    for recv, frame in lines:
        try:
            data = json.loads(frame).get("data") or {}
        except ValueError:
            continue
        if data.get("e") == "trade" and data["t"] != 1:
            arrivals.setdefault(data["s"], []).append(trade_from_payload(data, recv))
    return path, arrivals


def independent_late(trades, lateness_us):
    late, on_time, latest = {}, [], None
    for trade in trades:
        if latest is not None and trade.ts_us < latest - lateness_us:
            late[trade.trade_id] = latest - lateness_us - trade.ts_us
        else:
            on_time.append(trade)
        latest = trade.ts_us if latest is None else max(latest, trade.ts_us)
    return late, on_time


@pytest.fixture(scope="module")
def runs(disordered, tmp_path_factory):
    path, _ = disordered
    folder = tmp_path_factory.mktemp("runs")
    one = folder / "one.db"
    totals_one = run_replay([path], one, **SETTINGS)
    two = folder / "two.db"
    totals_two = run_replay([path], two, workers=2, **SETTINGS)
    return one, totals_one, two, totals_two


def test_late_ticks_become_counted_dead_letters(disordered, runs):
    _, arrivals = disordered
    db, totals, _, _ = runs
    expected_late = {}
    on_time = {}
    for symbol in SYMBOLS:
        late, kept = independent_late(arrivals[symbol], int(LATENESS_S * 1e6))
        expected_late.update({(symbol, k): v for k, v in late.items()})
        on_time[symbol] = kept
    assert len(expected_late) > 20  # the disorder really made late trades
    letters = [d for d in dead_letters(db) if d["reason"] == "late"]
    got = {}
    for letter in letters:
        assert letter["stage"] == "bars"
        tick = json.loads(letter["raw"])
        got[(tick["symbol"], tick["trade_id"])] = tick["late_by_us"]
        assert letter["ts"] == tick["recv_ts"]
    assert got == expected_late
    assert totals["dead:late"] == len(expected_late)
    # The bars hold exactly the on-time trades (quiet bars aside: a dropped late id breaks
    # id contiguity, so only traded windows are compared).
    for symbol in SYMBOLS:
        for timeframe in ("1s", "1m", "5m"):
            traded = [b for b in store_bars(db, symbol, timeframe) if b["trades"]]
            expected = [b for b in plain_bars(on_time[symbol], symbol, timeframe) if b["trades"]]
            assert bar_mismatches(traded, expected) == []


def test_bad_lines_counted_beside_late_ones(runs):
    db, totals, _, _ = runs
    reasons = sorted(d["reason"].partition(":")[0] for d in dead_letters(db)
                     if d["reason"] != "late")
    assert reasons == ["invalid_json", "non_positive"]
    assert totals["dead:invalid_json"] == 1 and totals["dead:non_positive"] == 1


def test_one_worker_equals_two_workers(runs):
    one, totals_one, two, totals_two = runs
    content_one, content_two = store_content(one), store_content(two)
    for table in content_one:
        assert content_one[table] == content_two[table], table
    assert len(content_one["bars"]) > 600 and len(content_one["pairs"]) > 300
    assert len(content_one["alerts"]) > 0 and len(content_one["deadletter"]) > 20
    assert totals_one == totals_two


def test_same_replay_twice_into_one_store_is_idempotent(disordered, tmp_path):
    path, _ = disordered
    db = tmp_path / "twice.db"
    run_replay([path], db, **SETTINGS)
    first = store_content(db)
    run_replay([path], db, **SETTINGS)
    assert store_content(db) == first
    assert all(first[table] for table in first)


def test_store_upserts_by_key(tmp_path):
    writer = StoreWriter(tmp_path / "s.db")
    bar = Bar("BTCUSDT", "1s", 0, 1_000_000, 1.0, 2.0, 0.5, 1.5, 3.0, 4.5, 1.5, 2, 1.0, 7, 8)
    changed = Bar("BTCUSDT", "1s", 0, 1_000_000, 1.0, 2.0, 0.5, 1.7, 3.0, 4.5, 1.5, 2, 1.0, 7, 8)
    letter = DeadLetter("parse", "invalid_json: x", "{", 5)
    writer.write([bar, letter])
    writer.write([changed, DeadLetter("parse", "invalid_json: x", "{", 9)])
    writer.close()
    content = store_content(tmp_path / "s.db")
    assert len(content["bars"]) == 1 and content["bars"][0][7] == 1.7  # close replaced
    assert len(content["deadletter"]) == 1 and content["deadletter"][0][0] == dead_letter_id(
        letter)


def test_flow_needs_a_sink():
    config = load_config({"symbols": "BTCUSDT", "files": [str(SPOT_FILES[0])]}, env={})
    with pytest.raises(ConfigError, match="nowhere to write"):
        build_flow(config)
