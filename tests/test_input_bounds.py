"""Input far outside what a feed can produce never hangs a replay or invents bars."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from connectors.store import StoreReader

ROOT = Path(__file__).resolve().parents[1]


def _frame(trade_id: int, trade_ms: int) -> str:
    data = {"e": "trade", "E": trade_ms, "s": "BTCUSDT", "t": trade_id, "p": "61837.63",
            "q": "0.02", "T": trade_ms, "m": True, "M": True}
    return json.dumps({"stream": "btcusdt@trade", "data": data}, separators=(",", ":"))


def test_a_trade_stamped_years_ahead_ends_as_a_gap_not_a_hang(tmp_path):
    recv_ns = 1723161255342_000_000
    future_ms = 2038521255342  # ten years later, with the next trade id
    lines = [f"{recv_ns} {_frame(1, 1723161255342)}",
             f"{recv_ns + 1_000_000} {_frame(2, future_ms)}",
             f"{recv_ns + 2_000_000} {_frame(3, 1723161257342)}"]
    tape = tmp_path / "tape.txt"
    tape.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store.db"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", str(tape), "--symbols", "BTCUSDT",
         "--timeframes", "1s,1m", "--store", str(store)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    reader = StoreReader(store)
    # No quiet bar is made across ten years; the trade after the jump is late, not lost.
    bars = [(b["timeframe"], b["start"], b["trades"]) for b in reader.query("bars")]
    assert ("1s", 1723161255_000_000, 1) in bars and ("1s", 2038521255_000_000, 1) in bars
    assert len(bars) == 4
    dead = list(reader.query("deadletter"))
    assert [d["reason"] for d in dead] == ["late"] and '"trade_id":3' in dead[0]["raw"]
