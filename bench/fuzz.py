"""Fuzz the Binance frame parser and the replay reader with hypothesis, for a fixed time.

Inputs, mixed in batches of 1-24 frames:

- random bytes;
- real frames (``../shared/data/binance-spot-2024-08-08``: trade, bookTicker, depth, the REST
  snapshot line; ``../shared/data/ws_message_examples.txt``: spot/futures trade and aggTrade,
  raw and enveloped) mutated byte-wise: flips, truncation, insertion, deletion, duplication,
  digit swaps;
- structurally valid JSON built from the real trade payloads with fields dropped, replaced by
  a value of another type (null, bool, int, float, string, list, object), or added; key order
  shuffled, blanks added, with or without the combined-stream envelope (matching or not);
- number edge cases in every numeric field: NaN / Infinity (as JSON tokens and as strings),
  1e309, -0, 0, negatives, 2^53+1, 2^63-1, 2^63, 2^64, 10^30, ms/µs boundaries.

Property (checked for ``FrameParser.parse`` and ``parse_columns``, the replay path): no
exception escapes; every frame is a tick, a counted skip or a dead letter — frames in ==
ticks + skipped + dead letters; every dead letter's reason is ``code: detail`` with a known code
and its ``raw`` is one of the batch's frames; every tick has a wanted symbol, finite positive
price and size, a positive time; the batch gives the same outcome counts as its frames parsed
one by one (the batch decoder's fallback loses nothing).

Then ``MergedReplay`` reads random recording files (valid, short, long and non-numeric receive
times, blank lines, junk lines, gzip or plain): ``inspect_file`` may reject a file with
``InputFileError``; anything else must read to the end with frames == ticks + skipped + dead.

A failing example does not stop the run: each distinct failure (exception type and place, or
broken property) is counted and its shortest input kept and printed, with a reproduction.

Usage: ``python bench/fuzz.py [--seconds 60] [--replay-seconds 15] [--seed N]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from connectors.binance.wire import FrameParser  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SYMBOLS = frozenset({"BTCUSDT", "ETHUSDT", "BNBBTC", "SUSHIUSDT", "NKNUSDT"})
CODES = {"malformed_line", "invalid_json", "missing_field", "unknown_field", "bad_type",
         "bad_value", "bad_symbol", "non_finite", "non_positive", "unknown_symbol",
         "symbol_mismatch", "bad_tick", "late", "bad_row"}
REASON = re.compile(r"^([a-z_]+): .")

# ------------------------------------------------------------------------------ corpus


def _examples() -> list[bytes]:
    """JSON objects of ws_message_examples.txt (``//`` comments removed) and its real lines."""
    path = SHARED / "ws_message_examples.txt"
    if not path.exists():
        return []
    out, block = [], []
    for line in path.read_text().splitlines():
        stripped = re.sub(r"\s*//.*$", "", line)
        if stripped.startswith("{") and stripped.endswith("}"):
            out.append(stripped.encode())
        elif stripped == "{" or block:
            block.append(stripped)
            if stripped == "}":
                out.append("\n".join(block).encode())
                block = []
    return out


def _tape(per_kind: int = 40) -> list[bytes]:
    """Some frames of every kind in the real captures."""
    out: list[bytes] = []
    for path in sorted((SHARED / "binance-spot-2024-08-08").glob("*.gz")):
        seen: Counter = Counter()
        with gzip.open(path, "rb") as handle:
            for number, line in enumerate(handle):
                frame = line.rstrip(b"\n").partition(b" ")[2]
                kind = frame[:40].split(b'"data"')[0]
                if seen[kind] < per_kind:
                    seen[kind] += 1
                    out.append(frame[:4000])
                if number > 20_000:
                    break
    return out


def corpus() -> tuple[list[bytes], list[dict]]:
    """Real frames, and the trade payloads (decoded) to build structured variants from."""
    frames = _tape() + _examples()
    if not frames:  # without ../shared, the bundled tape
        with gzip.open(next((ROOT / "pairflow" / "data").glob("*.gz")), "rb") as handle:
            frames = [handle.readline().partition(b" ")[2].strip() for _ in range(200)]
    payloads = []
    for frame in frames:
        try:
            value = json.loads(frame)
        except ValueError:
            continue
        data = value.get("data", value) if isinstance(value, dict) else None
        if isinstance(data, dict) and data.get("e") in ("trade", "aggTrade"):
            payloads.append(data)
    unique = {json.dumps(p, sort_keys=True): p for p in payloads}
    return frames, list(unique.values())


FRAMES, PAYLOADS = corpus()

# -------------------------------------------------------------------------- strategies

EDGE_INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
             -(2**63) - 1, 10**30, 99_999_999_999_999, 100_000_000_000_000, 1723161255342,
             1723161255342123]
EDGE_NUMBER_TEXT = ["NaN", "nan", "Infinity", "-Infinity", "inf", "1e309", "-1e309", "-0",
                    "0", "0.0", "-1", "1e-400", "0x10", " 5", "5 ", "", "1_000", "١٢٣",
                    "61837.63000000", "1" * 400]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.sampled_from(EDGE_INTS), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EDGE_NUMBER_TEXT),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=5)
KINDS = st.sampled_from(["trade", "aggTrade", "bookTicker", "depthUpdate", "kline_1m",
                         "24hrTicker", "", "TRADE", "trade ", "x"])


@st.composite
def mutated(draw) -> bytes:
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "dup", "digit"]))
        pos = draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del frame[pos:]
        elif op == "insert":
            frame[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del frame[pos:pos + draw(st.integers(1, 8))]
        elif op == "dup":
            frame[pos:pos] = frame[pos:pos + draw(st.integers(1, 16))]
        elif op == "digit":
            digits = [i for i, b in enumerate(frame) if 48 <= b <= 57]
            if digits:
                frame[draw(st.sampled_from(digits))] = draw(st.integers(48, 57))
    return bytes(frame)


def _dumps(value, shuffle: bool, blanks: bool) -> bytes:
    if shuffle and isinstance(value, dict):
        items = list(value.items())
        random.Random(len(items)).shuffle(items)
        value = dict(items)
    if blanks:
        return json.dumps(value, allow_nan=True, indent=1).encode()
    return json.dumps(value, allow_nan=True, separators=(",", ":")).encode()


@st.composite
def structured(draw) -> bytes:
    payload = dict(draw(st.sampled_from(PAYLOADS)))
    for key in list(payload):
        action = draw(st.sampled_from(["keep"] * 5 + ["drop", "replace", "edge"]))
        if action == "drop":
            del payload[key]
        elif action == "replace":
            payload[key] = draw(JSON_VALUES)
        elif action == "edge":
            payload[key] = draw(st.one_of(st.sampled_from(EDGE_INTS),
                                          st.sampled_from(EDGE_NUMBER_TEXT)))
    if draw(st.booleans()):
        payload["e"] = draw(KINDS)
    for _ in range(draw(st.integers(0, 2))):
        payload[draw(st.sampled_from(["x", "E", "nq", "X", "M", "b", "a", "f", "l", "zz"]))] = (
            draw(JSON_VALUES))
    shuffle, blanks = draw(st.booleans()), draw(st.booleans())
    envelope = draw(st.sampled_from(["none", "match", "other", "odd"]))
    if envelope == "none":
        return _dumps(payload, shuffle, blanks)
    symbol = str(payload.get("s", "btcusdt")).lower()
    stream = {"match": f"{symbol}@{payload.get('e', 'trade')}",
              "other": f"ethusdt@{draw(KINDS)}",
              "odd": draw(st.text(max_size=20))}[envelope]
    outer = {"stream": stream, "data": payload}
    if draw(st.integers(0, 9)) == 0:
        outer[draw(st.sampled_from(["x", "stream", "data"]))] = draw(JSON_VALUES)
    return _dumps(outer, shuffle and draw(st.booleans()), blanks)


@st.composite
def numbers(draw) -> bytes:
    """A well-formed trade whose numbers are edge cases, spelled as JSON tokens or strings."""
    payload = dict(draw(st.sampled_from(PAYLOADS)))
    for key in draw(st.lists(st.sampled_from(["p", "q", "T", "E", "t", "a", "f", "l"]),
                             min_size=1, max_size=3)):
        value = draw(st.one_of(st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_NUMBER_TEXT),
                               st.floats()))
        payload[key] = value
    text = _dumps(payload, False, False)
    # JSON has no NaN/Infinity tokens; json.dumps writes them anyway: keep some, swap some.
    if draw(st.booleans()):
        text = text.replace(b"NaN", b"1e999")
    if draw(st.booleans()):
        symbol = str(payload.get("s", "")).lower()
        text = (b'{"stream":"' + symbol.encode() + b"@" + str(payload.get("e", "")).encode()
                + b'","data":' + text + b"}")
    return text


FRAME = st.one_of(st.binary(max_size=200), mutated(), structured(), numbers(),
                  st.sampled_from(FRAMES))
BATCH = st.lists(FRAME, min_size=1, max_size=24)

# ---------------------------------------------------------------------------- property


def outcomes(parsed) -> Counter:
    """Counts by outcome: ``tick``, ``skip:<kind>``, ``dead:<code>``."""
    out: Counter = Counter()
    out["tick"] = sum(len(chunk) for chunk in parsed.chunks.values())
    for kind, count in parsed.skipped.items():
        out[f"skip:{kind}"] += count
    for letter in parsed.dead:
        match = REASON.match(letter.reason)
        out[f"dead:{match.group(1) if match else '?'}"] += 1
    return +out


def check(parsed, frames: list[bytes], symbols: frozenset[str]) -> Counter:
    """The property for one parse result; raises AssertionError naming what broke."""
    ticks = sum(len(chunk) for chunk in parsed.chunks.values())
    skipped = sum(parsed.skipped.values())
    assert parsed.frames == len(frames), "frames counted != frames given"
    assert ticks + skipped + len(parsed.dead) == len(frames), (
        f"conservation: {len(frames)} frames -> {ticks} ticks + {skipped} skipped + "
        f"{len(parsed.dead)} dead")
    texts = {f.decode("utf-8", "replace") for f in frames}
    for letter in parsed.dead:
        match = REASON.match(letter.reason)
        assert match and match.group(1) in CODES, f"reason not `code: detail`: {letter.reason}"
        assert letter.raw in texts, "dead letter raw is not an input frame"
    for symbol, chunk in parsed.chunks.items():
        assert symbol in symbols and chunk.symbol == symbol, f"tick of symbol {symbol!r}"
        if len(chunk):
            assert np.isfinite(chunk.price).all() and (chunk.price > 0).all(), "bad price"
            assert np.isfinite(chunk.qty).all() and (chunk.qty > 0).all(), "bad qty"
            assert (chunk.ts > 0).all(), "bad time"
    return outcomes(parsed)


class Findings:
    """Distinct failures, each with its count and shortest input."""

    def __init__(self) -> None:
        self.seen: dict[str, list] = {}

    def add(self, key: str, example) -> None:
        entry = self.seen.setdefault(key, [0, example])
        entry[0] += 1
        if len(repr(example)) < len(repr(entry[1])):
            entry[1] = example

    def report(self, title: str) -> None:
        if not self.seen:
            print(f"{title}: no failure")
            return
        print(f"{title}: {len(self.seen)} distinct failure(s)")
        for key, (count, example) in sorted(self.seen.items(), key=lambda kv: -kv[1][0]):
            print(f"  {count:>7,} x {key}")
            print(f"            shortest input: {example!r}"[:400])


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    last = frames[-1] if frames else None
    place = f"{Path(last.filename).name}:{last.lineno}" if last else "?"
    return f"{type(error).__name__} at {place}"


def fuzz_parser(seconds: float, seed: int | None) -> tuple[Counter, Counter, Findings]:
    parser = FrameParser(SYMBOLS, "replay")
    totals: Counter = Counter()
    stats: Counter = Counter()
    findings = Findings()

    @settings(max_examples=500, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(BATCH)
    def one(batch: list[bytes]) -> None:
        stats["batches"] += 1
        stats["frames"] += len(batch)
        items = [(1_723_161_254_000_000 + i, f) for i, f in enumerate(batch)]
        results = {}
        for name, call in (("parse", lambda: parser.parse(items)),
                           ("parse_columns", lambda: parser.parse_columns(
                               np.array([r for r, _ in items], np.int64), list(batch)))):
            try:
                results[name] = check(call(), batch, SYMBOLS)
            except AssertionError as error:
                findings.add(f"{name}: property broken: {error}", batch)
            except Exception as error:  # noqa: BLE001 - every escape is a finding
                findings.add(f"{name}: {_where(error)}", batch)
        if "parse" in results:
            totals.update(results["parse"])
            singles: Counter = Counter()
            for item in items:
                try:
                    singles += check(parser.parse([item]), [item[1]], SYMBOLS)
                except Exception as error:  # noqa: BLE001
                    findings.add(f"parse (one frame): {_where(error)}", [item[1]])
                    singles = None
                    break
            if singles is not None and singles != results["parse"]:
                findings.add("batch != frames one by one", batch)
            if "parse_columns" in results and results["parse_columns"] != results["parse"]:
                findings.add("parse_columns != parse", batch)

    if seed is not None:
        random.seed(seed)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        one()
    stats["seconds"] = time.perf_counter() - started
    return totals, stats, findings


# ------------------------------------------------------------------------------ replay

RECV = st.one_of(st.integers(1_600_000_000_000_000_000, 1_900_000_000_000_000_000).map(str),
                 st.integers(0, 10**30).map(str), st.sampled_from(["", "-5", "12a", "1.5",
                                                                   "١٢٣", "0" * 19]))
LINE = st.one_of(
    st.tuples(RECV, FRAME).map(lambda rf: rf[0].encode() + b" " + rf[1].replace(b"\n", b" ")),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"", b"   ", b"\r", b"1723161254087896568", b"1723161254087896568 "]),
)


def fuzz_replay(seconds: float) -> tuple[Counter, Counter, Findings]:
    from connectors.replay import MergedReplay, inspect_file
    from pairflow.errors import InputFileError

    totals: Counter = Counter()
    stats: Counter = Counter()
    findings = Findings()
    directory = Path(tempfile.mkdtemp(prefix="pairflow-fuzz-"))
    real = b"1723161254087896568 " + next(f for f in FRAMES if b"@trade" in f)

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(LINE, max_size=40), st.booleans(), st.booleans())
    def one(lines: list[bytes], compress: bool, lead_real: bool) -> None:
        stats["files"] += 1
        body = b"\n".join(([real] if lead_real else []) + lines)
        path = directory / ("f.gz" if compress else "f.txt")
        path.write_bytes(gzip.compress(body) if compress else body)
        try:
            spec = inspect_file(path)
        except InputFileError:
            totals["file rejected (InputFileError)"] += 1
            return
        except Exception as error:  # noqa: BLE001
            findings.add(f"inspect_file: {_where(error)}", body)
            return
        stats["lines"] += body.count(b"\n") + 1
        try:
            replay = MergedReplay([spec], SYMBOLS)
            frames = ticks = skipped = dead = 0
            while not replay.exhausted:
                out = replay.read(16)
                frames += out.frames
                ticks += sum(len(c) for c in out.chunks)
                skipped += sum(out.skipped.values())
                dead += len(out.dead)
                for letter in out.dead:
                    totals[f"dead:{letter.reason.partition(':')[0]}"] += 1
                totals.update(f"skip:{k}" for k in out.skipped.elements())
            totals["tick"] += ticks
            if frames != ticks + skipped + dead:
                findings.add(f"conservation: {frames} != {ticks}+{skipped}+{dead}", body)
        except InputFileError:
            totals["file rejected while reading (InputFileError)"] += 1
        except Exception as error:  # noqa: BLE001
            findings.add(f"MergedReplay ({spec.layout}): {_where(error)}", body)

    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        one()
    stats["seconds"] = time.perf_counter() - started
    return totals, stats, findings


#: Stream kinds Binance sends; a skip under any other name is a mangled frame's kind.
KNOWN_KINDS = {"trade", "aggTrade", "bookTicker", "depth", "kline", "24hrTicker", "24hrMiniTicker",
               "snapshot", "other", "markPrice", "forceOrder", "ticker", "miniTicker"}


def grouped(totals: Counter) -> list[tuple[str, int]]:
    """Outcomes in order; skips of unknown kind names lumped together."""
    out: Counter = Counter()
    odd: set[str] = set()
    for name, count in totals.items():
        kind = name.partition(":")[2]
        if name.startswith("skip:") and kind not in KNOWN_KINDS:
            out["skip:<unknown kind name>"] += count
            odd.add(kind)
        else:
            out[name] += count
    rows = sorted(out.items(), key=lambda kv: (kv[0].split(":")[0], -kv[1]))
    return [(f"{name} ({len(odd)} names)" if "unknown kind" in name else name, count)
            for name, count in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="frame parser fuzzing [60]")
    parser.add_argument("--replay-seconds", type=float, default=15.0,
                        help="MergedReplay fuzzing [15]")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"corpus: {len(FRAMES)} real frames, {len(PAYLOADS)} trade payloads; "
          f"load average {load[0]:.2f}")
    totals, stats, findings = fuzz_parser(args.seconds, args.seed)
    rate = stats["frames"] / stats["seconds"]
    print(f"frame parser: {stats['seconds']:.0f} s, {stats['batches']:,} batches, "
          f"{stats['frames']:,} frames ({stats['batches'] / stats['seconds']:,.0f} batches/s, "
          f"{rate:,.0f} frames/s; each batch parsed 3 ways: parse, parse_columns, one by one)")
    print("  outcomes (parse):")
    for name, count in grouped(totals):
        print(f"    {name:<44} {count:>9,}")
    findings.report("  frame parser")
    print("  (a frame that crashes a batch is counted under no outcome: the batch is lost)")
    if args.replay_seconds > 0:
        totals, stats, findings = fuzz_replay(args.replay_seconds)
        print(f"MergedReplay: {stats['seconds']:.0f} s, {stats['files']:,} files, "
              f"{stats['lines']:,} lines read ({stats['files'] / stats['seconds']:,.0f} "
              f"files/s)")
        for name, count in grouped(totals):
            print(f"    {name:<44} {count:>9,}")
        findings.report("  MergedReplay")


if __name__ == "__main__":
    main()
