"""The ``ticks`` topic's message forms without a broker: column-wise encoding, poll decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from connectors.kafka.wire import (
    TICKS_KIND,
    TICKS_PER_MESSAGE,
    decode_poll,
    encode_batches,
    encode_mark,
    encode_ticks,
)
from pairflow.records import to_json
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
BATCH_SCHEMA = Draft202012Validator(json.loads((SCHEMAS / "tickbatch.schema.json").read_text()))
MARK_SCHEMA = Draft202012Validator(json.loads((SCHEMAS / "mark.schema.json").read_text()))


def _chunk(symbol: str, n: int, source: str = "replay", seed: int = 7) -> TickChunk:
    rng = np.random.default_rng(seed)
    ts = 1_723_161_255_342_000 + np.cumsum(rng.integers(0, 5_000, n))
    ids = 3_735_683_259 + np.arange(n)
    # Prices and sizes of every magnitude a float's shortest text can take.
    price = np.round(rng.lognormal(0, 6, n), int(rng.integers(0, 9)))
    qty = rng.choice([1e-8, 0.1, 0.3, 123456789.123, 5e-5, 2.0, 0.0], n)
    return TickChunk(symbol, source, ts, ts + rng.integers(0, 10**6, n), ids, ids,
                     ids + rng.integers(0, 3, n), np.where(price > 0, price, 0.01), qty,
                     rng.random(n) < 0.5)


def _ticks(values: list[bytes]) -> list[bytes | None]:
    return [None] * len(values)


def _batch(values: list[bytes]) -> list[bytes | None]:
    return [TICKS_KIND] * len(values)


def _same(a: TickChunk, b: TickChunk) -> bool:
    """Equal in every column, bit for bit (prices and sizes round-trip exactly)."""
    return (a.symbol, a.source) == (b.symbol, b.source) and all(
        np.array_equal(getattr(a, name), getattr(b, name)) and
        getattr(a, name).dtype == getattr(b, name).dtype
        for name in ("ts", "recv_ts", "trade_id", "first_trade_id", "last_trade_id", "price",
                     "qty", "buyer_is_maker", "ghost_ids"))


def test_a_chunk_encodes_to_the_json_of_each_of_its_ticks():
    chunk = _chunk("BTCUSDT", 5_000)
    assert encode_ticks(chunk) == [to_json(tick) for tick in chunk.ticks()]
    assert encode_ticks(chunk.take(np.zeros(len(chunk), bool))) == []


def test_a_batch_of_plain_trades_leaves_out_the_covered_ids_and_reads_back_the_same():
    # A trade covers itself (first = last = its id): those two columns are a quarter of the
    # bytes, so they are left out, and read back as the trade ids.
    full = _chunk("BTCUSDT", 3_000)
    plain = TickChunk(full.symbol, full.source, full.ts, full.recv_ts, full.trade_id,
                      full.trade_id.copy(), full.trade_id.copy(), full.price, full.qty,
                      full.buyer_is_maker)
    values = encode_batches(plain)
    for value in values:
        BATCH_SCHEMA.validate(json.loads(value))
        assert b"first_trade_id" not in value and b"last_trade_id" not in value
    assert sum(map(len, values)) < 0.8 * sum(map(len, encode_batches(full)))
    [back], bad = decode_poll(values, _batch(values))
    assert bad == [] and _same(back, plain)
    # One of the two without the other is refused, by the schema and by a worker.
    half = json.loads(values[0])
    half["first_trade_id"] = half["trade_id"]
    assert not BATCH_SCHEMA.is_valid(half)
    items, [refused] = decode_poll([json.dumps(half).encode()], [TICKS_KIND])
    assert items == [] and refused.reason.startswith("bad_batch: first_trade_id and last")


def test_a_chunk_round_trips_exactly_as_bounded_batches_that_match_the_schema():
    ghosts = np.array([3_735_683_000, 3_735_683_001], np.int64)
    chunk = TickChunk(**{**{name: getattr(_chunk("cm:BTCUSD_PERP", 5_000), name) for name in (
        "symbol", "source", "ts", "recv_ts", "trade_id", "first_trade_id", "last_trade_id",
        "price", "qty", "buyer_is_maker")}, "ghost_ids": ghosts})
    values = encode_batches(chunk)
    assert len(values) == -(-len(chunk) // TICKS_PER_MESSAGE)
    for value in values:
        BATCH_SCHEMA.validate(json.loads(value))
        assert len(value) < 400_000
    assert [len(json.loads(v)["trade_id"]) for v in values] == [2048, 2048, 904]
    [back], bad = decode_poll(values, _batch(values))
    assert bad == [] and _same(back, chunk)
    # A chunk of ghost ids only still travels; one with nothing makes no message.
    only_ghosts = chunk.take(np.zeros(len(chunk), bool))
    [ghost_message] = encode_batches(only_ghosts)
    assert _same(decode_poll([ghost_message], [TICKS_KIND])[0][0], only_ghosts)
    assert encode_batches(TickChunk.empty("BTCUSDT")) == []


def test_a_poll_of_mixed_forms_makes_one_chunk_per_symbol_run_in_order():
    btc, eth = _chunk("BTCUSDT", 300), _chunk("ETHUSDT", 200, "live", seed=8)
    beat = Heartbeat("ETHUSDT", int(eth.ts[99]) + 1)
    gap = FeedGap("BTCUSDT", 5, 9, "backfill refused")
    kind_of = {Heartbeat: b"heartbeat", FeedGap: b"gap"}
    messages = [  # (kind header, value)
        *[(TICKS_KIND, v) for v in encode_batches(btc.take(slice(0, 100)), 30)],
        *[(None, v) for v in encode_ticks(eth.take(slice(0, 100)))],
        *[(TICKS_KIND, v) for v in encode_batches(btc.take(slice(100, 200)))],
        *[(kind_of[type(m)], encode_mark(m)[1]) for m in (beat, gap)],
        *[(None, v) for v in encode_ticks(btc.take(slice(200, 300)))],
        *[(TICKS_KIND, v) for v in encode_batches(eth.take(slice(100, 200)), 50)],
    ]
    items, bad = decode_poll([v for _, v in messages], [k for k, _ in messages])
    assert bad == []
    expected_of = {"BTCUSDT": [btc.take(slice(0, 200)), gap, btc.take(slice(200, 300))],
                   "ETHUSDT": [eth.take(slice(0, 100)), beat, eth.take(slice(100, 200))]}
    for symbol, expected in expected_of.items():
        got = [item for item in items if item.symbol == symbol]
        assert len(got) == len(expected), symbol
        for g, e in zip(got, expected, strict=True):
            assert _same(g, e) if isinstance(e, TickChunk) else g == e
    # Only per-tick messages: one chunk per symbol (split where the source changes).
    values = [*encode_ticks(btc.take(slice(0, 50))), *encode_ticks(eth), *encode_ticks(
        btc.take(slice(50, 300)))]
    items, bad = decode_poll(values, _ticks(values))
    assert bad == [] and [(c.symbol, len(c)) for c in items] == [("BTCUSDT", 300),
                                                                  ("ETHUSDT", 200)]
    assert _same(items[0], btc)


def _batch_value(**change: object) -> bytes:
    value = json.loads(encode_batches(_chunk("BTCUSDT", 3))[0])
    value.update(change)
    return json.dumps(value).encode()


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "bad_batch: JSON is malformed"),
    (b"", "bad_batch: empty value"),
    (None, "bad_batch: empty value"),
    (_batch_value(v=2), "bad_batch: Invalid enum value 2 - at `$.v`"),
    (_batch_value(price=[1.5, 0.0, 2.0]), "bad_batch: Expected `float` > 0.0 - at `$.price[1]`"),
    (_batch_value(price=[1.5, "1e999", 2.0]), "bad_batch: Expected `float`, got `str`"),
    (b'{"kind":"ticks","v":1,"symbol":"BTCUSDT","source":"live","trade_id":[1],"price":[1e999]',
     "bad_batch: Number out of range"),
    (_batch_value(qty=[-1.0, 1.0, 1.0]), "bad_batch: Expected `float` >= 0.0"),
    (_batch_value(ts=[1, 2, -3]), "bad_batch: Expected `int` >= 0"),
    (_batch_value(trade_id=[1, 2, 2**63]), "bad_batch: Expected `int` <= 9223372036854775807"),
    (_batch_value(qty=[1.0, 1.0]), "bad_batch: columns of different lengths"),
    (_batch_value(symbol="btcusdt"), "bad_batch: Expected `str` matching regex"),
    (_batch_value(extra=1), "bad_batch: Object contains unknown field `extra`"),
    (_batch_value(kind="bars"), "bad_batch: Invalid value 'bars' - at `$.kind`"),
    (encode_ticks(_chunk("BTCUSDT", 1))[0], "bad_batch: Object missing required field `kind`"),
])
def test_a_bad_batch_is_refused_with_its_reason_and_the_rest_kept(value, reason):
    good = encode_batches(_chunk("ETHUSDT", 5_000))
    values = [*good[:2], value, *good[2:]]
    items, bad = decode_poll(values, _batch(values))
    assert [b.index for b in bad] == [2]
    assert bad[0].reason.startswith(reason), bad[0].reason
    assert [len(c) for c in items] == [5_000]


def test_bad_per_tick_messages_are_refused_with_their_index():
    eth = _chunk("ETHUSDT", 200)
    values = encode_ticks(eth)
    bad_values = [b"{not json", None, b'{"v":2}', values[0].replace(b"ETH", b"eth"),
                  values[0].replace(b'"price":', b'"price":-'), encode_batches(eth)[0]]
    mixed = values[:10] + bad_values + values[10:20]
    items, bad = decode_poll(mixed, _ticks(mixed))
    assert [b.index for b in bad] == [10, 11, 12, 13, 14, 15]
    assert all(b.reason.startswith("bad_tick: ") for b in bad)
    assert "empty value" in bad[1].reason and "not an exchange symbol" in bad[3].reason
    assert "Expected `float` > 0.0" in bad[4].reason
    assert [len(c) for c in items] == [20]


@pytest.mark.parametrize("mark", [Heartbeat("ETHUSDT", 1_723_161_300_050_000),
                                  Heartbeat("cm:BTCUSD_PERP", 0, final=True),
                                  FeedGap("BTCUSDT", 10, 20, "backfill failed")])
def test_marks_round_trip_and_match_their_schema(mark):
    kind, value = encode_mark(mark)
    MARK_SCHEMA.validate(json.loads(value))
    assert json.loads(value)["kind"] == kind
    assert decode_poll([value], [kind.encode()]) == ([mark], [])


@pytest.mark.parametrize("value", [b"", b"{}", b'{"kind":"heartbeat","v":1,"symbol":"BTCUSDT"}',
                                   b'{"kind":"gap","v":1,"symbol":"BTCUSDT","start":5,"end":5,'
                                   b'"reason":"x"}',
                                   b'{"kind":"heartbeat","v":1,"symbol":"btc","ts":1,"final":false}',
                                   b'{"kind":"nap","v":1,"symbol":"BTCUSDT","ts":1}'])
def test_a_bad_mark_is_refused(value):
    items, bad = decode_poll([value], [b"heartbeat"])
    assert items == [] and [b.index for b in bad] == [0]
    assert bad[0].reason.startswith("bad_mark: ")


def test_the_batch_schema_is_the_tick_schema_in_columns():
    tick = json.loads((SCHEMAS / "tick.schema.json").read_text())
    batch = json.loads((SCHEMAS / "tickbatch.schema.json").read_text())
    for schema in (batch, MARK_SCHEMA.schema):
        Draft202012Validator.check_schema(schema)
    assert set(batch["properties"]) == {"kind", "ghost_ids", *tick["properties"]}
    assert set(batch["required"]) == set(batch["properties"]) - {"first_trade_id",
                                                                 "last_trade_id"}
    for name, spec in tick["properties"].items():
        if name in ("v", "symbol", "source"):
            assert batch["properties"][name] == spec, name
        else:  # a column of the tick's values
            item = {k: v for k, v in spec.items() if k != "description"}
            assert batch["properties"][name]["items"] == item, name
    assert set(json.loads(encode_batches(_chunk("BTCUSDT", 3))[0])) == set(batch["properties"])
    # Marks name symbols as ticks do.
    assert {kind["properties"]["symbol"]["pattern"] for kind in MARK_SCHEMA.schema["oneOf"]} == {
        tick["properties"]["symbol"]["pattern"]}
