"""Paper P&L records: one round trip of the alert rule, and the running summary of a pair.

Defined here to keep :mod:`pairflow.records` (which re-exports them) short; the formulas are
:mod:`pairflow.pnl`'s and ``docs/pnl.md``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

#: Which side of the spread a round trip held: ``short`` (entered on ``enter_upper``: Y sold),
#: ``long`` (entered on ``enter_lower``: Y bought).
SpreadSide = Literal["long", "short"]
#: ``quotes``: every fill at the book (sell at the bid, buy at the ask); ``close``: at least
#: one end (entry or exit) had no quote bar of both legs and was filled at the bar closes.
PricedAt = Literal["quotes", "close"]


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One closed round trip of the alert rule on a watched pair (paper, taker fills).

    Quantities are signed (positive: bought at entry, held long), in the leg's base unit
    (coins; a COIN-M leg as the linear position of the same USD notional); prices, fees,
    funding and P&L in the quote currency. ``net_pnl = gross_pnl − fees + funding``.
    """

    kind: ClassVar[str] = "trade"
    trade_id: str
    pair: str
    timeframe: str
    side: SpreadSide
    entry_ts: int
    exit_ts: int
    beta: float
    price: str
    notional: float
    priced_at: PricedAt
    y_qty: float
    x_qty: float
    y_entry: float
    x_entry: float
    y_exit: float
    x_exit: float
    y_fee_bps: float
    x_fee_bps: float
    fees: float
    funding: float
    funding_unknown_bars: int
    gross_pnl: float
    net_pnl: float

    @property
    def key(self) -> str:
        """Kafka key and stream key: ``Y/X|timeframe``."""
        return f"{self.pair}|{self.timeframe}"


@dataclass(frozen=True, slots=True)
class PnlSummary:
    """The paper P&L of the alert rule on a watched pair so far, as of bar end ``ts``.

    ``equity`` is the mark-to-market P&L: the closed round trips' net P&L plus what the open
    position would net if closed at ``ts`` (``open_pnl``). ``max_drawdown`` and ``sharpe``
    (per bar, not annualised) are of the per-bar changes of ``equity`` over ``bars`` bars.
    ``notional`` and the legs' taker fees are the settings the pair is traded with.
    """

    kind: ClassVar[str] = "pnl"
    pair: str
    timeframe: str
    ts: int
    notional: float
    y_fee_bps: float
    x_fee_bps: float
    round_trips: int
    wins: int
    hit_rate: float | None
    total_net_pnl: float
    mean_net_pnl: float | None
    total_fees: float
    total_funding: float
    equity: float
    max_drawdown: float
    sharpe: float | None
    bars: int
    position: Literal["flat", "long", "short"]
    open_since: int | None
    open_pnl: float

    @property
    def key(self) -> str:
        """Kafka key and stream key: ``Y/X|timeframe``."""
        return f"{self.pair}|{self.timeframe}"
