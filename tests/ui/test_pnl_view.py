"""The paper P&L of the alert rule on the pair page, in Debian's Chromium (issue 15, item 6).

The store is a real replay of the basis pair of the shared tapes (spot BTCUSDT against COIN-M
BTCUSD_PERP, quotes on both legs, 30-bar window, entry 1.5, exit 0.3). The round-trip table
must show the stored ``trades`` rows, the curve must end at the stored summary's total and
meet each round trip's realised P&L at its exit, the what-if's P&L figures for other
thresholds must equal this module's own recomputation (alerts derived from the stored
z-scores, round trips priced by plain loops over the stored bars and quotes), new records
must stream in, and a ``--no-pnl`` store must show none of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3

import pytest
from playwright.sync_api import expect

from connectors.store import StoreWriter
from pairflow.pnl_records import PnlSummary, RoundTrip
from pairflow.records import Bar, PairStats, from_dict
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
#: The replay's settings beside the basis pair's own (``replay_basis``).
REPLAY = ("--window", "30", "--entry-z", "1.5", "--exit-z", "0.3")
#: Taker fees of the legs (spot, COIN-M defaults) and the default notional.
FEES, NOTIONAL = (10.0, 5.0), 10_000.0
#: The page has its statistics and its P&L curve.
PNL_LOADED = """() => { const d = window.Bokeh && Bokeh.documents[0];
  const get = (n) => d && d.get_model_by_name(n);
  const z = get('zscore');
  return !!z && Number.isFinite(z.x_range.start) && get('pnl_source').data.t.length > 0 }"""
#: Read with ``locator.evaluate_all`` (Playwright's locators reach into Panel's shadow roots).
TABLE = "(trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => " \
        "td.textContent))"
SUMMARY = "(ks) => Object.fromEntries(ks.map((k) => [k.querySelector('.l').textContent, " \
          "k.querySelector('.v').textContent]))"
WHATIF_PNL = "(trs) => trs.map((tr) => [tr.querySelector('th').textContent, " \
             "tr.querySelector('.pf-live').textContent, " \
             "tr.querySelector('.pf-whatif').textContent])"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> object:
    """One replay of the basis pair with quotes and paper P&L, shared by the module."""
    return replay_basis(tmp_path_factory.mktemp("pnl") / "basis.db", *REPLAY)


@pytest.fixture(scope="module")
def store(replayed, tmp_path_factory):
    return copy_store(replayed, tmp_path_factory.mktemp("pnl-page") / "store.db")


@pytest.fixture(scope="module")
def url(store):
    with dashboard_server("--store", str(store)) as url:
        yield url



# -- this module's own arithmetic: plain loops over the stored rows, none of pairflow's code --

def short_time(ts: int) -> str:
    """A bar end as the page writes it (whole seconds here: 1 s bars)."""
    assert ts % 1_000_000 == 0
    return dt.datetime.fromtimestamp(ts // 1_000_000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def derive_alerts(pair_rows: list[dict], entry: float, exit_: float) -> list[dict]:
    """The alert rule at other thresholds, from the stored z-scores (no cooldown)."""
    side, out = 0, []
    for row in pair_rows:
        z = row["zscore"]
        if z is None or row["spread"] is None or row["beta"] is None:
            continue
        if side and side * z < exit_:
            out.append({"ts": row["ts"], "kind": "exit", "beta": row["beta"]})
            side = 0
        if side == 0 and abs(z) >= entry:
            side = 1 if z > 0 else -1
            out.append({"ts": row["ts"], "kind": "enter_upper" if z > 0 else "enter_lower",
                        "beta": row["beta"]})
    return out


def plain_pnl(store, alerts: list[dict], since: int = 0) -> dict:
    """Round trips, wins, net P&L and the equity curve of ``alerts`` over the stored bars."""
    close = {(r["symbol"], r["end"]): r["close"] for r in store_rows(store, "bars")}
    book = {(r["symbol"], r["end"]): (r["bid"], r["ask"]) for r in store_rows(store, "quotes")}
    ends = sorted(e for s, e in close if s == Y and (X, e) in close and e >= since)
    by_end: dict[int, list] = {}
    for alert in alerts:
        by_end.setdefault(alert["ts"], []).append(alert)

    def fills(end, qy, qx):
        if (Y, end) in book and (X, end) in book:
            return (book[(Y, end)][1 if qy > 0 else 0], book[(X, end)][1 if qx > 0 else 0])
        return close[(Y, end)], close[(X, end)]

    def value(held, end):
        qy, qx = held["q"]
        py, px = fills(end, -qy, -qx)
        return (qy * (py - held["p"][0]) + qx * (px - held["p"][1])
                - FEES[0] / 1e4 * abs(qy) * (held["p"][0] + py)
                - FEES[1] / 1e4 * abs(qx) * (held["p"][1] + px))

    nets, curve, held = [], [], None
    for end in ends:
        for alert in sorted(by_end.get(end, []), key=lambda a: a["kind"] != "exit"):
            if alert["kind"] == "exit" and held:
                nets.append(value(held, end))
                held = None
            elif alert["kind"] != "exit" and not held:
                sy = -1 if alert["kind"] == "enter_upper" else 1
                sx = -sy if alert["beta"] > 0 else sy
                py, px = fills(end, sy, sx)
                held = {"p": (py, px), "q": (sy * NOTIONAL / py,
                                             sx * abs(alert["beta"]) * NOTIONAL / px)}
        curve.append(sum(nets) + (value(held, end) if held else 0.0))
    peak, drawdown = 0.0, 0.0
    for equity in curve:
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    return {"round_trips": len(nets), "wins": sum(n > 0 for n in nets), "net": sum(nets),
            "drawdown": drawdown, "curve": curve, "ends": ends}


def shown_figures(result: dict) -> list[str]:
    trips = result["round_trips"]
    return [str(trips), f"{result['wins'] / trips:.1%}" if trips else "–",
            f"{result['net']:,.2f}", f"{result['drawdown']:,.2f}"]


# -- tests --------------------------------------------------------------------------------------

def _screenshot(page, tmp_path) -> None:
    """The P&L chart and the card below the charts; into docs/img only when asked to."""
    shot = REPO / "docs" / "img" / "dashboard-pnl.png" if UPDATE_SCREENSHOT \
        else tmp_path / "dashboard-pnl.png"
    chart = page.locator(".bk-Canvas >> visible=true").nth(12).bounding_box()  # the last
    rows = page.locator("#pf-trades tbody tr").nth(7).bounding_box()
    scroll = page.evaluate("() => [window.scrollX, window.scrollY]")
    page.screenshot(path=str(shot), full_page=True, clip={
        "x": 0, "y": chart["y"] + scroll[1] - 30, "width": 1500,
        "height": rows["y"] + rows["height"] - chart["y"] + 40})
    assert shot.stat().st_size > 10_000


def test_curve_table_and_summary_are_the_stored_paper_pnl(page, url, store, tmp_path):
    page.goto(url + QUERY)
    page.wait_for_function(PNL_LOADED)
    trades = store_rows(store, "trades", pair=PAIR, timeframe="1s")
    (summary,) = store_rows(store, "pnl", pair=PAIR, timeframe="1s")
    assert len(trades) >= 10 and summary["round_trips"] == len(trades)
    assert summary["position"] == "flat"
    # The table: the stored round trips, newest first, as displayed.
    expected = [[short_time(t["entry_ts"]), short_time(t["exit_ts"]), t["side"],
                 f"{t['y_entry']:.10g} → {t['y_exit']:.10g}",
                 f"{t['x_entry']:.10g} → {t['x_exit']:.10g}", f"{t['fees']:,.2f}",
                 f"{t['funding']:,.2f}", f"{t['net_pnl']:,.2f}", t["priced_at"]]
                for t in reversed(trades)]
    expect(page.locator("#pf-trades tbody tr")).to_have_count(len(trades))
    assert page.locator("#pf-trades tbody tr").evaluate_all(TABLE) == expected
    shown = page.locator("#pf-pnl-summary .pf-kpi").evaluate_all(SUMMARY)
    assert shown["round trips"] == str(summary["round_trips"])
    assert shown["hit rate"] == f"{summary['hit_rate']:.1%}"
    assert shown["total net P&L"] == f"{summary['total_net_pnl']:,.2f}"
    assert shown["mean net P&L"] == f"{summary['mean_net_pnl']:,.2f}"
    assert shown["max drawdown"] == f"{summary['max_drawdown']:,.2f}"
    assert shown["position"] == "flat"
    # The curve: one point per aligned bar, ending at the stored total; at every exit to flat
    # it has realised exactly the round trips closed so far.
    curve = data(page, "pnl_source")
    plain = plain_pnl(store, store_rows(store, "alerts", pair=PAIR, timeframe="1s"))
    assert curve["ts"] == plain["ends"]
    assert curve["equity"][-1] == summary["total_net_pnl"]
    assert curve["equity"] == pytest.approx(plain["curve"], abs=1e-6)
    equity = dict(zip(curve["ts"], curve["equity"], strict=True))
    realised, entries = 0.0, {t["entry_ts"] for t in trades}
    for trade in trades:
        realised += trade["net_pnl"]
        if trade["exit_ts"] not in entries:  # else the next round trip's entry cost is in
            assert equity[trade["exit_ts"]] == pytest.approx(realised, abs=1e-9)
    assert max(plain["curve"]) - plain["curve"][-1] <= summary["max_drawdown"] + 1e-9
    # Every round trip marked, at its entry and exit, on the curve.
    marks = data(page, "pnl_marks_source")
    assert sorted(marks["ts"]) == sorted([t["entry_ts"] for t in trades]
                                         + [t["exit_ts"] for t in trades])
    assert all(equity[ts] == e for ts, e in zip(marks["ts"], marks["equity"], strict=True))
    expect(page.locator(".pf-pnl")).to_be_visible()
    _screenshot(page, tmp_path)


@pytest.mark.parametrize("entry, exit_", [(1.0, 0.0), (2.5, 0.5)])
def test_whatif_pnl_equals_an_independent_recomputation(page, url, store, entry, exit_):
    page.goto(url + QUERY)
    page.wait_for_function(PNL_LOADED)
    inputs = page.locator(".pf-whatif input")
    entry_input, exit_input = inputs.nth(1), inputs.nth(2)
    # The entry first: each intermediate pair of thresholds is valid (exit 0.3 < entry).
    for field, value in ((entry_input, entry), (exit_input, exit_)):
        field.fill(str(value))
        field.press("Enter")
    pair_rows = store_rows(store, "pairs", pair=PAIR, timeframe="1s")
    live = plain_pnl(store, store_rows(store, "alerts", pair=PAIR, timeframe="1s"))
    whatif = plain_pnl(store, derive_alerts(pair_rows, entry, exit_))
    assert whatif["round_trips"] != live["round_trips"] or whatif["net"] != live["net"]
    names = ["round trips", "hit rate", "net P&L", "max drawdown"]
    want = [[name, a, b] for name, a, b in zip(names, shown_figures(live),
                                                 shown_figures(whatif), strict=True)]
    # Waits for the last change's recomputation (an earlier one may be drawn first).
    table = page.locator("#pf-whatif-pnl tbody tr")
    expect(table).to_have_count(4)
    for _ in range(600):
        if table.evaluate_all(WHATIF_PNL) == want:
            break
        page.wait_for_timeout(100)  # polls what the page shows; the bound is a generous cap
    assert table.evaluate_all(WHATIF_PNL) == want
    # The live column is the stored summary (the history holds the whole run).
    (summary,) = store_rows(store, "pnl", pair=PAIR, timeframe="1s")
    assert want[2][1] == f"{summary['total_net_pnl']:,.2f}"
    shown = data(page, "pnl_whatif_source")
    assert shown["ts"] == whatif["ends"]
    assert shown["equity"] == pytest.approx(whatif["curve"], abs=1e-6)


def test_new_records_stream_into_the_curve_table_and_summary(page, url, store):
    page.goto(url + QUERY)
    page.wait_for_function(PNL_LOADED)
    before = len(data(page, "pnl_source")["ts"])
    last_trade = from_dict(RoundTrip, store_rows(store, "trades", pair=PAIR, timeframe="1s")[-1])
    (summary,) = store_rows(store, "pnl", pair=PAIR, timeframe="1s")
    ends = [b["end"] for b in store_rows(store, "bars", symbol=Y, timeframe="1s")]
    ts = max(ends[-1], store_rows(store, "pairs", pair=PAIR, timeframe="1s")[-1]["ts"]) + 1_000_000
    bars = [dataclasses.replace(from_dict(Bar, store_rows(store, "bars", symbol=s,
                                                    timeframe="1s")[-1]),
                                start=ts - 1_000_000, end=ts) for s in (Y, X)]
    stats = dataclasses.replace(from_dict(PairStats, store_rows(store, "pairs", pair=PAIR,
                                                          timeframe="1s")[-1]), ts=ts)
    trade = dataclasses.replace(last_trade, trade_id=f"{PAIR}|1s|{ts - 1}", entry_ts=ts - 1,
                                exit_ts=ts, net_pnl=123.45)
    total = summary["total_net_pnl"] + 123.45
    new_summary = dataclasses.replace(from_dict(PnlSummary, summary), ts=ts,
                                      round_trips=summary["round_trips"] + 1,
                                      total_net_pnl=total)
    writer = StoreWriter(store)
    writer.write([*bars, stats, trade, new_summary])
    writer.close()
    page.wait_for_function(f"() => Bokeh.documents[0].get_model_by_name('pnl_source')"
                           f".data.ts.includes({ts})")
    assert len(data(page, "pnl_source")["ts"]) == before + 1
    expect(page.locator("#pf-trades tbody tr").first).to_contain_text("123.45")
    expect(page.locator("#pf-pnl-summary")).to_contain_text(f"{total:,.2f}")


def test_a_no_pnl_store_shows_no_pnl(page, replayed, tmp_path):
    store = replay_basis(tmp_path / "no-pnl.db", *REPLAY, "--no-pnl")
    with sqlite3.connect(store) as connection:
        assert connection.execute("SELECT COUNT(*) FROM trades").fetchone() == (0,)
    connection.close()
    with dashboard_server("--store", str(store)) as url:
        page.goto(url + QUERY)
        page.wait_for_function("() => { const d = window.Bokeh && Bokeh.documents[0]; "
                               "const s = d && d.get_model_by_name('pair_source'); "
                               "return !!s && s.data.t.length > 0 }")
        assert page.evaluate("() => Bokeh.documents[0].get_model_by_name('pnl').visible") \
            is False
        assert len(data(page, "pnl_source")["t"]) == 0
        expect(page.locator(".pf-pnl")).to_be_hidden()
        # Today's page with quotes: eight charts and the four quote charts.
        expect(page.locator(".bk-Canvas >> visible=true")).to_have_count(12)
        exit_input = page.locator(".pf-whatif input").nth(2)
        exit_input.fill("0.1")
        exit_input.press("Enter")
        expect(page.locator(".pf-whatif-status")).to_contain_text("Recomputed")
        expect(page.locator(".pf-whatif-pnl")).to_be_hidden()


@pytest.mark.kafka
def test_kafka_fed_page_shows_the_paper_pnl(page, kafka_broker, unique_prefix, tmp_path):
    """Fed by the topics alone: the same table, summary and curve as the run's store holds."""
    store = replay_basis(tmp_path / "store.db", *REPLAY,
                         "--kafka", kafka_broker.bootstrap, "--kafka-prefix", unique_prefix)
    trades = store_rows(store, "trades", pair=PAIR, timeframe="1s")
    (summary,) = store_rows(store, "pnl", pair=PAIR, timeframe="1s")
    with dashboard_server("--kafka", kafka_broker.bootstrap,
                          "--kafka-prefix", unique_prefix) as url:
        page.goto(url + QUERY)
        page.wait_for_function(PNL_LOADED)
        expect(page.locator("#pf-trades tbody tr")).to_have_count(len(trades))
        shown = page.locator("#pf-trades tbody tr").evaluate_all(TABLE)
        assert [row[-2] for row in shown] == [f"{t['net_pnl']:,.2f}" for t in reversed(trades)]
        kpis = page.locator("#pf-pnl-summary .pf-kpi").evaluate_all(SUMMARY)
        assert kpis["total net P&L"] == f"{summary['total_net_pnl']:,.2f}"
        page.wait_for_function("(total) => { const e = Bokeh.documents[0]"
                               ".get_model_by_name('pnl_source').data.equity;"
                               " return e[e.length - 1] === total }",
                               arg=summary["total_net_pnl"])
