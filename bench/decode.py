"""The decode limit of recordings: msgspec per batch of frames against Arrow's columnar JSON.

Input: the USDⓈ-M recording of ``bench/tapes.py`` (real trades, looped). Both sides turn the
same 16 k-frame batches into the columns the bar step needs (price, qty, trade time, trade id,
side, symbol, fill type), in this process, CPU time:

- **msgspec**: one typed decode of the batch as a JSON array of envelopes (what
  ``connectors/binance/wire.py`` does), then the columns from the decoded structs;
- **Arrow**: ``pyarrow.json.read_json`` of the batch as NDJSON with an explicit schema, prices
  cast from their decimal strings by Arrow.

Measured inside whole replays (alternating runs, CPU time), an Arrow fast path for clean
batches gave no gain over msgspec (6.95/7.10 s against 6.40/7.35 s for 1 M frames): the decode
is not the bottleneck of a replay, so pairflow keeps the one checked msgspec path.

Usage: ``python bench/decode.py [--rows 1000000]``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tapes import make  # noqa: E402
from connectors.binance.wire import _ENVELOPE_BATCHES  # noqa: E402
from connectors.json_batch import decode_batch  # noqa: E402
from connectors.replay.files import iter_lines  # noqa: E402

BATCH = 16_384
SCHEMA = pa.schema([("stream", pa.string()), ("data", pa.struct([
    ("e", pa.string()), ("E", pa.int64()), ("T", pa.int64()), ("s", pa.string()),
    ("t", pa.int64()), ("p", pa.string()), ("q", pa.string()), ("X", pa.string()),
    ("m", pa.bool_())]))])


def with_msgspec(batches: list[list[bytes]]) -> float:
    started = time.process_time()
    for frames in batches:
        payloads = [d.data for d in decode_batch(frames, *_ENVELOPE_BATCHES)]
        np.array([p.p for p in payloads])
        np.array([p.q for p in payloads])
        np.array([p.T for p in payloads], np.int64)
        np.array([p.t for p in payloads], np.int64)
        np.array([p.m for p in payloads], bool)
        [p.s for p in payloads]  # noqa: B018 - the symbol column
        [p.X for p in payloads]  # noqa: B018 - the fill-type column
    return time.process_time() - started


def with_arrow(batches: list[list[bytes]]) -> float:
    started = time.process_time()
    options = pajson.ParseOptions(explicit_schema=SCHEMA, unexpected_field_behavior="ignore")
    for frames in batches:
        table = pajson.read_json(io.BytesIO(b"\n".join(frames)),
                                 read_options=pajson.ReadOptions(use_threads=False),
                                 parse_options=options)
        data = table.column("data").combine_chunks()
        pc.cast(data.field("p"), pa.float64())
        pc.cast(data.field("q"), pa.float64())
        data.field("T"), data.field("t"), data.field("m")  # noqa: B018 - already columns
        data.field("s").dictionary_encode()
        data.field("X").dictionary_encode()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    path, _ = make("usdm_recording", args.rows)
    frames = [line[20:] for lines in iter_lines(path) for line in lines if line]
    batches = [frames[i:i + BATCH] for i in range(0, len(frames), BATCH)]
    print(f"load average {os.getloadavg()[0]:.1f}; {len(frames):,} USDⓈ-M trade frames")
    for name, run in (("msgspec (typed structs → columns)", with_msgspec),
                      ("Arrow JSON (columnar)", with_arrow)):
        best = min(run(batches) for _ in range(3))
        print(f"{name:<36} {best / len(frames) * 1e6:6.2f} µs/frame  "
              f"{len(frames) / best:>12,.0f} frames/s (CPU, best of 3)")


if __name__ == "__main__":
    main()
