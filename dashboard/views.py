"""The per-session dashboard: selectors, linked charts, KPIs, alerts, health, what-if, export.

Each browser session builds one :class:`PairDashboard`. It loads the selected series' recent
history from the process's :class:`~dashboard.feed.Feed`, then a periodic callback (which Panel
stops when the page closes) takes the feed's new rows and appends them to the charts' sources
with ``ColumnDataSource.stream(…, rollover=history)``: a patch of the new rows only, bounded
memory, and the user's zoom is left alone.
"""

from __future__ import annotations

import html
import io
import logging
import math
import threading
import time
from functools import partial
from typing import Any

import numpy as np
import panel as pn
from bokeh.layouts import column as bk_column
from bokeh.models import ColumnDataSource, DataRange1d

from dashboard import charts
from dashboard.export import to_csv
from dashboard.feed import Feed, FeedSettings
from dashboard.whatif import recompute
from pairflow.pairs import PairSettings
from pairflow.records import Alert, Bar, PairStats, us_to_iso

logger = logging.getLogger(__name__)

#: Milliseconds between two updates of a session.
UPDATE_MS = 100
#: Alerts kept in the feed list.
ALERT_ROWS = 50

CSS = """
.pf-kpis { display: flex; flex-wrap: wrap; gap: 8px; }
.pf-kpi { border: 1px solid #ddd; border-radius: 6px; padding: 6px 12px; min-width: 110px;
          background: #fafafa; }
.pf-kpi .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.pf-kpi .l { font-size: 11px; color: #666; }
table.pf { border-collapse: collapse; font-size: 12px; width: 100%; }
table.pf td, table.pf th { border-bottom: 1px solid #eee; padding: 2px 4px; text-align: left; }
.pf-enter_upper { color: #d62728; } .pf-enter_lower { color: #2ca02c; } .pf-exit { color: #777; }
"""


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def kpi_html(row: dict[str, Any] | None) -> str:
    """KPI cards of the newest pair record (pure)."""
    if row is None:
        return "<div class='pf-kpis' id='pf-kpis'>no statistics yet</div>"
    cards = [
        ("last z", _fmt(row.get("zscore"), 4), "kpi-z"),
        ("β", _fmt(row.get("beta"), 6), "kpi-beta"),
        ("half-life (bars)", _fmt(row.get("half_life"), 4), "kpi-halflife"),
        ("ADF p", _fmt(row.get("adf_pvalue"), 3), "kpi-adf"),
        ("EG p", _fmt(row.get("eg_pvalue"), 3), "kpi-eg"),
        ("bars in window", f"{row.get('n')} / {row.get('window')}", "kpi-n"),
        ("last bar end (UTC)", us_to_iso(row["ts"])[:-8].replace("T", " "), "kpi-ts"),
    ]
    body = "".join(f"<div class='pf-kpi' id='{i}'><div class='l'>{html.escape(label)}</div>"
                   f"<div class='v'>{html.escape(value)}</div></div>" for label, value, i in cards)
    reason = row.get("reason")
    note = f"<div class='pf-kpi'><div class='l'>note</div>{html.escape(reason)}</div>" if reason \
        else ""
    return f"<div class='pf-kpis' id='pf-kpis' data-ts='{row['ts']}'>{body}{note}</div>"


def alerts_html(rows: list[dict[str, Any]]) -> str:
    """The alert feed, newest first (pure)."""
    if not rows:
        return "<div id='pf-alerts'><i>no alerts for this pair and timeframe</i></div>"
    lines = "".join(
        f"<tr class='pf-{html.escape(r['kind'])}'><td>{us_to_iso(r['ts'])[11:23]}</td>"
        f"<td>{html.escape(r['kind'])}</td><td>{r['zscore']:.3f}</td>"
        f"<td>{r['threshold']:g}</td></tr>" for r in reversed(rows))
    return (f"<div id='pf-alerts' data-count='{len(rows)}'><table class='pf'><tr><th>time"
            f"</th><th>kind</th><th>z</th><th>threshold</th></tr>{lines}</table></div>")


def health_html(settings: FeedSettings, status: Any, streams: list[dict[str, Any]],
                now: float) -> str:
    """The feed health view: the dashboard's own feed and the flow's live streams (pure)."""
    def age(t: float | None) -> str:
        return "–" if t is None else f"{max(now - t, 0):.1f} s"

    state = "ok" if status.ok else f"DOWN: {status.message}"
    rows = [("source", settings.source), ("state", state),
            ("reconnects", str(status.reconnects)), ("last read", age(status.last_ok))]
    for table in ("bars", "pairs", "alerts"):
        newest = status.last_event_ts.get(table)
        rows.append((f"{table}: last row", age(status.last_row.get(table)) +
                     (f" (event {us_to_iso(newest)[11:19]})" if newest else "")))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in rows)
    out = f"<div id='pf-health'><table class='pf'>{body}</table>"
    if streams:
        head = ("<tr><th>stream</th><th>conn</th><th>age</th><th>msg/s</th><th>reconn</th>"
                "<th>gaps</th><th>lat p50/p99 ms</th></tr>")
        lines = "".join(
            f"<tr><td>{html.escape(s['stream'])}</td><td>{'yes' if s['connected'] else 'NO'}"
            f"</td><td>{_fmt(s['last_message_age_s'], 3)} s</td>"
            f"<td>{_fmt(s['messages_per_s'], 3)}</td><td>{s['reconnects']}</td>"
            f"<td>{s['gaps_found']} ({s['gaps_unrecovered']} lost)</td>"
            f"<td>{_fmt(s['latency_p50_ms'], 3)}/{_fmt(s['latency_p99_ms'], 3)}</td></tr>"
            for s in streams)
        out += f"<p><b>Live streams</b> (flow health records)</p><table class='pf'>{head}" \
               f"{lines}</table>"
    else:
        out += "<p><i>no live-stream health records (replay or no live flow)</i></p>"
    return out + "</div>"


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
        keys = feed.keys()
        pairs = sorted({p for p, _ in keys})
        self.message = pn.pane.Alert("", alert_type="warning", visible=False,
                                     sizing_mode="stretch_width", css_classes=["pf-message"])
        self.banner = pn.pane.Alert("", alert_type="danger", visible=False,
                                    sizing_mode="stretch_width", css_classes=["pf-banner"])
        unknown = None
        if pair is not None:
            pair = pair.upper()
            if pairs and pair not in pairs:
                unknown = pair
                pair = None
        if pair is None:
            pair = pairs[0] if pairs else ""
        options = pairs if pair in pairs or not pair else [*pairs, pair]
        self.pair_select = pn.widgets.Select(name="Pair", options=options, value=pair or None,
                                             width=200)
        timeframes = self._timeframes(pair)
        if timeframe is None or (timeframes and timeframe not in timeframes):
            if timeframe is not None and timeframes:
                unknown = unknown or f"{pair} {timeframe}"
            timeframe = timeframes[0] if timeframes else (timeframe or "")
        tf_options = timeframes if timeframe in timeframes or not timeframe \
            else [*timeframes, timeframe]
        self.tf_select = pn.widgets.Select(name="Timeframe", options=tf_options,
                                           value=timeframe or None, width=110)
        if unknown:
            self.message.object = (f"Unknown pair or timeframe **{html.escape(unknown)}** in "
                                   f"the URL. Known pairs: {', '.join(pairs)}. Showing "
                                   f"{pair} {timeframe} instead.")
            self.message.visible = True
            self._unknown_shown = True
        else:
            self._unknown_shown = False
        self.k_input = pn.widgets.FloatInput(name="Band k (σ)", value=2.0, step=0.5, start=0.1,
                                             width=110)
        self.follow_button = pn.widgets.Button(name="Follow newest", button_type="primary",
                                               width=130, css_classes=["pf-follow"])
        self.follow_button.js_on_click(args={"names": list(charts.FIGURE_NAMES)},
                                       code=charts.FOLLOW_JS)
        self.download_stats = pn.widgets.FileDownload(
            callback=self._csv_stats, filename="stats.csv", label="Stats CSV (visible range)",
            button_type="light", width=190, css_classes=["pf-dl-stats"])
        self.download_bars = pn.widgets.FileDownload(
            callback=self._csv_bars, filename="bars.csv", label="Bars CSV (visible range)",
            button_type="light", width=180, css_classes=["pf-dl-bars"])
        self.download_alerts = pn.widgets.FileDownload(
            callback=self._csv_alerts, filename="alerts.csv", label="Alerts CSV",
            button_type="light", width=120, css_classes=["pf-dl-alerts"])
        # What-if controls.
        self.w_window = pn.widgets.IntInput(name="Window (bars)", value=300, start=10,
                                            step=10, width=150)
        self.w_price = pn.widgets.Select(name="Price transform", options=["log", "raw"],
                                         value="log", width=150)
        self.w_lag = pn.widgets.Select(name="ADF/EG lag", options=["aic", "bic", "0", "1", "2",
                                                                   "4", "8"], width=150)
        self.w_entry = pn.widgets.FloatInput(name="Entry |z|", value=2.0, step=0.25, start=0.1,
                                             width=150)
        self.w_exit = pn.widgets.FloatInput(name="Exit |z|", value=0.5, step=0.25, start=0.0,
                                            width=150)
        self.w_cooldown = pn.widgets.IntInput(name="Cooldown (bars)", value=0, start=0,
                                              width=150)
        self.w_status = pn.pane.Markdown("Change a setting to recompute this pair's history "
                                         "from stored bars.", css_classes=["pf-whatif-status"],
                                         sizing_mode="stretch_width")
        self.kpis = pn.pane.HTML(kpi_html(None), sizing_mode="stretch_width", stylesheets=[CSS])
        self.alert_feed = pn.pane.HTML(alerts_html([]), sizing_mode="stretch_width",
                                       max_height=320, styles={"overflow-y": "auto"},
                                       stylesheets=[CSS])
        self.health_view = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[CSS])
        self.chart_pane = pn.pane.Bokeh(sizing_mode="stretch_width")
        self._alerts: list[dict[str, Any]] = []
        self._last: dict[str, Any] | None = None
        self._last_ts = -1
        self._cursor = 0
        self._generation = feed.status.generation
        self._status_key: tuple | None = None
        self._ticks = 0
        self._whatif_gen = 0
        self._muted = False
        self._load()
        self.pair_select.param.watch(self._on_pair, "value")
        self.tf_select.param.watch(self._on_timeframe, "value")
        self.k_input.param.watch(self._on_k, "value")
        for widget in (self.w_window, self.w_price, self.w_lag, self.w_entry, self.w_exit,
                       self.w_cooldown):
            widget.param.watch(self._on_whatif, "value")
        self.w_entry.param.watch(self._on_thresholds, "value")
        self.w_exit.param.watch(self._on_thresholds, "value")
        self._update_health()
        self.callback = pn.state.add_periodic_callback(self._tick, period=UPDATE_MS)

    # -- loading --------------------------------------------------------------------------
    def _timeframes(self, pair: str) -> list[str]:
        from pairflow.timeframes import timeframe_us

        names = {t for p, t in self.feed.keys() if p == pair}

        def length(name: str) -> int:
            try:
                return timeframe_us(name)
            except Exception:  # noqa: BLE001 - unknown names sort last
                return 1 << 62

        return sorted(names, key=length)

    @property
    def pair(self) -> str:
        """The selected pair ``Y/X``."""
        return self.pair_select.value or ""

    @property
    def timeframe(self) -> str:
        """The selected timeframe."""
        return self.tf_select.value or ""

    @property
    def legs(self) -> tuple[str, str]:
        """The pair's ``(Y, X)`` symbols."""
        y, _, x = self.pair.partition("/")
        return y, x

    def _load(self) -> None:
        """(Re)load the selected series: new sources and figures (on a user action only)."""
        self._cursor = self.feed.seq
        rows = self.feed.pairs(self.pair, self.timeframe, limit=self.history) if self.pair \
            else []
        self._alerts = self.feed.alerts(self.pair, self.timeframe, limit=ALERT_ROWS) \
            if self.pair else []
        frame = charts.rows_frame(rows, tuple(f for f in _pair_fields()))
        self._price = rows[-1]["price"] if rows else "log"
        y_all = charts.closes(charts._floats(frame["y"]), self._price)
        x_all = charts.closes(charts._floats(frame["x"]), self._price)
        self._base = (charts.first_finite(y_all), charts.first_finite(x_all))
        columns = charts.pair_columns(frame, self.k_input.value, self._price, self._base)
        alert_frame = charts.rows_frame(self._alerts, tuple(_alert_fields()))
        if not hasattr(self, "figs"):
            self.pair_source = ColumnDataSource(columns, name="pair_source")
            self.alert_source = ColumnDataSource(charts.alert_columns(alert_frame),
                                                 name="alert_source")
            self.whatif_source = ColumnDataSource(charts.empty(charts.WHATIF_COLUMNS),
                                                  name="whatif_source")
            self.whatif_alert_source = ColumnDataSource(charts.empty(charts.ALERT_COLUMNS),
                                                        name="whatif_alert_source")
            self.figs = charts.build_figures(self.pair_source, self.alert_source,
                                             self.whatif_source, self.whatif_alert_source,
                                             self.legs)
            self.chart_pane.object = bk_column([self.figs[n] for n in charts.FIGURE_NAMES],
                                               sizing_mode="stretch_width")
        else:
            # A user action (switch, reload): replace the data, not the figures, and start
            # following again with a fresh shared x-range.
            self.pair_source.data = columns
            self.alert_source.data = charts.alert_columns(alert_frame)
            self.whatif_source.data = charts.empty(charts.WHATIF_COLUMNS)
            self.whatif_alert_source.data = charts.empty(charts.ALERT_COLUMNS)
            charts.relabel(self.figs, self.legs)
            x_range = DataRange1d(range_padding=0.02, range_padding_units="percent")
            for name in charts.FIGURE_NAMES:
                self.figs[name].x_range = x_range
            self.figs["x_range"] = x_range
        self._last = rows[-1] if rows else None
        self._last_ts = rows[-1]["ts"] if rows else -1
        self._set_thresholds_from(rows)
        self._update_spans()
        self.kpis.object = kpi_html(self._last)
        self.alert_feed.object = alerts_html(self._alerts)
        self._update_waiting()
        y, x = self.legs
        tag = f"{y}-{x}-{self.timeframe}"
        self.download_stats.filename = f"pairflow-stats-{tag}.csv"
        self.download_bars.filename = f"pairflow-bars-{tag}.csv"
        self.download_alerts.filename = f"pairflow-alerts-{tag}.csv"
        self.w_status.object = ("Change a setting to recompute this pair's history from "
                                "stored bars.")

    def _set_thresholds_from(self, rows: list[dict[str, Any]]) -> None:
        """Start the what-if controls at the live settings (window, price, lag, thresholds)."""
        with self._quiet():
            if rows:
                self.w_window.value = int(rows[-1]["window"])
                self.w_price.value = rows[-1]["price"]
                lag = str(rows[-1]["lag"])
                if lag not in self.w_lag.options:
                    self.w_lag.options = [*self.w_lag.options, lag]
                self.w_lag.value = lag
            entries = [abs(a["threshold"]) for a in self._alerts if a["kind"] != "exit"]
            exits = [abs(a["threshold"]) for a in self._alerts if a["kind"] == "exit"]
            if entries:
                self.w_entry.value = entries[-1]
            if exits:
                self.w_exit.value = exits[-1]

    def _update_spans(self) -> None:
        entry, exit_ = self.w_entry.value or 0.0, self.w_exit.value or 0.0
        self.figs["entry_hi"].location = entry
        self.figs["entry_lo"].location = -entry
        self.figs["exit_hi"].location = exit_
        self.figs["exit_lo"].location = -exit_

    def _update_waiting(self) -> None:
        if self._unknown_shown:
            return
        if self._last is None:
            what = f" for {self.pair} {self.timeframe}" if self.pair else ""
            self.message.object = (f"Waiting for data{what} from {self.settings.source}… "
                                   "Charts fill in as soon as the flow writes pair statistics.")
            self.message.visible = True
        else:
            self.message.visible = False

    # -- user actions -------------------------------------------------------------------
    def _quiet(self) -> _Quiet:
        return _Quiet(self)

    def _on_pair(self, event: Any) -> None:
        if self._muted:
            return
        timeframes = self._timeframes(self.pair)
        with self._quiet():
            self.tf_select.options = timeframes
            if self.tf_select.value not in timeframes and timeframes:
                self.tf_select.value = timeframes[0]
        self._switch()

    def _on_timeframe(self, event: Any) -> None:
        if self._muted:
            return
        self._switch()

    def _switch(self) -> None:
        if self._unknown_shown:
            self._unknown_shown = False
            self.message.visible = False
        self._load()
        try:
            pn.state.location.update_query(pair=self.pair, timeframe=self.timeframe)
        except Exception:  # noqa: BLE001 - no location outside a server session
            pass

    def _on_k(self, event: Any) -> None:
        self._load_bands()

    def _load_bands(self) -> None:
        rows = self.feed.pairs(self.pair, self.timeframe, limit=self.history)
        frame = charts.rows_frame(rows, tuple(_pair_fields()))
        columns = charts.pair_columns(frame, self.k_input.value or 0.0, self._price, self._base)
        self.pair_source.data = columns
        self._last_ts = rows[-1]["ts"] if rows else -1

    def _on_thresholds(self, event: Any) -> None:
        self._update_spans()

    def _on_whatif(self, event: Any) -> None:
        if self._muted:
            return
        self._whatif_gen += 1
        generation = self._whatif_gen
        try:
            settings = PairSettings(
                window=int(self.w_window.value), price=self.w_price.value,
                lag=self.w_lag.value, entry_z=float(self.w_entry.value),
                exit_z=float(self.w_exit.value), cooldown_bars=int(self.w_cooldown.value))
        except Exception as error:  # noqa: BLE001 - shown to the user
            self.w_status.object = f"**Cannot recompute:** {html.escape(str(error))}"
            return
        self.w_status.object = "Recomputing…"
        y, x = self.legs
        limit = self.history + settings.window
        pair, timeframe = self.pair, self.timeframe
        y_bars = self.feed.bars(y, timeframe, limit=limit)
        x_bars = self.feed.bars(x, timeframe, limit=limit)
        doc = pn.state.curdoc

        def work() -> None:
            # Off the server's event loop; the result is applied on the session's next tick.
            try:
                result: Any = recompute(pair, timeframe, y_bars, x_bars, settings)
            except Exception as error:  # noqa: BLE001 - shown to the user
                result = error
            if doc is None:
                self._apply_whatif(generation, pair, timeframe, settings, result)
            else:
                doc.add_next_tick_callback(partial(self._apply_whatif, generation, pair,
                                                   timeframe, settings, result))

        threading.Thread(target=work, name="whatif", daemon=True).start()

    def _apply_whatif(self, generation: int, pair: str, timeframe: str,
                      settings: PairSettings, result: Any) -> None:
        if isinstance(result, Exception):
            self.w_status.object = f"**Cannot recompute:** {html.escape(str(result))}"
            return
        if generation != self._whatif_gen or (pair, timeframe) != (self.pair, self.timeframe):
            return  # superseded by a newer change
        self.whatif_source.data = charts.whatif_columns(result.ts, result.zscore)
        alert_frame = charts.rows_frame(result.alerts, tuple(_alert_fields()))
        self.whatif_alert_source.data = charts.alert_columns(alert_frame)
        z = result.zscore
        last = f"{z[-1]:.4f}" if len(z) and np.isfinite(z[-1]) else "–"
        self.w_status.object = (
            f"Recomputed **{len(result.ts)}** aligned bars in "
            f"**{result.seconds * 1000:.0f} ms** (window {settings.window}, "
            f"{settings.price}, lag {settings.lag}): last what-if z **{last}** vs live "
            f"**{_fmt((self._last or {}).get('zscore'), 4)}**; "
            f"{len(result.alerts)} what-if alerts (live feed shows {len(self._alerts)}).")

    # -- streaming ----------------------------------------------------------------------
    def _tick(self) -> None:
        self._ticks += 1
        status = self.feed.status
        key = (status.ok, status.message)
        if key != self._status_key:
            self._status_key = key
            self.banner.object = (f"**{self.settings.source} is unreachable:** "
                                  f"{html.escape(status.message)} — retrying…")
            self.banner.visible = not status.ok and status.message != "starting"
        if status.generation != self._generation:
            self._generation = status.generation
            if not self.pair:
                self._refresh_options()
            else:
                self._load()
            return
        seq, rows, lost = self.feed.since(self._cursor)
        if lost:
            self._load()
            return
        self._cursor = seq
        if self._ticks % max(1, 1000 // UPDATE_MS) == 0:
            self._update_health(status)
            if self._last is None and self.pair and not rows:
                # Still no history for the selected series: ask again once a second, so a
                # history read that failed (store locked or half-written at that moment)
                # does not leave the page waiting for rows the feed will never stream.
                self._load()
                return
        if not rows:
            return
        pair, timeframe = self.pair, self.timeframe
        new_stats, new_alerts, new_keys = [], [], False
        for table, row in rows:
            if table == "pairs":
                if row["pair"] == pair and row["timeframe"] == timeframe:
                    if row["ts"] > self._last_ts:
                        new_stats.append(row)
                elif row["pair"] not in self.pair_select.options or not pair:
                    new_keys = True
            elif table == "alerts" and row["pair"] == pair and row["timeframe"] == timeframe:
                new_alerts.append(row)
        if new_keys:
            self._refresh_options()
        if new_stats:
            self._stream_stats(new_stats)
        if new_alerts:
            self._stream_alerts(new_alerts)

    def _refresh_options(self) -> None:
        pairs = sorted({p for p, _ in self.feed.keys()})
        if not self.pair and pairs:
            self.pair_select.options = pairs
            self.pair_select.value = pairs[0]  # first data after waiting: show it
            return
        with self._quiet():
            self.pair_select.options = pairs if self.pair in pairs else [*pairs, self.pair]

    def _stream_stats(self, rows: list[dict[str, Any]]) -> None:
        rows.sort(key=lambda r: r["ts"])
        if self._last is None:
            # First data of a waiting series: rebase on it.
            self._load()
            return
        frame = charts.rows_frame(rows, tuple(_pair_fields()))
        columns = charts.pair_columns(frame, self.k_input.value or 0.0, self._price, self._base)
        self.pair_source.stream(columns, rollover=self.history)
        self._last = rows[-1]
        self._last_ts = rows[-1]["ts"]
        self.kpis.object = kpi_html(self._last)

    def _stream_alerts(self, rows: list[dict[str, Any]]) -> None:
        known = {a["alert_id"] for a in self._alerts}
        fresh = sorted((r for r in rows if r["alert_id"] not in known), key=lambda r: r["ts"])
        if not fresh:
            return
        frame = charts.rows_frame(fresh, tuple(_alert_fields()))
        self.alert_source.stream(charts.alert_columns(frame), rollover=self.history)
        self._alerts = (self._alerts + fresh)[-ALERT_ROWS:]
        self.alert_feed.object = alerts_html(self._alerts)
        newest = fresh[-1]
        try:
            pn.state.notifications.warning(
                f"{newest['pair']} {newest['timeframe']}: {newest['kind']} at z = "
                f"{newest['zscore']:.2f}", duration=6000)
        except Exception:  # noqa: BLE001 - notifications off
            pass

    def _update_health(self, status: Any = None) -> None:
        status = status or self.feed.status
        self.health_view.object = health_html(self.settings, status, self.feed.health(),
                                              time.time())

    # -- export -------------------------------------------------------------------------
    def visible_range(self) -> tuple[int | None, int | None]:
        """The charts' visible time range in µs ``[start, end]`` (None: unbounded)."""
        x_range = self.figs["x_range"]
        start, end = x_range.start, x_range.end
        if start is None or end is None or not (math.isfinite(start) and math.isfinite(end)):
            return None, None
        return int(math.floor(start * 1000)), int(math.ceil(end * 1000))

    def _export_range(self) -> tuple[int | None, int | None]:
        start, end = self.visible_range()
        return start, (end + 1 if end is not None else None)

    def _csv_stats(self) -> io.StringIO:
        rows = self.feed.pairs(self.pair, self.timeframe, time_range=self._export_range())
        return io.StringIO(to_csv(rows, PairStats))

    def _csv_bars(self) -> io.StringIO:
        rows = []
        for symbol in self.legs:
            rows += self.feed.bars(symbol, self.timeframe, time_range=self._export_range())
        rows.sort(key=lambda r: (r["end"], r["symbol"]))
        return io.StringIO(to_csv(rows, Bar))

    def _csv_alerts(self) -> io.StringIO:
        rows = self.feed.alerts(self.pair, self.timeframe)
        return io.StringIO(to_csv(rows, Alert))

    # -- layout -------------------------------------------------------------------------
    def __panel__(self) -> pn.viewable.Viewable:
        """The page."""
        header = pn.Row(
            pn.pane.Markdown("## pairflow", margin=(0, 20, 0, 5)), self.pair_select,
            self.tf_select, self.k_input, pn.Column(pn.Spacer(height=18), self.follow_button),
            pn.Column(pn.Spacer(height=18), pn.Row(self.download_stats, self.download_bars,
                                                   self.download_alerts)),
            sizing_mode="stretch_width")
        whatif = pn.Card(
            self.w_window, self.w_price, self.w_lag, self.w_entry, self.w_exit, self.w_cooldown,
            self.w_status, title="What-if (recompute from stored bars)", collapsible=False,
            sizing_mode="stretch_width", css_classes=["pf-whatif"])
        side = pn.Column(
            whatif,
            pn.Card(self.alert_feed, title="Alerts (newest first)", collapsible=False,
                    sizing_mode="stretch_width"),
            pn.Card(self.health_view, title="Feed health", collapsible=False,
                    sizing_mode="stretch_width"),
            width=380)
        return pn.Column(
            header, self.banner, self.message, self.kpis,
            pn.Row(self.chart_pane, side, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")


def _pair_fields() -> list[str]:
    from pairflow.records import field_names

    return field_names(PairStats)


def _alert_fields() -> list[str]:
    from pairflow.records import field_names

    return field_names(Alert)




class _Quiet:
    """Context manager: change widgets without running this session's handlers."""

    def __init__(self, owner: PairDashboard) -> None:
        self.owner = owner

    def __enter__(self) -> None:
        self.owner._muted = True

    def __exit__(self, *exc: Any) -> None:
        self.owner._muted = False
