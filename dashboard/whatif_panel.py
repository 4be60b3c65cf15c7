"""The what-if card: other settings for the shown pair, recomputed from stored bars.

The form's values go through :class:`pairflow.pairs.PairSettings`, the one check of window and
threshold settings; its error message is shown in the card's status line. The recomputation
(:func:`dashboard.whatif.recompute`) runs on a worker thread, off the server's event loop, and
its result is drawn on the session's next tick unless a newer change or another series
superseded it.
"""

from __future__ import annotations

import dataclasses
import html
import math
import threading
from functools import partial
from typing import Any

import numpy as np
import panel as pn

from dashboard.cards import CSS, fmt_value
from dashboard.controls import Mute
from dashboard.feed import Feed
from dashboard.paper_pnl import PnlInputs, comparison_html, replay
from dashboard.series import SeriesView
from dashboard.whatif import WhatIf, recompute
from pairflow.analytics.settings import parse_hedge_label
from pairflow.pair_settings import PairSettings
from pairflow.pnl import PaperTrade

#: The paper P&L of the live alerts and of the what-if alerts, over the same bars and quotes.
Comparison = tuple[PaperTrade, PaperTrade]

#: The form's fields (in the order of ``WhatIfPanel._inputs``) and their ``PairSettings`` names.
FIELD_NAMES = {"window": "window", "price": "price", "lag": "lag", "entry": "entry_z",
               "exit": "exit_z", "cooldown": "cooldown_bars"}
#: Each typed field checked on its own by ``PairSettings`` (the exit threshold against a
#: higher entry, the entry against a zero exit); the rule across fields is checked after.
FIELD_CHECKS = {
    "window": lambda v: PairSettings(window=int(v)),
    "entry": lambda v: PairSettings(entry_z=float(v), exit_z=0.0),
    "exit": lambda v: PairSettings(entry_z=float(v) + 1.0 if math.isfinite(v) else 2.0,
                                   exit_z=float(v)),
    "cooldown": lambda v: PairSettings(cooldown_bars=int(v)),
}
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
        # No bounds in the browser: an out-of-range value reaches the server, which names the
        # problem next to the field (a bounded input would drop it silently).
        self.window = pn.widgets.IntInput(name="Window (bars)", value=300, step=10, width=150)
        self.price = pn.widgets.Select(name="Price transform", options=["log", "raw"],
                                       value="log", width=150)
        self.lag = pn.widgets.Select(name="ADF/EG lag",
                                     options=["aic", "bic", "0", "1", "2", "4", "8"], width=150)
        self.entry = pn.widgets.FloatInput(name="Entry |z|", value=2.0, step=0.25, width=150)
        self.exit = pn.widgets.FloatInput(name="Exit |z|", value=0.5, step=0.25, width=150)
        self.cooldown = pn.widgets.IntInput(name="Cooldown (bars)", value=0, width=150)
        self.errors = {name: pn.pane.HTML("", visible=False, css_classes=[f"pf-error-{name}"],
                                          styles={"color": "#d62728", "font-size": "12px"},
                                          margin=(0, 10, 4, 10))
                       for name in FIELD_CHECKS}
        self.status = pn.pane.Markdown(IDLE, css_classes=["pf-whatif-status"],
                                       sizing_mode="stretch_width")
        self.pnl = pn.pane.HTML("", visible=False, sizing_mode="stretch_width",
                                stylesheets=[CSS], css_classes=["pf-whatif-pnl"])
        self._generation = 0
        #: The live flow's hedge-ratio estimator (from its records' ``hedge`` label): the
        #: what-if recomputes with it, so it reproduces the flow.
        self._hedge: dict[str, Any] = {}
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
                label = rows[-1].get("hedge")
                self._hedge = parse_hedge_label(label) if label else {}
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
        self.pnl.visible = False

    def _on_thresholds(self, *event: Any) -> None:
        entry, exit_ = self.entry.value, self.exit.value
        if self._field_errors().keys() & {"entry", "exit"}:
            return  # the lines stay at the last valid thresholds
        self.series.set_bands(dataclasses.replace(self.series.bands, entry=entry, exit=exit_))

    def _values(self) -> dict[str, Any]:
        return {"window": self.window.value, "price": self.price.value, "lag": self.lag.value,
                "entry_z": self.entry.value, "exit_z": self.exit.value,
                "cooldown_bars": self.cooldown.value, **self._hedge}

    def _field_errors(self) -> dict[str, str]:
        """What is wrong with each field, by field name (empty: the settings are valid)."""
        values = self._values()
        errors = {}
        for name, check in FIELD_CHECKS.items():
            value = values[FIELD_NAMES[name]]
            if value is None:
                errors[name] = "enter a value"
                continue
            try:
                check(value)
            except Exception as error:  # noqa: BLE001 - shown to the user
                errors[name] = str(error)
        if not errors:
            try:
                PairSettings(**values)
            except Exception as error:  # noqa: BLE001 - the one rule across fields
                errors["exit"] = str(error)
        return errors

    def _on_change(self, event: Any) -> None:
        if self._mute.active:
            return
        self._generation += 1
        errors = self._field_errors()
        for name, pane in self.errors.items():
            pane.object = html.escape(errors.get(name, ""))
            pane.visible = name in errors
        if errors:
            self.status.object = ("**Not recomputed:** fix the marked field"
                                  f"{'s' if len(errors) > 1 else ''}.")
            return
        settings = PairSettings(**self._values())
        self.status.object = "Recomputing…"
        self._recompute(self._generation, settings)

    def _recompute(self, generation: int, settings: PairSettings) -> None:
        pair, timeframe = self.series.pair, self.series.timeframe
        # OLS needs the last window only; Kalman and RLS carry state from the first bar.
        limit = (self.series.history + settings.window if settings.estimator.beta == "ols"
                 else None)
        y, x = self.series.legs
        y_bars = self.feed.bars(y, timeframe, limit=limit)
        x_bars = self.feed.bars(x, timeframe, limit=limit)
        pnl = self.series.pnl.data
        inputs = None
        if pnl is not None and y_bars:
            # The live alerts and the what-if's, paper-traded over the same bars and quotes.
            since = (y_bars[0]["end"], None)
            inputs = PnlInputs(y_bars, x_bars, self.feed.quotes(y, timeframe, time_range=since),
                               self.feed.quotes(x, timeframe, time_range=since),
                               self.feed.alerts(pair, timeframe, time_range=since))
        doc = pn.state.curdoc
        apply = partial(self._apply, generation, pair, timeframe, settings)

        def work() -> None:
            # Off the server's event loop; the result is applied on the session's next tick.
            comparison: Comparison | None = None
            try:
                result: WhatIf | Exception = recompute(pair, timeframe, y_bars, x_bars, settings)
                if pnl is not None and inputs is not None:
                    comparison = (replay(pair, timeframe, pnl.settings, inputs),
                                  replay(pair, timeframe, pnl.settings, inputs, result.alerts))
            except Exception as error:  # noqa: BLE001 - shown to the user
                result = error
            if doc is None:
                apply(result, comparison)
            else:
                doc.add_next_tick_callback(partial(apply, result, comparison))

        threading.Thread(target=work, name="whatif", daemon=True).start()

    def _apply(self, generation: int, pair: str, timeframe: str, settings: PairSettings,
               result: WhatIf | Exception, comparison: Comparison | None = None) -> None:
        if isinstance(result, Exception):
            self.status.object = f"**Cannot recompute:** {html.escape(str(result))}"
            return
        if generation != self._generation or (pair, timeframe) != (self.series.pair,
                                                                    self.series.timeframe):
            return  # superseded by a newer change
        self.series.show_whatif(result)
        self.series.pnl.show_whatif(comparison[1] if comparison else None)
        self.pnl.visible = comparison is not None
        if comparison is not None:
            self.pnl.object = comparison_html(*comparison)
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
        fields = [pn.Column(widget, self.errors[name], margin=0) if name in self.errors
                  else widget for name, widget in zip(FIELD_NAMES, self._inputs, strict=True)]
        return pn.Card(*fields, self.status, self.pnl, title="What-if (recompute from stored bars)",
                       collapsible=False, sizing_mode="stretch_width", css_classes=["pf-whatif"])
