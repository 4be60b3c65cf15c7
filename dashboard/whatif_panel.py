"""The what-if card: other settings for the shown pair, recomputed from stored bars.

The form's values go through :class:`pairflow.pairs.PairSettings`, the one check of window and
threshold settings; its error message is shown in the card's status line. The recomputation
(:func:`dashboard.whatif.recompute`) runs on a worker thread, off the server's event loop, and
its result is drawn on the session's next tick unless a newer change or another series
superseded it.
"""

from __future__ import annotations

import html
import threading
from functools import partial
from typing import Any

import numpy as np
import panel as pn

from dashboard.cards import fmt_value
from dashboard.controls import Mute
from dashboard.feed import Feed
from dashboard.series import SeriesView
from dashboard.whatif import WhatIf, recompute
from pairflow.pair_settings import PairSettings

#: The status line before any change.
IDLE = "Change a setting to recompute this pair's history from stored bars."


class WhatIfPanel(pn.viewable.Viewer):
    """The what-if form and status of one session, drawing into its :class:`SeriesView`.

    Args:
        feed: where the legs' bars are read.
        series: the shown series (pair, live values) and the charts to draw into.
    """

    def __init__(self, feed: Feed, series: SeriesView, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.series = series
        self.window = pn.widgets.IntInput(name="Window (bars)", value=300, start=10, step=10,
                                          width=150)
        self.price = pn.widgets.Select(name="Price transform", options=["log", "raw"],
                                       value="log", width=150)
        self.lag = pn.widgets.Select(name="ADF/EG lag",
                                     options=["aic", "bic", "0", "1", "2", "4", "8"], width=150)
        self.entry = pn.widgets.FloatInput(name="Entry |z|", value=2.0, step=0.25, start=0.1,
                                           width=150)
        self.exit = pn.widgets.FloatInput(name="Exit |z|", value=0.5, step=0.25, start=0.0,
                                          width=150)
        self.cooldown = pn.widgets.IntInput(name="Cooldown (bars)", value=0, start=0, width=150)
        self.status = pn.pane.Markdown(IDLE, css_classes=["pf-whatif-status"],
                                       sizing_mode="stretch_width")
        self._generation = 0
        self._mute = Mute()
        for widget in self._inputs:
            widget.param.watch(self._on_change, "value")
        self.entry.param.watch(self._on_thresholds, "value")
        self.exit.param.watch(self._on_thresholds, "value")

    @property
    def _inputs(self) -> tuple[pn.widgets.Widget, ...]:
        return self.window, self.price, self.lag, self.entry, self.exit, self.cooldown

    def start_at(self, rows: list[dict[str, Any]]) -> None:
        """Start the form at the live settings of a loaded series, with an idle status.

        Window, price and lag come from its newest pair record, the thresholds from its
        newest entry and exit alerts.
        """
        alerts = self.series.alerts
        with self._mute():
            if rows:
                self.window.value = int(rows[-1]["window"])
                self.price.value = rows[-1]["price"]
                lag = str(rows[-1]["lag"])
                if lag not in self.lag.options:
                    self.lag.options = [*self.lag.options, lag]
                self.lag.value = lag
            entries = [abs(a["threshold"]) for a in alerts if a["kind"] != "exit"]
            exits = [abs(a["threshold"]) for a in alerts if a["kind"] == "exit"]
            if entries:
                self.entry.value = entries[-1]
            if exits:
                self.exit.value = exits[-1]
        self._on_thresholds()
        self.status.object = IDLE

    def _on_thresholds(self, *event: Any) -> None:
        self.series.show_thresholds(self.entry.value or 0.0, self.exit.value or 0.0)

    def _on_change(self, event: Any) -> None:
        if self._mute.active:
            return
        self._generation += 1
        try:
            settings = PairSettings(
                window=int(self.window.value), price=self.price.value, lag=self.lag.value,
                entry_z=float(self.entry.value), exit_z=float(self.exit.value),
                cooldown_bars=int(self.cooldown.value))
        except Exception as error:  # noqa: BLE001 - shown to the user
            self.status.object = f"**Cannot recompute:** {html.escape(str(error))}"
            return
        self.status.object = "Recomputing…"
        self._recompute(self._generation, settings)

    def _recompute(self, generation: int, settings: PairSettings) -> None:
        pair, timeframe = self.series.pair, self.series.timeframe
        limit = self.series.history + settings.window
        y, x = self.series.legs
        y_bars = self.feed.bars(y, timeframe, limit=limit)
        x_bars = self.feed.bars(x, timeframe, limit=limit)
        doc = pn.state.curdoc
        apply = partial(self._apply, generation, pair, timeframe, settings)

        def work() -> None:
            # Off the server's event loop; the result is applied on the session's next tick.
            try:
                result: WhatIf | Exception = recompute(pair, timeframe, y_bars, x_bars, settings)
            except Exception as error:  # noqa: BLE001 - shown to the user
                result = error
            if doc is None:
                apply(result)
            else:
                doc.add_next_tick_callback(partial(apply, result))

        threading.Thread(target=work, name="whatif", daemon=True).start()

    def _apply(self, generation: int, pair: str, timeframe: str, settings: PairSettings,
               result: WhatIf | Exception) -> None:
        if isinstance(result, Exception):
            self.status.object = f"**Cannot recompute:** {html.escape(str(result))}"
            return
        if generation != self._generation or (pair, timeframe) != (self.series.pair,
                                                                    self.series.timeframe):
            return  # superseded by a newer change
        self.series.show_whatif(result)
        z = result.zscore
        last = f"{z[-1]:.4f}" if len(z) and np.isfinite(z[-1]) else "–"
        self.status.object = (
            f"Recomputed **{len(result.ts)}** aligned bars in "
            f"**{result.seconds * 1000:.0f} ms** (window {settings.window}, "
            f"{settings.price}, lag {settings.lag}): last what-if z **{last}** vs live "
            f"**{fmt_value((self.series.last or {}).get('zscore'), 4)}**; "
            f"{len(result.alerts)} what-if alerts (live feed shows "
            f"{len(self.series.alerts)}).")

    def __panel__(self) -> pn.viewable.Viewable:
        """The what-if card."""
        return pn.Card(*self._inputs, self.status, title="What-if (recompute from stored bars)",
                       collapsible=False, sizing_mode="stretch_width", css_classes=["pf-whatif"])
