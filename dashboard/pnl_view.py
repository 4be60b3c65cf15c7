"""The paper P&L of the alert rule on the pair page, for a pair whose run paper-trades.

:class:`PnlView` keeps the P&L chart's sources (the mark-to-market curve, its round-trip
marks, the what-if curve) and the card with the stored summary and round-trip table
(:mod:`dashboard.paper_pnl` computes them). Chart and card show only while the series has
P&L records, so a run with ``--no-pnl`` keeps the page it always had.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource

from dashboard import charts
from dashboard.cards import CSS
from dashboard.paper_pnl import PnlData, summary_html, trades_html
from pairflow.pnl import PaperTrade

#: The curve sources' columns: bar end (ms for the axis, µs) and equity.
CURVE_COLUMNS = ("t", "ts", "equity")
#: The round-trip marks' columns: one row per entry and per exit on the curve.
MARK_COLUMNS = ("t", "ts", "equity", "what", "net_pnl", "color", "marker")
WIN, LOSS, OPEN = "#2ca02c", "#d62728", "#1f77b4"


def curve_columns(curve: list[tuple[int, float]]) -> dict[str, np.ndarray]:
    """Chart columns of a ``(bar end, equity)`` curve (pure)."""
    ts = np.array([end for end, _ in curve], dtype="int64")
    return {"t": ts / 1000.0, "ts": ts, "equity": np.array([e for _, e in curve], dtype=float)}


def mark_columns(data: PnlData) -> dict[str, list[Any]]:
    """Entry and exit marks of the stored round trips (and the open position) on the curve."""
    equity = dict(data.curve)
    out: dict[str, list[Any]] = {c: [] for c in MARK_COLUMNS}

    def add(ts: int, what: str, net: float | None, color: str, marker: str) -> None:
        if ts in equity:
            for column, value in zip(MARK_COLUMNS, (ts / 1000.0, ts, equity[ts], what, net,
                                                    color, marker), strict=True):
                out[column].append(value)

    for trade in data.trades:
        color = WIN if trade["net_pnl"] > 0 else LOSS
        add(trade["entry_ts"], f"enter {trade['side']}", trade["net_pnl"], color, "triangle")
        add(trade["exit_ts"], f"exit {trade['side']}", trade["net_pnl"], color, "circle")
    summary = data.summary
    if summary and summary["open_since"] is not None:
        add(summary["open_since"], f"enter {summary['position']} (open)", None, OPEN,
            "triangle")
    order = np.argsort(out["ts"], kind="stable")
    return {c: [v[i] for i in order] for c, v in out.items()}


class PnlView:
    """The shown series' paper P&L: chart sources and the summary and round-trip card.

    Attributes:
        sources: ``pnl`` (the curve), ``pnl_marks`` (round trips), ``pnl_whatif``.
        data: what is shown (None: the series has no P&L records).
        card: the summary and round-trip table.
    """

    def __init__(self) -> None:
        self.sources = {
            "pnl": ColumnDataSource(charts.empty(CURVE_COLUMNS), name="pnl_source"),
            "pnl_marks": ColumnDataSource(charts.empty(MARK_COLUMNS), name="pnl_marks_source"),
            "pnl_whatif": ColumnDataSource(charts.empty(CURVE_COLUMNS),
                                           name="pnl_whatif_source"),
        }
        self.data: PnlData | None = None
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[CSS])
        self.table = pn.pane.HTML("", sizing_mode="stretch_width", max_height=360,
                                  styles={"overflow-y": "auto"}, stylesheets=[CSS])
        self.card = pn.Card(self.summary, self.table, title="Paper P&L of the alert rule",
                            collapsible=False, visible=False, sizing_mode="stretch_width",
                            css_classes=["pf-pnl"])
        self._figs: dict[str, Any] = {}

    def attach(self, figs: dict[str, Any]) -> None:
        """Draw into ``figs`` (the page's figures, built around the first pair data)."""
        self._figs = figs
        self._show_present()

    def show(self, data: PnlData | None) -> None:
        """Draw a (re)loaded series' P&L (None: it has none); forget the what-if curve."""
        self.data = data
        self.sources["pnl"].data = curve_columns(data.curve if data else [])
        self.sources["pnl_whatif"].data = charts.empty(CURVE_COLUMNS)
        self._show_records()

    def update(self, data: PnlData | None) -> None:
        """Follow new records: append the curve's new bars, patch those that changed.

        A bar already drawn changes when its quote bars or alerts came after it was drawn.
        """
        if data is None or self.data is None or not data.curve:
            self.show(data)
            return
        source = self.sources["pnl"]
        drawn = np.asarray(source.data["ts"], dtype="int64")
        new = curve_columns(data.curve)
        n = len(drawn)
        if n > len(new["ts"]) or not np.array_equal(drawn, new["ts"][:n]):
            self.show(data)  # another start (a round trip now held across the oldest bar)
            return
        self.data = data
        old = np.asarray(source.data["equity"], dtype=float)
        changed = np.flatnonzero(old != new["equity"][:n])
        if len(changed):
            source.patch({"equity": [(int(i), float(new["equity"][i])) for i in changed]})
        if len(new["ts"]) > n:
            source.stream({c: v[n:] for c, v in new.items()})
        self._show_records()

    def show_whatif(self, whatif: PaperTrade | None) -> None:
        """Draw the what-if thresholds' curve (offset like the live one), or none."""
        if whatif is None or self.data is None:
            self.sources["pnl_whatif"].data = charts.empty(CURVE_COLUMNS)
            return
        self.sources["pnl_whatif"].data = curve_columns(
            [(end, self.data.offset + equity) for end, equity in whatif.curve])
        if self._figs:
            for item in self._figs["pnl"].legend[0].items:
                if self._figs["pnl_whatif_renderer"] in item.renderers:
                    item.visible = True

    def _show_records(self) -> None:
        data = self.data
        self.sources["pnl_marks"].data = (mark_columns(data) if data
                                          else charts.empty(MARK_COLUMNS))
        if data is not None:
            self.summary.object = summary_html(data.summary, data.settings)
            self.table.object = trades_html(data.trades)
        self._show_present()

    def _show_present(self) -> None:
        shown = self.data is not None
        self.card.visible = shown
        if self._figs:
            self._figs["pnl"].visible = shown
            whatif = len(self.sources["pnl_whatif"].data["ts"]) > 0
            for item in self._figs["pnl"].legend[0].items:
                if self._figs["pnl_whatif_renderer"] in item.renderers:
                    item.visible = whatif
