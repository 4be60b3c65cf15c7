"""The shown series' paper P&L from the feed's rows: the flow's ``PaperTrader``, replayed.

The stored ``pnl`` summary holds the equity only at entries and exits, so the per-bar curve
is :func:`pairflow.pnl.paper_trade` (the one implementation, which the flow drives too) over
the stored bars, quote bars and alerts. The round-trip table and the summary are the stored
``trades`` and ``pnl`` rows themselves.

The curve starts at the oldest kept bar, moved back to the entry of a round trip held across
it (the replay must see that entry), and is offset by the net P&L of the round trips closed
before: so it is the flow's equity, bar by bar, and ends at the summary's total when flat.
"""

from __future__ import annotations

import dataclasses
import html
from dataclasses import dataclass
from typing import Any

from dashboard.cards import fmt_value, short_time
from dashboard.feed import Feed
from pairflow.pnl import PaperTrade, PnlSettings, paper_trade
from pairflow.records import Alert, Bar, QuoteBar, from_dict

Rows = list[dict[str, Any]]
#: The market of a leg that names none: the dashboard does not know the run's ``market``.
BARE_MARKET = "spot"
#: Round trips listed in the table (newest first); all of them count in the summary.
TRADE_ROWS = 200


@dataclass(frozen=True)
class PnlInputs:
    """What a series is paper-traded over: the feed's rows, oldest first."""

    y_bars: Rows
    x_bars: Rows
    y_quotes: Rows
    x_quotes: Rows
    alerts: Rows


@dataclass(frozen=True)
class PnlData:
    """The shown series' paper P&L.

    Attributes:
        settings: notional, price transform, fees and funding legs of the run.
        trades: the stored round trips, in exit order.
        summary: the stored running summary (None before the first entry was stored).
        inputs: the rows the curve was replayed over.
        offset: net P&L of the stored round trips closed before the replay's first bar.
        curve: ``(bar end, equity)`` of every aligned bar of the replay.
    """

    settings: PnlSettings
    trades: Rows
    summary: dict[str, Any] | None
    inputs: PnlInputs
    offset: float
    curve: list[tuple[int, float]]


def settings_of(pair: str, price: str, trades: Rows, summary: dict[str, Any] | None
                ) -> PnlSettings:
    """The run's paper-trading settings, as its records carry them.

    The summary (from the first entry on) and the round trips carry the notional and both
    legs' fees; before any, each leg's default fee (a bare leg's market taken as
    :data:`BARE_MARKET`).
    """
    legs = PnlSettings.for_pair(pair, BARE_MARKET, price)  # type: ignore[arg-type]
    carried = summary or (trades[-1] if trades else None)
    if carried is None:
        return legs
    return dataclasses.replace(legs, notional=carried["notional"],
                               fee_bps=(carried["y_fee_bps"], carried["x_fee_bps"]),
                               price=trades[-1]["price"] if trades else legs.price)


def replay(pair: str, timeframe: str, settings: PnlSettings, inputs: PnlInputs,
           alerts: Rows | None = None) -> PaperTrade:
    """:func:`~pairflow.pnl.paper_trade` over the rows (``alerts``: others than the stored)."""
    return paper_trade(
        pair, timeframe, settings, [from_dict(Bar, r) for r in inputs.y_bars],
        [from_dict(Bar, r) for r in inputs.x_bars],
        [from_dict(Alert, r) for r in (inputs.alerts if alerts is None else alerts)],
        [from_dict(QuoteBar, r) for r in inputs.y_quotes],
        [from_dict(QuoteBar, r) for r in inputs.x_quotes])


def replay_start(first_end: int, trades: Rows, summary: dict[str, Any] | None) -> int:
    """The replay's first bar end: ``first_end``, or the entry of a position held across it."""
    held = [t["entry_ts"] for t in trades if t["exit_ts"] >= first_end]
    if summary and summary.get("open_since") is not None:
        held.append(summary["open_since"])
    return min([first_end, *held])


def load(feed: Feed, pair: str, timeframe: str, price: str, history: int) -> PnlData | None:
    """The series' paper P&L over its newest ``history`` bars (None: the source has none)."""
    trades = feed.trades(pair, timeframe)
    summary = feed.pnl(pair, timeframe)
    if not trades and summary is None:
        return None  # a run without P&L (or no entry yet)
    y, _, x = pair.partition("/")
    y_bars = feed.bars(y, timeframe, limit=history)
    start = replay_start(y_bars[0]["end"], trades, summary) if y_bars else 0
    since = (start, None)
    if y_bars and start < y_bars[0]["end"]:
        y_bars = feed.bars(y, timeframe, time_range=since)
    inputs = PnlInputs(y_bars, feed.bars(x, timeframe, time_range=since),
                       feed.quotes(y, timeframe, time_range=since),
                       feed.quotes(x, timeframe, time_range=since),
                       feed.alerts(pair, timeframe, time_range=since))
    settings = settings_of(pair, price, trades, summary)
    # Closed at or before the start: a round trip exited at the end where the next one entered.
    offset = sum(t["net_pnl"] for t in trades if t["exit_ts"] <= start)
    result = replay(pair, timeframe, settings, inputs)
    return PnlData(settings, trades, summary, inputs, offset,
                   [(end, offset + equity) for end, equity in result.curve])


# -- what the page shows (pure) ----------------------------------------------------------------

def money(value: float | None) -> str:
    """An amount of the quote currency, to the cent."""
    return "–" if value is None else f"{value:,.2f}"


def price(value: float) -> str:
    """A fill price: ten significant digits."""
    return f"{value:.10g}"


def trade_cells(row: dict[str, Any]) -> list[str]:
    """One round trip's table cells, in :data:`TRADE_HEADER` order."""
    return [short_time(row["entry_ts"]), short_time(row["exit_ts"]), row["side"],
            f"{price(row['y_entry'])} → {price(row['y_exit'])}",
            f"{price(row['x_entry'])} → {price(row['x_exit'])}",
            money(row["fees"]), money(row["funding"]), money(row["net_pnl"]), row["priced_at"]]


#: The round-trip table's columns.
TRADE_HEADER = ("entry", "exit", "side", "Y entry → exit", "X entry → exit", "fees", "funding",
                "net P&L", "priced at")


def trades_html(trades: Rows) -> str:
    """The round-trip table, newest first (at most :data:`TRADE_ROWS`)."""
    if not trades:
        return "<p class='pf-muted'>No round trip closed yet.</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in TRADE_HEADER)
    body = []
    for row in reversed(trades[-TRADE_ROWS:]):
        tone = "pf-win" if row["net_pnl"] > 0 else "pf-loss"
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in trade_cells(row))
        body.append(f"<tr class='{tone}'>{cells}</tr>")
    more = (f"<p class='pf-muted'>Newest {TRADE_ROWS} of {len(trades)} round trips.</p>"
            if len(trades) > TRADE_ROWS else "")
    return (f"<table class='pf' id='pf-trades'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{more}")


def summary_items(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The running summary's ``(label, value)`` pairs."""
    hit = summary["hit_rate"]
    return [
        ("round trips", str(summary["round_trips"])),
        ("hit rate", "–" if hit is None else f"{hit:.1%}"),
        ("total net P&L", money(summary["total_net_pnl"])),
        ("mean net P&L", money(summary["mean_net_pnl"])),
        ("max drawdown", money(summary["max_drawdown"])),
        ("Sharpe (per bar)", fmt_value(summary["sharpe"], 3)),
        ("fees", money(summary["total_fees"])),
        ("funding", money(summary["total_funding"])),
        ("position", summary["position"] + (f" since {short_time(summary['open_since'])}"
                                            if summary["open_since"] is not None else "")),
    ]


def summary_html(summary: dict[str, Any] | None, settings: PnlSettings) -> str:
    """The running summary as stored, and the settings it was traded with."""
    lead = (f"Notional {money(settings.notional)} (leg Y), taker fees "
            f"{settings.fee_bps[0]:g} / {settings.fee_bps[1]:g} bps (Y / X).")
    if summary is None:
        return f"<p>{lead}</p>"
    cells = "".join(f"<div class='pf-kpi'><div class='l'>{html.escape(label)}</div>"
                    f"<div class='v'>{html.escape(value)}</div></div>"
                    for label, value in summary_items(summary))
    return (f"<div class='pf-kpis' id='pf-pnl-summary'>{cells}</div><p class='pf-muted'>{lead} "
            f"As of {short_time(summary['ts'])}.</p>")


def figures_of(result: PaperTrade) -> dict[str, str]:
    """Round trips, hit rate, net P&L and max drawdown of a paper trade, as displayed."""
    trader = result.trader
    return {"round trips": str(trader.round_trips),
            "hit rate": f"{trader.wins / trader.round_trips:.1%}" if trader.round_trips else "–",
            "net P&L": money(trader.total_net),
            "max drawdown": money(trader.max_drawdown)}


def comparison_html(live: PaperTrade, whatif: PaperTrade) -> str:
    """The what-if thresholds' P&L figures beside the live settings' (same bars and quotes)."""
    live_figures, whatif_figures = figures_of(live), figures_of(whatif)
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td class='pf-live'>{live_figures[name]}"
                   f"</td><td class='pf-whatif'>{whatif_figures[name]}</td></tr>"
                   for name in live_figures)
    return ("<table class='pf' id='pf-whatif-pnl'><thead><tr><th>paper P&amp;L</th><th>live</th>"
            f"<th>what-if</th></tr></thead><tbody>{rows}</tbody></table>")
