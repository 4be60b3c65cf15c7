"""A scanned pair's page computed on demand (``?view=on-demand&pair=A/B&timeframe=TF``).

A pair of the universe that is not watched has scan rows but no ``pairs`` records. Its page is
computed when opened, from the stored bars of its legs on the scan timeframe, with the
statistics core (:func:`dashboard.whatif.recompute`, the what-if machinery: the flow's own
incremental estimator, legs aligned by bar end as in :mod:`pairflow.pairs`), A regressed on B
over the scan's window. It is drawn by the pair page's own :class:`~dashboard.series.
SeriesView` and carries the what-if form, and says plainly that it is computed on demand and
not watched: no live statistics, no alerts.
"""

from __future__ import annotations

import html
import threading
from functools import partial
from typing import Any
from urllib.parse import urlencode

import panel as pn

from dashboard.cards import CSS, fmt_value, short_time
from dashboard.feed import Feed
from dashboard.series import SeriesView
from dashboard.universe import UNIVERSE_VIEW, page_link
from dashboard.whatif import recompute
from dashboard.whatif_panel import WhatIfPanel
from pairflow.pair_settings import PairSettings
from pairflow.records import PairStats, to_dict

#: The notice's look: it must not be missed.
NOTICE_CSS = """
.pf-on-demand { background: #fff4e5; border: 1px solid #e67e00; border-radius: 6px;
                padding: 8px 12px; font-size: 14px; }
"""
#: The statistics compared between the scan row and the page at the scan's ``as_of``.
COMPARED = (("zscore", "z"), ("beta", "β"), ("half_life", "half-life"), ("corr", "corr"))


def on_demand_rows(pair: str, timeframe: str, y_bars: list[dict[str, Any]],
                   x_bars: list[dict[str, Any]], settings: PairSettings
                   ) -> tuple[list[dict[str, Any]], float]:
    """The pair records the flow would have written for ``pair`` from these bars (pure).

    Returns:
        ``(rows, seconds)``: one ``PairStats`` row per end where both legs have a bar, oldest
        first, and the computation's wall time.
    """
    result = recompute(pair, timeframe, y_bars, x_bars, settings)
    rows = [to_dict(PairStats.of(stats, pair=pair, timeframe=timeframe, ts=int(end),
                                 window=settings.window, price=settings.price,
                                 lag=str(settings.lag), hedge=settings.estimator.hedge_label))
            for end, stats in zip(result.ts.tolist(), result.results, strict=True)]
    return rows, result.seconds


class OnDemandPairPage(pn.viewable.Viewer):
    """One browser session's page of a scanned pair, computed on demand.

    Args:
        feed: the process's feed (the scan row and the legs' bars are read from it).
        pair: the pair ``A/B`` asked for in the URL.
        timeframe: its scan timeframe.
    """

    def __init__(self, feed: Feed, pair: str | None, timeframe: str | None,
                 **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.pair = pair or ""
        self.timeframe = timeframe or ""
        self.series = SeriesView(feed.settings.history)
        self.whatif = WhatIfPanel(feed, self.series)
        self.notice = pn.pane.HTML("", sizing_mode="stretch_width",
                                   stylesheets=[CSS, NOTICE_CSS])
        self.status = pn.pane.Markdown("", sizing_mode="stretch_width",
                                       css_classes=["pf-on-demand-status"])
        self.message = pn.pane.Alert("", alert_type="warning", visible=False,
                                     sizing_mode="stretch_width", css_classes=["pf-message"])
        self.recompute_button = pn.widgets.Button(
            name="Recompute from the newest bars", width=240, css_classes=["pf-recompute"])
        self.recompute_button.on_click(lambda _: self.compute())
        self.scan = next((row for row in feed.scans(self.timeframe)
                          if row["pair"] == self.pair), None) if self.timeframe else None
        watched = (self.pair, self.timeframe) in set(feed.keys())
        self.notice.object = self._notice_html(watched)
        if self.scan is None:
            self.message.object = (f"No universe scan of pair “{html.escape(self.pair)}” on "
                                   f"timeframe “{html.escape(self.timeframe)}”: open a pair "
                                   f"from the [universe page](?view={UNIVERSE_VIEW}).")
            self.message.visible = True
            self.recompute_button.visible = False
            return
        self.settings = PairSettings(window=int(self.scan["window"]))
        self.compute()

    def _notice_html(self, watched: bool) -> str:
        link = html.escape(page_link(self.pair, self.timeframe, True))
        live = f" It is watched too: <a href='{link}'>its live page</a>." if watched else ""
        return (f"<div class='pf-on-demand' id='pf-on-demand'><b>Computed on demand, not "
                f"watched.</b> {html.escape(self.pair)} {html.escape(self.timeframe)} is a pair "
                f"of the universe scan without live statistics: this page recomputes it from "
                f"the stored bars of its legs with the statistics core (A regressed on B, the "
                f"scan's window, log prices, lag aic) when opened. No alerts are raised for "
                f"it.{live}</div>")

    def compute(self) -> None:
        """Recompute the page from the legs' newest bars, off the server's event loop."""
        limit = self.series.history + self.settings.window
        legs = self.pair.split("/")
        y_bars = self.feed.bars(legs[0], self.timeframe, limit=limit)
        x_bars = self.feed.bars(legs[1], self.timeframe, limit=limit)
        self.status.object = "Computing from the stored bars…"
        doc = pn.state.curdoc

        def work() -> None:
            try:
                result: Any = on_demand_rows(self.pair, self.timeframe, y_bars, x_bars,
                                             self.settings)
            except Exception as error:  # noqa: BLE001 - shown to the user
                result = error
            if doc is None:
                self._apply(result)
            else:
                doc.add_next_tick_callback(partial(self._apply, result))

        threading.Thread(target=work, name="on-demand", daemon=True).start()

    def _apply(self, result: tuple[list[dict[str, Any]], float] | Exception) -> None:
        if isinstance(result, Exception):
            self.status.object = f"**Cannot compute:** {html.escape(str(result))}"
            return
        rows, seconds = result
        self.series.show(self.pair, self.timeframe, rows, [], 2.0)
        self.whatif.start_at(rows)
        if not rows:
            self.status.object = "**No bar end where both legs have a bar** in the store."
            return
        self.status.object = (
            f"Computed **{len(rows)}** aligned bars up to {short_time(rows[-1]['ts'])} UTC in "
            f"**{seconds * 1000:.0f} ms** (window {self.settings.window}). "
            f"{self._scan_comparison(rows)}")

    def _scan_comparison(self, rows: list[dict[str, Any]]) -> str:
        """The latest scan's statistics beside this page's at the scan's ``as_of``."""
        scan = self.scan or {}
        at = next((row for row in rows if row["ts"] == scan.get("as_of")), None)
        if at is None:
            return "The latest scan's bar is not among these bars."
        pairs = ", ".join(f"{label} {fmt_value(scan.get(name), 6)} / "
                          f"{fmt_value(at.get(name), 6)}" for name, label in COMPARED)
        return (f"At the latest scan's bar ({short_time(at['ts'])} UTC), scan / on demand: "
                f"{pairs}.")

    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        universe = "?" + urlencode({"view": UNIVERSE_VIEW, "timeframe": self.timeframe})
        header = pn.Row(
            pn.pane.Markdown(f"## pairflow · {html.escape(self.pair)} "
                             f"{html.escape(self.timeframe)}",
                             margin=(0, 20, 0, 5)),
            pn.pane.HTML(f"<a href='{html.escape(universe)}' class='pf-nav'>← universe</a>",
                         margin=(22, 10, 0, 10)),
            pn.Column(pn.Spacer(height=6), self.recompute_button),
            sizing_mode="stretch_width")
        side = pn.Column(self.whatif, width=380)
        return pn.Column(header, self.notice, self.message, self.status, self.series.kpis,
                         pn.Row(self.series.chart_pane, side, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
