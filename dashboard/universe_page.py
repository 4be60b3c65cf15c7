"""The universe page (``?view=universe``): the latest scan of every pair, as a table and a map.

Each browser session builds one :class:`UniversePage`. It loads the latest scan row of each
pair on the selected scan timeframe from the process's feed (:meth:`Feed.scans`: the store's
``scan`` table or the Kafka ``scan`` topic), then a periodic callback takes the feed's new
``scan`` rows (and the ``bars`` and ``pairs`` rows that move the age reference and the set of
watched pairs) and redraws. The table sorts in the browser (click a header); the filters are
applied on the server. A click on a row, or on a heat-map cell, opens that pair's page: the
live pair page for a watched pair, else the page computed on demand
(:mod:`dashboard.on_demand`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import panel as pn
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJS,
    DataTable,
    FactorRange,
    HoverTool,
    HTMLTemplateFormatter,
    LinearColorMapper,
    TableColumn,
)
from bokeh.palettes import Greens256, RdBu11
from bokeh.plotting import figure

from dashboard.banner import SourceBanner
from dashboard.cards import CSS, short_time
from dashboard.feed import Feed
from dashboard.universe import (
    MEASURES,
    TABLE_COLUMNS,
    Filters,
    heatmap_columns,
    table_columns,
    universe_order,
)
from pairflow.errors import ConfigError
from pairflow.timeframes import timeframe_us

#: Milliseconds between two looks at the feed.
UPDATE_MS = 250
#: Ticks between two redraws of a changed table, and between two checks of the badge's
#: inputs (whether the source is live): one second.
TICKS_PER_S = max(1, 1000 // UPDATE_MS)
#: Seconds between two age refreshes while the source is live (ages grow with the clock).
AGE_EVERY_S = 5
#: The heat map's colours: a low q-value is dark green; correlation runs red (−1) to blue (+1).
COLOURS = {"q-value": (Greens256, 0.0, 1.0), "correlation": (RdBu11, -1.0, 1.0)}
#: Opens the clicked row's (or cell's) page in this tab.
OPEN_JS = """
const i = source.selected.indices[0];
if (i != null) { window.location.href = source.data.link[i]; }
"""


def _bar_seconds(timeframe: str) -> float:
    try:
        return timeframe_us(timeframe) / 1e6
    except ConfigError:
        return math.nan


class UniversePage(pn.viewable.Viewer):
    """One browser session's universe page.

    Args:
        feed: the process's feed.
        timeframe: the scan timeframe asked for in the URL, if any.
    """

    def __init__(self, feed: Feed, timeframe: str | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.settings = feed.settings
        self._rows: dict[str, dict[str, Any]] = {}
        self._watched: set[str] = set()
        self._newest_bar = -1
        self._live = False
        timeframes = feed.scan_timeframes()
        chosen = timeframe if timeframe in timeframes else (timeframes[0] if timeframes else None)
        self.tf_select = pn.widgets.Select(name="Scan timeframe", options=timeframes,
                                           value=chosen, width=130)
        self.q_max = pn.widgets.FloatInput(name="q-value ≤", value=None, step=0.01, width=110,
                                           placeholder="any", css_classes=["pf-q-max"])
        self.z_min = pn.widgets.FloatInput(name="|z| ≥", value=None, step=0.5, width=110,
                                           placeholder="any", css_classes=["pf-z-min"])
        self.text = pn.widgets.TextInput(name="Symbol", placeholder="e.g. ETH", width=150,
                                         css_classes=["pf-symbol-filter"])
        self.measure = pn.widgets.Select(name="Heat map", options=list(MEASURES), width=130,
                                         css_classes=["pf-heat-measure"])
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[CSS])
        self.banner = SourceBanner(self.settings.source)
        self.message = pn.pane.Alert("", alert_type="warning", visible=False,
                                     sizing_mode="stretch_width", css_classes=["pf-message"])
        self.table_source = ColumnDataSource(table_columns([], "", 0.0, 0, set()),
                                             name="universe_source")
        self.table_source.selected.js_on_change(
            "indices", CustomJS(args={"source": self.table_source}, code=OPEN_JS))
        self.table = DataTable(source=self.table_source, columns=self._table_columns(),
                               name="universe_table", index_position=None, height=560,
                               reorderable=False, sizing_mode="stretch_width", sortable=True,
                               selectable=True)
        # BokehJS redraws the grid when its view's indices change, which replaced data of the
        # same length does not do: the streamed scan rows would be in the browser, not shown.
        self.table_source.js_on_change("data", CustomJS(args={"view": self.table.view},
                                                        code="view.change.emit()"))
        self.heat_source = ColumnDataSource(heatmap_columns([], "q-value", set(), ""),
                                            name="heatmap_source")
        self.heat_pane = pn.pane.Bokeh()
        self.heat: Any = None
        self._cursor = 0
        self._generation = feed.status.generation
        self._dirty = False
        self._ticks = 0
        self._load()
        for widget in (self.q_max, self.z_min):
            widget.param.watch(self._on_filter, "value")
        self.text.param.watch(self._on_filter, "value_input")
        self.tf_select.param.watch(self._on_timeframe, "value")
        self.measure.param.watch(self._on_measure, "value")
        self.callback = pn.state.add_periodic_callback(self._tick, period=UPDATE_MS)

    @property
    def timeframe(self) -> str:
        """The selected scan timeframe ("" while the source holds no scan)."""
        return self.tf_select.value or ""

    @property
    def filters(self) -> Filters:
        """The filters as set in the header."""
        return Filters(q_max=self.q_max.value, z_min=self.z_min.value,
                       text=self.text.value_input or "")

    # -- loading --------------------------------------------------------------------------
    def _load(self) -> None:
        """(Re)load the latest scan of every pair and what the page derives from the feed."""
        self._cursor = self.feed.seq
        timeframe = self.timeframe
        rows = self.feed.scans(timeframe) if timeframe else []
        self._rows = {r["pair"]: r for r in rows}
        self._watched = {pair for pair, tf in self.feed.keys() if tf == timeframe}
        self._live = bool(self.feed.health())
        self._newest_bar = max((bar["end"] for symbol in universe_order(self._rows)
                                for bar in self.feed.bars(symbol, timeframe, limit=1)),
                               default=-1)
        self._redraw()

    def _reference_us(self) -> int:
        """What ages are measured to: now for a live source, else the newest data time."""
        if self._live:
            return int(time.time() * 1e6)
        return max(self._newest_bar, max((r["ts"] for r in self._rows.values()), default=0))

    # -- drawing --------------------------------------------------------------------------
    def _table_data(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return table_columns(rows, self.timeframe, _bar_seconds(self.timeframe),
                             self._reference_us() if rows else 0, self._watched)

    @staticmethod
    def _table_columns() -> list[TableColumn]:
        columns = [TableColumn(field="pair", title="pair", width=150),
                   TableColumn(field="page", title="page", width=80)]
        columns += [TableColumn(field=name, title=title, width=80,
                                formatter=HTMLTemplateFormatter(template=f"<%= {name}_text %>"))
                    for name, title in TABLE_COLUMNS]
        return columns

    def _redraw(self) -> None:
        """Show the rows that pass the filters, the heat map and the status line."""
        self._dirty = False
        ordered = [self._rows[pair] for pair in sorted(self._rows)]
        shown = [row for row in ordered if self.filters.keep(row)]
        self.table_source.selected.indices = []
        self.table_source.data = self._table_data(shown)
        self._draw_heatmap(ordered)
        self._show_message()
        if ordered:
            newest = max(r["ts"] for r in ordered)
            self.status.object = (
                f"<div id='pf-universe-status' data-shown='{len(shown)}' "
                f"data-pairs='{len(ordered)}'>{len(shown)} of {len(ordered)} pairs shown · "
                f"latest scan {short_time(newest)} UTC · {len(self._watched & set(self._rows))}"
                f" watched · click a row for its page</div>")
        else:
            self.status.object = "<div id='pf-universe-status' data-shown='0'></div>"

    def _show_message(self) -> None:
        if self._rows:
            self.message.visible = False
            return
        self.message.object = (f"No universe scan in {self.settings.source} yet. Run the flow "
                               "with `--universe SYMBOLS` (the page fills in as scans arrive).")
        self.message.visible = True

    def _draw_heatmap(self, rows: list[dict[str, Any]]) -> None:
        symbols = universe_order(r["pair"] for r in rows)
        self.heat_source.data = heatmap_columns(rows, self.measure.value, self._watched,
                                                self.timeframe)
        if not symbols:
            self.heat_pane.visible = False
            return
        if self.heat is None:
            # Built around the first data: an empty FactorRange cannot be drawn.
            self.heat = self._build_heatmap(symbols)
            self.heat_pane.object = self.heat
        self.heat.x_range.factors = symbols
        self.heat.y_range.factors = symbols[::-1]
        self._colour()
        self.heat_pane.visible = True

    def _build_heatmap(self, symbols: list[str]) -> Any:
        palette, low, high = COLOURS[self.measure.value]
        mapper = LinearColorMapper(palette=palette, low=low, high=high, nan_color="#eeeeee",
                                   name="heatmap_colours")
        size = max(360, min(720, 60 * len(symbols) + 140))
        fig = figure(name="heatmap", x_range=FactorRange(*symbols),
                     y_range=FactorRange(*symbols[::-1]), width=size + 80, height=size,
                     tools="tap,reset", toolbar_location=None, x_axis_location="above")
        fig.rect(x="x", y="y", width=1, height=1, source=self.heat_source,
                 fill_color={"field": "value", "transform": mapper}, line_color="white",
                 name="heatmap_cells")
        fig.add_layout(ColorBar(color_mapper=mapper, width=12, name="heatmap_bar"), "right")
        fig.add_tools(HoverTool(tooltips=[("pair", "@pair"), ("value", "@text")]))
        fig.grid.visible = False
        fig.axis.axis_line_color = None
        fig.axis.major_tick_line_color = None
        fig.xaxis.major_label_orientation = math.pi / 3
        self.heat_source.selected.js_on_change(
            "indices", CustomJS(args={"source": self.heat_source}, code=OPEN_JS))
        return fig

    def _colour(self) -> None:
        palette, low, high = COLOURS[self.measure.value]
        mapper = self.heat.select_one({"name": "heatmap_colours"})
        mapper.update(palette=list(palette), low=low, high=high)
        self.heat.title.text = f"{self.measure.value} of each pair · click a cell for its page"

    # -- user actions ---------------------------------------------------------------------
    def _on_filter(self, event: Any) -> None:
        self._redraw()

    def _on_timeframe(self, event: Any) -> None:
        self._load()
        try:
            pn.state.location.update_query(timeframe=self.timeframe)
        except Exception:  # noqa: BLE001 - no location outside a server session
            pass

    def _on_measure(self, event: Any) -> None:
        self._draw_heatmap([self._rows[pair] for pair in sorted(self._rows)])

    # -- streaming ------------------------------------------------------------------------
    def _tick(self) -> None:
        self._ticks += 1
        status = self.feed.status
        self.banner.show(status)
        if status.generation != self._generation:
            self._generation = status.generation
            self._refresh_timeframes()
            self._load()
            return
        seq, rows, lost = self.feed.since(self._cursor)
        self._cursor = seq
        if lost:
            self._load()
            return
        self._take(rows)
        if self._ticks % TICKS_PER_S:
            return
        live = bool(self.feed.health())
        ages_move = live and self._ticks % (AGE_EVERY_S * TICKS_PER_S) == 0
        if self._dirty or live != self._live or ages_move:
            self._live = live
            self._redraw()

    def _take(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Keep the new scan rows of the shown timeframe; note new bars and watched pairs."""
        timeframe = self.timeframe
        for table, row in rows:
            if table == "scan":
                if not timeframe:
                    self._refresh_timeframes()
                    timeframe = self.timeframe
                if row["timeframe"] == timeframe:
                    known = self._rows.get(row["pair"])
                    if known is None or known["ts"] <= row["ts"]:
                        self._rows[row["pair"]] = row
                        self._dirty = True
            elif table == "bars" and row["timeframe"] == timeframe \
                    and row["end"] > self._newest_bar:
                self._newest_bar = row["end"]
                self._dirty = self._dirty or not self._live  # ages count from the newest bar
            elif table == "pairs" and row["timeframe"] == timeframe \
                    and row["pair"] not in self._watched:
                self._watched.add(row["pair"])
                self._dirty = True

    def _refresh_timeframes(self) -> None:
        timeframes = self.feed.scan_timeframes()
        self.tf_select.options = timeframes
        if self.tf_select.value not in timeframes and timeframes:
            self.tf_select.value = timeframes[0]  # first scan after waiting: show it

    # -- layout ---------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        header = pn.Row(
            pn.pane.Markdown("## pairflow · universe", margin=(0, 20, 0, 5)),
            self.tf_select, self.q_max, self.z_min, self.text, self.measure,
            pn.pane.HTML("<a href='?' class='pf-nav'>pair page</a>", margin=(30, 10, 0, 10)),
            sizing_mode="stretch_width")
        return pn.Column(header, self.banner.pane, self.message, self.status,
                         pn.Row(pn.Column(self.table, sizing_mode="stretch_width"),
                                self.heat_pane, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")
