"""Cost-aware and cointegration-gated alerts (options, off by default)."""

from __future__ import annotations

import numpy as np
import pytest

from pairflow.alerts import AlertState
from pairflow.analytics import EstimatorSettings
from pairflow.errors import ConfigError
from pairflow.pairs import PairState
from pairflow.records import Alert, SpreadCost
from tests.helpers import hedged_legs


def _cost(beta: float, crossing: float, fees: float) -> SpreadCost:
    return SpreadCost("A/B", "1s", 0, beta, 99.0, 101.0, 49.0, 51.0, 0.0, crossing, crossing,
                      fees, 1.0, 1.0)


def test_net_of_cost_enters_only_when_the_reversion_pays():
    state = AlertState(2.0, 0.5, net_of_cost=True)
    # (|z| − exit)·σ = 1.5 · 0.01 = 0.015 against a cost of 0.016: no entry.
    assert state.update("A/B", "1s", 1, 2.0, 0.1, 0.8, sigma=0.01,
                        cost=_cost(0.8, 0.006, 0.010)) == []
    assert state.update("A/B", "1s", 2, 2.0, 0.1, 0.8, sigma=0.01, cost=None) == []
    [entry] = state.update("A/B", "1s", 3, 2.5, 0.1, 0.8, sigma=0.01,
                           cost=_cost(0.8, 0.006, 0.010))
    assert entry.alert_kind == "enter_upper"
    assert entry.edge == (2.5 - 0.5) * 0.01 - (0.006 + 0.010)
    # Short the spread: sell Y at its bid, buy X (β > 0) at its ask.
    assert (entry.y_price, entry.x_price) == (99.0, 51.0)
    [leave] = state.update("A/B", "1s", 4, 0.1, 0.1, 0.8, sigma=0.01,
                           cost=_cost(0.8, 0.006, 0.010))
    assert (leave.alert_kind, leave.y_price, leave.x_price, leave.edge) == ("exit", 101.0, 49.0,
                                                                            None)


def test_entry_prices_follow_the_side_and_the_sign_of_beta():
    state = AlertState(2.0, 0.5)
    [entry] = state.update("A/B", "1s", 1, -3.0, 0.1, -1.2, sigma=0.01,
                           cost=_cost(-1.2, 0.001, 0.001))
    # Buy the spread: buy Y at its ask; −β·X with β < 0 is bought too, at its ask.
    assert (entry.alert_kind, entry.y_price, entry.x_price) == ("enter_lower", 101.0, 51.0)


def test_max_pvalue_gates_entries_not_exits():
    state = AlertState(2.0, 0.5, max_pvalue=0.05)
    assert state.update("A/B", "1s", 1, 3.0, 0.1, 1.0, pvalue=0.05) == []
    assert state.update("A/B", "1s", 2, 3.0, 0.1, 1.0, pvalue=None) == []
    [entry] = state.update("A/B", "1s", 3, 3.0, 0.1, 1.0, pvalue=0.049)
    [leave] = state.update("A/B", "1s", 4, 0.0, 0.1, 1.0, pvalue=0.9)
    assert (entry.alert_kind, leave.alert_kind) == ("enter_upper", "exit")
    assert entry.y_price is None and entry.edge is None
    with pytest.raises(ConfigError, match="max_pvalue"):
        AlertState(2.0, 0.5, max_pvalue=1.5)


def test_alerts_are_unchanged_when_the_options_are_off():
    zs = np.random.default_rng(3).normal(0, 2, 400).tolist()
    plain, extra = AlertState(1.5, 0.3, 2), AlertState(1.5, 0.3, 2)
    want = [a for i, z in enumerate(zs) for a in plain.update("A/B", "1s", i, z, 0.1, 1.0)]
    got = [a for i, z in enumerate(zs) for a in extra.update(
        "A/B", "1s", i, z, 0.1, 1.0, pvalue=0.9, sigma=1.0, cost=None)]
    assert got == want and len(want) > 20


def _inputs():
    return hedged_legs(("A", "B"), 160, ask_markup=1.0001, spread_bps=2.0)


def _run(order: str) -> list:
    state = PairState("A/B", "1s", EstimatorSettings(window=30),
                      AlertState(1.5, 0.3, net_of_cost=True), quotes=True)
    bars, quotes = _inputs()
    out = []
    for i in range(len(bars[0])):
        if order == "quotes first":
            steps = [(0, quotes[0][i]), (1, quotes[1][i]), (0, bars[0][i]), (1, bars[1][i])]
        else:  # quotes 3 ends behind the bars, one leg missing a quote bar now and then
            steps = [(0, bars[0][i]), (1, bars[1][i])]
            if i >= 3 and i % 17:
                steps += [(0, quotes[0][i - 3]), (1, quotes[1][i - 3])]
        for leg, item in steps:
            out += state.update(leg, item)
    return [r for r in out if isinstance(r, Alert | SpreadCost)]


def test_net_of_cost_alerts_do_not_depend_on_when_the_quotes_arrive():
    first, lagging = _run("quotes first"), _run("lagging")
    alerts_first = [a for a in first if isinstance(a, Alert)]
    alerts_lagging = [a for a in lagging if isinstance(a, Alert)]
    assert any(a.alert_kind.startswith("enter") for a in alerts_first)
    # Ends whose quote bars never come fire no entry; elsewhere the alerts are the same.
    missing = {10 * (i - 3) + 10 for i in range(3, 160) if not i % 17}
    missing |= {1570, 1580, 1590, 1600}  # the last ends' quote bars never come
    assert [a for a in alerts_first if a.ts not in missing or a.alert_kind == "exit"] == [
        a for a in alerts_lagging if a.ts not in missing or a.alert_kind == "exit"]
    # Every entry pays: its edge is the reversion net of the cost recomputed from its inputs.
    costs = {c.ts: c for c in first if isinstance(c, SpreadCost)}
    for alert in alerts_first:
        if alert.alert_kind != "exit":
            cost = costs[alert.ts]
            assert alert.edge > 0 and (alert.y_price, alert.x_price) in [
                (cost.y_bid, cost.x_ask), (cost.y_ask, cost.x_bid)]
