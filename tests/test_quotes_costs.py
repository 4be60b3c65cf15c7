"""The executable spread: against high-precision arithmetic, and recomputed from a stored run."""

from __future__ import annotations

import sqlite3

import mpmath
import pytest

from pairflow.costs import DEFAULT_FEE_BPS, leg_fee_bps, spread_cost
from pairflow.records import QuoteBar
from tests.helpers import SHARED_DATA, SPOT_DIR, run_replay

mpmath.mp.dps = 50
COINM_BTC = SHARED_DATA / "binance-coinm-2024-08-09" / "btcusd_perp_20240809.gz"
SPOT_BTC = SPOT_DIR / "btcusdt_20240809.gz"


def _quote(bid: float, ask: float) -> QuoteBar:
    return QuoteBar("S", "1s", 0, 1, bid, 1.0, ask, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1,
                    None, None, None)


def reference(price, beta, std, y, x, fee_y, fee_x):
    """(short_at, long_at, crossing, fees, bps, z) in 50-digit arithmetic."""
    f = mpmath.log if price == "log" else mpmath.mpf
    yb, ya, xb, xa = (mpmath.mpf(v) for v in (y.bid, y.ask, x.bid, x.ask))
    b = mpmath.mpf(beta)
    x_short, x_long = (xa, xb) if beta > 0 else (xb, xa)
    short, long = f(yb) - b * f(x_short), f(ya) - b * f(x_long)
    crossing = long - short
    size = abs(b)
    if price == "log":
        fees = 2 * (mpmath.mpf(fee_y) + size * mpmath.mpf(fee_x)) / 10_000
        notional = 1 + size
    else:
        fees = 2 * (mpmath.mpf(fee_y) * (yb + ya) / 2 + size * mpmath.mpf(fee_x) * (xb + xa) / 2
                    ) / 10_000
        notional = (yb + ya) / 2 + size * (xb + xa) / 2
    total = crossing + fees
    return short, long, crossing, fees, total / notional * 10_000, total / mpmath.mpf(std)


@pytest.mark.parametrize("price", ["log", "raw"])
@pytest.mark.parametrize("beta", [0.9856693510786, -1.7, 2.5])
def test_spread_cost_matches_high_precision_arithmetic(price, beta):
    y, x = _quote(61617.49, 61617.5), _quote(61611.6, 61611.7)
    std = 4.1e-8 if price == "log" else 3.2
    cost = spread_cost("Y/X", "1s", 7, price, beta, std, y, x, 10.0, 5.0)
    want = reference(price, beta, std, y, x, 10.0, 5.0)
    got = (cost.short_at, cost.long_at, cost.crossing, cost.fees, cost.round_trip_bps,
           cost.round_trip_z)
    # short/long: a few ulps of the transformed prices; the rest relative to themselves.
    scale = abs(mpmath.log(61617.5)) * (1 + abs(beta)) if price == "log" else 61617.5 * 3.5
    for value, exact in zip(got[:2], want[:2], strict=True):
        assert abs(mpmath.mpf(value) - exact) <= 8 * 2.0**-52 * scale
    for value, exact in zip(got[2:], want[2:], strict=True):
        assert abs(mpmath.mpf(value) - exact) <= 1e-14 * abs(exact), (value, exact)
    assert cost.crossing > 0 and cost.long_at > cost.short_at


def test_fees_follow_each_leg_market():
    assert DEFAULT_FEE_BPS == {"spot": 10.0, "usdm": 5.0, "cm": 5.0}
    assert [leg_fee_bps(s, "usdm") for s in ("BTCUSDT", "spot:BTCUSDT", "cm:BTCUSD_PERP")] == [
        5.0, 10.0, 5.0]
    y, x = _quote(100.0, 100.0 + 2**-40), _quote(50.0, 50.0 + 2**-40)
    cost = spread_cost("Y/X", "1s", 0, "log", 1.0, None, y, x, 10.0, 5.0)
    assert cost.fees == 2 * (10.0 + 5.0) / 10_000 and cost.round_trip_z is None


def test_stored_costs_recompute_from_the_stored_quotes_and_pair_statistics(tmp_path):
    db = tmp_path / "basis.db"
    totals = run_replay([SPOT_BTC, COINM_BTC], db, symbols=["BTCUSDT", "cm:BTCUSD_PERP"],
                        pairs="BTCUSDT/cm:BTCUSD_PERP", timeframes="1s", window="30",
                        quotes=True)
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        costs = connection.execute("SELECT * FROM costs").fetchall()
        quotes = {(r["symbol"], r["end"]): r for r in connection.execute("SELECT * FROM quotes")}
        stats = {r["ts"]: r for r in connection.execute(
            "SELECT * FROM pairs WHERE beta IS NOT NULL")}
    both = [ts for ts in stats if ("BTCUSDT", ts) in quotes and ("cm:BTCUSD_PERP", ts) in quotes]
    assert len(costs) == len(both) == totals["costs"] > 200
    for row in costs:
        y, x, pair = quotes[("BTCUSDT", row["ts"])], quotes[("cm:BTCUSD_PERP", row["ts"])], \
            stats[row["ts"]]
        assert (row["y_bid"], row["y_ask"], row["x_bid"], row["x_ask"], row["beta"]) == (
            y["bid"], y["ask"], x["bid"], x["ask"], pair["beta"])
        want = reference("log", pair["beta"], pair["spread_std"], _quote(y["bid"], y["ask"]),
                         _quote(x["bid"], x["ask"]), 10.0, 5.0)
        assert abs(row["round_trip_bps"] - want[4]) <= 1e-12 * want[4]
        assert abs(row["round_trip_z"] - want[5]) <= 1e-12 * want[5]
