"""The pair view's pure parts, without a browser: residual columns, URL parameters, badge."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from dashboard.charts import Bands, histogram_bin, pair_columns, scatter_columns
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
