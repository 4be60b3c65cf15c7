"""The pair view in Debian's Chromium: every chart ranged after a switch, the residual with its
bands, y fitted to the visible time range, what-if field errors, the header's data badge and a
quiet server log when a tab closes mid-stream (issue 16)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from playwright.sync_api import expect

from connectors.store import StoreWriter
from pairflow.records import Bar, Health, PairStats, from_dict
from tests.ui.conftest import copy_store, dashboard_server, store_rows
from tests.ui.test_dashboard import LOADED, PAIR, X_RANGE, X, Y, data

pytestmark = pytest.mark.ui

FIGURES = ("prices", "spread", "zscore", "corr", "pvalues", "beta")
RANGES = """(names) => names.map((n) => { const f = Bokeh.documents[0].get_model_by_name(n);
  return [f.x_range.start, f.x_range.end, f.y_range.start, f.y_range.end] })"""
#: What each time chart's y-range must fit: its columns over the visible time range, and the
#: fixed levels it must show.
FITTED = {
    "prices": (("y_rebased", "x_rebased"), ()),
    "spread": (("residual", "upper", "lower", "entry_hi", "entry_lo"), ()),
    "zscore": (("zscore",), ("entry",)),
    "corr": (("corr",), ()),
    "pvalues": (("adf_pvalue", "eg_pvalue"), (0.05,)),
    "beta": (("beta", "beta_lo", "beta_hi"), ()),
}


@pytest.fixture(scope="module")
def store(replay_store, tmp_path_factory):
    return copy_store(replay_store, tmp_path_factory.mktemp("pairview") / "store.db")


@pytest.fixture(scope="module")
def server_log(tmp_path_factory):
    return tmp_path_factory.mktemp("pairview-log") / "server.log"


@pytest.fixture(scope="module")
def url(store, server_log):
    with dashboard_server("--store", str(store), log_path=server_log) as url:
        yield url



def all_ranged(page) -> None:
    """Wait until every time chart has finite x and y ranges (BokehJS draws it)."""
    page.wait_for_function(f"(names) => ({RANGES})(names).every((r) => r.every(Number.isFinite))",
                           arg=list(FIGURES))


def fits_visible(page, entry: float) -> dict[str, str]:
    """The charts whose y-range does not fit their visible data (empty: all fit)."""
    shown = data(page)
    start, end = page.evaluate(X_RANGE)
    ranges = dict(zip(FIGURES, page.evaluate(RANGES, list(FIGURES)), strict=True))
    bad = {}
    for name, (columns, levels) in FITTED.items():
        values = [v for c in columns if c in shown
                  for t, v in zip(shown["t"], shown[c], strict=True)
                  if start <= t <= end and v is not None and v == v]
        values += [entry if lv == "entry" else lv for lv in levels]
        values += [-entry for lv in levels if lv == "entry"]
        lo, hi = min(values), max(values)
        y0, y1 = ranges[name][2:]
        span = max(hi - lo, 1e-12)
        if not (y0 <= lo and hi <= y1 and y1 - y0 <= 1.3 * span):
            bad[name] = f"y [{y0}, {y1}] for data [{lo}, {hi}]"
    return bad


def test_every_chart_is_ranged_after_a_timeframe_switch(page, url, store):
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(url + f"?pair={PAIR}&timeframe=1s")
    page.wait_for_function(LOADED)
    all_ranged(page)
    # The main charts (prices, residual, z) are above the fold at 1600×1000.
    z_chart = page.locator(".bk-Canvas").nth(2).bounding_box()
    assert z_chart["y"] + z_chart["height"] <= 1000
    page.locator("select").nth(1).select_option("1m")
    n_1m = len(store_rows(store, "pairs", pair=PAIR, timeframe="1m"))
    page.wait_for_function(f"() => Bokeh.documents[0].get_model_by_name('pair_source')"
                           f".data.t.length === {n_1m}")
    all_ranged(page)  # the page fixture fails on "could not set initial ranges" as well


def test_spread_chart_plots_the_residual_with_its_bands_and_y_fits_the_view(page, url, store):
    page.goto(url + f"?pair={PAIR}&timeframe=1s")
    page.wait_for_function(LOADED)
    rows = store_rows(store, "pairs", pair=PAIR, timeframe="1s")
    shown = data(page)
    entry = 2.0
    for row, res, up, hi in zip(rows, shown["residual"], shown["upper"], shown["entry_hi"],
                                strict=True):
        if row["alpha"] is None:
            continue
        scale = 1e4 if row["price"] == "log" else 1.0  # basis points of log price
        assert res == pytest.approx((row["spread"] - row["alpha"]) * scale, rel=1e-12)
        assert up == pytest.approx(2.0 * row["spread_std"] * scale, rel=1e-12)
        assert hi == pytest.approx(entry * row["spread_std"] * scale, rel=1e-12)
    page.wait_for_function(f"() => {{ const s = ({RANGES})(['spread'])[0]; return s[3] - s[2] "
                           f"< 50 * {max(shown['upper'][-300:])} }}")
    assert not fits_visible(page, entry)
    # Zoom into the newest tenth of the time range: every chart's y re-fits to what is shown.
    target = page.locator(".bk-Canvas").nth(2).bounding_box()
    page.mouse.move(target["x"] + 0.85 * target["width"], target["y"] + target["height"] / 2)
    start0, end0 = page.evaluate(X_RANGE)
    page.mouse.wheel(0, -1200)
    page.wait_for_function(f"() => {{ const r = ({X_RANGE})(); return r[1] - r[0] < "
                           f"{0.5 * (end0 - start0)} }}")
    deadline = time.monotonic() + 60
    while (bad := fits_visible(page, entry)) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert not bad


def test_a_y_zoom_does_not_carry_over_to_another_pair(page, url):
    page.goto(url + f"?pair={PAIR}&timeframe=1s")
    page.wait_for_function(LOADED)
    all_ranged(page)
    page.locator('[title="Box Zoom"]').nth(2).click()
    box = page.locator(".bk-Canvas").nth(2).bounding_box()
    before = page.evaluate(RANGES, ["zscore"])[0]
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.45 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.5 * box["height"], steps=5)
    page.mouse.up()
    page.wait_for_function(f"() => {{ const r = ({RANGES})(['zscore'])[0]; "
                           f"return r[3] - r[2] < {0.5 * (before[3] - before[2])} }}")
    page.locator("select").nth(0).select_option("ETHUSDT/BTCUSDT")
    page.wait_for_function("() => { const d = Bokeh.documents[0].get_model_by_name("
                           "'pair_source').data; return d.y_close[d.y_close.length-1] < 10000 }")
    deadline = time.monotonic() + 60
    while (bad := fits_visible(page, 2.0)) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert not bad


def test_out_of_range_whatif_inputs_are_named_next_to_the_field(page, url):
    page.goto(url + f"?pair={PAIR}&timeframe=1s")
    page.wait_for_function(LOADED)
    window = page.locator(".pf-whatif input").first
    window.fill("5")
    window.press("Enter")
    expect(page.locator(".pf-error-window")).to_contain_text("window")
    expect(page.locator(".pf-error-window")).to_contain_text("5")
    expect(page.locator(".pf-whatif-status")).not_to_contain_text("Recomputed")
    entry = page.locator(".pf-whatif input").nth(1)
    entry.fill("-1")
    entry.press("Enter")
    expect(page.locator(".pf-error-entry")).to_contain_text("-1")
    expect(page.locator(".pf-error-window")).to_contain_text("window")
    entry.fill("2")
    entry.press("Enter")
    expect(page.locator(".pf-error-entry")).to_be_hidden()


def _rows_at(store, ts: int) -> list:
    last = store_rows(store, "pairs", pair=PAIR, timeframe="1s")[-1]
    bars = []
    for symbol in (Y, X):
        bar = store_rows(store, "bars", symbol=symbol, timeframe="1s")[-1]
        bars.append(dataclasses.replace(from_dict(Bar, bar), start=ts - 1_000_000, end=ts))
    return [*bars, dataclasses.replace(from_dict(PairStats, last), ts=ts)]


def _health(ts: int) -> Health:
    return Health("BTCUSDT@trade", "BTCUSDT", ts, True, 0.1, 5.0, 0, 0, 0, 0, 10.0, 20.0, 0.0,
                  None)


def test_header_badge_says_replay_finished_stale_or_live(page, url, store):
    page.goto(url + f"?pair={PAIR}&timeframe=1s")
    page.wait_for_function(LOADED)
    badge = page.locator(".pf-badge")
    expect(badge).to_contain_text("replay finished")
    writer = StoreWriter(store)
    now = int(time.time() * 1e6)
    writer.write([_health(now), *_rows_at(store, now - 120_000_000)])
    expect(badge).to_contain_text("stale")
    expect(badge).to_contain_text("min")
    now = int(time.time() * 1e6)
    writer.write([_health(now), *_rows_at(store, now)])
    writer.close()
    expect(badge).to_contain_text("live")


def test_closing_a_tab_mid_stream_leaves_no_errors_in_the_server_log(browser, url, store,
                                                                     server_log):
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + f"?pair={PAIR}&timeframe=1s")
    page.wait_for_function(LOADED)
    stop = threading.Event()
    first = int(time.time() * 1e6) + 1_000_000

    def stream() -> None:
        writer = StoreWriter(store)
        ts = first
        while not stop.is_set():
            writer.write(_rows_at(store, ts))
            ts += 1_000_000
            stop.wait(0.05)
        writer.close()

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    try:
        page.wait_for_function(f"() => {{ const d = Bokeh.documents[0]"
                               f".get_model_by_name('pair_source').data; "
                               f"return d.ts[d.ts.length - 1] > {first} }}")
        context.close()
        # Rows keep arriving while the server notices the closed socket; a session that kept
        # pushing them to it would log each failed send here.
        stop.wait(3.0)
    finally:
        stop.set()
        thread.join()
    log = server_log.read_text()
    for noise in ("WebSocketClosedError", "Failed sending message", "Traceback"):
        assert noise not in log, log[-3000:]
