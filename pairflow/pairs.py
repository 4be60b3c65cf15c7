"""Per-pair state: align the two legs' bars by bar end, update the statistics, fire alerts.

Each leg's bars arrive in end order (one bar step per symbol emits them in order) but the two
legs arrive independently. Bars are buffered per end until both legs have one, or until the
other leg has moved past that end without one — then the end is a feed gap of that leg (or the
leg has not started yet) and the pair emits a record without statistics and with a reason.
Statistics use only aligned bars, in end order, so results do not depend on how the legs'
bars interleave (the same on one worker or many).

With quotes, each leg's :class:`QuoteBar` s come too (their own watermark: before or after the
bar of the same end); the executable spread of an end (:func:`pairflow.costs.spread_cost`) is
emitted once both legs' quote bars and the statistics with a hedge ratio for it are in.

Entries may wait for what their gate needs (:meth:`PairState._settle`, one queue in end
order): the end's cost (net-of-cost alerts) and, for a pair of the scanned universe gated by
``max_pvalue``, the pair's universe :class:`ScanRecord` in force at the end (the latest scan
time at or before it), routed here by the flow; its ``eg_qvalue`` gates the entry in place of
the pair's own p-value. Scan records and bars may arrive in any interleaving: the alerts are
the same.

With paper P&L on, each aligned end goes to the pair's :class:`~pairflow.pnl.PaperTrader`, in
end order, once its alerts are decided and (with quotes) both legs' quote bars of that end are
in or can no longer come (that leg already sent a later one): then the end is filled at the
closes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pairflow.alerts import AlertState
from pairflow.analytics import EstimatorSettings, PairEstimator, PairResult
from pairflow.costs import leg_fee_bps, spread_cost
from pairflow.pnl import PaperTrader, PnlSettings
from pairflow.records import (
    Alert,
    Bar,
    PairStats,
    PnlSummary,
    QuoteBar,
    RoundTrip,
    ScanRecord,
    SpreadCost,
)

#: Ends buffered for one leg while the other has sent nothing at all; beyond this the oldest
#: are released as "leg not started" so a dead leg cannot grow memory without bound. The same
#: bound holds the ends whose alert decision waits (for a cost or a scan), the costs and
#: the scans not yet used.
MAX_PENDING = 10_000


@dataclass
class PairState:
    """Alignment, estimator and alert state of one pair on one timeframe.

    Args:
        pair: ``Y/X``.
        timeframe: the bars' timeframe.
        settings: estimator settings (window, price transform, lag policy).
        alerts: the alert state machine.
        market: the run's market (the fee of a leg without a named market).
        quotes: whether quote bars come (then each end's statistics wait for them).
        fee_bps: taker fee per market, bps (None: the defaults).
        pnl: paper-trade the alerts with these settings (None: no P&L).
        scan_every_us: gate entries on the pair's universe q-value, from the scan records
            given to :meth:`scanned`; scan times are the multiples of this (µs). None: the
            pair's own Engle-Granger p-value gates them (when ``alerts.max_pvalue`` is set).
    """

    pair: str
    timeframe: str
    settings: EstimatorSettings
    alerts: AlertState
    market: str = "spot"
    quotes: bool = False
    fee_bps: dict[str, float] | None = None
    pnl: PnlSettings | None = None
    scan_every_us: int | None = None
    estimator: PairEstimator = field(init=False)
    pending: dict[int, list[Bar | None]] = field(default_factory=dict)
    latest_end: list[int | None] = field(default_factory=lambda: [None, None])
    first_end: list[int | None] = field(default_factory=lambda: [None, None])
    #: Per end: the legs' quote bars and the (β, σ) of the statistics, until all are in.
    quoted: dict[int, list] = field(default_factory=dict)
    #: Statistics whose alert decision waits for its gate's inputs, in end order; the costs
    #: not yet weighed (net of cost) and the latest end costed; the pair's universe q-value
    #: per scan time not yet passed (q-value gate) and the latest scan time seen.
    waiting: list[PairStats] = field(default_factory=list)
    costed: dict[int, SpreadCost] = field(default_factory=dict)
    last_costed: int | None = None
    qvalues: dict[int, float | None] = field(default_factory=dict)
    last_scan: int | None = None
    #: Paper P&L: per aligned end, the legs' closes and (once decided) its alerts, in end
    #: order; the legs' quote bars by end and each leg's latest quote bar end.
    ledger: dict[int, list] = field(default_factory=dict)
    books: dict[int, list[QuoteBar | None]] = field(default_factory=dict)
    latest_book: list[int | None] = field(default_factory=lambda: [None, None])

    def __post_init__(self) -> None:
        self.estimator = PairEstimator(self.settings)
        self.legs = tuple(self.pair.split("/"))
        self.fees = tuple(leg_fee_bps(leg, self.market, self.fee_bps) for leg in self.legs)
        self.trader = (PaperTrader(self.pair, self.timeframe, self.pnl)
                       if self.pnl is not None else None)

    def update(self, leg: int, bar: Bar | QuoteBar) -> list[PairStats | Alert | SpreadCost
                                                            | RoundTrip | PnlSummary]:
        """Take the next bar or quote bar of leg 0 (Y) or 1 (X); return the records completed."""
        if isinstance(bar, QuoteBar):
            costs = self._quoted(bar.end, leg, bar)
            out = [*costs, *self._settle(costs)] if self.alerts.net_of_cost else costs
            if self.trader is None:
                return out
            self.books.setdefault(bar.end, [None, None])[leg] = bar
            self.latest_book[leg] = bar.end
            if len(self.books) > MAX_PENDING:
                del self.books[min(self.books)]
            return [*out, *self._book()]
        slot = self.pending.setdefault(bar.end, [None, None])
        slot[leg] = bar
        self.latest_end[leg] = bar.end
        if self.first_end[leg] is None:
            self.first_end[leg] = bar.end
        out: list[PairStats | Alert] = []
        while self.pending:
            end = min(self.pending)
            y_bar, x_bar = self.pending[end]
            if y_bar is not None and x_bar is not None:
                out.extend(self._aligned(end, y_bar, x_bar))
            elif self._leg_passed(0 if y_bar is None else 1, end):
                out.append(self._unaligned(end, y_bar, x_bar))
            else:
                break
            del self.pending[end]
        return out

    def _leg_passed(self, missing: int, end: int) -> bool:
        """Whether the missing leg can no longer send a bar ending at ``end``."""
        latest = self.latest_end[missing]
        if latest is None:
            return len(self.pending) > MAX_PENDING
        return latest > end

    def _aligned(self, end: int, y_bar: Bar, x_bar: Bar) -> list:
        self.estimator.update(y_bar.close, x_bar.close)
        stats = self._record(end, self.estimator.result())
        if self.trader is not None:
            self.ledger[end] = [y_bar.close, x_bar.close, None]
        costs = (self._quoted(end, 2, (stats.beta, stats.spread_std))
                 if self.quotes and stats.beta is not None else [])
        if self.alerts.net_of_cost or self.scan_every_us is not None:
            self.waiting.append(stats)
            return [stats, *costs, *self._settle(costs), *self._book()]
        alerts = self.alerts.update(self.pair, self.timeframe, end, stats.zscore, stats.spread,
                                    stats.beta, pvalue=stats.eg_pvalue)
        self._decided(end, alerts)
        return [stats, *alerts, *costs, *self._book()]

    def _decided(self, end: int, alerts: list[Alert]) -> None:
        """Note the alerts of aligned end ``end`` for the paper P&L."""
        if self.trader is not None:
            self.ledger[end][2] = alerts

    def _book(self) -> list[RoundTrip | PnlSummary]:
        """Paper-trade the ledger's ends whose alerts and quote bars are settled, in order."""
        out: list[RoundTrip | PnlSummary] = []
        while self.ledger:
            end = next(iter(self.ledger))
            y_close, x_close, alerts = self.ledger[end]
            books = self.books.get(end, [None, None])
            settled = not self.quotes or len(self.ledger) > MAX_PENDING or all(
                book is not None or (latest is not None and latest > end)
                for book, latest in zip(books, self.latest_book, strict=True))
            if alerts is None or not settled:
                break
            del self.ledger[end]
            for done in [e for e in self.books if e <= end]:
                del self.books[done]
            out.extend(self.trader.update(end, y_close, x_close, *books, alerts))
        return out

    def scanned(self, record: ScanRecord) -> list[Alert | RoundTrip | PnlSummary]:
        """Take the universe scan record of this pair (named ``Y/X`` or ``X/Y``) at a scan time.

        Scan records come in scan-time order; each one's ``eg_qvalue`` gates the entries of
        the ends up to the next scan time (``scan_every_us`` set). Returns the records the
        ends waiting for it complete.
        """
        self.qvalues[record.ts] = record.eg_qvalue
        self.last_scan = record.ts
        if len(self.qvalues) > MAX_PENDING:
            del self.qvalues[min(self.qvalues)]
        return [*self._settle([]), *self._book()]

    def _settle(self, costs: list[SpreadCost]) -> list[Alert]:
        """Alerts of the waiting statistics, in end order, once each end's gate has its inputs.

        An end waits for its cost (net of cost) and for the scan in force at it, the latest
        scan time at or before the end (q-value gate). An input that can no longer come is
        done without, and the end fires no entry: a cost once a later end was costed (its
        quote bars are missing), a scan once a later one came (the end is before the first
        scan), either once more than ``MAX_PENDING`` ends wait.
        """
        for cost in costs:
            self.costed[cost.ts] = cost
            self.last_costed = cost.ts
        out: list[Alert] = []
        while self.waiting:
            stats = self.waiting[0]
            cost = self.costed.get(stats.ts)
            scan_ts = (None if self.scan_every_us is None
                       else stats.ts - stats.ts % self.scan_every_us)
            cost_due = (self.alerts.net_of_cost and cost is None and stats.beta is not None
                        and not (self.last_costed is not None and self.last_costed > stats.ts))
            scan_due = (scan_ts is not None and scan_ts not in self.qvalues
                        and not (self.last_scan is not None and self.last_scan > scan_ts))
            if (cost_due or scan_due) and len(self.waiting) <= MAX_PENDING:
                break
            del self.waiting[0]
            self.costed.pop(stats.ts, None)
            pvalue = qvalue = None
            if scan_ts is None:
                pvalue = stats.eg_pvalue
            else:  # the universe gates the entry: no scan (yet) is no q-value, no entry
                qvalue = self.qvalues.get(scan_ts)
                for passed in [t for t in self.qvalues if t < scan_ts]:
                    del self.qvalues[passed]
            alerts = self.alerts.update(
                self.pair, self.timeframe, stats.ts, stats.zscore, stats.spread, stats.beta,
                pvalue=pvalue, qvalue=qvalue, sigma=stats.spread_std, cost=cost)
            self._decided(stats.ts, alerts)
            out.extend(alerts)
        return out

    def _quoted(self, end: int, part: int, value: QuoteBar | tuple) -> list[SpreadCost]:
        """Hold a leg's quote bar (part 0, 1) or the statistics (2) of ``end``.

        Returns the cost when all three are in. Each part arrives in end order, so ends at or
        before a costed one are forgotten; at most ``MAX_PENDING`` ends wait.
        """
        slot = self.quoted.setdefault(end, [None, None, None])
        slot[part] = value
        if None in slot:
            if len(self.quoted) > MAX_PENDING:
                del self.quoted[min(self.quoted)]
            return []
        y, x, (beta, spread_std) = slot
        for done in [e for e in self.quoted if e <= end]:
            del self.quoted[done]
        return [spread_cost(self.pair, self.timeframe, end, self.settings.price, beta,
                            spread_std, y, x, *self.fees)]

    def _unaligned(self, end: int, y_bar: Bar | None, x_bar: Bar | None) -> PairStats:
        missing = 0 if y_bar is None else 1
        first = self.first_end[missing]
        started = first is not None and first < end
        reason = (f"no {self.legs[missing]} bar: feed gap" if started
                  else f"{self.legs[missing]} has not started")
        present = y_bar or x_bar
        value = math.log(present.close) if self.settings.price == "log" else present.close
        y, x = (None, value) if missing == 0 else (value, None)
        return self._record(end, PairResult(y=y, x=x, n=self.estimator.n, reason=reason))

    def _record(self, end: int, result: PairResult) -> PairStats:
        return PairStats.of(result, pair=self.pair, timeframe=self.timeframe, ts=end,
                            window=self.settings.window, price=self.settings.price,
                            lag=str(self.settings.lag), hedge=self.settings.hedge_label)

