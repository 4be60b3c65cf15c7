"""The per-session dashboard: the parts of one browser session's page, wired together.

Each browser session builds one :class:`PairDashboard`: the header :class:`~dashboard.controls.
Controls`, the shown :class:`~dashboard.series.SeriesView`, the
:class:`~dashboard.whatif_panel.WhatIfPanel`, the feed health card and the messages. It loads the
selected series' recent history from the process's :class:`~dashboard.feed.Feed`, then a
periodic callback (which Panel stops when the page closes) takes the feed's new rows and hands
the selected series' ones to the :class:`~dashboard.series.SeriesView`, which appends them to
its chart sources (a patch of the new rows only, bounded memory, the user's zoom left alone).
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import panel as pn

from dashboard.banner import SourceBanner
from dashboard.cards import CSS, health_html, short_time
from dashboard.charts import Bands, direction
from dashboard.controls import Controls, Mute
from dashboard.export import to_csv
from dashboard.feed import Feed, FeedStatus
from dashboard.freshness import freshness
from dashboard.paper_pnl import PnlData
from dashboard.paper_pnl import load as load_pnl
from dashboard.selection import known_pairs, select, timeframes_of
from dashboard.series import ALERT_ROWS, BookRows, SeriesView
from dashboard.whatif_panel import WhatIfPanel
from pairflow.records import Alert, Bar, PairStats

logger = logging.getLogger(__name__)

#: Milliseconds between two updates of a session.
UPDATE_MS = 100
#: Ticks between two health updates (and history retries of a waiting series): one second.
TICKS_PER_S = max(1, 1000 // UPDATE_MS)
#: Seconds between two updates of the feed health card (its ~2 KiB per session add up).
HEALTH_EVERY_S = 5
#: How long an alert toast shows; alerts arriving meanwhile are counted into it.
TOAST_S = 8.0


class PairDashboard(pn.viewable.Viewer):
    """One browser session's dashboard.

    Args:
        feed: the process's feed.
        pair: the pair asked for in the URL (``Y/X``), if any.
        timeframe: the timeframe asked for in the URL, if any.
    """

    def __init__(self, feed: Feed, pair: str | None = None, timeframe: str | None = None,
                 **params: Any) -> None:
        super().__init__(**params)
        self.feed = feed
        self.settings = feed.settings
        self.history = feed.settings.history
        selection = select(feed.keys(), pair, timeframe)
        self.controls = Controls(selection, self._csv_stats, self._csv_bars, self._csv_alerts)
        self.series = SeriesView(self.history)
        self.whatif = WhatIfPanel(feed, self.series)
        self.message = pn.pane.Alert(selection.message, alert_type="warning",
                                     visible=bool(selection.unknown),
                                     sizing_mode="stretch_width", css_classes=["pf-message"])
        self.banner = SourceBanner(self.settings.source)
        self.health_view = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[CSS])
        self._unknown_shown = selection.unknown is not None
        self._cursor = 0
        self._generation = feed.status.generation
        self._ticks = 0
        self._mute = Mute()
        self._toast: Any = None
        self._toast_until = 0.0
        self._unseen = 0
        #: The shown series got records its paper P&L depends on (redrawn once a second).
        self._pnl_stale = False
        self._load()
        if (pair, timeframe) != (self.pair, self.timeframe):
            # A missing, empty or unknown parameter: the URL says what is shown, once the
            # page has loaded (the browser sends its own URL to the session on loading).
            pn.state.onload(self._update_url)
        self.controls.pair_select.param.watch(self._on_pair, "value")
        self.controls.tf_select.param.watch(self._on_timeframe, "value")
        self.controls.k_input.param.watch(self._on_k, "value")
        self._update_health()
        self.callback = pn.state.add_periodic_callback(self._tick, period=UPDATE_MS)

    @property
    def pair(self) -> str:
        """The selected pair ``Y/X``."""
        return self.controls.pair

    @property
    def timeframe(self) -> str:
        """The selected timeframe."""
        return self.controls.timeframe

    # -- loading --------------------------------------------------------------------------
    def _load(self) -> None:
        """(Re)load the selected series' history into the charts (on a user action only)."""
        self._cursor = self.feed.seq
        pair, timeframe = self.pair, self.timeframe
        rows = self.feed.pairs(pair, timeframe, limit=self.history) if pair else []
        alerts = self.feed.alerts(pair, timeframe, limit=ALERT_ROWS) if pair else []
        self._pnl_stale = False
        self.series.show(pair, timeframe, rows, alerts, self.controls.k, self._book(pair),
                         self._pnl(rows[-1]["price"] if rows else "log"))
        self.whatif.start_at(rows)
        self._update_waiting()
        self._update_badge()
        self.controls.name_downloads(self.series.legs, timeframe)

    def _book(self, pair: str) -> BookRows:
        """The series' quote bars of both legs and its costs (empty for a run without quotes)."""
        if not pair:
            return [], [], []
        y, _, x = pair.partition("/")
        timeframe, limit = self.timeframe, self.history
        return (self.feed.quotes(y, timeframe, limit=limit),
                self.feed.quotes(x, timeframe, limit=limit),
                self.feed.costs(pair, timeframe, limit=limit))

    def _pnl(self, price: str) -> PnlData | None:
        """The series' paper P&L (None: a run without, or no pair selected)."""
        if not self.pair:
            return None
        return load_pnl(self.feed, self.pair, self.timeframe, price, self.history)

    def _update_waiting(self) -> None:
        if self._unknown_shown:
            return
        if self.series.last is None:
            what = f" for {self.pair} {self.timeframe}" if self.pair else ""
            self.message.object = (f"Waiting for data{what} from {self.settings.source}… "
                                   "Charts fill in as soon as the flow writes pair statistics.")
            self.message.visible = True
        else:
            self.message.visible = False

    # -- user actions -------------------------------------------------------------------
    def _on_pair(self, event: Any) -> None:
        if self._mute.active:
            return
        timeframes = timeframes_of(self.feed.keys(), self.pair)
        select_tf = self.controls.tf_select
        with self._mute():
            select_tf.options = timeframes
            if select_tf.value not in timeframes and timeframes:
                select_tf.value = timeframes[0]
        self._switch()

    def _on_timeframe(self, event: Any) -> None:
        if self._mute.active:
            return
        self._switch()

    def _switch(self) -> None:
        if self._unknown_shown:
            self._unknown_shown = False
            self.message.visible = False
        self._load()
        self._update_url()

    def _update_url(self) -> None:
        if not self.pair:
            return
        try:
            pn.state.location.update_query(pair=self.pair, timeframe=self.timeframe)
        except Exception:  # noqa: BLE001 - no location outside a server session
            pass

    def _on_k(self, event: Any) -> None:
        bands = self.series.bands
        self.series.set_bands(Bands(self.controls.k, bands.entry, bands.exit))

    # -- streaming ----------------------------------------------------------------------
    @staticmethod
    def _connected() -> bool:
        """Whether a browser is connected to this session (its tab may have closed)."""
        context = getattr(pn.state.curdoc, "session_context", None)
        session = getattr(context, "session", None)
        return session is None or session.connection_count > 0

    def _tick(self) -> None:
        # Nothing is sent to a closed tab: Bokeh would log every failed send until Panel
        # destroys the session; the rows wait in the feed's log should the tab reconnect.
        if not self._connected():
            return
        self._ticks += 1
        status = self.feed.status
        self.banner.show(status)
        if self._follow_source(status):
            return
        seq, rows, lost = self.feed.since(self._cursor)
        if lost:  # the rows after the cursor left the feed's log
            self._load()
            return
        self._cursor = seq
        if self._ticks % TICKS_PER_S == 0 and self._every_second(status, rows):
            return
        if rows:
            self._take(rows)

    def _follow_source(self, status: FeedStatus) -> bool:
        """Reload after the feed (re)connected to its source; True when it did."""
        if status.generation == self._generation:
            return False
        self._generation = status.generation
        if not self.pair:
            self._refresh_options()
        else:
            self._load()
        return True

    def _every_second(self, status: FeedStatus, rows: list[tuple[str, dict]]) -> bool:
        """Update the badge and the health card; retry a waiting series' history (True)."""
        if self._ticks % (HEALTH_EVERY_S * TICKS_PER_S) == 0:
            self._update_health(status)
        if self._pnl_stale and self.series.last is not None:
            self._pnl_stale = False
            self.series.pnl.update(self._pnl(self.series.last["price"]))
        self._update_badge(status)
        if self.series.last is None and self.pair and not rows:
            # Still no history for the selected series: ask again once a second, so a
            # history read that failed (store locked or half-written at that moment)
            # does not leave the page waiting for rows the feed will never stream.
            self._load()
            return True
        return False

    def _take(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Hand the feed's new rows of the selected series to the charts."""
        pair, timeframe = self.pair, self.timeframe
        legs = self.series.legs
        mine: dict[str, list[dict[str, Any]]] = {}
        new_keys = False
        for table, row in rows:
            if table == "pairs" and (row["pair"] not in self.controls.pair_select.options
                                     or not pair):
                new_keys = True
            if row.get("timeframe") == timeframe and (
                    row.get("pair") == pair or (table == "quotes" and row["symbol"] in legs)):
                mine.setdefault(table, []).append(row)
        if new_keys:
            self._refresh_options()
        new_stats = [r for r in mine.get("pairs", ()) if r["ts"] > self.series.last_ts]
        if new_stats:
            self._stream_stats(new_stats)
        if mine.get("alerts"):
            self._stream_alerts(mine["alerts"])
        quotes, costs = mine.get("quotes", []), mine.get("costs", [])
        # Before the series' first statistics the book waits: the first ones reload it all.
        if (quotes or costs) and self.series.last is not None:
            self.series.book.stream(quotes, costs)
        # The curve moves with every bar while a position is open; P&L records bring it in.
        if mine.get("trades") or mine.get("pnl") or (
                self.series.pnl.data is not None and mine.keys() & {"pairs", "quotes", "alerts"}):
            self._pnl_stale = True

    def _refresh_options(self) -> None:
        pairs = known_pairs(self.feed.keys())
        select_pair = self.controls.pair_select
        if not self.pair and pairs:
            select_pair.options = pairs
            select_pair.value = pairs[0]  # first data after waiting: show it
            return
        with self._mute():
            select_pair.options = pairs if self.pair in pairs else [*pairs, self.pair]

    def _stream_stats(self, rows: list[dict[str, Any]]) -> None:
        if self.series.last is None:
            self._load()  # first data of a waiting series: rebase on it
            return
        rows.sort(key=lambda r: r["ts"])
        self.series.stream_stats(rows)

    def _stream_alerts(self, rows: list[dict[str, Any]]) -> None:
        fresh = self.series.stream_alerts(rows)
        if not fresh:
            return
        # One toast counts the alerts since it opened, instead of a stack covering the page.
        now = time.monotonic()
        self._unseen = (self._unseen if now < self._toast_until else 0) + len(fresh)
        self._toast_until = now + TOAST_S
        newest = fresh[-1]
        text = (f"{newest['pair']} {newest['timeframe']} {short_time(newest['ts'])}: "
                f"{newest['kind']} at z = {newest['zscore']:.2f} — "
                f"{direction(newest['kind'], newest.get('beta'))}")
        if self._unseen > 1:
            text = f"{self._unseen} new alerts; newest {text}"
        try:
            if self._toast is not None:
                self._toast.destroy()
            self._toast = pn.state.notifications.warning(text, duration=int(TOAST_S * 1000))
        except Exception:  # noqa: BLE001 - notifications off
            pass

    def _update_badge(self, status: FeedStatus | None = None) -> None:
        status = status or self.feed.status
        arrived = max(status.last_row.values(), default=None)
        self.controls.show_freshness(*freshness(
            reachable=status.ok or status.message == "starting", live=bool(self.feed.health()),
            newest_ts=self.series.last_ts if self.series.last is not None else None,
            timeframe=self.timeframe, arrived=arrived, now=time.time()))

    def _update_health(self, status: FeedStatus | None = None) -> None:
        status = status or self.feed.status
        self.health_view.object = health_html(self.settings, status, self.feed.health(),
                                              time.time())

    # -- export -------------------------------------------------------------------------
    def _export_range(self) -> tuple[int | None, int | None]:
        """The visible range as a ``[start, end)`` time range (the end bar included)."""
        start, end = self.series.visible_range()
        return start, (end + 1 if end is not None else None)

    def _csv_stats(self) -> io.StringIO:
        rows = self.feed.pairs(self.pair, self.timeframe, time_range=self._export_range())
        return io.StringIO(to_csv(rows, PairStats))

    def _csv_bars(self) -> io.StringIO:
        rows = []
        for symbol in self.series.legs:
            rows += self.feed.bars(symbol, self.timeframe, time_range=self._export_range())
        rows.sort(key=lambda r: (r["end"], r["symbol"]))
        return io.StringIO(to_csv(rows, Bar))

    def _csv_alerts(self) -> io.StringIO:
        rows = self.feed.alerts(self.pair, self.timeframe)
        return io.StringIO(to_csv(rows, Alert))

    # -- layout -------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        side = pn.Column(
            self.whatif,
            pn.Card(self.series.alert_feed, title="Alerts (newest first)", collapsible=False,
                    sizing_mode="stretch_width"),
            pn.Card(self.health_view, title="Feed health", collapsible=False,
                    sizing_mode="stretch_width"),
            width=380)
        return pn.Column(
            self.controls, self.banner.pane, self.message, self.series.kpis,
            pn.Row(self.series.chart_pane, side, sizing_mode="stretch_width"),
            self.series.pnl.card, sizing_mode="stretch_width")
