"""The pair's quotes and executable spread on the pair page, for a pair whose run has quotes.

A run with ``--quotes`` stores (and produces) each leg's ``QuoteBar`` and the pair's
``SpreadCost`` per bar. :class:`BookView` keeps their chart sources: the break-even band
``±(exit + round_trip_z)`` on the z chart, the round-trip cost, each leg's quoted spread and both
legs' top-of-book imbalance (:data:`dashboard.figures.BOOK_FIGURES`). A chart is shown only while
its source has rows, so the page of a run without quotes is the page it always was; rows that
arrive later (a live run, quotes switched on) bring the charts in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource

from dashboard import charts

Rows = list[dict[str, Any]]
#: Which sources each quote chart draws: it is shown while any of them has rows.
SHOWN_WITH = {"costs": ("cost",), "quote_spread_y": ("quote_y",),
              "quote_spread_x": ("quote_x",), "imbalance": ("quote_y", "quote_x")}


class BookView:
    """Quote bars of the shown pair's legs and its executable spread, as chart sources.

    Args:
        history: rows kept per source.

    Attributes:
        sources: ``quote_y``, ``quote_x`` (``QUOTE_COLUMNS``) and ``cost`` (``COST_COLUMNS``).
        legs: the pair's ``(Y, X)`` symbols.
    """

    def __init__(self, history: int) -> None:
        self.history = history
        self.legs = ("", "")
        self.sources = {
            "quote_y": ColumnDataSource(charts.empty(charts.QUOTE_COLUMNS), name="quote_y_source"),
            "quote_x": ColumnDataSource(charts.empty(charts.QUOTE_COLUMNS), name="quote_x_source"),
            "cost": ColumnDataSource(charts.empty(charts.COST_COLUMNS), name="cost_source"),
        }
        self._exit_z = charts.Bands().exit
        #: Time (µs) of the newest row drawn per source, -1 when none.
        self._last = dict.fromkeys(self.sources, -1)
        self._figs: dict[str, Any] = {}

    def attach(self, figs: dict[str, Any]) -> None:
        """Draw into ``figs`` (the page's figures, built around the first pair data)."""
        self._figs = figs
        self._show_present(band=True)

    def show(self, legs: tuple[str, str], quotes_y: Rows, quotes_x: Rows, costs: Rows,
             exit_z: float) -> None:
        """Draw a (re)loaded series' quote bars of legs Y and X and its costs, oldest first."""
        self.legs = legs
        self._exit_z = exit_z
        self.sources["quote_y"].data = charts.quote_columns(quotes_y)
        self.sources["quote_x"].data = charts.quote_columns(quotes_x)
        self.sources["cost"].data = charts.cost_columns(costs, exit_z)
        for key, rows, column in (("quote_y", quotes_y, "end"), ("quote_x", quotes_x, "end"),
                                  ("cost", costs, "ts")):
            self._last[key] = rows[-1][column] if rows else -1
        self._show_present(band=True)

    def stream(self, quotes: Rows, costs: Rows) -> None:
        """Append the rows newer than those drawn: quote bars of either leg, the pair's costs."""
        appeared = band = False
        for key, symbol in (("quote_y", self.legs[0]), ("quote_x", self.legs[1])):
            new = sorted((r for r in quotes if r["symbol"] == symbol
                          and r["end"] > self._last[key]), key=lambda r: r["end"])
            if new:
                appeared |= self._last[key] < 0
                self.sources[key].stream(charts.quote_columns(new), rollover=self.history)
                self._last[key] = new[-1]["end"]
        new = sorted((r for r in costs if r["ts"] > self._last["cost"]), key=lambda r: r["ts"])
        if new:
            band = self._last["cost"] < 0
            appeared |= band
            self.sources["cost"].stream(charts.cost_columns(new, self._exit_z),
                                        rollover=self.history)
            self._last["cost"] = new[-1]["ts"]
        if appeared:
            self._show_present(band)

    def set_exit(self, exit_z: float) -> None:
        """Move the break-even band to the exit threshold ``exit_z``."""
        self._exit_z = exit_z
        cost = self.sources["cost"]
        round_trip_z = np.asarray(cost.data["round_trip_z"], dtype=float)
        if len(round_trip_z):
            cost.data.update(charts.breakeven_columns(round_trip_z, exit_z))

    @property
    def present(self) -> dict[str, bool]:
        """Whether each source has rows."""
        return {key: self._last[key] >= 0 for key in self.sources}

    def _show_present(self, band: bool) -> None:
        """Show the quote charts whose data is there and hide the others.

        ``band``: show or hide the break-even band too (on a reload, or on its first rows;
        otherwise it stays as the user left it with its legend entry).
        """
        if not self._figs:
            return
        present = self.present
        for name, keys in SHOWN_WITH.items():
            self._figs[name].visible = any(present[k] for k in keys)
        renderers = self._figs["breakeven_renderers"]
        if band:
            for renderer in renderers:
                renderer.visible = present["cost"]
        for item in self._figs["zscore"].legend[0].items:
            if renderers[0] in item.renderers:
                item.visible = present["cost"]
