"""The universe page's pure parts, without a browser: symbol order, filters, cell texts, heat-map
cells, links, and the store's latest scan row per pair on one timeframe."""

from __future__ import annotations

import math
from urllib.parse import parse_qs

from connectors.store import StoreReader, StoreWriter
from dashboard.universe import (
    Filters,
    cell_texts,
    heatmap_columns,
    page_link,
    table_columns,
    universe_order,
)
from pairflow.records import ScanRecord

MINUTE = 60_000_000


def _scan(pair: str, ts: int, timeframe: str = "1m", **stats) -> dict:
    base = {"pair": pair, "timeframe": timeframe, "ts": ts, "as_of": ts, "window": 30, "n": 30,
            "beta": 0.5, "zscore": -2.5, "corr": 0.8, "half_life": 12.0, "eg_stat": -3.0,
            "eg_pvalue_yx": 0.01, "eg_pvalue_xy": 0.02, "eg_pvalue": 0.02, "eg_qvalue": 0.04,
            "variance_ratio": 0.6, "hurst": 0.3, "reason": None}
    return {**base, **stats}


def test_universe_order_is_read_back_from_the_pair_names():
    universe = ["ZECBTC", "ADABTC", "XMRBTC", "ETHBTC"]  # not alphabetical
    pairs = [f"{a}/{b}" for i, a in enumerate(universe) for b in universe[i + 1:]]
    assert universe_order(reversed(pairs)) == universe


def test_filters_hide_rows_without_the_filtered_value():
    rows = [_scan("AAA/BBB", MINUTE, eg_qvalue=0.04, zscore=-2.5),
            _scan("AAA/CCC", MINUTE, eg_qvalue=None, zscore=None),
            _scan("BBB/CCC", MINUTE, eg_qvalue=0.3, zscore=1.0)]
    assert [r["pair"] for r in rows if Filters().keep(r)] == ["AAA/BBB", "AAA/CCC", "BBB/CCC"]
    assert [r["pair"] for r in rows if Filters(q_max=0.04).keep(r)] == ["AAA/BBB"]
    assert [r["pair"] for r in rows if Filters(z_min=1.0).keep(r)] == ["AAA/BBB", "BBB/CCC"]
    assert [r["pair"] for r in rows if Filters(text=" ccc ").keep(r)] == ["AAA/CCC", "BBB/CCC"]


def test_cells_read_in_time_units_and_dash_where_undefined():
    texts = cell_texts(_scan("AAA/BBB", 10 * MINUTE), 60.0, 100 * MINUTE)
    assert texts["half_life_s"] == "12 min" and texts["age_s"] == "1.5 h"
    assert texts["abs_z"] == "2.50" and texts["zscore"] == "-2.50" and texts["n"] == "30 / 30"
    empty = cell_texts(_scan("AAA/BBB", MINUTE, half_life=None, zscore=None, eg_qvalue=None),
                       60.0, MINUTE)
    assert empty["half_life_s"] == empty["abs_z"] == empty["eg_qvalue"] == "–"
    assert empty["age_s"] == "0 s"


def test_table_sorts_on_numbers_and_links_watched_pairs_to_their_live_page():
    rows = [_scan("AAA/BBB", MINUTE), _scan("AAA/CCC", MINUTE, half_life=None, zscore=-0.5)]
    columns = table_columns(rows, "1m", 60.0, 2 * MINUTE, {"AAA/BBB"})
    assert columns["half_life_s"][0] == 720.0 and math.isnan(columns["half_life_s"][1])
    assert list(columns["abs_z"]) == [2.5, 0.5] and list(columns["age_s"]) == [60.0, 60.0]
    assert columns["page"] == ["live", "on demand"]
    assert parse_qs(columns["link"][0][1:]) == {"pair": ["AAA/BBB"], "timeframe": ["1m"]}
    assert parse_qs(columns["link"][1][1:]) == {"view": ["on-demand"], "pair": ["AAA/CCC"],
                                                "timeframe": ["1m"]}
    assert page_link("A/B", "5m", True) == "?pair=A%2FB&timeframe=5m"


def test_heatmap_has_both_cells_of_every_pair():
    rows = [_scan("AAA/BBB", MINUTE, corr=0.25), _scan("AAA/CCC", MINUTE, corr=None)]
    cells = heatmap_columns(rows, "correlation", set(), "1m")
    got = {(x, y): v for x, y, v in zip(cells["x"], cells["y"], cells["value"], strict=True)}
    assert got[("AAA", "BBB")] == got[("BBB", "AAA")] == 0.25
    assert math.isnan(got[("AAA", "CCC")]) and math.isnan(got[("CCC", "AAA")])
    assert len(got) == 4


def test_store_latest_scan_per_pair_on_one_timeframe(tmp_path):
    """``latest_per`` with a filter: the newest row of each pair among that timeframe's rows."""
    store = tmp_path / "s.db"
    writer = StoreWriter(store)
    writer.write(ScanRecord(**_scan(pair, ts, timeframe, zscore=float(ts // MINUTE)))
                 for pair in ("AAA/BBB", "AAA/CCC") for timeframe in ("1m", "5m")
                 for ts in (5 * MINUTE, 10 * MINUTE))
    writer.write([ScanRecord(**_scan("AAA/BBB", 15 * MINUTE, "1m", zscore=15.0)),
                  ScanRecord(**_scan("BBB/CCC", 20 * MINUTE, "5m", zscore=20.0))])
    writer.close()
    reader = StoreReader(store)
    latest = reader.latest_per("scan", "pair", {"timeframe": "1m"})
    assert [(r["pair"], r["timeframe"], r["ts"] // MINUTE) for r in latest] == [
        ("AAA/BBB", "1m", 15), ("AAA/CCC", "1m", 10)]
    latest = reader.latest_per("scan", "pair", {"timeframe": "5m"})
    assert [(r["pair"], r["ts"] // MINUTE) for r in latest] == [("AAA/BBB", 10), ("AAA/CCC", 10),
                                                               ("BBB/CCC", 20)]
    assert [r["stream"] for r in reader.latest_per("health", "stream")] == []
    reader.close()
