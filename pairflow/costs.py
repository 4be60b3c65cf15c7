"""The executable spread: what entering and leaving a pair's spread position costs at the quotes.

The spread is ``f(Y) − β·f(X)`` with ``f`` the pair's price transform (``log`` or ``raw``).
Shorting the spread sells Y at its bid and trades β·X the other way (buys X at its ask when
β > 0, sells it at its bid when β < 0); going long buys Y at its ask and trades X the other way.
So the spread can be sold at ``short = f(bid_Y) − β·f(X at ask if β > 0 else bid)`` and bought at
``long = f(ask_Y) − β·f(X at bid if β > 0 else ask)``, and a round trip through the book (in and
out at the same quotes) costs ``long − short = (f(ask_Y) − f(bid_Y)) + |β|·(f(ask_X) − f(bid_X))``
in spread units, whichever side is taken.

Taker fees: a fee of φ on a traded notional costs, in spread units, φ per unit of Y notional
under ``log`` (β·X notional per unit of Y: ``φ_Y + |β|·φ_X`` per side) and ``φ·price`` per unit
under ``raw`` (``φ_Y·mid_Y + |β|·φ_X·mid_X`` per side); a round trip pays two sides.

In bps of notional: the round-trip cost over the gross notional of the position, ``1 + |β|``
units of Y notional under ``log`` and ``mid_Y + |β|·mid_X`` under ``raw``; in z units: over the
spread's standard deviation σ, so it compares with a move of z directly.
"""

from __future__ import annotations

import math
from typing import Any

from pairflow.named_values import named_items
from pairflow.records import MARKET_NAMES, QuoteBar, SpreadCost, split_symbol

#: Taker fee per market in bps of the traded notional (Binance's base tier).
DEFAULT_FEE_BPS: dict[str, float] = {"spot": 10.0, "usdm": 5.0, "cm": 5.0}
#: The largest fee accepted, bps (1 %): anything above is a typo, not a tier.
MAX_FEE_BPS = 100.0
_BPS = 10_000.0
_FEE_HINT = "use MARKET=BPS pairs, e.g. spot=10,usdm=5,cm=5"


def parse_fee_bps(value: Any) -> tuple[tuple[str, float], ...]:
    """The taker fee of every market, bps, from what a user gave: the one check of ``fee_bps``.

    Accepts a mapping ``{market: bps}`` (a TOML table), ``(market, bps)`` pairs, or the text
    ``MARKET=BPS,...``; markets not named keep their :data:`DEFAULT_FEE_BPS`.

    Raises:
        ValueError: a malformed value, an unknown or repeated market, or a fee outside
            ``[0, MAX_FEE_BPS]``.

    >>> parse_fee_bps("spot=7.5")
    (('spot', 7.5), ('usdm', 5.0), ('cm', 5.0))
    """
    items = named_items(value, _FEE_HINT)
    fees = dict(DEFAULT_FEE_BPS)
    markets = [market.lower() for market, _ in items]
    if len(set(markets)) != len(markets):
        raise ValueError("a market is given twice")
    for market, (_, bps) in zip(markets, items, strict=True):
        if market not in MARKET_NAMES:
            raise ValueError(f"unknown market {market!r}: name {', '.join(MARKET_NAMES)}")
        try:
            fee = float(bps)
        except (TypeError, ValueError):
            raise ValueError(f"{market} fee {bps!r} is not a number of bps") from None
        if isinstance(bps, bool) or not 0 <= fee <= MAX_FEE_BPS:
            raise ValueError(f"{market} fee {bps!r} bps must be between 0 and {MAX_FEE_BPS:g}")
        fees[market] = fee
    return tuple((market, fees[market]) for market in MARKET_NAMES)


def leg_fee_bps(symbol: str, run_market: str, fees: dict[str, float] | None = None) -> float:
    """The taker fee (bps) of a leg: that of its named market, else of the run's.

    >>> leg_fee_bps("cm:BTCUSD_PERP", "spot"), leg_fee_bps("BTCUSDT", "spot")
    (5.0, 10.0)
    """
    market = split_symbol(symbol)[0] or run_market
    return (fees or DEFAULT_FEE_BPS)[market]


def spread_cost(pair: str, timeframe: str, ts: int, price: str, beta: float,
                spread_std: float | None, y: QuoteBar, x: QuoteBar, fee_y_bps: float,
                fee_x_bps: float) -> SpreadCost:
    """The executable spread of a pair at the close of bar ``ts`` (see the module docstring).

    Args:
        pair: ``Y/X``.
        timeframe: the bars' timeframe.
        ts: the bar end.
        price: the spread's price transform, ``log`` or ``raw``.
        beta: the hedge ratio at ``ts``.
        spread_std: the spread's standard deviation at ``ts`` (None: no z cost).
        y: leg Y's quote bar ending at ``ts``.
        x: leg X's quote bar ending at ``ts``.
        fee_y_bps: taker fee of leg Y, bps.
        fee_x_bps: taker fee of leg X, bps.
    """
    f = math.log if price == "log" else float
    x_for_short, x_for_long = (x.ask, x.bid) if beta > 0 else (x.bid, x.ask)
    short = f(y.bid) - beta * f(x_for_short)
    long = f(y.ask) - beta * f(x_for_long)
    size = abs(beta)
    mid_y, mid_x = (y.bid + y.ask) / 2.0, (x.bid + x.ask) / 2.0
    if price == "log":
        # log(ask) − log(bid) as log1p of the relative spread: no cancellation (ask − bid is
        # exact in floating point for a tight book).
        crossing = math.log1p((y.ask - y.bid) / y.bid) + size * math.log1p((x.ask - x.bid)
                                                                            / x.bid)
        fees = 2.0 * (fee_y_bps + size * fee_x_bps) / _BPS
        notional = 1.0 + size
    else:
        crossing = (y.ask - y.bid) + size * (x.ask - x.bid)
        fees = 2.0 * (fee_y_bps * mid_y + size * fee_x_bps * mid_x) / _BPS
        notional = mid_y + size * mid_x
    round_trip = crossing + fees
    z_cost = round_trip / spread_std if spread_std else None
    return SpreadCost(pair, timeframe, ts, beta, y.bid, y.ask, x.bid, x.ask, short, long,
                      crossing, fees, round_trip / notional * _BPS, z_cost)
