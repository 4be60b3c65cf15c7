"""A few seconds of the frame-parser fuzzing of ``bench/fuzz.py``, for every test run.

Property: nothing escapes ``FrameParser.parse`` / ``parse_columns``; every frame is a tick, a
counted skip or a dead letter with a ``code: detail`` reason. The two explicit cases below are
inputs the long fuzz run found escaping as exceptions.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.binance.wire import FrameParser

TAPE = sorted((Path(__file__).resolve().parents[1] / "pairflow" / "data").glob("*.gz"))
SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT"})
CODES = {"invalid_json", "missing_field", "unknown_field", "bad_type", "bad_value",
         "bad_symbol", "non_finite", "non_positive", "unknown_symbol", "symbol_mismatch"}


def _frames() -> list[bytes]:
    out = []
    for path in TAPE:
        with gzip.open(path, "rb") as handle:
            out += [handle.readline().partition(b" ")[2].strip() for _ in range(60)]
    return out


FRAMES = _frames()
PAYLOADS = [json.loads(f)["data"] for f in FRAMES if b"@trade" in f]
EDGES = [0, -1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30, "NaN", "Infinity", "1e309", "-0",
         "", "x", None, True, [], {}, 1.5]


@st.composite
def mutated(draw) -> bytes:
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    pos = draw(st.integers(0, len(frame)))
    op = draw(st.sampled_from(["flip", "cut", "insert"]))
    if op == "flip" and pos < len(frame):
        frame[pos] = draw(st.integers(0, 255))
    elif op == "cut":
        del frame[pos:]
    else:
        frame[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    return bytes(frame)


@st.composite
def structured(draw) -> bytes:
    payload = dict(draw(st.sampled_from(PAYLOADS)))
    for key in draw(st.lists(st.sampled_from(sorted(payload) + ["zz"]), max_size=3)):
        if draw(st.booleans()):
            payload.pop(key, None)
        else:
            payload[key] = draw(st.sampled_from(EDGES))
    body = json.dumps(payload, allow_nan=True).encode()
    if draw(st.booleans()):
        stream = f"{str(payload.get('s', '')).lower()}@trade".encode()
        body = b'{"stream":"' + stream + b'","data":' + body + b"}"
    return body


FRAME = st.one_of(st.binary(max_size=60), mutated(), structured(), st.sampled_from(FRAMES))


def _check(parsed, frames: list[bytes]) -> None:
    ticks = sum(len(chunk) for chunk in parsed.chunks.values())
    assert ticks + sum(parsed.skipped.values()) + len(parsed.dead) == len(frames)
    for letter in parsed.dead:
        match = re.match(r"^([a-z_]+): .", letter.reason)
        assert match and match.group(1) in CODES, letter.reason
    for chunk in parsed.chunks.values():
        assert chunk.symbol in SYMBOLS
        assert np.isfinite(chunk.price).all() and (chunk.price > 0).all()
        assert np.isfinite(chunk.qty).all() and (chunk.qty > 0).all()


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(FRAME, min_size=1, max_size=12))
def test_every_frame_is_a_tick_a_skip_or_a_dead_letter(batch):
    parser = FrameParser(SYMBOLS, "replay")
    _check(parser.parse([(1_723_161_254_000_000 + i, f) for i, f in enumerate(batch)]), batch)
    recv = np.arange(len(batch), dtype=np.int64) + 1_723_161_254_000_000
    _check(parser.parse_columns(recv, list(batch)), batch)


TRADE = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
         '"t":%s,"p":"61837.63","q":"0.02","T":%s,"m":true,"M":true}}')


@pytest.mark.parametrize("frame", [
    (TRADE % (2**63, 1723161255342)).encode(),  # trade id beyond int64
    (TRADE % (1, 2**64 - 1)).encode(),  # trade time beyond int64
    (TRADE % (1, 1723161255342)).encode().replace(b'"M"', b'"\xe9"'),  # bad UTF-8 in a key
    b'"\xe9"',  # invalid UTF-8 inside a JSON string
], ids=["id_2_63", "time_2_64", "utf8_in_key", "utf8_string"])
def test_found_by_fuzzing_is_a_dead_letter_not_an_exception(frame):
    parsed = FrameParser(SYMBOLS, "replay").parse([(1, frame)])
    assert len(parsed.dead) == 1 and not sum(len(c) for c in parsed.chunks.values())


# ------------------------------------------------------------------------------ replay files

LINE = st.one_of(
    st.tuples(st.one_of(st.integers(1_600_000_000_000_000_000, 1_900_000_000_000_000_000),
                        st.integers(0, 10**30)), FRAME)
    .map(lambda rf: str(rf[0]).encode() + b" " + rf[1].replace(b"\n", b" ")),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
)


def _read_all(path: Path) -> tuple[int, int]:
    """(frames counted, ticks + skipped + dead letters) of a whole replay of ``path``."""
    from connectors.replay import MergedReplay, inspect_file

    replay = MergedReplay([inspect_file(path)], SYMBOLS)
    frames = outcomes = 0
    while not replay.exhausted:
        out = replay.read(16)
        frames += out.frames
        outcomes += (sum(len(c) for c in out.chunks) + sum(out.skipped.values())
                     + len(out.dead))
    return frames, outcomes


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(LINE, max_size=20))
def test_recording_files_read_to_the_end_or_are_rejected(tmp_path_factory, lines):
    from pairflow.errors import InputFileError

    path = tmp_path_factory.mktemp("fuzz") / "rec.txt"
    path.write_bytes(b"\n".join([b"1723161254087896568 " + FRAMES[0], *lines]))
    try:
        frames, outcomes = _read_all(path)
    except InputFileError:
        return
    assert frames == outcomes


def test_receive_time_beyond_int64_is_a_dead_letter_not_an_exception(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_bytes(b"1723161254087896568 " + FRAMES[0] + b"\n"
                     + b"9" * 25 + b" " + FRAMES[0] + b"\n")
    assert _read_all(path) == (2, 2)


def test_corrupt_gzip_is_an_input_file_error(tmp_path):
    from connectors.replay import inspect_file
    from pairflow.errors import InputFileError

    path = tmp_path / "bad.gz"
    path.write_bytes(b"\x1f\x8bgarbage\n")
    with pytest.raises(InputFileError):
        inspect_file(path)


@pytest.mark.parametrize("field", ["trade_id", "ts", "recv_ts"])
def test_ndjson_tick_number_beyond_int64_is_a_dead_letter_not_an_exception(tmp_path, field):
    tick = {"v": 1, "symbol": "BTCUSDT", "trade_id": 1, "price": 1.0, "qty": 1.0,
            "ts": 1723161255342000, "recv_ts": 1723161255342000, "buyer_is_maker": True,
            "source": "replay", "first_trade_id": 1, "last_trade_id": 1}
    path = tmp_path / "ticks.ndjson"
    path.write_text(json.dumps(tick) + "\n" + json.dumps({**tick, "trade_id": 2, field: 2**63})
                    + "\n")
    assert _read_all(path) == (2, 2)
