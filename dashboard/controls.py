"""The dashboard's header: pair and timeframe selectors, band width, Follow newest, downloads."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import panel as pn

from dashboard import figures
from dashboard.cards import CSS, badge_html
from dashboard.selection import Selection


class Mute:
    """Whether a component is setting its own widgets, so its change handlers stay quiet."""

    def __init__(self) -> None:
        self.active = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        """Set widgets inside this block without running the component's handlers."""
        self.active = True
        try:
            yield
        finally:
            self.active = False


class Controls(pn.viewable.Viewer):
    """The header widgets of one session.

    Args:
        selection: the series the session starts on, and the selectors' options.
        csv_stats: makes the *Stats CSV* download.
        csv_bars: makes the *Bars CSV* download.
        csv_alerts: makes the *Alerts CSV* download.
    """

    def __init__(self, selection: Selection, csv_stats: Callable[[], io.StringIO],
                 csv_bars: Callable[[], io.StringIO], csv_alerts: Callable[[], io.StringIO],
                 **params) -> None:
        super().__init__(**params)
        self.pair_select = pn.widgets.Select(name="Pair", options=selection.pairs,
                                             value=selection.pair or None, width=200)
        self.tf_select = pn.widgets.Select(name="Timeframe", options=selection.timeframes,
                                           value=selection.timeframe or None, width=110)
        self.k_input = pn.widgets.FloatInput(name="Band k (σ)", value=2.0, step=0.5, start=0.1,
                                             width=110)
        self.follow_button = pn.widgets.Button(name="Follow newest", button_type="primary",
                                               width=130, css_classes=["pf-follow"])
        # Runs in the browser: a range reset of every chart, no round trip to the server.
        self.follow_button.js_on_click(args={"names": list(figures.FIGURE_NAMES)},
                                       code=figures.FOLLOW_JS)
        self.badge = pn.pane.HTML(badge_html("waiting", "waiting for data"), stylesheets=[CSS],
                                  margin=(22, 10, 0, 10))
        self.dark = pn.widgets.Toggle(name="Dark", width=70, css_classes=["pf-dark"])
        self.dark.param.watch(self._on_dark, "value")
        self.download_stats = pn.widgets.FileDownload(
            callback=csv_stats, filename="stats.csv", label="Stats CSV (visible range)",
            button_type="light", width=190, css_classes=["pf-dl-stats"])
        self.download_bars = pn.widgets.FileDownload(
            callback=csv_bars, filename="bars.csv", label="Bars CSV (visible range)",
            button_type="light", width=180, css_classes=["pf-dl-bars"])
        self.download_alerts = pn.widgets.FileDownload(
            callback=csv_alerts, filename="alerts.csv", label="Alerts CSV",
            button_type="light", width=120, css_classes=["pf-dl-alerts"])

    @property
    def pair(self) -> str:
        """The selected pair ``Y/X`` ("" while none)."""
        return self.pair_select.value or ""

    @property
    def timeframe(self) -> str:
        """The selected timeframe ("" while none)."""
        return self.tf_select.value or ""

    @property
    def k(self) -> float:
        """The spread band's half-width in σ (0 while the field is empty)."""
        return self.k_input.value or 0.0

    def show_freshness(self, state: str, text: str) -> None:
        """Show the data badge (see :func:`dashboard.freshness.freshness`)."""
        self.badge.object = badge_html(state, text)

    def _on_dark(self, event: object) -> None:
        # Bokeh's own dark theme for the charts; the page follows through Panel's theme.
        doc = pn.state.curdoc
        if doc is not None:
            doc.theme = "dark_minimal" if self.dark.value else None

    def name_downloads(self, legs: tuple[str, str], timeframe: str) -> None:
        """Name the CSV files after the shown series."""
        tag = f"{legs[0]}-{legs[1]}-{timeframe}"
        self.download_stats.filename = f"pairflow-stats-{tag}.csv"
        self.download_bars.filename = f"pairflow-bars-{tag}.csv"
        self.download_alerts.filename = f"pairflow-alerts-{tag}.csv"

    def __panel__(self) -> pn.viewable.Viewable:
        """The header row."""
        return pn.Row(
            pn.pane.Markdown("## pairflow", margin=(0, 20, 0, 5)), self.badge, self.pair_select,
            self.tf_select, self.k_input, pn.Column(pn.Spacer(height=18), self.follow_button),
            pn.Column(pn.Spacer(height=18), self.dark),
            pn.Column(pn.Spacer(height=18), pn.Row(self.download_stats, self.download_bars,
                                                   self.download_alerts)),
            sizing_mode="stretch_width")
