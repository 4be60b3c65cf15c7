"""The universe page in Debian's Chromium against a store filled by ``pairflow replay
--universe`` of real candles: the table is the store's latest scan of every pair, it sorts and
filters, the heat map shows the universe, and a click opens the pair's page (the live one for a
watched pair, one computed on demand from the stored bars otherwise)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from playwright.sync_api import expect

from connectors.store import StoreWriter
from pairflow.analytics import EstimatorSettings, run_history
from pairflow.records import ScanRecord, from_dict
from tests.ui.conftest import REPO, copy_store, dashboard_server, pairflow, store_rows
from tests.ui.test_dashboard import LOADED, UPDATE_SCREENSHOT, data

pytestmark = pytest.mark.ui

CANDLES = REPO.parent / "shared" / "data" / "candles-2018-01-5m"
#: The universe, in its own order (pairs are A/B with A first in it), and the watched pair.
UNIVERSE = ("ETHBTC", "LTCBTC", "XMRBTC", "ZECBTC")
WATCHED = "ETHBTC/LTCBTC"
UNWATCHED = "XMRBTC/ZECBTC"
TIMEFRAME, BAR_S, WINDOW = "5m", 300, 48
#: Candles per symbol replayed: two days and a bit, 50 scan times (kept short for speed).
CANDLE_ROWS = 600
#: The table's rows as shown, top to bottom: each row's cell texts (the grid lives in a shadow
#: root and positions its rows itself, so they are ordered by where they are drawn).
ROWS_JS = """() => { const rows = [];
  const walk = (root) => { for (const e of root.querySelectorAll('*')) {
    if (e.shadowRoot) walk(e.shadowRoot);
    if (e.classList.contains('slick-row')) rows.push(e); } };
  walk(document);
  const texts = (r) => Array.from(r.querySelectorAll('.slick-cell'), (c) => c.textContent.trim());
  return rows.map((r) => [r.getBoundingClientRect().top, texts(r)])
    .sort((a, b) => a[0] - b[0]).map((r) => r[1]) }"""


@pytest.fixture(scope="module")
def candles(tmp_path_factory) -> list[Path]:
    """The first candles of the universe's four symbols."""
    files = tmp_path_factory.mktemp("candles")
    for symbol in UNIVERSE:
        source = CANDLES / f"{symbol}-5m-2018-01.csv"
        if not source.is_file():
            pytest.fail(f"no candles in {CANDLES}", pytrace=False)
        lines = source.read_text().splitlines(keepends=True)[:CANDLE_ROWS + 1]  # with header
        (files / source.name).write_text("".join(lines))
    return sorted(files.iterdir())


def replay(candles: list[Path], store: Path, *args: str) -> None:
    """``pairflow replay --universe`` of the candles, one pair watched, into ``store``."""
    pairflow("replay", *map(str, candles), "--universe", ",".join(UNIVERSE),
             "--timeframes", TIMEFRAME, "--scan-timeframe", TIMEFRAME, "--scan-window",
             str(WINDOW), "--scan-every", "12", "--pairs", WATCHED, "--window", str(WINDOW),
             "--store", str(store), *args)


@pytest.fixture(scope="module")
def store(candles, tmp_path_factory) -> Path:
    """A replay of the candles with the universe scanned on 5 m bars."""
    store = tmp_path_factory.mktemp("universe") / "universe.db"
    replay(candles, store)
    return store


@pytest.fixture(scope="module")
def url(store):
    with dashboard_server("--store", str(store)) as url:
        yield url



def latest_scans(store: Path) -> dict[str, dict]:
    """The newest scan row of each pair, picked here from all of the store's scan rows."""
    latest: dict[str, dict] = {}
    for row in store_rows(store, "scan", timeframe=TIMEFRAME):
        if row["pair"] not in latest or row["ts"] > latest[row["pair"]]["ts"]:
            latest[row["pair"]] = row
    return latest


def duration(seconds: float | None) -> str:
    """The page's way of writing a duration: three significant digits of the largest unit."""
    if seconds is None:
        return "–"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def shown_text(row: dict, newest_bar: int) -> list[str]:
    """A scan row as the table must show it (the documented formats)."""
    def fixed(value, digits):
        return "–" if value is None else f"{value:.{digits}f}"

    def significant(value, digits):
        return "–" if value is None else f"{value:.{digits}g}"

    z, half_life = row["zscore"], row["half_life"]
    return [row["pair"], "live" if row["pair"] == WATCHED else "on demand",
            significant(row["eg_qvalue"], 3),
            duration(None if half_life is None else half_life * BAR_S),
            fixed(None if z is None else abs(z), 2), fixed(z, 2),
            significant(row["beta"], 4), fixed(row["corr"], 3), fixed(row["hurst"], 3),
            fixed(row["variance_ratio"], 3), f"{row['n']} / {row['window']}",
            duration((newest_bar - row["ts"]) / 1e6)]


def wait_rows(page, expected: list[list[str]]) -> None:
    """Wait until the table shows exactly ``expected``, top to bottom."""
    page.wait_for_function(f"(want) => JSON.stringify(({ROWS_JS})()) === JSON.stringify(want)",
                           arg=expected)


def open_universe(page, url) -> None:
    page.goto(url + "?view=universe")
    page.wait_for_function("() => { const d = window.Bokeh && Bokeh.documents[0]; "
                           "const s = d && d.get_model_by_name('universe_source'); "
                           "return !!s && s.data.pair.length > 0 }")


def test_table_is_the_latest_scan_of_every_pair(page, url, store, tmp_path):
    latest = latest_scans(store)
    assert sorted(latest) == [f"{a}/{b}" for i, a in enumerate(UNIVERSE)
                              for b in UNIVERSE[i + 1:]]
    newest_bar = max(bar["end"] for bar in store_rows(store, "bars", timeframe=TIMEFRAME))
    open_universe(page, url)
    wait_rows(page, [shown_text(latest[pair], newest_bar) for pair in sorted(latest)])
    # The numbers the table sorts on are the store's, to the bit.
    source = page.evaluate("() => { const d = Bokeh.documents[0].get_model_by_name("
                           "'universe_source').data; return Object.fromEntries(Object.entries(d)"
                           ".map(([k, v]) => [k, Array.from(v)])) }")
    for i, pair in enumerate(source["pair"]):
        for field in ("eg_qvalue", "zscore", "beta", "corr", "hurst", "variance_ratio"):
            want = latest[pair][field]
            got = source[field][i]
            assert (got is None or math.isnan(got)) if want is None else got == want, field
        assert source["n"][i] == latest[pair]["n"]
    expect(page.locator("#pf-universe-status")).to_contain_text(
        f"{len(latest)} of {len(latest)} pairs shown")
    # docs/dashboard.md's image, only on request (PAIRFLOW_UPDATE_SCREENSHOT=1).
    shot = REPO / "docs" / "img" / "universe.png" if UPDATE_SCREENSHOT \
        else tmp_path / "universe.png"
    page.set_viewport_size({"width": 1500, "height": 700})
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0


def test_sorting_and_filters(page, url, store):
    latest = latest_scans(store)
    newest_bar = max(bar["end"] for bar in store_rows(store, "bars", timeframe=TIMEFRAME))
    open_universe(page, url)
    by_z = sorted(latest.values(), key=lambda row: abs(row["zscore"]))
    page.locator(".slick-header-column", has_text="|z|").click()
    wait_rows(page, [shown_text(row, newest_bar) for row in by_z])
    page.locator(".slick-header-column", has_text="|z|").click()
    wait_rows(page, [shown_text(row, newest_bar) for row in by_z[::-1]])
    # q-value ≤ the second lowest q: only the pairs at or below it stay, still sorted by |z|.
    limit = sorted(row["eg_qvalue"] for row in latest.values())[1]
    page.locator(".pf-q-max input").fill(f"{limit}")
    page.locator(".pf-q-max input").press("Enter")
    kept = [row for row in by_z[::-1] if row["eg_qvalue"] <= limit]
    assert 0 < len(kept) < len(latest)
    wait_rows(page, [shown_text(row, newest_bar) for row in kept])
    # A symbol, in any case, and a |z| floor on top.
    page.locator(".pf-q-max input").fill("")
    page.locator(".pf-q-max input").press("Enter")
    page.locator(".pf-symbol-filter input").press_sequentially("xmr")
    with_xmr = [row for row in by_z[::-1] if "XMR" in row["pair"]]
    wait_rows(page, [shown_text(row, newest_bar) for row in with_xmr])
    floor = abs(with_xmr[1]["zscore"])
    page.locator(".pf-z-min input").fill(f"{floor}")
    page.locator(".pf-z-min input").press("Enter")
    wait_rows(page, [shown_text(row, newest_bar) for row in with_xmr[:2]])
    expect(page.locator("#pf-universe-status")).to_contain_text(f"2 of {len(latest)} pairs")


def test_a_new_scan_streams_in_without_reload(page, store, tmp_path):
    """A scan written after the page loaded replaces its pair's row (and moves the ages)."""
    copy = copy_store(store, tmp_path / "streamed.db")
    latest = latest_scans(copy)
    newest_bar = max(bar["end"] for bar in store_rows(copy, "bars", timeframe=TIMEFRAME))
    with dashboard_server("--store", str(copy)) as url:
        open_universe(page, url)
        wait_rows(page, [shown_text(latest[pair], newest_bar) for pair in sorted(latest)])
        page.evaluate("() => { window.__marker = 42 }")  # survives only without a reload
        ts = max(row["ts"] for row in latest.values()) + 12 * BAR_S * 1_000_000
        later = dataclasses.replace(from_dict(ScanRecord, latest[UNWATCHED]), ts=ts, as_of=ts,
                                    zscore=-4.25, eg_qvalue=0.0123)
        writer = StoreWriter(copy)
        writer.write([later])
        writer.close()
        latest[UNWATCHED] = latest_scans(copy)[UNWATCHED]
        assert latest[UNWATCHED]["zscore"] == -4.25
        # The newest data time is now the new scan's: every other row ages by its distance.
        wait_rows(page, [shown_text(latest[pair], ts) for pair in sorted(latest)])
        assert page.evaluate("() => window.__marker") == 42


def test_heatmap_shows_the_universe_by_qvalue_or_correlation(page, url, store):
    latest = latest_scans(store)
    open_universe(page, url)
    heat = "() => { const d = Bokeh.documents[0]; const f = d.get_model_by_name('heatmap'); " \
           "const s = d.get_model_by_name('heatmap_source').data; return [f.x_range.factors, " \
           "f.y_range.factors, Array.from(s.x), Array.from(s.y), Array.from(s.value)] }"
    x_factors, y_factors, xs, ys, values = page.evaluate(heat)
    assert x_factors == list(UNIVERSE) and y_factors == list(UNIVERSE[::-1])
    cells = {(x, y): v for x, y, v in zip(xs, ys, values, strict=True)}
    assert len(cells) == 2 * len(latest)
    for pair, row in latest.items():
        a, b = pair.split("/")
        assert cells[(a, b)] == cells[(b, a)] == row["eg_qvalue"], pair
    size = page.locator(".bk-Figure").first.bounding_box()
    assert size["width"] > 300 and size["height"] > 300
    page.locator(".pf-heat-measure select").select_option("correlation")
    page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('heatmap_colours').low "
                           "=== -1")
    *_, xs, ys, values = page.evaluate(heat)
    cells = {(x, y): v for x, y, v in zip(xs, ys, values, strict=True)}
    for pair, row in latest.items():
        a, b = pair.split("/")
        assert cells[(a, b)] == cells[(b, a)] == row["corr"], pair


def test_a_watched_pair_opens_its_live_page(page, url, store):
    open_universe(page, url)
    page.locator(".slick-cell", has_text=WATCHED).click()
    page.wait_for_url(f"**/?pair={WATCHED.replace('/', '%2F')}&timeframe={TIMEFRAME}")
    page.wait_for_function(LOADED)
    rows = store_rows(store, "pairs", pair=WATCHED, timeframe=TIMEFRAME)
    assert data(page)["ts"] == [row["ts"] for row in rows]


def test_an_unwatched_pair_opens_its_page_computed_on_demand(page, url, store):
    open_universe(page, url)
    page.locator(".slick-cell", has_text=UNWATCHED).click()
    page.wait_for_url("**/?view=on-demand&*")
    expect(page.locator("#pf-on-demand")).to_contain_text("Computed on demand, not watched")
    page.wait_for_function(LOADED)
    # What the statistics core computes from the stored bars, legs aligned by bar end here.
    a, b = UNWATCHED.split("/")
    b_close = {bar["end"]: bar["close"] for bar in store_rows(store, "bars", symbol=b,
                                                           timeframe=TIMEFRAME)}
    aligned = [(bar["end"], bar["close"], b_close[bar["end"]])
               for bar in store_rows(store, "bars", symbol=a, timeframe=TIMEFRAME)
               if bar["end"] in b_close]
    results = run_history(EstimatorSettings(window=WINDOW), [r[1] for r in aligned],
                          [r[2] for r in aligned])
    shown = data(page)
    assert shown["ts"] == [end for end, _, _ in aligned]
    for field in ("zscore", "beta", "corr", "eg_pvalue", "adf_pvalue", "half_life"):
        want = [getattr(result, field) for result in results]
        got = [None if v is None or math.isnan(v) else v for v in shown[field]]
        assert got == want, field
    expect(page.locator("#kpi-z .v")).to_have_text(f"{results[-1].zscore:.4g}")
    # The page agrees with the scan engine at the latest scan's bar (A regressed on B).
    scan = latest_scans(store)[UNWATCHED]
    at = results[[end for end, _, _ in aligned].index(scan["as_of"])]
    for field in ("zscore", "beta", "half_life", "corr"):
        assert math.isclose(getattr(at, field), scan[field], rel_tol=1e-9), field
    expect(page.locator(".pf-on-demand-status")).to_contain_text("scan / on demand")


@pytest.mark.kafka
def test_kafka_fed_universe_page_shows_the_scan_topic(page, kafka_broker, unique_prefix,
                                                      candles, tmp_path):
    store = tmp_path / "kafka.db"
    replay(candles, store, "--kafka", kafka_broker.bootstrap, "--kafka-prefix", unique_prefix)
    latest = latest_scans(store)
    newest_bar = max(bar["end"] for bar in store_rows(store, "bars", timeframe=TIMEFRAME))
    with dashboard_server("--kafka", kafka_broker.bootstrap,
                          "--kafka-prefix", unique_prefix) as url:
        open_universe(page, url)
        wait_rows(page, [shown_text(latest[pair], newest_bar) for pair in sorted(latest)])
