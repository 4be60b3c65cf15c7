"""Top-of-book records: the quote bar of a symbol and the executable spread of a pair.

Defined here to keep :mod:`pairflow.records` (which re-exports them) short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pairflow.slots import init_through_slots


@init_through_slots
@dataclass(frozen=True, slots=True)
class QuoteBar:
    """Top of the book of one symbol over the bar ``[start, end)`` (see :mod:`pairflow.quotes`).

    Prices in the quote currency; sizes in the exchange's quantity unit (coins on spot and
    USDⓈ-M, contracts on COIN-M). ``bid``…``microprice`` describe the book at the close (the
    last quote before ``end``); ``mean_*`` are time-weighted over the window; ``quotes`` counts
    the quotes timed in the window (0: the book carried in from before).

    Perpetual legs also carry, from the exchange's ``@markPrice`` stream, the mark price, the
    funding rate and the next funding time (µs) last published before ``end``; null where no
    mark price came (spot, delivery contracts, recordings without the stream).
    """

    kind: ClassVar[str] = "quote"
    symbol: str
    timeframe: str
    start: int
    end: int
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    spread_bps: float
    mean_spread_bps: float
    max_spread_bps: float
    imbalance: float
    mean_imbalance: float
    microprice: float
    quotes: int
    mark_price: float | None
    funding_rate: float | None
    next_funding_ts: int | None

    @property
    def key(self) -> str:
        """Kafka key and stream key: ``SYMBOL|timeframe``."""
        return f"{self.symbol}|{self.timeframe}"


@init_through_slots
@dataclass(frozen=True, slots=True)
class SpreadCost:
    """The executable spread of a watched pair at a bar's close (see :mod:`pairflow.costs`).

    ``short_at``/``long_at``: the spread value at which it can be sold/bought at the quotes;
    ``crossing`` (``long_at − short_at`` in exact arithmetic) and ``fees``: the round trip's
    book-crossing and taker-fee costs in spread units; ``round_trip_bps``: their sum in bps of
    the position's gross notional; ``round_trip_z``: in units of the spread's σ (null without σ).
    """

    kind: ClassVar[str] = "cost"
    pair: str
    timeframe: str
    ts: int
    beta: float
    y_bid: float
    y_ask: float
    x_bid: float
    x_ask: float
    short_at: float
    long_at: float
    crossing: float
    fees: float
    round_trip_bps: float
    round_trip_z: float | None

    @property
    def key(self) -> str:
        """Kafka key and stream key: ``Y/X|timeframe``."""
        return f"{self.pair}|{self.timeframe}"
