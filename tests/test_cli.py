"""The ``pairflow`` console script: user mistakes are one line on stderr and exit 2; the
replay summary and the CSV export tell the truth about a real run."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pairflow.config import PairflowConfig
from pairflow.records import Alert, Bar, DeadLetter, PairStats, field_names
from tests.helpers import SPOT_DIR, SPOT_FILES, raw_trades, write_recording

pytestmark = pytest.mark.skipif(len(SPOT_FILES) != 4, reason="real spot tape not found")

PAIRFLOW = Path(sys.executable).with_name("pairflow")
BTC = SPOT_DIR / "btcusdt_20240808.gz"
ETH = SPOT_DIR / "ethusdt_20240808.gz"


def pairflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAIRFLOW_")}
    env["COLUMNS"] = "200"
    return subprocess.run([str(PAIRFLOW), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


def assert_user_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def replay_args(store: Path, *extra: str, files=(BTC, ETH)) -> list[str]:
    return ["replay", *map(str, files), "--symbols", "BTCUSDT,ETHUSDT", "--store", str(store),
            *extra]


CONFIG_ERRORS = [
    (["--timeframes", "1s,2q"], ["unknown timeframe", "'2q'"]),
    (["--symbols", "BTC/USDT"], ["malformed symbol", "BTC/USDT"]),
    (["--pairs", "BTCUSDT/SOLUSDT"], ["SOLUSDT", "not among --symbols"]),
    (["--pairs", "BTCUSDT/ETHUSDT", "--entry-z", "1", "--exit-z", "1"],
     ["exit threshold", "below the entry threshold"]),
    (["--window", "5"], ["window must be at least 10 bars, got 5"]),
    (["--lateness", "-1"], ["lateness"]),
    (["--speed", "warp"], ["speed"]),
    (["--kafka", "127.0.0.1:1", "--ticks-to-kafka", "--kafka-tick-form", "rows"],
     ["kafka_tick_form 'rows' is not batch", "or tick"]),
]


@pytest.mark.parametrize("extra,fragments", CONFIG_ERRORS, ids=[f[0] for _, f in CONFIG_ERRORS])
def test_replay_configuration_errors(tmp_path, extra, fragments):
    args = replay_args(tmp_path / "s.db")
    if extra[0] == "--symbols":  # replace the given symbols
        args[args.index("--symbols") + 1] = extra[1]
        extra = extra[2:]
    done = pairflow(*args, *extra)
    assert_user_error(done, *fragments)
    assert not (tmp_path / "s.db").exists()


def test_missing_input_file(tmp_path):
    missing = tmp_path / "nowhere.gz"
    assert_user_error(pairflow(*replay_args(tmp_path / "s.db", files=(BTC, missing))),
                      str(missing), "does not exist")


def test_store_directory_missing(tmp_path):
    store = tmp_path / "no" / "such" / "dir" / "s.db"
    assert_user_error(pairflow(*replay_args(store)), "does not exist")


def test_store_not_writable(tmp_path):
    # /proc refuses new files even to root; a directory cannot be a database either.
    assert_user_error(pairflow(*replay_args(Path("/proc/pairflow-test.db"))),
                      "cannot write the store")
    assert_user_error(pairflow(*replay_args(tmp_path)), "store")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_store_in_read_only_directory(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert_user_error(pairflow(*replay_args(folder / "s.db")), "store")
    finally:
        folder.chmod(0o755)


def test_unknown_input_layout(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("just some text\n")
    assert_user_error(pairflow(*replay_args(tmp_path / "s.db", files=(notes,))), "notes.txt")


def test_export_errors(tmp_path):
    assert_user_error(pairflow("export", "--store", tmp_path / "none.db", "--kind", "bars",
                               "--out", "-"), "does not exist")
    store = tmp_path / "s.db"
    done = pairflow(*replay_args(store, files=(BTC,)))
    assert done.returncode == 0, done.stderr
    assert_user_error(pairflow("export", "--store", store, "--kind", "candles", "--out", "-"),
                      "unknown kind 'candles'")
    assert_user_error(pairflow("export", "--store", store, "--kind", "bars", "--start",
                               "yesterday", "--out", "-"), "ISO-8601")
    assert_user_error(pairflow("export", "--store", store, "--kind", "bars", "--out",
                               tmp_path / "missing" / "out.csv"), "cannot write")
    not_a_store = tmp_path / "text.db"
    not_a_store.write_text("hello")
    assert_user_error(pairflow("export", "--store", not_a_store, "--kind", "bars", "--out",
                               "-"), "text.db")


@pytest.mark.parametrize("command", [[], ["replay"], ["export"]])
def test_help(command):
    done = pairflow(*command, "--help")
    assert done.returncode == 0 and "Usage" in done.stdout


@pytest.mark.parametrize("command,option,field", [
    ("replay", "--window", "window"), ("replay", "--timeframes", "timeframes"),
    ("replay", "--exit-z", "exit_z"), ("live", "--market", "market"),
    ("live", "--lateness", "lateness_s"), ("ingest", "--kafka-tick-form", "kafka_tick_form"),
])
def test_help_shows_the_configuration_default(command, option, field):
    default = {f.name: f.default for f in dataclasses.fields(PairflowConfig)}[field]
    shown = ",".join(default) if isinstance(default, tuple) else f"{default:g}" if isinstance(
        default, float) else str(default)
    done = pairflow(command, "--help")
    line = next(line for line in done.stdout.splitlines() if f" {option} " in line)
    assert f"[default: {shown}]" in line, line


@pytest.mark.parametrize("args", [["replay", "--bogus"], ["replay"], ["export", "--kind", "bars"]])
def test_usage_errors_start_with_the_usage_line(args):
    done = pairflow(*args)
    assert done.returncode == 2 and done.stderr.startswith("Usage: pairflow "), done.stderr


def summary_value(text: str, label: str) -> int:
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d,]+)\s*$", text, re.MULTILINE)
    assert match, (label, text)
    return int(match.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """A CLI replay of the first day's files plus one bad line, late trades and duplicates."""
    folder = tmp_path_factory.mktemp("cli")
    lines = []
    trades = raw_trades([ETH])["ETHUSDT"]
    late = trades[3000]
    # A copy of an early trade re-sent 10 s later under a fresh id: late at 2 s lateness.
    frame = ('{"stream":"ethusdt@trade","data":{"e":"trade","E":%d,"s":"ETHUSDT","t":%d,'
             '"p":"%r","q":"%r","T":%d,"m":false,"M":true}}')
    lines.append(f"{late.recv_ns + 10**10} " + frame % (
        late.ts_us // 1000, trades[-1].trade_id + 5, late.price, late.qty, late.ts_us // 1000))
    lines.append("garbage-without-time {}")
    extra = write_recording(folder / "extra.log", lines)
    store = folder / "cli.db"
    done = pairflow(*replay_args(store, "--pairs", "BTCUSDT/ETHUSDT", "--window", "60",
                                 files=(ETH, extra, BTC, BTC)))
    return done, store


def test_replay_summary(replayed):
    done, _ = replayed
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert summary_value(out, "ticks") == 9_757 * 2 + 6_106 + 1
    assert summary_value(out, "duplicates dropped") == 9_757
    assert summary_value(out, "late trades") == 1
    assert summary_value(out, "skipped bookTicker") == 28_040 * 2 + 24_077
    assert summary_value(out, "skipped depth") == 3_451 * 2 + 3_434
    assert summary_value(out, "dead letters") == 2
    assert summary_value(out, "late") == 1 and summary_value(out, "malformed_line") == 1
    assert summary_value(out, "ticks in bars") == 9_757 + 6_106
    assert "ticks/s" in out and "elapsed" in out


@pytest.mark.parametrize("kind,cls", [("bars", Bar), ("pairs", PairStats), ("alerts", Alert),
                                      ("deadletter", DeadLetter)])
def test_export_headers_and_times(replayed, kind, cls):
    _, store = replayed
    done = pairflow("export", "--store", store, "--kind", kind, "--out", "-")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == field_names(cls)
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for row in rows[1:]:
        record = dict(zip(rows[0], row, strict=True))
        for name in ("start", "end", "ts"):
            if name in record:
                assert iso.match(record[name]), record
    if kind in ("bars", "pairs", "deadletter"):
        assert len(rows) > 2


def test_export_dead_letters_keep_raw_text(replayed):
    _, store = replayed
    done = pairflow("export", "--store", store, "--kind", "deadletter", "--out", "-")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    reasons = {row["reason"].partition(":")[0]: row for row in rows}
    assert set(reasons) == {"late", "malformed_line"}
    assert reasons["malformed_line"]["raw"] == "garbage-without-time {}"
    assert '"late_by_us":' in reasons["late"]["raw"]


def test_a_gzip_recording_cut_short_is_an_error_after_what_it_held_is_stored(tmp_path):
    # The real tape cut at 70 % of its bytes, as a copy stopped early leaves it: the ticks
    # before the cut are replayed and stored, then the run fails naming the file.
    whole = BTC.read_bytes()
    cut = tmp_path / "btcusdt_20240808.gz"
    cut.write_bytes(whole[: len(whole) * 7 // 10])
    store = tmp_path / "cut.db"
    done = pairflow("replay", cut, "--symbols", "BTCUSDT", "--timeframes", "1s",
                    "--store", store)
    assert_user_error(done, str(cut), "cut short")
    complete = tmp_path / "whole.db"
    assert pairflow("replay", BTC, "--symbols", "BTCUSDT", "--timeframes", "1s",
                    "--store", complete).returncode == 0
    def bars(path: Path) -> int:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM bars").fetchone()[0]

    assert 0 < bars(store) < bars(complete)
