"""The loop transform (connectors/replay/loop.py): one longer, contiguous, duplicate-free tape."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from connectors.replay.loop import trade_lines, write_looped

TAPE = sorted((Path(__file__).resolve().parents[1] / "pairflow" / "data").glob("*.gz"))


def test_loops_shift_times_and_ids_and_keep_prices(tmp_path):
    base = trade_lines(TAPE)
    assert base and all(f["stream"].endswith("@trade") for _, f in base)
    out = tmp_path / "looped.gz"
    assert write_looped(base, 3, out) == 3 * len(base)
    lines = gzip.open(out, "rt").read().splitlines()
    frames = [json.loads(line.partition(" ")[2])["data"] for line in lines]
    recv = [int(line.partition(" ")[0]) for line in lines]
    assert len(frames) == 3 * len(base) and recv == sorted(recv)
    span_ms = max(f["data"]["T"] for _, f in base) - min(f["data"]["T"] for _, f in base) + 1000
    for k in (1, 2):
        first, shifted = base[0][1]["data"], frames[k * len(base)]
        assert shifted["T"] == first["T"] + k * span_ms and shifted["p"] == first["p"]
    for symbol in {f["s"] for f in frames}:
        ids = sorted(f["t"] for f in frames if f["s"] == symbol)
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, no duplicates
