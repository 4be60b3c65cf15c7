"""The pair view's pure parts, without a browser: residual, quote and cost columns, URL
parameters, badge."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from dashboard.charts import (
    Bands,
    cost_columns,
    histogram_bin,
    pair_columns,
    quote_columns,
    scatter_columns,
)
from dashboard.freshness import freshness
from dashboard.selection import select


def _row(ts: int, **stats) -> dict:
    base = {"ts": ts, "y": 0.5, "x": 0.25, "n": 3, "spread": 0.3, "alpha": 0.1,
            "spread_std": 0.02, "zscore": 10.0, "beta": 0.8, "eg_pvalue": 0.01,
            "half_life": 4.0}
    return {**base, **stats}


def test_residual_and_bands_are_those_the_zscore_is_computed_on():
    rows = [_row(1_000_000), _row(2_000_000, alpha=None, eg_pvalue=0.2)]
    cols = pair_columns(rows, Bands(k=2.0, entry=1.5, exit=0.5), "log", (1.0, 1.0), 60.0)
    # y − α − βx = spread − alpha, in basis points of log price, exactly as rounded once.
    expected = Fraction(0.3) - Fraction(0.1)
    assert cols["residual"][0] == float(Fraction(1e4) * Fraction(float(expected)))
    assert np.isnan(cols["residual"][1])  # no fit, no residual
    assert cols["upper"][0] == 2.0 * (1e4 * 0.02) and cols["entry_lo"][0] == -1.5 * (1e4 * 0.02)
    assert cols["coint"][0] == 1.0 and np.isnan(cols["coint"][1])
    assert cols["half_life_s"][0] == 240.0
    assert np.isnan(cols["beta_lo"][0])  # no beta_se in these records: no band


def test_scatter_lines_are_the_newest_and_the_previous_windows_fits():
    tail = [(x, 2 * x, a, b) for x, a, b in ((1.0, 0.0, 1.0), (2.0, 1.0, 2.0), (3.0, 2.0, 3.0))]
    points, fit = scatter_columns(np.array(tail), 2)
    assert list(points["x"]) == [2.0, 3.0]
    assert list(fit["y_now"]) == [2.0 + 3.0 * 2.0, 2.0 + 3.0 * 3.0]
    assert list(fit["y_prev"]) == [0.0 + 1.0 * 2.0, 0.0 + 1.0 * 3.0]
    assert histogram_bin(np.array([-1.0, 0.0, 1.0]), 5.0) == 2


def test_empty_url_parameters_count_as_not_given():
    keys = [("A/B", "1m"), ("A/B", "1s")]
    chosen = select(keys, "", " ")
    assert (chosen.pair, chosen.timeframe, chosen.unknown) == ("A/B", "1s", None)
    assert "\\*" in select(keys, "**", "1s").message  # Markdown shown as typed


def test_a_pair_across_markets_is_selected_as_the_url_names_it():
    basis = "spot:BTCUSDT/cm:BTCUSD_PERP"
    for asked in (basis, "SPOT:btcusdt/CM:btcusd_perp"):
        chosen = select([(basis, "1s")], asked, "1s")
        assert (chosen.pair, chosen.unknown) == (basis, None)
        # Before the feed knows any series (Kafka still reading): waited for as spelled.
        assert select([], asked, "1s").pair == basis


def test_badge_states():
    now = 1_800_000_000.0
    assert freshness(reachable=False, live=True, newest_ts=1, timeframe="1s", arrived=None,
                     now=now)[0] == "unreachable"
    assert freshness(reachable=True, live=False, newest_ts=1, timeframe="1s", arrived=None,
                     now=now)[0] == "replay-done"
    stale = freshness(reachable=True, live=True, newest_ts=int((now - 38) * 1e6),
                      timeframe="1s", arrived=now, now=now)
    assert stale == ("stale", "stale · last bar 38 s ago")
    assert freshness(reachable=True, live=True, newest_ts=int((now - 38) * 1e6),
                     timeframe="1m", arrived=now, now=now)[0] == "live"


def test_break_even_band_is_exit_plus_round_trip_z_and_fees_are_their_share():
    costs = [{"ts": 2_000_000, "round_trip_bps": 15.0, "crossing": 1e-5, "fees": 3e-3,
              "round_trip_z": 40.25},
             {"ts": 3_000_000, "round_trip_bps": 12.0, "crossing": 2e-5, "fees": 2e-3,
              "round_trip_z": None}]
    cols = cost_columns(costs, exit_z=0.5)
    assert list(cols["breakeven_hi"][:1]) == [40.75] and list(cols["breakeven_lo"][:1]) == [-40.75]
    assert np.isnan(cols["breakeven_hi"][1])  # no σ: no band at that bar
    exact = Fraction(15.0) * Fraction(3e-3) / (Fraction(1e-5) + Fraction(3e-3))
    assert abs(Fraction(float(cols["fees_bps"][0])) - exact) <= exact * Fraction(1, 10**15)
    assert list(cols["t"]) == [2000.0, 3000.0]


def test_quote_columns_are_timed_at_the_bar_end():
    bar = {"end": 5_000_000, "spread_bps": 4000.0, "mean_spread_bps": 3000.0,
           "max_spread_bps": 5000.0, "imbalance": 0.2, "mean_imbalance": -0.1}
    cols = quote_columns([bar])
    assert list(cols["ts"]) == [5_000_000] and list(cols["t"]) == [5000.0]
    assert {k: float(v[0]) for k, v in cols.items() if k not in ("t", "ts")} == {
        k: float(v) for k, v in bar.items() if k != "end"}
