"""Paper P&L of the alert rule: each alert traded at the book, with fees and funding.

A watched pair's position is marked to market on every bar (definitions: ``docs/pnl.md``).

One implementation for the flow and for an offline recompute: :class:`PaperTrader` is fed one
aligned bar end at a time (the legs' closes, their quote bars when there are any, the end's
alerts), in end order; :func:`paper_trade` drives the same object over stored sequences and
also returns the per-bar mark-to-market curve.

The rule, per end ``t``, in this order:

1. **Funding.** A perpetual leg whose last remembered funding time ``F`` (its quote bars'
   ``next_funding_ts``) satisfies ``F ≤ t`` pays ``q · mark · rate`` (``q`` signed: a long pays
   a positive rate) with the mark price and rate of the same quote bar, when the position was
   entered before ``F`` (entry end < F ≤ t); each funding time is paid once. A held perpetual
   leg whose quote bar at ``t`` has no funding data counts one ``funding_unknown_bars``.
2. **Alerts**, in their order (an exit before an entry of the same end). ``exit`` closes an open
   position; ``enter_upper`` opens a short spread (sell Y), ``enter_lower`` a long one (buy Y)
   when flat. An exit while flat or an entry while open is ignored (the alert rule never sends
   one).
3. **Funding data of ``t``** is remembered for the next ends.
4. **Mark to market**: the equity at ``t`` is the closed round trips' net P&L plus what the
   open position would net if closed at ``t`` (same prices and fees as an exit at ``t``).

Fills: at an end where both legs have a quote bar, sells at the bid and buys at the ask;
otherwise both legs at the bar closes. Quantities: ``|q_Y| = notional / p_Y`` at the entry
fill; X trades the other way when β > 0 (the same way when β < 0) with
``|q_X| = |β|·notional / p_X`` under ``log`` prices and ``|q_X| = |β|·|q_Y|`` under ``raw``.
Fees: ``fee_bps / 10⁴ · |q| · p`` per fill.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pairflow.costs import DEFAULT_FEE_BPS, MAX_FEE_BPS, leg_fee_bps
from pairflow.errors import ConfigError
from pairflow.pnl_records import PnlSummary, RoundTrip
from pairflow.records import Alert, Bar, QuoteBar, is_coinm, is_perpetual, split_symbol

#: Default traded notional of leg Y, in the quote currency.
DEFAULT_NOTIONAL = 10_000.0
_BPS = 10_000.0


def check_notional(notional: float) -> float:
    """The one check of the ``notional`` setting.

    Raises:
        ConfigError: not a finite number > 0.
    """
    if isinstance(notional, bool) or not (isinstance(notional, int | float)
                                          and math.isfinite(notional) and notional > 0):
        raise ConfigError(f"notional must be a finite amount > 0 of the quote currency, got "
                          f"{notional!r}")
    return float(notional)


@dataclass(frozen=True)
class PnlSettings:
    """How a pair is paper-traded.

    Args:
        notional: leg Y's traded notional at entry, quote currency.
        price: the pair's price transform (sets the X quantity rule).
        fee_bps: taker fee of legs Y and X, bps.
        perpetual: whether legs Y and X pay funding.
        coin_margined: whether legs Y and X are COIN-M contracts (their funding is on the
            position's USD face value, not on its value at the mark price).

    Raises:
        ConfigError: a notional or fee out of bounds.
    """

    notional: float = DEFAULT_NOTIONAL
    price: Literal["log", "raw"] = "log"
    fee_bps: tuple[float, float] = (DEFAULT_FEE_BPS["spot"], DEFAULT_FEE_BPS["spot"])
    perpetual: tuple[bool, bool] = (False, False)
    coin_margined: tuple[bool, bool] = (False, False)

    def __post_init__(self) -> None:
        check_notional(self.notional)
        if self.price not in ("log", "raw"):
            raise ConfigError(f"price must be log or raw, got {self.price!r}")
        if not all(0 <= fee <= MAX_FEE_BPS for fee in self.fee_bps):
            raise ConfigError(f"fees must be in [0, {MAX_FEE_BPS:g}] bps, got {self.fee_bps}")

    @classmethod
    def for_pair(cls, pair: str, run_market: str, price: Literal["log", "raw"],
                 notional: float = DEFAULT_NOTIONAL,
                 fee_bps: dict[str, float] | None = None) -> PnlSettings:
        """The settings of pair ``Y/X``: each leg's fee and funding from its market."""
        legs = pair.split("/")
        return cls(notional, price, tuple(leg_fee_bps(leg, run_market, fee_bps) for leg in legs),
                   tuple(is_perpetual(leg, run_market) for leg in legs),
                   tuple(is_coinm(split_symbol(leg)[1]) for leg in legs))


@dataclass
class _Position:
    side: int  # +1 long the spread (Y bought), −1 short
    entry_ts: int
    beta: float
    qty: tuple[float, float]
    entry: tuple[float, float]
    entry_fees: float
    quoted: bool
    funding: float = 0.0
    funding_unknown_bars: int = 0


@dataclass
class PaperTrader:
    """The paper P&L of the alert rule on one pair and timeframe (see the module docstring).

    Args:
        pair: ``Y/X``.
        timeframe: the bars' timeframe.
        settings: notional, price transform, fees and funding legs.
    """

    pair: str
    timeframe: str
    settings: PnlSettings
    position: _Position | None = None
    #: Per leg: the funding ``(time, rate, mark)`` last published, not yet passed.
    funding_due: list[tuple[int, float, float] | None] = field(
        default_factory=lambda: [None, None])
    round_trips: int = 0
    wins: int = 0
    total_net: float = 0.0
    total_fees: float = 0.0
    total_funding: float = 0.0
    #: The mark-to-market curve so far: its last value, peak, largest drawdown, and the
    #: count, mean and sum of squared deviations (Welford) of its per-bar changes.
    equity: float = 0.0
    peak: float = 0.0
    max_drawdown: float = 0.0
    bars: int = 0
    mean_change: float = 0.0
    change_m2: float = 0.0
    last_ts: int | None = None

    def update(self, ts: int, y_close: float, x_close: float, y_quote: QuoteBar | None,
               x_quote: QuoteBar | None, alerts: Iterable[Alert]) -> list[RoundTrip | PnlSummary]:
        """Book aligned bar end ``ts`` (ends in increasing order); return its records.

        Args:
            ts: the bar end.
            y_close: leg Y's bar close at ``ts``.
            x_close: leg X's bar close at ``ts``.
            y_quote: leg Y's quote bar ending at ``ts`` (None: none).
            x_quote: leg X's quote bar ending at ``ts`` (None: none).
            alerts: the pair's alerts of ``ts`` (an exit is booked before an entry).

        Returns:
            The round trip closed at ``ts``, if any, and the summary when the position changed.
        """
        if self.last_ts is not None and ts <= self.last_ts:
            raise ValueError(f"bar end {ts} is not after the last one booked, {self.last_ts}")
        self.last_ts = ts
        quotes = (y_quote, x_quote) if y_quote is not None and x_quote is not None else None
        closes = (y_close, x_close)
        self._fund(ts, (y_quote, x_quote))
        out: list[RoundTrip | PnlSummary] = []
        changed = False
        for alert in sorted(alerts, key=lambda a: a.alert_kind != "exit"):
            if alert.alert_kind == "exit" and self.position is not None:
                out.append(self._close(ts, closes, quotes))
                changed = True
            elif alert.alert_kind != "exit" and self.position is None:
                self._open(ts, -1 if alert.alert_kind == "enter_upper" else 1, alert.beta,
                           closes, quotes)
                changed = True
        self._remember_funding(ts, (y_quote, x_quote))
        self._mark(self.total_net + self.open_pnl(closes, quotes))
        if changed:
            out.append(self.summary(closes, quotes))
        return out

    # ------------------------------------------------------------------------------- fills

    def _fills(self, sides: tuple[int, int], closes: tuple[float, float],
               quotes: tuple[QuoteBar, QuoteBar] | None) -> tuple[float, float]:
        """Each leg's fill price for a buy (+1) or sell (−1): ask / bid, else the close."""
        if quotes is None:
            return closes
        return tuple(q.ask if side > 0 else q.bid
                     for side, q in zip(sides, quotes, strict=True))  # type: ignore[return-value]

    def _fees(self, qty: tuple[float, float], prices: tuple[float, float]) -> float:
        return sum(fee / _BPS * abs(q) * p
                   for fee, q, p in zip(self.settings.fee_bps, qty, prices, strict=True))

    def _open(self, ts: int, side: int, beta: float, closes: tuple[float, float],
              quotes: tuple[QuoteBar, QuoteBar] | None) -> None:
        x_side = -side * (1 if beta > 0 else -1 if beta < 0 else 0)
        y_price, x_price = self._fills((side, x_side), closes, quotes)
        notional = self.settings.notional
        y_qty = notional / y_price
        x_qty = (abs(beta) * notional / x_price if self.settings.price == "log"
                 else abs(beta) * y_qty)
        qty = (side * y_qty, x_side * x_qty)
        self.position = _Position(side, ts, beta, qty, (y_price, x_price),
                                  self._fees(qty, (y_price, x_price)), quotes is not None)

    def _exit_value(self, closes: tuple[float, float],
                    quotes: tuple[QuoteBar, QuoteBar] | None
                    ) -> tuple[tuple[float, float], float, float]:
        """(exit prices, gross P&L, exit fees) of closing the open position now."""
        held = self.position
        assert held is not None
        prices = self._fills(tuple(-1 if q > 0 else 1 for q in held.qty), closes, quotes)
        gross = sum(q * (p - e) for q, p, e in zip(held.qty, prices, held.entry, strict=True))
        return prices, gross, self._fees(held.qty, prices)

    def open_pnl(self, closes: tuple[float, float],
                 quotes: tuple[QuoteBar, QuoteBar] | None) -> float:
        """What the open position would net if closed at these prices (0 when flat)."""
        held = self.position
        if held is None:
            return 0.0
        _, gross, exit_fees = self._exit_value(closes, quotes)
        return gross - (held.entry_fees + exit_fees) + held.funding

    def _close(self, ts: int, closes: tuple[float, float],
               quotes: tuple[QuoteBar, QuoteBar] | None) -> RoundTrip:
        held = self.position
        assert held is not None
        prices, gross, exit_fees = self._exit_value(closes, quotes)
        fees = held.entry_fees + exit_fees
        net = gross - fees + held.funding
        self.position = None
        self.round_trips += 1
        self.wins += net > 0
        self.total_net += net
        self.total_fees += fees
        self.total_funding += held.funding
        return RoundTrip(
            trade_id=f"{self.pair}|{self.timeframe}|{held.entry_ts}", pair=self.pair,
            timeframe=self.timeframe, side="long" if held.side > 0 else "short",
            entry_ts=held.entry_ts, exit_ts=ts, beta=held.beta, price=self.settings.price,
            notional=self.settings.notional,
            priced_at="quotes" if held.quoted and quotes is not None else "close",
            y_qty=held.qty[0], x_qty=held.qty[1], y_entry=held.entry[0], x_entry=held.entry[1],
            y_exit=prices[0], x_exit=prices[1], y_fee_bps=self.settings.fee_bps[0],
            x_fee_bps=self.settings.fee_bps[1], fees=fees, funding=held.funding,
            funding_unknown_bars=held.funding_unknown_bars, gross_pnl=gross, net_pnl=net)

    # ----------------------------------------------------------------------------- funding

    def _fund(self, ts: int, quotes: tuple[QuoteBar | None, QuoteBar | None]) -> None:
        held = self.position
        for leg, perpetual in enumerate(self.settings.perpetual):
            if not perpetual:
                continue
            due = self.funding_due[leg]
            if due is not None and due[0] <= ts:
                # Held from an end before F: an F at or before the entry end was passed (and
                # forgotten) when that end was booked, before the entry.
                _, rate, mark = due
                if held is not None:
                    # COIN-M funding is on the contracts' USD face value (contracts × size),
                    # which is the coins held × their entry price; USDⓈ-M on the value at mark.
                    price = held.entry[leg] if self.settings.coin_margined[leg] else mark
                    held.funding -= held.qty[leg] * price * rate
                self.funding_due[leg] = None
            quote = quotes[leg]
            if held is not None and (quote is None or quote.funding_rate is None
                                     or quote.next_funding_ts is None
                                     or quote.mark_price is None):
                held.funding_unknown_bars += 1

    def _remember_funding(self, ts: int, quotes: tuple[QuoteBar | None, QuoteBar | None]
                          ) -> None:
        for leg, perpetual in enumerate(self.settings.perpetual):
            quote = quotes[leg]
            if (perpetual and quote is not None and quote.funding_rate is not None
                    and quote.next_funding_ts is not None and quote.mark_price is not None):
                # A funding time at or before this end is past: its payment was due with the
                # values published before it, which the previous ends carried.
                if quote.next_funding_ts > ts:
                    self.funding_due[leg] = (quote.next_funding_ts, quote.funding_rate,
                                             quote.mark_price)

    # ------------------------------------------------------------------------------ curve

    def _mark(self, equity: float) -> None:
        change = equity - self.equity
        self.bars += 1
        delta = change - self.mean_change
        self.mean_change += delta / self.bars
        self.change_m2 += delta * (change - self.mean_change)
        self.equity = equity
        self.peak = max(self.peak, equity)
        self.max_drawdown = max(self.max_drawdown, self.peak - equity)

    @property
    def sharpe(self) -> float | None:
        """Mean over sample standard deviation (ddof 1) of the per-bar equity changes."""
        if self.bars < 2 or self.change_m2 <= 0:
            return None
        return self.mean_change / math.sqrt(self.change_m2 / (self.bars - 1))

    def summary(self, closes: tuple[float, float],
                quotes: tuple[QuoteBar, QuoteBar] | None) -> PnlSummary:
        """The running summary as of the last booked end (its closes and quote bars given)."""
        held = self.position
        assert self.last_ts is not None
        return PnlSummary(
            pair=self.pair, timeframe=self.timeframe, ts=self.last_ts,
            notional=self.settings.notional, y_fee_bps=self.settings.fee_bps[0],
            x_fee_bps=self.settings.fee_bps[1], round_trips=self.round_trips, wins=self.wins,
            hit_rate=self.wins / self.round_trips if self.round_trips else None,
            total_net_pnl=self.total_net,
            mean_net_pnl=self.total_net / self.round_trips if self.round_trips else None,
            total_fees=self.total_fees, total_funding=self.total_funding, equity=self.equity,
            max_drawdown=self.max_drawdown, sharpe=self.sharpe, bars=self.bars,
            position="flat" if held is None else "long" if held.side > 0 else "short",
            open_since=None if held is None else held.entry_ts,
            open_pnl=self.open_pnl(closes, quotes))


@dataclass(frozen=True)
class PaperTrade:
    """What :func:`paper_trade` returns.

    Attributes:
        trades: the closed round trips, in exit order.
        summaries: the running summaries, as the flow emits them (last: the final state).
        curve: ``(bar end, equity)`` of every booked end: the mark-to-market P&L curve.
        trader: the trader after the last end (its open position, totals, ``sharpe``).
    """

    trades: list[RoundTrip]
    summaries: list[PnlSummary]
    curve: list[tuple[int, float]]
    trader: PaperTrader


def paper_trade(pair: str, timeframe: str, settings: PnlSettings, y_bars: Sequence[Bar],
                x_bars: Sequence[Bar], alerts: Iterable[Alert],
                y_quotes: Iterable[QuoteBar] = (), x_quotes: Iterable[QuoteBar] = ()
                ) -> PaperTrade:
    """The paper P&L of ``alerts`` over stored bars: the flow's :class:`PaperTrader`, offline.

    Books every end at which both legs have a bar, in end order, with that end's quote bars
    (when both legs have one) and alerts. The dashboard's what-if passes the alerts of other
    thresholds (from :class:`~pairflow.alerts.AlertState` over the same statistics).
    """
    trader = PaperTrader(pair, timeframe, settings)
    x_close = {bar.end: bar.close for bar in x_bars}
    quotes = [{q.end: q for q in leg} for leg in (y_quotes, x_quotes)]
    by_end: dict[int, list[Alert]] = {}
    for alert in alerts:
        by_end.setdefault(alert.ts, []).append(alert)
    trades, summaries, curve = [], [], []
    for bar in sorted(y_bars, key=lambda b: b.end):
        if bar.end not in x_close:
            continue
        records = trader.update(bar.end, bar.close, x_close[bar.end], quotes[0].get(bar.end),
                                quotes[1].get(bar.end), by_end.get(bar.end, ()))
        for record in records:
            (trades if isinstance(record, RoundTrip) else summaries).append(record)
        curve.append((bar.end, trader.equity))
    return PaperTrade(trades, summaries, curve, trader)
