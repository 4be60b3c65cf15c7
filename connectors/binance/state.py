"""What the live client knows of one symbol: its sequence, its health and its catch-up state."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.binance.health import StreamHealth
from connectors.binance.sequencer import TradeSequencer


@dataclass
class SymbolState:
    """Per-symbol state of the live client (its loop thread only)."""

    sequence: TradeSequencer
    health: StreamHealth
    hole_since: float | None = None
    caught_up: bool = True
    backfilling: bool = False
    backfill_due: bool = False
    verified_until: int = -1  # exchange time up to which REST confirmed no newer trade
    last_hb: int = -1
    last_msg: float | None = None  # monotonic time of the stream's last trade frame
    interarrival_s: float | None = None  # EWMA
    next_probe: float = 0.0
    probing: bool = False
    quote_health: StreamHealth | None = None  # the @bookTicker stream's, with quotes
    last_quote_ts: int | None = None  # largest quote time taken, µs
    last_quote_msg: float | None = None  # monotonic time of the last quote frame
    #: Quote time of the last quote before an outage of the connection; the next quote taken
    #: ends the span in which the book is unknown (a QuoteGap).
    quote_outage_from: int | None = None

    @property
    def symbol(self) -> str:
        """The symbol (upper case)."""
        return self.sequence.symbol

    @property
    def stream(self) -> str:
        """The stream name, e.g. ``btcusdt@trade``."""
        return self.health.stream

    @property
    def quiet_and_complete(self) -> bool:
        """Nothing held, fetched or due: the symbol is complete up to its last trade."""
        return (self.caught_up and not self.sequence.pending and not self.backfilling
                and not self.backfill_due)
