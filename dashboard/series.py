"""The shown series: its chart sources and figures, KPI card and alert list, and their state.

A :class:`SeriesView` draws one ``(pair, timeframe)`` at a time. :meth:`SeriesView.show`
replaces everything on a user action (new data, a fresh shared x-range); the ``stream_*``
methods append new rows with ``ColumnDataSource.stream(…, rollover=history)``, which patches
only the new rows and leaves the user's zoom alone.
"""

from __future__ import annotations

import math
from typing import Any

import panel as pn
from bokeh.layouts import column as bk_column
from bokeh.models import ColumnDataSource, DataRange1d

from dashboard import charts
from dashboard.cards import CSS, alerts_html, kpi_html
from dashboard.whatif import WhatIf
from pairflow.records import Alert, PairStats, field_names

#: Alerts kept in the alert list.
ALERT_ROWS = 50
PAIR_FIELDS = tuple(field_names(PairStats))
ALERT_FIELDS = tuple(field_names(Alert))


class SeriesView:
    """The charts, KPIs and alert list of the selected series.

    Args:
        history: rows kept per chart source.

    Attributes:
        pair: the shown pair ``Y/X`` ("" while none).
        timeframe: the shown timeframe.
        last: the newest shown pair record (None: the series has none yet).
        last_ts: time (µs) of the newest pair record drawn, -1 when none.
        alerts: the newest shown alerts (at most :data:`ALERT_ROWS`), oldest first.
    """

    def __init__(self, history: int) -> None:
        self.history = history
        self.pair = ""
        self.timeframe = ""
        self.last: dict[str, Any] | None = None
        self.last_ts = -1
        self.alerts: list[dict[str, Any]] = []
        self.figs: dict[str, Any] = {}
        self._price = "log"
        self._base: tuple[float | None, float | None] = (None, None)
        self.chart_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.kpis = pn.pane.HTML(kpi_html(None), sizing_mode="stretch_width", stylesheets=[CSS])
        self.alert_feed = pn.pane.HTML(alerts_html([]), sizing_mode="stretch_width",
                                       max_height=320, styles={"overflow-y": "auto"},
                                       stylesheets=[CSS])

    @property
    def legs(self) -> tuple[str, str]:
        """The pair's ``(Y, X)`` symbols."""
        y, _, x = self.pair.partition("/")
        return y, x

    def show(self, pair: str, timeframe: str, rows: list[dict[str, Any]],
             alerts: list[dict[str, Any]], k: float) -> None:
        """Draw a (re)loaded series: its history ``rows`` and ``alerts``, bands at ``k`` σ."""
        self.pair, self.timeframe = pair, timeframe
        frame = charts.rows_frame(rows, PAIR_FIELDS)
        self._price = rows[-1]["price"] if rows else "log"
        self._base = charts.rebase_closes(frame, self._price)
        columns = charts.pair_columns(frame, k, self._price, self._base)
        alert_columns = charts.alert_columns(charts.rows_frame(alerts, ALERT_FIELDS))
        if not self.figs:
            self._build(columns, alert_columns)
        else:
            # A user action (switch, reload): replace the data, not the figures, and start
            # following again with a fresh shared x-range.
            self.pair_source.data = columns
            self.alert_source.data = alert_columns
            self.whatif_source.data = charts.empty(charts.WHATIF_COLUMNS)
            self.whatif_alert_source.data = charts.empty(charts.ALERT_COLUMNS)
            charts.relabel(self.figs, self.legs)
            x_range = DataRange1d(range_padding=0.02, range_padding_units="percent")
            for name in charts.FIGURE_NAMES:
                self.figs[name].x_range = x_range
            self.figs["x_range"] = x_range
        self.last = rows[-1] if rows else None
        self.last_ts = rows[-1]["ts"] if rows else -1
        self.alerts = alerts
        self.kpis.object = kpi_html(self.last)
        self.alert_feed.object = alerts_html(self.alerts)

    def _build(self, columns: dict[str, Any], alert_columns: dict[str, Any]) -> None:
        self.pair_source = ColumnDataSource(columns, name="pair_source")
        self.alert_source = ColumnDataSource(alert_columns, name="alert_source")
        self.whatif_source = ColumnDataSource(charts.empty(charts.WHATIF_COLUMNS),
                                              name="whatif_source")
        self.whatif_alert_source = ColumnDataSource(charts.empty(charts.ALERT_COLUMNS),
                                                    name="whatif_alert_source")
        self.figs = charts.build_figures(self.pair_source, self.alert_source,
                                         self.whatif_source, self.whatif_alert_source,
                                         self.legs)
        self.chart_pane.object = bk_column([self.figs[n] for n in charts.FIGURE_NAMES],
                                           sizing_mode="stretch_width")

    def redraw_bands(self, rows: list[dict[str, Any]], k: float) -> None:
        """Redraw the history ``rows`` with the spread band at ``k`` σ."""
        frame = charts.rows_frame(rows, PAIR_FIELDS)
        self.pair_source.data = charts.pair_columns(frame, k, self._price, self._base)
        self.last_ts = rows[-1]["ts"] if rows else -1

    def stream_stats(self, rows: list[dict[str, Any]], k: float) -> None:
        """Append new pair records (oldest first, all newer than :attr:`last`)."""
        frame = charts.rows_frame(rows, PAIR_FIELDS)
        columns = charts.pair_columns(frame, k, self._price, self._base)
        self.pair_source.stream(columns, rollover=self.history)
        self.last = rows[-1]
        self.last_ts = rows[-1]["ts"]
        self.kpis.object = kpi_html(self.last)

    def stream_alerts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append the alerts not shown yet; return them, oldest first."""
        known = {a["alert_id"] for a in self.alerts}
        fresh = sorted((r for r in rows if r["alert_id"] not in known), key=lambda r: r["ts"])
        if fresh:
            frame = charts.rows_frame(fresh, ALERT_FIELDS)
            self.alert_source.stream(charts.alert_columns(frame), rollover=self.history)
            self.alerts = (self.alerts + fresh)[-ALERT_ROWS:]
            self.alert_feed.object = alerts_html(self.alerts)
        return fresh

    def show_thresholds(self, entry: float, exit_: float) -> None:
        """Move the z chart's entry and exit lines to ±``entry`` and ±``exit_``."""
        self.figs["entry_hi"].location = entry
        self.figs["entry_lo"].location = -entry
        self.figs["exit_hi"].location = exit_
        self.figs["exit_lo"].location = -exit_

    def show_whatif(self, result: WhatIf) -> None:
        """Draw a recomputed history's z-score and alerts beside the live ones."""
        self.whatif_source.data = charts.whatif_columns(result.ts, result.zscore)
        frame = charts.rows_frame(result.alerts, ALERT_FIELDS)
        self.whatif_alert_source.data = charts.alert_columns(frame)

    def visible_range(self) -> tuple[int | None, int | None]:
        """The charts' visible time range in µs ``[start, end]`` (None: unbounded)."""
        x_range = self.figs["x_range"]
        start, end = x_range.start, x_range.end
        if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)):
            return None, None
        return int(math.floor(start * 1000)), int(math.ceil(end * 1000))
