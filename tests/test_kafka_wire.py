"""The ``ticks`` topic's message forms without a broker: column-wise encoding, batch decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from jsonschema import Draft202012Validator

from connectors.kafka.wire import decode_mark, decode_ticks, encode_chunk, encode_mark
from pairflow.records import to_json
from pairflow.ticks import FeedGap, Heartbeat, TickChunk

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _chunk(symbol: str, n: int, source: str = "replay", seed: int = 7) -> TickChunk:
    rng = np.random.default_rng(seed)
    ts = 1_723_161_255_342_000 + np.cumsum(rng.integers(0, 5_000, n))
    ids = 3_735_683_259 + np.arange(n)
    # Prices and sizes of every magnitude a float's shortest text can take.
    price = np.round(rng.lognormal(0, 6, n), int(rng.integers(0, 9)))
    qty = rng.choice([1e-8, 0.1, 0.3, 123456789.123, 5e-5, 2.0], n)
    return TickChunk(symbol, source, ts, ts + rng.integers(0, 10**6, n), ids, ids,
                     ids + rng.integers(0, 3, n), np.where(price > 0, price, 0.01), qty,
                     rng.random(n) < 0.5)


def test_a_chunk_encodes_to_the_json_of_each_of_its_ticks():
    chunk = _chunk("BTCUSDT", 5_000)
    assert encode_chunk(chunk) == [to_json(tick) for tick in chunk.ticks()]
    assert encode_chunk(chunk.take(np.zeros(len(chunk), bool))) == []


def test_a_batch_decodes_into_one_chunk_per_symbol_run_with_bad_messages_apart():
    btc, eth = _chunk("BTCUSDT", 300), _chunk("ETHUSDT", 200, "live", seed=8)
    values = [*encode_chunk(btc)[:100], *encode_chunk(eth)[:50], *encode_chunk(btc)[100:]]
    [whole], bad = decode_ticks(encode_chunk(btc))
    assert bad == [] and whole.ticks() == btc.ticks()
    chunks, bad = decode_ticks(values)
    assert bad == []
    assert [(c.symbol, c.source, len(c)) for c in chunks] == [
        ("BTCUSDT", "replay", 300), ("ETHUSDT", "live", 50)]
    assert chunks[0].ticks() == btc.ticks()
    bad_values = [b"{not json", b"", b'{"v":2}', encode_chunk(eth)[0].replace(b"ETH", b"eth")]
    mixed = values[:10] + bad_values + values[10:20]
    chunks, bad = decode_ticks(mixed)
    assert [b.index for b in bad] == [10, 11, 12, 13]
    assert "empty value" in bad[1].reason and "not an exchange symbol" in bad[3].reason
    assert sum(map(len, chunks)) == 20


@pytest.mark.parametrize("mark", [Heartbeat("ETHUSDT", 1_723_161_300_050_000),
                                  Heartbeat("BTCUSDT", 0, final=True),
                                  FeedGap("BTCUSDT", 10, 20, "backfill failed")])
def test_marks_round_trip_and_match_their_schema(mark):
    kind, value = encode_mark(mark)
    schema = Draft202012Validator(json.loads((SCHEMAS / "mark.schema.json").read_text()))
    schema.validate(json.loads(value))
    assert json.loads(value)["kind"] == kind
    assert decode_mark(value) == mark


@pytest.mark.parametrize("value", [b"", b"{}", b'{"kind":"heartbeat","v":1,"symbol":"BTCUSDT"}',
                                   b'{"kind":"gap","v":1,"symbol":"BTCUSDT","start":5,"end":5,'
                                   b'"reason":"x"}',
                                   b'{"kind":"heartbeat","v":1,"symbol":"btc","ts":1,"final":false}',
                                   b'{"kind":"nap","v":1,"symbol":"BTCUSDT","ts":1}'])
def test_a_bad_mark_is_refused(value):
    with pytest.raises(ValueError, match="bad mark"):
        decode_mark(value)
