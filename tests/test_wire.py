"""FrameParser: every Binance trade layout, skipped kinds, and one dead letter per bad frame."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from connectors.binance.wire import FrameParser, stream_kind
from pairflow.records import exchange_time_us
from tests.helpers import SHARED_DATA, trade_frame

REASON = re.compile(r"^[a-z_]+: .+")

# Verbatim captured frames from ../shared/data/ws_message_examples.txt, section F.
SPOT_TRADE = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
              '"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,'
              '"M":true}}')
FUTURES_TRADE = ('{"stream":"ethusdt@trade","data":{"e":"trade","E":1723161256560,'
                 '"T":1723161256560,"s":"ETHUSDT","t":4308068523,"p":"2681.62","q":"1.000",'
                 '"X":"MARKET","m":true}}')
FUTURES_AGG = ('{"stream":"sushiusdt@aggTrade","data":{"e":"aggTrade","E":1626992744262,'
               '"a":87353230,"s":"SUSHIUSDT","p":"7.6120","q":"297","f":126902924,'
               '"l":126902927,"T":1626992744108,"m":false}}')
SPOT_AGG = ('{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,'
            '"s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,'
            '"l":19862790,"T":1633998523963,"m":false,"M":true}}')
LEGACY_TRADE = ('{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
                '"b":88,"a":50,"T":1672515782136,"m":true,"M":true}')
ALL = {"BTCUSDT", "ETHUSDT", "SUSHIUSDT", "NKNUSDT", "BNBBTC"}


def parse(*frames: str | bytes, symbols=ALL):
    parser = FrameParser(symbols, "replay")
    batch = [(1_000 + i, f.encode() if isinstance(f, str) else f) for i, f in enumerate(frames)]
    return parser.parse(batch)


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def only_chunk(out, symbol):
    assert list(out.chunks) == [symbol]
    return out.chunks[symbol]


def test_examples_file_still_holds_these_frames():
    text = (SHARED_DATA / "ws_message_examples.txt").read_text()
    for frame in (SPOT_TRADE, FUTURES_TRADE, FUTURES_AGG, SPOT_AGG):
        assert frame in text


def test_spot_trade_envelope():
    out = parse(SPOT_TRADE)
    chunk = only_chunk(out, "BTCUSDT")
    assert chunk.ts.tolist() == [1723161255342000] and chunk.recv_ts.tolist() == [1000]
    assert chunk.trade_id.tolist() == chunk.first_trade_id.tolist() == [3735683259]
    assert chunk.last_trade_id.tolist() == [3735683259]
    assert chunk.price.tolist() == [61837.63] and chunk.qty.tolist() == [0.02]
    assert chunk.buyer_is_maker.tolist() == [True] and chunk.source == "replay"
    assert out.dead == [] and out.frames == 1


def test_spot_trade_raw_payload_same_as_envelope():
    payload = json.dumps(json.loads(SPOT_TRADE)["data"], separators=(",", ":"))
    a = only_chunk(parse(SPOT_TRADE), "BTCUSDT")
    b = only_chunk(parse(payload), "BTCUSDT")
    assert a.ticks() == b.ticks()


def test_legacy_trade_with_order_ids_uses_t_not_a():
    chunk = only_chunk(parse(LEGACY_TRADE), "BNBBTC")
    assert chunk.trade_id.tolist() == [12345] and chunk.first_trade_id.tolist() == [12345]
    assert chunk.price.tolist() == [0.001] and chunk.qty.tolist() == [100.0]
    envelope = '{"stream":"bnbbtc@trade","data":' + LEGACY_TRADE + "}"
    assert only_chunk(parse(envelope), "BNBBTC").ticks() == chunk.ticks()


@pytest.mark.parametrize("frame,symbol,ids", [
    (SPOT_AGG, "NKNUSDT", (15683430, 19862790, 19862790)),
    (FUTURES_AGG, "SUSHIUSDT", (87353230, 126902924, 126902927)),
])
def test_aggtrade_ids(frame, symbol, ids):
    chunk = only_chunk(parse(frame), symbol)
    assert (chunk.trade_id[0], chunk.first_trade_id[0], chunk.last_trade_id[0]) == ids


def test_futures_trade_market_kept_others_skipped_as_ghosts():
    data = json.loads(FUTURES_TRADE)["data"]
    other = dict(data, t=data["t"] + 1, X="INSURANCE_FUND", p="2681.00", q="0.5")
    adl = dict(data, t=data["t"] + 2, X="ADL", p="0", q="0")  # such fills need not be positive
    frames = [FUTURES_TRADE] + [compact({"stream": "ethusdt@trade", "data": d})
                                for d in (other, adl)]
    out = parse(*frames)
    chunk = only_chunk(out, "ETHUSDT")
    assert chunk.trade_id.tolist() == [4308068523]
    assert chunk.ghost_ids.tolist() == [4308068524, 4308068525]
    assert out.skipped == {"futures_insurance_fund": 1, "futures_adl": 1}
    assert out.dead == []


@pytest.mark.parametrize("frame,kind", [
    ('{"lastUpdateId":50093239188,"bids":[["61837.63","1.2"]],"asks":[["61837.64","0.5"]]}',
     "snapshot"),
    ('{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1.0","B":"2.0",'
     '"a":"1.1","A":"3.0"}}', "bookTicker"),
    ('{"u":1,"s":"BTCUSDT","b":"1.0","B":"2.0","a":"1.1","A":"3.0"}', "bookTicker"),
    ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,'
     '"u":2,"b":[],"a":[]}}', "depth"),
    ('{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}', "depth"),
    ('{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{}}}', "kline"),
    ('{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":1}}', "kline"),
])
def test_other_streams_skipped_and_counted(frame, kind):
    out = parse(frame, SPOT_TRADE, frame)
    assert out.skipped == {kind: 2}
    assert out.dead == [] and out.frames == 3
    assert len(only_chunk(out, "BTCUSDT")) == 1


def test_stream_kind_names():
    assert stream_kind("btcusdt@depth@100ms") == "depth"
    assert stream_kind("btcusdt@kline_1m") == "kline"
    assert stream_kind("btcusdt@aggTrade") == "aggTrade"


def test_trade_time_units():
    assert exchange_time_us(1723161255342) == 1723161255342000
    assert exchange_time_us(1723161255342123) == 1723161255342123
    mixed = np.array([1723161255342, 1723161255342123], np.int64)
    assert exchange_time_us(mixed).tolist() == [1723161255342000, 1723161255342123]


def good(**changes) -> str:
    return trade_frame("BTCUSDT", 1, "100.5", "0.25", 1723161255342, **changes)


BAD_FRAMES = [
    ("invalid JSON", good()[:-5], "invalid_json"),
    ("not JSON at all", "hello world", "invalid_json"),
    ("missing price", good(p=None), "missing_field"),
    ("missing trade id", good(t=None), "missing_field"),
    ("unknown field", good(zz=1), "unknown_field"),
    ("non-numeric price", good(p="abc"), "bad_type"),
    ("price is a list", good(p=[1]), "bad_type"),
    ("NaN price", good(p="NaN"), "non_finite"),
    ("inf qty", good(q="inf"), "non_finite"),
    ("zero price", good(p="0"), "non_positive"),
    ("negative price", good(p="-1.5"), "non_positive"),
    ("zero qty", good(q="0.00000000"), "non_positive"),
    ("negative qty", good(q="-0.1"), "non_positive"),
    ("unknown symbol", trade_frame("DOGEUSDT", 1, "0.1", "5", 1723161255342), "unknown_symbol"),
    ("aggTrade last < first", compact({"stream": "btcusdt@aggTrade", "data": {
        "e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 5, "p": "1", "q": "1", "f": 10, "l": 9,
        "T": 1723161255342, "m": False}}), "bad_value"),
]


@pytest.mark.parametrize("label,frame,code", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
@pytest.mark.parametrize("enveloped", [True, False], ids=["envelope", "payload"])
def test_bad_frame_is_one_dead_letter_and_the_rest_goes_on(label, frame, code, enveloped):
    if not enveloped:
        try:
            frame = compact(json.loads(frame)["data"])
        except (ValueError, KeyError):
            pass  # not JSON: the same text either way
    before = trade_frame("BTCUSDT", 7, "101", "1", 1723161255000)
    after = trade_frame("BTCUSDT", 8, "102", "2", 1723161255001)
    out = parse(before, frame, after, symbols={"BTCUSDT", "ETHUSDT"})
    assert len(out.dead) == 1, out.dead
    letter = out.dead[0]
    assert letter.reason.split(":")[0] == code, letter.reason
    assert REASON.match(letter.reason), letter.reason
    assert letter.raw == frame and letter.stage == "parse" and letter.ts == 1001
    assert only_chunk(out, "BTCUSDT").trade_id.tolist() == [7, 8]


def test_symbol_of_stream_and_payload_must_agree():
    frame = trade_frame("BTCUSDT", 1, "1", "1", 1723161255342).replace("btcusdt@", "ethusdt@")
    out = parse(frame, symbols={"BTCUSDT", "ETHUSDT"})
    assert [d.reason.split(":")[0] for d in out.dead] == ["symbol_mismatch"]
    assert sum(len(c) for c in out.chunks.values()) == 0


def test_many_bad_frames_in_one_batch_keep_order_of_good_ones():
    frames, expected_ids, codes = [], [], []
    for i, (_, bad, code) in enumerate(BAD_FRAMES):
        frames.append(trade_frame("BTCUSDT", 100 + i, "1.5", "2", 1723161255000 + i))
        expected_ids.append(100 + i)
        frames.append(bad)
        codes.append(code)
    out = parse(*frames, symbols={"BTCUSDT"})
    assert only_chunk(out, "BTCUSDT").trade_id.tolist() == expected_ids
    assert sorted(d.reason.split(":")[0] for d in out.dead) == sorted(codes)


SPOT_PAYLOAD = json.loads(SPOT_TRADE)["data"]


@pytest.mark.parametrize("frame", [
    json.dumps(json.loads(SPOT_TRADE)),  # same JSON, blanks after ':' and ','
    json.dumps(SPOT_PAYLOAD),
    compact({k: SPOT_PAYLOAD[k] for k in ("E", "s", "t", "p", "q", "T", "m", "M", "e")}),
    '{"s":"BTCUSDT","p":"1",,"q":}',  # broken JSON that merely looks like an object
], ids=["envelope with blanks", "payload with blanks", "payload with `e` last", "broken object"])
def test_equivalent_json_trade_is_never_silently_skipped(frame):
    # A trade frame that is valid JSON must become a tick (or at least a dead letter), not
    # vanish into the "other" skip count: bad input loses nothing.
    out = parse(frame, symbols={"BTCUSDT"})
    ticks = sum(len(c) for c in out.chunks.values())
    assert ticks + len(out.dead) == 1, (out.skipped, out.dead)


def test_a_recorded_batch_is_decoded_whole_only_when_each_frame_is_one_envelope():
    # The recording path decodes a batch as one JSON array: an empty frame, or a line holding
    # two envelopes, must not shift or drop frames — each is a dead letter, the rest ticks.
    good = [trade_frame("BTCUSDT", i, "1.5", "2", 1723161255000 + i).encode() for i in (1, 2, 3)]
    parser = FrameParser({"BTCUSDT"}, "replay")
    frames = [good[0], good[1] + b"," + good[2], b"", good[2]]
    out = parser.parse_columns(np.arange(len(frames), dtype=np.int64) + 1_000, frames,
                               lambda i: f"tape:{i + 1}")
    assert only_chunk(out, "BTCUSDT").trade_id.tolist() == [1, 3]
    assert sorted(d.origin for d in out.dead) == ["tape:2", "tape:3"]
    assert all(REASON.match(d.reason) for d in out.dead)
    # The same frames one by one, as a live socket hands them over.
    live = FrameParser({"BTCUSDT"}, "live").parse([(1_000 + i, f) for i, f in enumerate(frames)])
    assert only_chunk(live, "BTCUSDT").trade_id.tolist() == [1, 3]
    assert sorted(d.raw for d in live.dead) == sorted(f.decode() for f in frames[1:3])


def test_a_batch_of_mixed_trade_shapes_decodes_as_its_frames_do_one_by_one():
    # A batch is decoded first as today's trade shape, then as any trade: a legacy spot trade
    # (order ids ``b``/``a``) or an aggTrade late in a batch must not lose or shift a frame.
    legacy = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
              '"t":3735683260,"p":"61837.64","q":"0.5","b":88,"a":50,"T":1723161255343,'
              '"m":false,"M":true}}')

    def rows(chunk):
        return list(zip(chunk.trade_id.tolist(), chunk.price.tolist(), chunk.qty.tolist(),
                        chunk.buyer_is_maker.tolist(), chunk.recv_ts.tolist(), strict=True))

    new_fill = FUTURES_TRADE.replace('"X":"MARKET"', '"X":"SOME_NEW_FILL"').replace(
        '"t":4308068523', '"t":4308068524')
    for frames in ([SPOT_TRADE, FUTURES_TRADE, legacy], [SPOT_TRADE, FUTURES_TRADE, SPOT_AGG],
                   [SPOT_TRADE, FUTURES_TRADE, new_fill], [SPOT_TRADE, FUTURES_TRADE]):
        batch = [f.encode() for f in frames]
        whole = FrameParser(ALL, "replay").parse_columns(
            np.arange(len(batch), dtype=np.int64) + 1_000, batch)
        expected: dict[str, list] = {}
        ghosts: dict[str, list] = {}
        for index, frame in enumerate(batch):
            alone = FrameParser(ALL, "replay").parse([(1_000 + index, frame)])
            assert not alone.dead
            for symbol, chunk in alone.chunks.items():
                expected.setdefault(symbol, []).extend(rows(chunk))
                ghosts.setdefault(symbol, []).extend(chunk.ghost_ids.tolist())
        assert not whole.dead
        assert {symbol: rows(c) for symbol, c in whole.chunks.items()} == expected
        assert {symbol: c.ghost_ids.tolist() for symbol, c in whole.chunks.items()} == ghosts
