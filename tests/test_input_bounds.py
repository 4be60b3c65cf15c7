"""Input far outside what a feed can produce is a dead letter, never a hang or a crash."""

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


def test_a_trade_stamped_years_ahead_is_a_dead_letter_and_the_replay_ends(tmp_path):
    recv_ns = 1723161255342_000_000
    lines = [f"{recv_ns} {_frame(1, 1723161255342)}",
             f"{recv_ns + 1_000_000} {_frame(2, 2038521255342)}",  # ten years later
             f"{recv_ns + 2_000_000} {_frame(3, 1723161257342)}"]
    tape = tmp_path / "tape.txt"
    tape.write_text("\n".join(lines) + "\n")
    store = tmp_path / "store.db"
    result = subprocess.run(
        [sys.executable, "-m", "pairflow.cli", "replay", str(tape), "--symbols", "BTCUSDT",
         "--timeframes", "1s", "--store", str(store)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    reader = StoreReader(store)
    dead = list(reader.query("deadletter"))
    assert [d["reason"].split(":")[0] for d in dead] == ["bad_value"]
    assert '"t":2' in dead[0]["raw"]
    bars = list(reader.query("bars"))
    # Trades 1 and 3, two seconds apart; the id hole left by the rejected trade 2 means no
    # quiet bar is invented between them.
    assert [(b["start"], b["trades"]) for b in bars] == [
        (1723161255_000_000, 1), (1723161257_000_000, 1)]
