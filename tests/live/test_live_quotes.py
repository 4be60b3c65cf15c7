"""``pairflow live --quotes`` against the local Binance server: quote bars, mark prices, gaps.

Expectations come from what the client received (its own recording of the frames, with their
receive times: spot quotes are timed from those) and from what the server logged it sent,
aggregated independently by the reference of ``tests/test_quotes.py`` (stdlib ``json``, pandas,
a plain loop per window with ``math.fsum``).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import typer
from bytewax.testing import run_main
from typer.testing import CliRunner

from app.live import register
from connectors.metrics import CountTally
from connectors.store import StoreReader
from flows.pairs import build_flow
from pairflow.config import load_config
from pairflow.records import QuoteBar, field_names
from tests.binance_server import BinanceTestServer, Faults, Tape
from tests.binance_server.tape import COINM_DIR
from tests.live.harness import (
    FAST_ENV,
    SYMBOLS,
    TIMEFRAMES,
    assert_bars_equal,
    bars_of,
    comparable,
    env,
    replay_bars,
)
from tests.test_quotes import raw_frames, reference_bars, reference_quotes

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]
SPEED = 20.0
COINM_SYMBOLS = ("BTCUSD_PERP", "ETHUSD_PERP")
FIELDS = field_names(QuoteBar)


@pytest.fixture(scope="module")
def tape() -> Tape:
    return Tape.load(start_s=100.0, length_s=30.0, quotes=True)


def quote_rows(store: Path) -> list[dict]:
    """The stored quote bars, sorted."""
    rows = StoreReader(store).query("quotes")
    return sorted(({f: r[f] for f in FIELDS} for r in rows),
                  key=lambda r: (r["symbol"], r["timeframe"], r["start"]))


def live_with_quotes(tmp_path: Path, server: BinanceTestServer, tape: Tape, market: str,
                     record_dir: Path) -> tuple[Counter, Path]:
    """Run ``pairflow live --quotes`` (the flow of its config) over the whole tape."""
    store = tmp_path / "live.db"
    config = load_config({"source": "live", "symbols": ",".join(SYMBOLS),
                          "timeframes": TIMEFRAMES, "store": str(store), "quotes": True,
                          "ws_url": server.ws_url, "rest_url": server.rest_url,
                          "duration_s": (tape.last_ms - tape.first_ms) / 1000 / SPEED + 3,
                          "market": market, "record_dir": str(record_dir)}, env={})
    tally = CountTally()
    with env(FAST_ENV):
        run_main(build_flow(config, tally))
    return tally.totals(), store


def recorded_frames(record_dir: Path) -> pd.DataFrame:
    """The trades and quotes the client received, in receive order (backfill files aside)."""
    paths = [p for p in sorted(record_dir.glob("*.gz")) if "-backfill-" not in p.name]
    return pd.concat([raw_frames(p) for p in paths], ignore_index=True)


def sent_by_connection(server: BinanceTestServer) -> dict[tuple[str, int], int]:
    """(symbol, update id) of each book ticker the server sent → its connection's serial."""
    out = {}
    for serial, frame in server.sent_extra:
        data = json.loads(frame)["data"]
        if "u" in data:
            out[(data["s"], data["u"])] = serial
    return out


def overlaps(row: dict, gap: tuple[int, int] | None) -> bool:
    """The window of a bar overlaps the span ``gap`` (exclusive at both ends)."""
    return gap is not None and row["start"] < gap[1] and row["end"] > gap[0]


def expected_bars(frames: pd.DataFrame, symbol: str,
                  gap: tuple[int, int] | None = None) -> list[dict]:
    """The independent quote bars of a symbol, minus the windows over ``gap``."""
    quotes = reference_quotes(frames, symbol)
    rows = [row for timeframe in TIMEFRAMES.split(",")
            for row in reference_bars(quotes, symbol, timeframe) if not overlaps(row, gap)]
    return sorted(rows, key=lambda r: (r["timeframe"], r["start"]))


def test_spot_quotes_across_a_reconnect(tmp_path, tape):
    """Quote bars equal an aggregation of the received frames; the outage has none; no
    trade is lost."""
    record_dir = tmp_path / "rec"
    faults = Faults(events=[(12.0, "abrupt_close", None)])
    with BinanceTestServer(tape, SPEED, faults) as server:
        totals, store = live_with_quotes(tmp_path, server, tape, "spot", record_dir)
        serial_of = sent_by_connection(server)
    assert totals["reconnects"] >= 1 and totals["ticks_read"] == len(tape.trades), totals
    assert totals["feed_gaps_declared"] == 0 and totals["dead:late"] == 0, totals
    assert_bars_equal(comparable(bars_of(store), tape),
                      comparable(replay_bars(tmp_path, tape), tape), exact=True)

    frames = recorded_frames(record_dir)
    quotes = frames[frames.kind == "quote"]
    # Every quote received was sent, once, on a connection the server logged.
    serials = [serial_of[(s, u)] for s, u in zip(quotes.symbol, quotes.u, strict=True)]
    assert len(set(zip(quotes.symbol, quotes.u, strict=True))) == len(quotes) > 1000
    assert {1, 2} <= set(serials)
    live = quote_rows(store)
    dropped = 0
    for symbol in SYMBOLS:
        # Spot quotes are timed from the client's receive time (see tests/test_quotes.py);
        # the book is unknown from the last quote of the first connection to the first of
        # the next.
        timed = reference_quotes(frames, symbol)
        connection = timed.u.map(lambda u, s=symbol: serial_of[(s, u)])
        gap = (int(timed.time[connection == 1].max()), int(timed.time[connection > 1].min()))
        want = expected_bars(frames, symbol, gap)
        got = [r for r in live if r["symbol"] == symbol]
        assert got == want, symbol
        whole = expected_bars(frames, symbol)
        dropped += len(whole) - len(want)
        assert len(whole) > len(want) and {r["start"] for r in got} < {r["start"] for r in whole}
    assert totals["quote_windows_in_gaps"] == dropped
    assert totals["quote_gaps"] == len(SYMBOLS)
    health = {r["stream"] for r in StoreReader(store).query("health")}
    assert {"btcusdt@bookTicker", "ethusdt@bookTicker"} <= health


def recorded_marks(record_dir: Path) -> pd.DataFrame:
    """The mark-price updates the client received, in receive order."""
    rows = []
    for path in sorted(record_dir.glob("*.gz")):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                message = json.loads(line.split(b" ", 1)[1])
                if message["stream"].endswith("@markPrice@1s"):
                    rows.append(message["data"])
    return pd.DataFrame(rows)


def with_marks(rows: list[dict], marks: pd.DataFrame, gap: tuple[int, int] | None) -> None:
    """Give each expected bar the last update received with ``E`` before its end, unless the
    gap began between that update and the end."""
    for row in rows:
        before = marks[marks.E * 1000 < row["end"]]
        if not len(before):
            continue
        last = before.iloc[-1]
        if gap is not None and last.E * 1000 <= gap[0] < row["end"]:
            continue
        row.update(mark_price=float(last.p), funding_rate=float(last.r),
                   next_funding_ts=int(last["T"]) * 1000)


def replay_reference(tmp_path: Path, tape: Tape, symbols: tuple[str, ...]) -> list[dict]:
    """Bars of a clean replay of the tape's trades."""
    store = tmp_path / "reference.db"
    config = load_config({"source": "replay", "files": [str(tape.write_recording(
        tmp_path / "tape.gz"))], "symbols": ",".join(symbols), "timeframes": TIMEFRAMES,
        "store": str(store)}, env={})
    run_main(build_flow(config))
    return bars_of(store)


@pytest.mark.parametrize(("market", "outage"), [("usdm", False), ("usdm", True), ("cm", False)],
                         ids=["usdm", "usdm-reconnect", "coinm"])
def test_futures_quotes_and_mark_prices(tmp_path, tape, market, outage):
    """``pairflow live --market usdm|cm --quotes``: quotes timed by T; mark price and funding
    of each bar the last received before its end (all that was sent, without an outage); no
    bar over an outage; a clean run's recording replays to the same quote bars.

    USDⓈ-M serves the spot tape's books in the futures form; COIN-M the COIN-M capture as it
    is (contracts, ``ps``).
    """
    symbols = SYMBOLS if market == "usdm" else COINM_SYMBOLS
    if market == "cm":
        tape = Tape.load(start_s=100.0, length_s=30.0, symbols=symbols, quotes=True,
                         capture=COINM_DIR)
    app = typer.Typer()
    register(app)
    record_dir, store = tmp_path / "rec", tmp_path / "live.db"
    faults = Faults(events=[(12.0, "abrupt_close", None)] if outage else [])
    with BinanceTestServer(tape, SPEED, faults, market=market) as server, env(FAST_ENV):
        result = CliRunner().invoke(app, [
            "live", "--symbols", ",".join(symbols), "--timeframes", TIMEFRAMES,
            "--market", market, "--quotes", "--ws-url", server.ws_url,
            "--rest-url", server.rest_url, "--store", str(store), "--record", str(record_dir),
            "--duration", str((tape.last_ms - tape.first_ms) / 1000 / SPEED + 3)])
        serial_of = sent_by_connection(server)
        sent_marks = [frame for _, frame in server.sent_extra if b"markPriceUpdate" in frame]
    assert result.exit_code == 0, result.output
    assert "quote bars 1s" in result.output
    # No trade lost: the bars hold every exchange trade of the tape.
    bars = bars_of(store)
    assert sum(r["trades"] for r in bars if r["timeframe"] == "1s") == len(tape.trades)
    assert_bars_equal(comparable(bars, tape),
                      comparable(replay_reference(tmp_path, tape, symbols), tape))
    reconnects = max(r["reconnects"] for r in StoreReader(store).query("health"))
    assert (reconnects >= 1) == outage

    frames = recorded_frames(record_dir)
    marks = recorded_marks(record_dir)
    sent = [json.loads(frame)["data"] for frame in sent_marks]
    assert len(marks) > 40 and all(m in sent for m in marks.to_dict("records"))
    if not outage:
        assert len(marks) == len(sent)
    live = quote_rows(store)
    for symbol in symbols:
        gap = None
        if outage:
            quotes = frames[(frames.kind == "quote") & (frames.symbol == symbol)]
            connection = quotes.u.map(lambda u, s=symbol: serial_of[(s, u)])
            gap = (int(quotes.time[connection == 1].max()),
                   int(quotes.time[connection > 1].min()))
        want = expected_bars(frames, symbol, gap)
        with_marks(want, marks[marks.s == symbol], gap)
        got = [r for r in live if r["symbol"] == symbol]
        assert got == want, symbol
        assert sum(r["mark_price"] is not None for r in got) > len(got) // 2
    if outage:
        return
    # The recording carries the book tickers and mark prices: its replay makes the same bars.
    replayed = tmp_path / "replay.db"
    config = load_config({"source": "replay", "symbols": ",".join(symbols), "quotes": True,
                          "files": [str(p) for p in sorted(record_dir.glob("*.gz"))],
                          "timeframes": TIMEFRAMES, "store": str(replayed)}, env={})
    tally = CountTally()
    run_main(build_flow(config, tally))
    assert quote_rows(replayed) == live
    assert tally.totals()["marks_read"] == len(marks)
    # Without quotes, mark prices are skipped and counted as before.
    config = load_config({"source": "replay", "symbols": ",".join(symbols),
                          "files": [str(p) for p in sorted(record_dir.glob("*.gz"))],
                          "timeframes": TIMEFRAMES, "store": str(tmp_path / "bare.db")},
                         env={})
    tally = CountTally()
    run_main(build_flow(config, tally))
    assert tally.totals()["skipped:markPrice"] == len(marks)


def test_record_command_records_quotes(tmp_path):
    app = typer.Typer()
    register(app)
    out = tmp_path / "rec"
    tape = Tape.load(start_s=100.0, length_s=10.0, quotes=True)
    with BinanceTestServer(tape, SPEED, market="usdm") as server, env(FAST_ENV):
        result = CliRunner().invoke(app, [
            "record", "--symbols", ",".join(SYMBOLS), "--ws-url", server.ws_url,
            # Long enough for the recorder's start and connection on a busy machine, so that
            # the server's whole tape (half a second at SPEED) is recorded, mark prices included.
            "--market", "usdm", "--out", str(out), "--duration", "3.0", "--quotes"])
    assert result.exit_code == 0, result.output
    streams = Counter()
    for path in out.glob("*.gz"):
        with gzip.open(path, "rb") as handle:
            for line in handle:
                streams[json.loads(line.split(b" ", 1)[1])["stream"].partition("@")[2]] += 1
    assert set(streams) == {"aggTrade", "bookTicker", "markPrice@1s"}, streams
