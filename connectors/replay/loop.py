"""The loop transform: a recording played ``loops`` times end to end, as one longer recording.

Loop ``k`` shifts every time (trade time ``T``, event time ``E``, receive time) by ``k`` times
the tape's span plus one second and every trade id by ``k`` times the symbol's id range, so the
looped tape is one contiguous, duplicate-free recording — a deterministic transform of real
data, not new data (prices repeat; each loop seam is a price jump back to the tape's start).
Only the ``@trade`` frames are kept. The benchmarks use it (``bench/replay.py``), and so does
the demo, to show statistics on its 1m and 5m bars (``./dev demo``).

Usage: ``python -m connectors.replay.loop --loops 6 --out looped.gz FILE...``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

__all__ = ["trade_lines", "write_looped"]


def trade_lines(paths: list[Path]) -> list[tuple[int, dict]]:
    """The ``@trade`` frames of recordings, as (receive time ns, frame), in receive order."""
    lines = []
    for path in paths:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                recv, _, frame = line.rstrip("\n").partition(" ")
                if '@trade"' in frame[:40]:
                    lines.append((int(recv), json.loads(frame)))
    lines.sort(key=lambda item: item[0])
    return lines


def write_looped(base: list[tuple[int, dict]], loops: int, out: Path) -> int:
    """Write ``loops`` shifted copies of ``base`` (see :func:`trade_lines`) to ``out``.

    Written to a temporary file beside ``out`` and renamed, gzip level 1.

    Returns:
        The number of trades written.
    """
    times = [f["data"]["T"] for _, f in base]
    span_ms = max(times) - min(times) + 1000
    ids: dict[str, list[int]] = {}
    for _, frame in base:
        ids.setdefault(frame["data"]["s"], []).append(frame["data"]["t"])
    id_range = {s: max(v) - min(v) + 1 for s, v in ids.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with gzip.open(tmp, "wt", compresslevel=1) as handle:
        for k in range(loops):
            for recv, frame in base:
                data = dict(frame["data"])
                data["T"] += k * span_ms
                data["E"] += k * span_ms
                data["t"] += k * id_range[data["s"]]
                shifted = {"stream": frame["stream"], "data": data}
                handle.write(f"{recv + k * span_ms * 1_000_000} "
                             f"{json.dumps(shifted, separators=(',', ':'))}\n")
    os.replace(tmp, out)
    return loops * len(base)


def main() -> None:
    """Write a looped tape (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="gzip recordings")
    parser.add_argument("--loops", type=int, required=True, help="copies, end to end (>= 1)")
    parser.add_argument("--out", type=Path, required=True, help="the looped tape (gzip)")
    args = parser.parse_args()
    if args.loops < 1:
        parser.error(f"--loops must be at least 1, got {args.loops}")
    trades = write_looped(trade_lines(args.files), args.loops, args.out)
    print(f"{args.out}: {trades} trades, {args.loops} loops")


if __name__ == "__main__":
    main()
