"""Quotes and the executable spread on the pair page, in Debian's Chromium (issue 15, item 6).

The store is a real replay of the basis pair of the shared tapes (spot BTCUSDT against COIN-M
BTCUSD_PERP, quotes on both legs): every quote chart must plot the stored rows, the z chart's
break-even band must be ``±(exit + round_trip_z)`` per bar, new rows must stream in, and a
store without quotes must show the page it always did; a Kafka-fed page shows the same.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from fractions import Fraction

import pytest
from confluent_kafka import Producer
from playwright.sync_api import expect

from connectors.kafka import record_key, topic_for
from connectors.store import StoreWriter
from pairflow.records import PairStats, QuoteBar, SpreadCost, from_dict, to_json
from tests.ui.conftest import (
    BASIS_PAIR,
    BASIS_X,
    BASIS_Y,
    REPO,
    copy_store,
    dashboard_server,
    replay_basis,
    store_rows,
)
from tests.ui.test_dashboard import UPDATE_SCREENSHOT, data

pytestmark = pytest.mark.ui

Y, X, PAIR = BASIS_Y, BASIS_X, BASIS_PAIR
QUERY = f"?pair={PAIR}&timeframe=1s"
#: The replay's exit threshold (the flow's default, which its exit alerts carry).
EXIT_Z = 0.5
#: The quote charts, and the sources their data come from.
BOOK_FIGURES = ("costs", "quote_spread_y", "quote_spread_x", "imbalance")
BOOK_SOURCES = ("quote_y_source", "quote_x_source", "cost_source")
QUOTE_FIELDS = ("spread_bps", "mean_spread_bps", "max_spread_bps", "imbalance",
                "mean_imbalance")
#: The page has its statistics and the quote bars of both legs.
BOOK_LOADED = """() => { const d = window.Bokeh && Bokeh.documents[0];
  const get = (n) => d && d.get_model_by_name(n);
  const z = get('zscore');
  return !!z && Number.isFinite(z.x_range.start) && get('pair_source').data.t.length > 0
    && ['quote_y_source', 'quote_x_source', 'cost_source'].every((n) => get(n).data.t.length > 0)
}"""
#: Whether each named model is visible.
VISIBLE = "(names) => names.map((n) => Bokeh.documents[0].get_model_by_name(n).visible)"
#: The labels of a chart's visible legend entries (its legend sits above the plot).
LEGEND = """(name) => Bokeh.documents[0].get_model_by_name(name).above
  .find((m) => m.items != null).items.filter((i) => i.visible).map((i) => i.label.value)"""
BREAKEVEN = "break-even ±(exit + round-trip z)"
Z_RANGE = "() => { const r = Bokeh.documents[0].get_model_by_name('zscore').y_range; " \
          "return [r.start, r.end] }"


@pytest.fixture(scope="module")
def basis_store(tmp_path_factory) -> object:
    """A store filled by a replay of the basis pair with quotes (1 s bars, 60-bar window)."""
    return replay_basis(tmp_path_factory.mktemp("basis") / "basis.db", "--window", "60")


@pytest.fixture(scope="module")
def store(basis_store, tmp_path_factory):
    return copy_store(basis_store, tmp_path_factory.mktemp("book") / "store.db")


@pytest.fixture(scope="module")
def url(store):
    with dashboard_server("--store", str(store)) as url:
        yield url



def plain(values: list) -> list:
    """Plotted values with NaN (a missing value) as None, as the store has them."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]


def _screenshot(page, tmp_path) -> None:
    """The z chart down to the imbalance chart; into docs/img only when asked to refresh it."""
    shot = REPO / "docs" / "img" / "dashboard-quotes.png" if UPDATE_SCREENSHOT \
        else tmp_path / "dashboard-quotes.png"
    canvases = page.locator(".bk-Canvas >> visible=true")
    top = canvases.nth(2).bounding_box()  # the z chart (after the prices and the residual)
    bottom = canvases.nth(8).bounding_box()  # the imbalance chart
    scroll = page.evaluate("() => [window.scrollX, window.scrollY]")
    page.screenshot(path=str(shot), full_page=True, clip={
        "x": 0, "y": top["y"] + scroll[1], "width": top["x"] + top["width"] + 40,
        "height": bottom["y"] + bottom["height"] - top["y"] + 10})
    assert shot.stat().st_size > 10_000


def test_quote_charts_plot_the_stored_rows_and_the_band_is_exit_plus_round_trip_z(
        page, url, store, tmp_path):
    page.goto(url + QUERY)
    page.wait_for_function(BOOK_LOADED)
    expect(page.locator(".pf-message")).to_be_hidden()  # the URL's pair is known as it is
    assert page.evaluate(VISIBLE, [*BOOK_FIGURES, "breakeven"]) == [True] * 5
    assert BREAKEVEN in page.evaluate(LEGEND, "zscore")
    for source, symbol in (("quote_y_source", Y), ("quote_x_source", X)):
        stored = store_rows(store, "quotes", symbol=symbol, timeframe="1s")
        shown = data(page, source)
        assert len(stored) > 250
        assert shown["ts"] == [r["end"] for r in stored]
        assert shown["t"] == [r["end"] / 1000 for r in stored]
        for field in QUOTE_FIELDS:
            assert shown[field] == [r[field] for r in stored], (symbol, field)
        # The log-scale spread chart spans every spread, tightest close to widest max.
        lo, hi = min(r["spread_bps"] for r in stored), max(r["max_spread_bps"] for r in stored)
        chart = "quote_spread_y" if symbol == Y else "quote_spread_x"
        page.wait_for_function(f"() => {{ const r = Bokeh.documents[0].get_model_by_name("
                               f"'{chart}').y_range; return r.start > 0 && r.start <= {lo} "
                               f"&& r.end >= {hi} && r.end < {2 * hi} }}")
    costs = store_rows(store, "costs", pair=PAIR, timeframe="1s")
    assert len(costs) > 200 and all(c["round_trip_z"] is not None for c in costs)
    alerts = store_rows(store, "alerts", pair=PAIR, timeframe="1s")
    assert {a["threshold"] for a in alerts if a["kind"] == "exit"} == {EXIT_Z}
    shown = data(page, "cost_source")
    assert shown["ts"] == [c["ts"] for c in costs]
    assert shown["round_trip_bps"] == [c["round_trip_bps"] for c in costs]
    assert shown["round_trip_z"] == [c["round_trip_z"] for c in costs]
    # The break-even band: an entry pays when |z| > exit + round_trip_z.
    assert shown["breakeven_hi"] == [EXIT_Z + c["round_trip_z"] for c in costs]
    assert shown["breakeven_lo"] == [-(EXIT_Z + c["round_trip_z"]) for c in costs]
    # The fees' part of the round trip, against exact rational arithmetic on the same row.
    for c, fees_bps in zip(costs, shown["fees_bps"], strict=True):
        exact = Fraction(c["round_trip_bps"]) * Fraction(c["fees"]) / (
            Fraction(c["crossing"]) + Fraction(c["fees"]))
        assert fees_bps == pytest.approx(float(exact), rel=1e-14, abs=0)
    # The z chart fits the band while it is shown; hidden (its legend entry), z alone.
    widest = max(EXIT_Z + c["round_trip_z"] for c in costs)
    page.wait_for_function(f"() => {{ const r = ({Z_RANGE})(); "
                           f"return r[0] <= {-widest} && r[1] >= {widest} }}")
    _screenshot(page, tmp_path)
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('breakeven').visible = false }")
    zs = [r["zscore"] for r in store_rows(store, "pairs", pair=PAIR, timeframe="1s")
          if r["zscore"] is not None]
    top = max(max(zs), 2.0)  # the entry line is always in view
    page.wait_for_function(f"() => {{ const r = ({Z_RANGE})(); "
                           f"return r[1] >= {top} && r[1] < {0.5 * widest} }}")


def test_the_band_follows_the_exit_threshold_of_the_whatif(page, url, store):
    page.goto(url + QUERY)
    page.wait_for_function(BOOK_LOADED)
    exit_input = page.locator(".pf-whatif input").nth(2)
    exit_input.fill("1.25")
    exit_input.press("Enter")
    costs = store_rows(store, "costs", pair=PAIR, timeframe="1s")
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('cost_source')"
                           f".data.breakeven_hi[0] === {1.25 + costs[0]['round_trip_z']}")
    assert data(page, "cost_source")["breakeven_hi"] == [1.25 + c["round_trip_z"]
                                                          for c in costs]


def _after_all(store) -> int:
    """A bar end after every stored pair record, quote bar and cost (a new bar, not a rewrite)."""
    ends = [store_rows(store, "pairs", pair=PAIR, timeframe="1s")[-1]["ts"],
            store_rows(store, "costs", pair=PAIR, timeframe="1s")[-1]["ts"],
            *(store_rows(store, "quotes", symbol=s, timeframe="1s")[-1]["end"] for s in (Y, X))]
    return max(ends) + 1_000_000


def _next_rows(store, ts: int, round_trip_z: float) -> list:
    """The newest stored pair record, quote bars and cost, moved to the bar ending at ts."""
    out = []
    for symbol in (Y, X):
        last = from_dict(QuoteBar, store_rows(store, "quotes", symbol=symbol, timeframe="1s")[-1])
        out.append(dataclasses.replace(last, start=ts - 1_000_000, end=ts,
                                       spread_bps=last.spread_bps * 3))
    cost = from_dict(SpreadCost, store_rows(store, "costs", pair=PAIR, timeframe="1s")[-1])
    stats = from_dict(PairStats, store_rows(store, "pairs", pair=PAIR, timeframe="1s")[-1])
    return [*out, dataclasses.replace(cost, ts=ts, round_trip_z=round_trip_z),
            dataclasses.replace(stats, ts=ts)]


def _newest(page, source: str, column: str) -> object:
    return page.evaluate(f"() => {{ const d = Bokeh.documents[0].get_model_by_name('{source}')"
                         f".data.{column}; return d[d.length - 1] }}")


def test_new_quote_bars_and_costs_stream_in(page, url, store):
    page.goto(url + QUERY)
    page.wait_for_function(BOOK_LOADED)
    ts = _after_all(store)
    new = _next_rows(store, ts, round_trip_z=12.5)
    writer = StoreWriter(store)
    writer.write(new)
    writer.close()
    page.wait_for_function(f"() => Bokeh.documents[0].get_model_by_name('cost_source')"
                           f".data.ts.includes({ts})")
    for source, bar in (("quote_y_source", new[0]), ("quote_x_source", new[1])):
        page.wait_for_function(f"() => Bokeh.documents[0].get_model_by_name('{source}')"
                               f".data.ts.includes({ts})")
        assert _newest(page, source, "spread_bps") == bar.spread_bps
    assert _newest(page, "cost_source", "breakeven_hi") == EXIT_Z + 12.5


def test_a_store_without_quotes_shows_no_quote_charts_until_quotes_come(
        page, basis_store, tmp_path):
    bare = copy_store(basis_store, tmp_path / "bare.db")
    with sqlite3.connect(bare) as connection:
        connection.execute("DELETE FROM quotes")
        connection.execute("DELETE FROM costs")
        # Its paper P&L was priced at the quotes: gone with them (a run without --quotes).
        connection.execute("DELETE FROM trades")
        connection.execute("DELETE FROM pnl")
    connection.close()
    with dashboard_server("--store", str(bare)) as url:
        page.goto(url + QUERY)
        page.wait_for_function("() => { const d = window.Bokeh && Bokeh.documents[0]; "
                               "const s = d && d.get_model_by_name('pair_source'); "
                               "return !!s && s.data.t.length > 0 }")
        assert page.evaluate(VISIBLE, [*BOOK_FIGURES, "breakeven"]) == [False] * 5
        assert all(len(data(page, s)["t"]) == 0 for s in BOOK_SOURCES)
        # No legend entry for a band that is not there; the page is today's: eight charts.
        assert BREAKEVEN not in page.evaluate(LEGEND, "zscore")
        expect(page.locator("#pf-health")).not_to_contain_text("quotes: last row")
        expect(page.locator(".bk-Canvas >> visible=true")).to_have_count(8)
        # Quotes that come later (a live run) bring the charts in.
        ts = _after_all(basis_store)
        writer = StoreWriter(bare)
        writer.write(_next_rows(basis_store, ts, round_trip_z=7.0))
        writer.close()
        page.wait_for_function(f"(names) => ({VISIBLE})(names).every((v) => v)",
                               arg=[*BOOK_FIGURES, "breakeven"])
        assert BREAKEVEN in page.evaluate(LEGEND, "zscore")
        assert data(page, "cost_source")["breakeven_hi"] == [EXIT_Z + 7.0]


@pytest.mark.kafka
def test_kafka_fed_page_shows_the_replayed_quotes_and_costs_then_new_ones(
        page, kafka_broker, unique_prefix, tmp_path):
    store = replay_basis(tmp_path / "store.db", "--window", "60",
                         "--kafka", kafka_broker.bootstrap, "--kafka-prefix", unique_prefix)
    costs = store_rows(store, "costs", pair=PAIR, timeframe="1s")
    with dashboard_server("--kafka", kafka_broker.bootstrap,
                          "--kafka-prefix", unique_prefix) as url:
        page.goto(url + QUERY)
        page.wait_for_function(BOOK_LOADED)
        page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('cost_source')"
                               f".data.t.length === {len(costs)}")
        for source, symbol in (("quote_y_source", Y), ("quote_x_source", X)):
            stored = store_rows(store, "quotes", symbol=symbol, timeframe="1s")
            page.wait_for_function(f"() => Bokeh.documents[0].get_model_by_name('{source}')"
                                   f".data.t.length === {len(stored)}")
            shown = data(page, source)
            assert shown["ts"] == [r["end"] for r in stored]
            for field in QUOTE_FIELDS:
                assert shown[field] == [r[field] for r in stored], (symbol, field)
        shown = data(page, "cost_source")
        assert shown["ts"] == [c["ts"] for c in costs]
        assert shown["breakeven_hi"] == [EXIT_Z + c["round_trip_z"] for c in costs]
        # Records produced after the page loaded stream in.
        ts = _after_all(store)
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        new = _next_rows(store, ts, round_trip_z=9.0)
        for record in new:
            producer.produce(topic_for(record.kind, unique_prefix), to_json(record),
                             record_key(record).encode())
        assert producer.flush(30) == 0
        for source in BOOK_SOURCES:
            page.wait_for_function(f"() => Bokeh.documents[0].get_model_by_name('{source}')"
                                   f".data.ts.includes({ts})")
        assert _newest(page, "quote_x_source", "spread_bps") == new[1].spread_bps
        assert _newest(page, "cost_source", "breakeven_hi") == EXIT_Z + 9.0
        expect(page.locator("#pf-health")).to_contain_text("costs: last row")
