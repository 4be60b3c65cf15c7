"""Replay readers: every input layout, through the real flow, against the plain reference.

Inputs are made from the real spot tape (``../shared/data/binance-spot-2024-08-08``) and the
real REST responses (``../shared/data/binance-rest``), rewritten into each layout in tmp_path:
recordings (gzip/plain, envelope/raw, legacy ``b``/``a``), spot and futures ``@aggTrade``,
USDⓈ-M ``@trade`` with non-market fills, data.binance.vision CSV dumps of trades and aggTrades
(zip/plain, header or not, ms/µs), pairflow NDJSON tick dumps; plus bad lines of every kind.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tempfile
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.replay import inspect_file
from pairflow.errors import InputFileError
from pairflow.records import Tick, to_json
from tests.helpers import (
    REST_DIR,
    SPOT_FILES,
    SYMBOLS,
    bar_mismatches,
    dead_letters,
    plain_bars,
    raw_lines,
    raw_trades,
    run_replay,
    store_bars,
    trade_from_payload,
    write_recording,
)

pytestmark = pytest.mark.skipif(len(SPOT_FILES) != 4, reason="real spot tape not found")

TFS = ("1s", "1m", "5m")
#: Trade frames per symbol kept for the faster layouts (a few minutes of tape).
EXCERPT = 5000


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


@pytest.fixture(scope="module")
def tape() -> list[tuple[int, dict]]:
    """(receive ns, frame object) of every line of the real tape, file by file, sorted files."""
    out = []
    for line in raw_lines(SPOT_FILES):
        head, _, frame = line.partition(" ")
        out.append((int(head), json.loads(frame)))
    return out


@pytest.fixture(scope="module")
def trade_tape(tape) -> list[tuple[int, dict]]:
    """(receive ns, trade payload) of the first EXCERPT trades of each symbol, receive order."""
    kept, per_symbol = [], dict.fromkeys(SYMBOLS, 0)
    for recv, obj in tape:
        data = obj.get("data")
        if obj.get("stream", "").endswith("@trade") and per_symbol[data["s"]] < EXCERPT:
            per_symbol[data["s"]] += 1
            kept.append((recv, data))
    kept.sort(key=lambda item: item[0])
    return kept


def assert_store_matches(db: Path, reference: dict, symbols=SYMBOLS, timeframes=TFS):
    for symbol in symbols:
        for timeframe in timeframes:
            expected = plain_bars(reference[symbol], symbol, timeframe)
            assert expected, (symbol, timeframe)
            problems = bar_mismatches(store_bars(db, symbol, timeframe), expected)
            assert problems == [], (symbol, timeframe, problems)


def recording_lines(items, envelope=True) -> list[str]:
    lines = []
    for recv, data in items:
        stream = f"{data['s'].lower()}@{data['e']}"
        frame = {"stream": stream, "data": data} if envelope else data
        lines.append(f"{recv} {compact(frame)}")
    return lines


# --------------------------------------------------------------------------- recordings


def test_plain_uncompressed_recordings_equal_gzip(tmp_path):
    plain = []
    for path in SPOT_FILES:
        target = tmp_path / path.name.replace(".gz", ".txt")
        target.write_bytes(gzip.decompress(path.read_bytes()))
        plain.append(target)
    assert inspect_file(plain[0]).layout == inspect_file(SPOT_FILES[0]).layout == "recording"
    db = tmp_path / "plain.db"
    totals = run_replay(plain[::-1], db)
    assert totals["ticks_read"] == 19_904 + 14_515
    assert_store_matches(db, raw_trades(SPOT_FILES))


def test_raw_payload_frames_and_legacy_order_ids(tmp_path, trade_tape):
    # Half the symbols' frames without the envelope, all trades with the pre-2024-06 b/a ids.
    legacy = [(recv, {**data, "b": 10_000 + i, "a": 20_000 + i})
              for i, (recv, data) in enumerate(trade_tape)]
    raw = write_recording(tmp_path / "raw.gz", recording_lines(legacy[::2], envelope=False))
    env = write_recording(tmp_path / "env.log", recording_lines(legacy[1::2], envelope=True))
    db = tmp_path / "raw.db"
    totals = run_replay([raw, env], db)
    assert totals["ticks_read"] == len(trade_tape)
    assert not any(k.startswith("dead:") for k in totals)
    assert_store_matches(db, raw_trades([raw, env]))


def aggregate(trades: list[tuple[int, dict]], futures: bool) -> list[tuple[int, dict]]:
    """Group consecutive trades of a symbol with the same time, price and side (as Binance)."""
    out: list[tuple[int, dict]] = []
    open_group: dict[str, dict] = {}
    next_agg = {"BTCUSDT": 900_000_000, "ETHUSDT": 400_000_000}

    def emit(group):
        data = {"e": "aggTrade", "E": group["T"] + 1, "s": group["s"], "a": group["a"],
                "p": group["p"], "q": str(group["q"]), "f": group["f"], "l": group["l"],
                "T": group["T"], "m": group["m"]}
        if not futures:
            data["M"] = True
        out.append((group["recv"], data))

    for recv, trade in trades:
        symbol = trade["s"]
        group = open_group.get(symbol)
        same = group is not None and (group["T"], group["p"], group["m"]) == (
            trade["T"], trade["p"], trade["m"])
        if same:
            group["q"] += Decimal(trade["q"])
            group["l"] = trade["t"]
            group["recv"] = recv
            continue
        if group is not None:
            emit(group)
        open_group[symbol] = {"s": symbol, "a": next_agg[symbol], "p": trade["p"],
                              "q": Decimal(trade["q"]), "f": trade["t"], "l": trade["t"],
                              "T": trade["T"], "m": trade["m"], "recv": recv}
        next_agg[symbol] += 1
    for group in open_group.values():
        emit(group)
    out.sort(key=lambda item: item[0])
    return out


@pytest.mark.parametrize("futures", [False, True], ids=["spot", "usdm"])
def test_aggtrade_recordings_count_exchange_trades(tmp_path, trade_tape, futures):
    aggs = aggregate(trade_tape, futures)
    assert len(aggs) < 0.8 * len(trade_tape)  # the grouping really merged trades
    path = write_recording(tmp_path / "agg.gz", recording_lines(aggs))
    db = tmp_path / "agg.db"
    totals = run_replay([path], db)
    assert totals["ticks_read"] == len(aggs)
    reference = raw_trades([path])
    assert_store_matches(db, reference)
    # Same counts, ids and OHLC as the bars of the individual trades.
    singles: dict[str, list] = {}
    for recv, data in trade_tape:
        singles.setdefault(data["s"], []).append(trade_from_payload(data, recv))
    for symbol in SYMBOLS:
        bars = store_bars(db, symbol, "1s")
        assert bar_mismatches(bars, plain_bars(singles[symbol], symbol, "1s")) == []


def futures_trades(trade_tape, rng: random.Random) -> tuple[list[tuple[int, dict]], int]:
    """The tape as USDⓈ-M @trade frames: X added, M dropped, some fills not MARKET."""
    out, ghosts = [], 0
    # Whole seconds of ETHUSDT made only of non-market fills: quiet bars must still appear.
    eth_seconds = sorted({d["T"] // 1000 for _, d in trade_tape if d["s"] == "ETHUSDT"})
    all_ghost = set(eth_seconds[10:14])
    for recv, data in trade_tape:
        kind = "MARKET"
        if data["T"] // 1000 in all_ghost and data["s"] == "ETHUSDT":
            kind = "ADL"
        elif rng.random() < 0.05:
            kind = rng.choice(["INSURANCE_FUND", "ADL", "NA"])
        ghosts += kind != "MARKET"
        frame = {"e": "trade", "E": data["E"], "T": data["T"], "s": data["s"], "t": data["t"],
                 "p": data["p"], "q": data["q"], "X": kind, "m": data["m"]}
        out.append((recv, frame))
    return out, ghosts


def test_usdm_futures_trades_skip_non_market_fills_and_keep_quiet_bars(tmp_path, trade_tape):
    frames, ghosts = futures_trades(trade_tape, random.Random(7))
    path = write_recording(tmp_path / "usdm.gz", recording_lines(frames))
    db = tmp_path / "usdm.db"
    totals = run_replay([path], db)
    skipped = sum(v for k, v in totals.items() if k.startswith("skipped:futures_"))
    assert skipped == ghosts and totals["ticks_read"] == len(frames) - ghosts
    assert totals["skipped:futures_adl"] >= 4
    reference = raw_trades([path])  # the plain reader keeps MARKET fills only
    assert sum(len(v) for v in reference.values()) == len(frames) - ghosts
    assert_store_matches(db, reference)
    quiet = [b for b in store_bars(db, "ETHUSDT", "1s") if b["trades"] == 0]
    assert len(quiet) > len([b for b in plain_bars(raw_trades(SPOT_FILES)["ETHUSDT"][:EXCERPT],
                                                   "ETHUSDT", "1s") if b["trades"] == 0])


# ----------------------------------------------------------------------- overlap / order


def split_overlapping(lines: list[str], cuts: list[int], overlap: int) -> list[list[str]]:
    bounds = [0, *sorted(set(cuts)), len(lines)]
    return [lines[max(0, a - overlap):b + overlap] for a, b in zip(bounds, bounds[1:],
                                                                    strict=False) if b > a]


@pytest.fixture(scope="module")
def excerpt_lines(tape) -> list[str]:
    """Every kind of line (trades, bookTicker, depth, snapshot) of the first part of the tape."""
    lines = []
    for path in SPOT_FILES[::2]:  # the two 2024-08-08 files
        with gzip.open(path, "rt") as handle:
            for i, line in enumerate(handle):
                if i >= 6000:
                    break
                lines.append(line.rstrip("\n"))
    lines.sort(key=lambda text: int(text.partition(" ")[0]))
    return lines


@pytest.fixture(scope="module")
def excerpt_reference(excerpt_lines, tmp_path_factory) -> dict:
    path = write_recording(tmp_path_factory.mktemp("excerpt") / "all.gz", excerpt_lines)
    return raw_trades([path])


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, 11_999), min_size=1, max_size=4),
       overlap=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1),
       gzipped=st.booleans())
def test_overlapping_files_in_any_order_give_the_same_bars(excerpt_lines, excerpt_reference,
                                                            cuts, overlap, seed, gzipped):
    parts = split_overlapping(excerpt_lines, cuts, overlap)
    random.Random(seed).shuffle(parts)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = [write_recording(folder / f"part{i}.rec", part, compress=gzipped)
                 for i, part in enumerate(parts)]
        db = folder / "split.db"
        totals = run_replay(files, db)
        trade_lines = sum(1 for part in parts for line in part if "@trade" in line[:60])
        unique = sum(len(v) for v in excerpt_reference.values())
        assert totals["ticks_read"] == trade_lines
        assert totals["duplicates"] == trade_lines - unique
        assert totals.get("dead:late", 0) == 0
        assert_store_matches(db, excerpt_reference)
        assert dead_letters(db) == []


# --------------------------------------------------------------------------- CSV dumps


def csv_rows(trades: list[dict], micro: bool, futures: bool) -> list[str]:
    rows = []
    for t in trades:
        when = t["T"] * 1000 if micro else t["T"]
        quote = Decimal(t["p"]) * Decimal(t["q"])
        row = [t["t"], t["p"], t["q"], quote, when, str(t["m"]).lower()]
        if not futures:
            row.append("true")
        rows.append(",".join(str(v) for v in row))
    return rows


def agg_csv_rows(aggs: list[dict], micro: bool, futures: bool) -> list[str]:
    rows = []
    for a in aggs:
        when = a["T"] * 1000 if micro else a["T"]
        row = [a["a"], a["p"], a["q"], a["f"], a["l"], when, str(a["m"]).lower()]
        if not futures:
            row.append("true")
        rows.append(",".join(str(v) for v in row))
    return rows


TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
AGG_HEADER = ("agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
              "is_buyer_maker,is_best_match")


def write_csv(path: Path, header: str | None, rows: list[str], zipped: bool) -> Path:
    text = "\n".join(([header] if header else []) + rows) + "\n"
    if zipped:
        target = path.with_suffix(".zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.name, text)
        return target
    path.write_text(text)
    return path


CSV_VARIANTS = [
    # (aggregated, zipped, header, micro, futures)
    (False, True, False, False, False),
    (False, False, True, True, False),
    (False, True, True, False, True),
    (True, True, False, False, False),
    (True, False, True, True, False),
    (True, False, False, False, True),
]


@pytest.mark.parametrize("aggregated,zipped,header,micro,futures", CSV_VARIANTS,
                         ids=["trades-zip-ms", "trades-header-us", "trades-futures-zip-header",
                              "agg-zip-ms", "agg-header-us", "agg-futures"])
def test_binance_vision_csv_dumps(tmp_path, trade_tape, aggregated, zipped, header, micro,
                                  futures):
    files = []
    reference: dict[str, list] = {}
    for symbol in SYMBOLS:
        trades = [d for _, d in trade_tape if d["s"] == symbol]
        if aggregated:
            aggs = [d for _, d in aggregate([(0, t) for t in trades], futures=False)]
            rows = agg_csv_rows(aggs, micro, futures)
            name = f"{symbol}-aggTrades-2024-08-08.csv"
            reference[symbol] = [trade_from_payload(a) for a in aggs]
        else:
            rows = csv_rows(trades, micro, futures)
            name = f"{symbol}-trades-2024-08-08.csv"
            reference[symbol] = [trade_from_payload(t) for t in trades]
        head = (AGG_HEADER if aggregated else TRADES_HEADER) if header else None
        if head and futures:  # futures dumps have no is_best_match column
            head = head.removesuffix(",is_best_match")
        files.append(write_csv(tmp_path / name, head, rows, zipped))
    layout = inspect_file(files[0]).layout
    assert layout == ("aggtrades_csv" if aggregated else "trades_csv")
    db = tmp_path / "csv.db"
    totals = run_replay(files, db)
    assert totals["ticks_read"] == sum(len(v) for v in reference.values())
    assert not any(k.startswith("dead:") for k in totals), totals
    assert_store_matches(db, reference)


def test_csv_bars_equal_recording_bars(tmp_path, trade_tape):
    # The same trades as a recording and as CSV dumps give the same bars.
    rec = write_recording(tmp_path / "tape.gz", recording_lines(trade_tape))
    files = []
    for symbol in SYMBOLS:
        trades = [d for _, d in trade_tape if d["s"] == symbol]
        files.append(write_csv(tmp_path / f"{symbol}-trades-2024-08-08.csv", None,
                               csv_rows(trades, micro=False, futures=False), zipped=True))
    run_replay([rec], tmp_path / "rec.db")
    run_replay(files, tmp_path / "csv.db")
    for symbol in SYMBOLS:
        for timeframe in TFS:
            assert bar_mismatches(store_bars(tmp_path / "csv.db", symbol, timeframe),
                                  store_bars(tmp_path / "rec.db", symbol, timeframe)) == []


def rest_trades() -> list[dict]:
    rows = json.loads((REST_DIR / "trades.json").read_text())
    return [{"e": "trade", "s": "BTCUSDT", "t": r["id"], "p": r["price"], "q": r["qty"],
             "T": r["time"], "m": r["isBuyerMaker"]} for r in rows]


def rest_aggs() -> list[dict]:
    rows = json.loads((REST_DIR / "agg_trades.json").read_text())
    return [{"e": "aggTrade", "s": "BTCUSDT", **r} for r in rows]


@pytest.mark.parametrize("micro", [False, True], ids=["ms", "us"])
def test_csv_from_real_rest_values(tmp_path, micro):
    trades, aggs = rest_trades(), rest_aggs()
    trade_file = write_csv(tmp_path / "BTCUSDT-trades-2021-10-22.csv", None,
                           csv_rows(trades, micro, futures=False), zipped=False)
    db = tmp_path / "rest.db"
    run_replay([trade_file], db, symbols=["BTCUSDT"], timeframes="1s")
    reference = [trade_from_payload(t) for t in trades]
    assert bar_mismatches(store_bars(db, "BTCUSDT", "1s"),
                          plain_bars(reference, "BTCUSDT", "1s")) == []
    agg_file = write_csv(tmp_path / "BTCUSDT-aggTrades-2021-10-22.csv", AGG_HEADER,
                         agg_csv_rows(aggs, micro, futures=False), zipped=True)
    db = tmp_path / "rest_agg.db"
    run_replay([agg_file], db, symbols=["BTCUSDT"], timeframes="1s")
    reference = [trade_from_payload(a) for a in aggs]
    assert bar_mismatches(store_bars(db, "BTCUSDT", "1s"),
                          plain_bars(reference, "BTCUSDT", "1s")) == []


def test_bad_csv_rows_are_dead_letters(tmp_path, trade_tape):
    trades = [d for _, d in trade_tape if d["s"] == "BTCUSDT"][:400]
    rows = csv_rows(trades, micro=False, futures=False)
    t = trades[100]
    bad = {
        f"{t['t']},abc,{t['q']},1,{t['T']},true,true": "bad_type",
        f"{t['t']},inf,{t['q']},1,{t['T']},true,true": "non_finite",
        f"{t['t']},0,{t['q']},1,{t['T']},true,true": "non_positive",
        f"{t['t']},{t['p']},-1,1,{t['T']},true,true": "non_positive",
        f"{t['t']},{t['p']},{t['q']},1,{t['T']},maybe,true": "bad_type",
        f"{t['t']},{t['p']},{t['q']},1,yesterday,true,true": "bad_type",
        # An unbalanced quote: once it swallowed the rest of the file and failed the replay.
        f"{t['t']},\"{t['p']},{t['q']},1,{t['T']},true,true": "bad_type",
    }
    mixed = rows[:50] + list(bad) + rows[50:]
    path = write_csv(tmp_path / "BTCUSDT-trades-2024-08-08.csv", None, mixed, zipped=False)
    db = tmp_path / "bad.db"
    totals = run_replay([path], db, symbols=["BTCUSDT"])
    letters = dead_letters(db)
    assert sorted((d["raw"], d["reason"].partition(":")[0]) for d in letters) == sorted(
        bad.items())
    for code in set(bad.values()):
        assert totals[f"dead:{code}"] == list(bad.values()).count(code)
    reference = [trade_from_payload(d) for d in trades]
    for timeframe in TFS:
        assert bar_mismatches(store_bars(db, "BTCUSDT", timeframe),
                              plain_bars(reference, "BTCUSDT", timeframe)) == []


def test_nan_in_csv_has_the_same_reason_as_nan_on_the_wire(tmp_path, trade_tape):
    # The wire parser calls a NaN price or qty `non_finite`; a CSV dump must agree, so that
    # dead letters of one class can be counted together whatever the input layout.
    trades = [d for _, d in trade_tape if d["s"] == "BTCUSDT"][:30]
    t = trades[10]
    bad = f"{t['t']},{t['p']},NaN,1,{t['T']},true,true"
    rows = csv_rows(trades, micro=False, futures=False)
    path = write_csv(tmp_path / "BTCUSDT-trades-2024-08-08.csv", None, rows[:5] + [bad] + rows[5:],
                     zipped=False)
    db = tmp_path / "nan.db"
    totals = run_replay([path], db, symbols=["BTCUSDT"])
    assert [(d["raw"], d["reason"].partition(":")[0]) for d in dead_letters(db)] == [
        (bad, "non_finite")]
    assert totals["dead:non_finite"] == 1


def test_csv_rows_with_wrong_field_counts_are_dead_letters_with_their_raw_text(tmp_path,
                                                                            trade_tape):
    # A row with too many fields must not vanish (pandas' on_bad_lines="skip" drops it), and
    # a short row's dead letter must carry the row as it was in the file.
    trades = [d for _, d in trade_tape if d["s"] == "BTCUSDT"][:30]
    rows = csv_rows(trades, micro=False, futures=False)
    too_many = rows[10] + ",surplus,fields"
    too_few = rows[20].rsplit(",", 4)[0]
    mixed = rows[:10] + [too_many] + rows[11:20] + [too_few] + rows[21:]
    path = write_csv(tmp_path / "BTCUSDT-trades-2024-08-08.csv", None, mixed, zipped=False)
    db = tmp_path / "fields.db"
    totals = run_replay([path], db, symbols=["BTCUSDT"])
    assert sorted(d["raw"] for d in dead_letters(db)) == sorted([too_many, too_few])
    assert totals["frames"] == len(mixed)
    assert totals["ticks_read"] == len(mixed) - 2


def test_ndjson_bad_lines_use_the_common_reason_codes(tmp_path):
    # The same classes of bad input carry the same reason codes in every layout
    # (connectors/binance/wire.py: invalid_json, missing_field, unknown_field, non_finite …).
    base = json.loads(to_json(Tick("BTCUSDT", 1, 100.0, 1.0, 1_723_161_255_342_000,
                                   1_723_161_255_342_000, True, "replay", 1, 1)))
    missing = {k: v for k, v in base.items() if k != "price"}
    bad = {
        "{not json": "invalid_json",
        compact({**missing, "trade_id": 2}): "missing_field",
        compact({**base, "trade_id": 3, "colour": "red"}): "unknown_field",
        compact({**base, "trade_id": 4, "qty": -1.0}): "non_positive",
        compact({**base, "trade_id": 5, "symbol": "DOGEUSDT"}): "unknown_symbol",
    }
    path = tmp_path / "ticks.ndjson"
    path.write_text("\n".join([compact(base), *bad]) + "\n")
    db = tmp_path / "nd.db"
    totals = run_replay([path], db, symbols=["BTCUSDT"], timeframes="1s")
    got = sorted((d["raw"], d["reason"].partition(":")[0]) for d in dead_letters(db))
    assert got == sorted(bad.items())
    assert totals["ticks_read"] == 1


def test_csv_of_symbol_not_requested_is_dead_lettered(tmp_path, trade_tape):
    trades = [d for _, d in trade_tape if d["s"] == "ETHUSDT"][:20]
    path = write_csv(tmp_path / "ETHUSDT-trades-2024-08-08.csv", None,
                     csv_rows(trades, False, False), zipped=False)
    db = tmp_path / "other.db"
    totals = run_replay([path], db, symbols=["BTCUSDT"])
    assert totals["dead:unknown_symbol"] == 20
    assert {d["reason"].partition(":")[0] for d in dead_letters(db)} == {"unknown_symbol"}


# ------------------------------------------------------------------------ NDJSON ticks


def test_ndjson_tick_dump(tmp_path, trade_tape):
    lines = []
    for recv, d in trade_tape:
        tick = Tick(d["s"], d["t"], float(d["p"]), float(d["q"]), d["T"] * 1000, recv // 1000,
                    d["m"], "live", d["t"], d["t"])
        lines.append(to_json(tick).decode())
    path = tmp_path / "ticks.ndjson"
    path.write_text("\n".join(lines) + "\n")
    assert inspect_file(path).layout == "ticks"
    db = tmp_path / "ticks.db"
    totals = run_replay([path], db)
    assert totals["ticks_read"] == len(lines)
    assert_store_matches(db, {s: [trade_from_payload(d, r) for r, d in trade_tape
                                  if d["s"] == s] for s in SYMBOLS})


# --------------------------------------------------------------------------- bad lines


def test_bad_recording_lines_are_dead_letters_and_the_replay_goes_on(tmp_path, trade_tape):
    good = recording_lines(trade_tape[:3000])
    recv = trade_tape[1500][0]
    template = dict(trade_tape[1500][1])

    def frame(**changes):
        data = {**template, **changes}
        data = {k: v for k, v in data.items() if v is not None}
        return f"{recv} " + compact({"stream": f"{data['s'].lower()}@trade", "data": data})

    bad = {
        compact({"stream": "btcusdt@trade", "data": template}): "malformed_line",  # no time
        f"{recv} " + compact({"stream": "btcusdt@trade", "data": template})[:-9]: "invalid_json",
        frame(p=None): "missing_field",
        frame(extra="x"): "unknown_field",
        frame(p="six"): "bad_type",
        frame(p="NaN"): "non_finite",
        frame(q="Infinity"): "non_finite",
        frame(p="0.00"): "non_positive",
        frame(q="-0.5"): "non_positive",
        frame(s="DOGEUSDT"): "unknown_symbol",
    }
    lines = good[:1000] + list(bad) + good[1000:]
    path = write_recording(tmp_path / "bad.gz", lines)
    db = tmp_path / "bad.db"
    totals = run_replay([path], db)
    letters = dead_letters(db)
    got = sorted((d["raw"], d["reason"].partition(":")[0]) for d in letters)
    expected = sorted((line if reason == "malformed_line" else line.partition(" ")[2], reason)
                      for line, reason in bad.items())
    assert got == expected
    assert all(": " in d["reason"] and d["reason"].split(": ")[1] for d in letters)
    for code in set(bad.values()):
        assert totals[f"dead:{code}"] == list(bad.values()).count(code), totals
    reference = raw_trades([write_recording(tmp_path / "good.gz", good)])
    assert_store_matches(db, reference)


def test_missing_and_unknown_layouts_fail_with_input_file_error(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        inspect_file(tmp_path / "nope.gz")
    (tmp_path / "empty.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(InputFileError, match="empty"):
        inspect_file(tmp_path / "empty.gz")
    (tmp_path / "notes.txt").write_text("hello,world\n")
    with pytest.raises(InputFileError):
        inspect_file(tmp_path / "notes.txt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "1,2,3,4,5,true,true\n")
        archive.writestr("b.csv", "1,2,3,4,5,true,true\n")
    (tmp_path / "BTCUSDT-trades-2024-08-08.zip").write_bytes(buffer.getvalue())
    with pytest.raises(InputFileError, match="exactly one"):
        inspect_file(tmp_path / "BTCUSDT-trades-2024-08-08.zip")
