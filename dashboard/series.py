"""The shown series: its chart sources and figures, KPI card and alert list, and their state.

A :class:`SeriesView` draws one ``(pair, timeframe)`` at a time. :meth:`SeriesView.show`
replaces everything on a user action (new data, a fresh shared x-range); the ``stream_*``
methods append new rows with ``ColumnDataSource.stream(…, rollover=history)``, which patches
only the new rows and leaves the user's zoom alone.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import panel as pn
from bokeh.layouts import column as bk_column
from bokeh.layouts import row as bk_row
from bokeh.models import ColumnDataSource

from dashboard import charts, figures
from dashboard.book import BookView
from dashboard.cards import CSS, alerts_html, kpi_html
from dashboard.paper_pnl import PnlData
from dashboard.pnl_view import PnlView
from dashboard.whatif import WhatIf
from pairflow.errors import ConfigError
from pairflow.timeframes import timeframe_us

#: Alerts kept in the alert list.
ALERT_ROWS = 50
#: A series' quote bars of legs Y and X and its ``SpreadCost`` rows, oldest first.
BookRows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]
#: Optional ``PairStats`` fields drawn when the records carry them.
OPTIONAL_LINES = {"beta_se": "beta_band", "beta_kalman": "beta_kalman", "beta_rls": "beta_rls"}


def _bar_seconds(timeframe: str) -> float:
    try:
        return timeframe_us(timeframe) / 1e6
    except ConfigError:
        return math.nan


def _padded(lo: float, hi: float) -> tuple[float, float]:
    pad = 0.06 * (hi - lo) if hi > lo else (abs(hi) * 0.05 or 0.5)
    return lo - pad, hi + pad


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
        bands: the residual chart's band and thresholds in σ.
        book: the legs' quote bars and the pair's executable spread (a run with quotes).
        pnl: the paper P&L of the alert rule (a run that paper-trades).
    """

    def __init__(self, history: int) -> None:
        self.history = history
        self.pair = ""
        self.timeframe = ""
        self.last: dict[str, Any] | None = None
        self.last_ts = -1
        self.alerts: list[dict[str, Any]] = []
        self.bands = charts.Bands()
        self._price = "log"
        self._bar_s = math.nan
        self._base: tuple[float | None, float | None] = (None, None)
        self._window = 0
        self._tail: deque[tuple[float, float, float, float]] = deque(maxlen=1)
        self.sources = {
            "pair": ColumnDataSource(charts.empty(charts.PAIR_COLUMNS), name="pair_source"),
            "alert": ColumnDataSource(charts.empty(charts.ALERT_COLUMNS), name="alert_source"),
            "whatif": ColumnDataSource(charts.empty(charts.WHATIF_COLUMNS),
                                       name="whatif_source"),
            "whatif_alert": ColumnDataSource(charts.empty(charts.ALERT_COLUMNS),
                                             name="whatif_alert_source"),
            "scatter": ColumnDataSource(charts.empty(charts.SCATTER_COLUMNS),
                                        name="scatter_source"),
            "fit": ColumnDataSource(charts.empty(charts.FIT_COLUMNS), name="fit_source"),
            "hist": ColumnDataSource(charts.empty(charts.HIST_COLUMNS), name="hist_source"),
        }
        self.book = BookView(history)
        self.sources.update(self.book.sources)
        self.pnl = PnlView()
        self.sources.update(self.pnl.sources)
        self.figs: dict[str, Any] = {}
        self.chart_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self.kpis = pn.pane.HTML(kpi_html(None), sizing_mode="stretch_width", stylesheets=[CSS])
        self.alert_feed = pn.pane.HTML(alerts_html([], {}), sizing_mode="stretch_width",
                                       max_height=320, styles={"overflow-y": "auto"},
                                       stylesheets=[CSS])

    @property
    def legs(self) -> tuple[str, str]:
        """The pair's ``(Y, X)`` symbols."""
        y, _, x = self.pair.partition("/")
        return y, x

    @property
    def pair_source(self) -> ColumnDataSource:
        """The pair statistics' chart source."""
        return self.sources["pair"]

    def show(self, pair: str, timeframe: str, rows: list[dict[str, Any]],
             alerts: list[dict[str, Any]], k: float, book: BookRows = ([], [], []),
             pnl: PnlData | None = None) -> None:
        """Draw a (re)loaded series: its history ``rows`` and ``alerts``, band at ``k`` σ.

        ``book`` holds the legs' quote bars (Y, then X) and the pair's costs (none: a run
        without quotes); ``pnl`` its paper P&L (None: a run without).
        """
        self.pair, self.timeframe = pair, timeframe
        self._bar_s = _bar_seconds(timeframe)
        self.bands = charts.Bands(k, self.bands.entry, self.bands.exit)
        self._price = rows[-1]["price"] if rows else "log"
        self._base = charts.rebase_closes(rows, self._price)
        columns = charts.pair_columns(rows, self.bands, self._price, self._base, self._bar_s)
        self.sources["pair"].data = columns
        self.sources["whatif"].data = charts.empty(charts.WHATIF_COLUMNS)
        self.sources["whatif_alert"].data = charts.empty(charts.ALERT_COLUMNS)
        self.last = rows[-1] if rows else None
        self.last_ts = rows[-1]["ts"] if rows else -1
        self.alerts = alerts
        self.sources["alert"].data = charts.alert_columns(
            alerts, self._coint_at(alerts))
        self._window = int(rows[-1]["window"]) if rows else 0
        self._tail = deque(((r["x"], r["y"], r["alpha"], r["beta"]) for r in rows),
                           maxlen=self._window + 1)
        if rows and not self.figs:
            # Built around the first data: BokehJS cannot range an empty chart (it stays
            # blank and warns on every paint), so there are no charts before there is data.
            self._build()
        elif self.figs:
            # A user action (switch, reload): replace the data, not the figures, and tell the
            # browser to follow the new data (it resets every chart's zoom).
            x_range = self.figs["x_range"]
            x_range.tags = [x_range.tags[0] + 1]
            figures.relabel(self.figs, self.legs)
        if self.figs:
            self.chart_pane.visible = bool(rows)
            self.show_whatif_legend(False)
            self._show_optional(self.last or {})
            self._place_thresholds()
            self._draw_scatter()
            self._draw_histogram()
        self.book.show(self.legs, *book, self.bands.exit)
        self.pnl.show(pnl)
        self._update_cards()

    def _build(self) -> None:
        self.figs = figures.build_time_figures(self.sources, self.legs, 1000 * self._bar_s)
        self.figs.update(figures.build_side_figures(self.sources))
        self.figs.update(figures.build_book_figures(self.sources, self.legs, self.figs))
        self.figs.update(figures.build_pnl_figure(self.sources, self.figs))
        figures.wire_fit(self.figs, self.sources)
        self.book.attach(self.figs)
        self.pnl.attach(self.figs)
        main = [self.figs[n] for n in ("prices", "spread", "zscore")]
        side = bk_row([self.figs["scatter"], self.figs["histogram"]],
                      sizing_mode="stretch_width")
        book = [self.figs[n] for n in figures.BOOK_FIGURES]
        pnl = [self.figs[n] for n in figures.PNL_FIGURES]
        rest = [self.figs[n] for n in ("corr", "pvalues", "beta")]
        self.chart_pane.object = bk_column([*main, side, *book, *rest, *pnl],
                                           sizing_mode="stretch_width")

    def _show_optional(self, row: dict[str, Any]) -> None:
        """Show the β band, Kalman and RLS lines (and their legend entries) when present."""
        for field, name in OPTIONAL_LINES.items():
            present = row.get(field) is not None
            renderer = self.figs["beta"].select_one({"name": name})
            renderer.visible = present
            for item in self.figs["beta"].legend[0].items:
                if renderer in item.renderers:
                    item.visible = present
        for name in ("prices", "zscore"):
            width = 1000 * self._bar_s if math.isfinite(self._bar_s) else 1000.0
            self.figs[name].select_one({"name": f"{name}_shade"}).glyph.width = width

    def show_whatif_legend(self, shown: bool) -> None:
        """Show the what-if legend entries only once a what-if has run."""
        for renderer in self.figs["whatif_renderers"]:
            for item in self.figs["zscore"].legend[0].items:
                if renderer in item.renderers:
                    item.visible = shown

    def _coint_at(self, alerts: list[dict[str, Any]]) -> dict[int, bool]:
        """Whether the pair was cointegrated at each alert's bar (where the bar is shown)."""
        data = self.sources["pair"].data
        ts, coint = np.asarray(data["ts"]), np.asarray(data["coint"], dtype=float)
        out = {}
        for alert in alerts:
            i = int(np.searchsorted(ts, alert["ts"]))
            if i < len(ts) and ts[i] == alert["ts"]:
                out[alert["ts"]] = bool(np.isfinite(coint[i]))
        return out

    def _alert_context(self) -> dict[int, tuple[float, float, bool | None]]:
        """The legs' closes and cointegration at each shown alert's bar."""
        data = self.sources["pair"].data
        ts = np.asarray(data["ts"])
        coint = self._coint_at(self.alerts)
        out = {}
        for alert in self.alerts:
            i = int(np.searchsorted(ts, alert["ts"]))
            if i < len(ts) and ts[i] == alert["ts"]:
                out[alert["ts"]] = (float(data["y_close"][i]), float(data["x_close"][i]),
                                    coint.get(alert["ts"]))
        return out

    def _update_cards(self) -> None:
        self.kpis.object = kpi_html(self.last, self._bar_s)
        self.alert_feed.object = alerts_html(self.alerts, self._alert_context())

    def _draw_scatter(self) -> None:
        points, fit = charts.scatter_columns(np.array(self._tail, dtype=float), self._window)
        self.sources["scatter"].data = points
        self.sources["fit"].data = fit
        for axis, values in (("x", points["x"]), ("y", points["y"])):
            if len(values):
                start, end = _padded(float(values.min()), float(values.max()))
                getattr(self.figs["scatter"], f"{axis}_range").update(start=start, end=end)

    def _draw_histogram(self) -> None:
        levels = (self.bands.entry, -self.bands.entry)
        hist = charts.histogram_columns(self.sources["pair"].data["zscore"], levels)
        self.sources["hist"].data = hist
        if len(hist["left"]):
            self.figs["histogram"].x_range.update(start=hist["left"][0] - 0.1,
                                                  end=hist["right"][-1] + 0.1)
            self.figs["histogram"].y_range.update(start=0, end=1.08 * max(hist["count"]))

    def _place_thresholds(self) -> None:
        if not self.figs:
            return
        b = self.bands
        for name, value in (("entry_hi", b.entry), ("entry_lo", -b.entry), ("exit_hi", b.exit),
                            ("exit_lo", -b.exit)):
            self.figs[name].location = value
        for span, value in zip(self.figs["hist_spans"], (b.entry, -b.entry, b.exit, -b.exit),
                               strict=True):
            span.location = value

    def set_bands(self, bands: charts.Bands) -> None:
        """Move the band and the threshold lines (residual, z and histogram) to ``bands``."""
        self.bands = bands
        self._place_thresholds()
        self.book.set_exit(bands.exit)
        sigma = np.asarray(self.sources["pair"].data["sigma"], dtype=float)
        if len(sigma):
            self.sources["pair"].data.update(charts.band_columns(sigma, bands))

    def stream_stats(self, rows: list[dict[str, Any]]) -> None:
        """Append new pair records (oldest first, all newer than :attr:`last`)."""
        columns = charts.pair_columns(rows, self.bands, self._price, self._base, self._bar_s)
        self.sources["pair"].stream(columns, rollover=self.history)
        self._stream_side(rows, columns["zscore"])
        self.last = rows[-1]
        self.last_ts = rows[-1]["ts"]
        self.kpis.object = kpi_html(self.last, self._bar_s)

    def _stream_side(self, rows: list[dict[str, Any]], zscore: np.ndarray) -> None:
        """Move the scatter's window and fitted lines; count the new z in the histogram."""
        self._tail.extend((r["x"], r["y"], r["alpha"], r["beta"]) for r in rows)
        if not self.figs:
            return
        points, fit = charts.scatter_columns(np.array(self._tail, dtype=float), self._window)
        new_points, _ = charts.scatter_columns(
            np.array([(r["x"], r["y"], math.nan, math.nan) for r in rows], dtype=float),
            len(rows))
        self.sources["scatter"].stream(new_points, rollover=max(self._window, 1))
        self.sources["fit"].data = fit
        for axis in ("x", "y"):
            shown, values = getattr(self.figs["scatter"], f"{axis}_range"), new_points[axis]
            if len(values) and (values.min() < shown.start or values.max() > shown.end):
                start, end = _padded(float(points[axis].min()), float(points[axis].max()))
                shown.update(start=start, end=end)
        hist = self.sources["hist"]
        if not len(hist.data["left"]):
            self._draw_histogram()
            return
        counts = list(hist.data["count"])
        patches = []
        for z in zscore:
            i = charts.histogram_bin(np.asarray(hist.data["left"]), float(z))
            if i is not None:
                counts[i] += 1
                patches.append((i, counts[i]))
        if patches:
            hist.patch({"count": patches})

    def stream_alerts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append the alerts not shown yet; return them, oldest first."""
        known = {a["alert_id"] for a in self.alerts}
        fresh = sorted((r for r in rows if r["alert_id"] not in known), key=lambda r: r["ts"])
        if fresh:
            self.sources["alert"].stream(charts.alert_columns(fresh, self._coint_at(fresh)),
                                         rollover=self.history)
            self.alerts = (self.alerts + fresh)[-ALERT_ROWS:]
            self.alert_feed.object = alerts_html(self.alerts, self._alert_context())
        return fresh

    def show_whatif(self, result: WhatIf) -> None:
        """Draw a recomputed history's z-score and alerts beside the live ones."""
        self.sources["whatif"].data = charts.whatif_columns(result.ts, result.zscore)
        self.sources["whatif_alert"].data = charts.alert_columns(result.alerts, {})
        if self.figs:
            self.show_whatif_legend(True)

    def visible_range(self) -> tuple[int | None, int | None]:
        """The charts' visible time range in µs ``[start, end]`` (None: unbounded)."""
        if not self.figs:
            return None, None
        x_range = self.figs["x_range"]
        start, end = x_range.start, x_range.end
        if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)):
            return None, None
        return int(math.floor(start * 1000)), int(math.ceil(end * 1000))
