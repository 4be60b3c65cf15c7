"""The HTML cards (pure): KPIs of the newest pair record, the alert list, the feed health."""

from __future__ import annotations

import html
import math
from typing import Any

from dashboard.charts import COINT_P, direction
from dashboard.feed import FeedSettings, FeedStatus
from pairflow.records import us_to_iso

#: Styles of the cards (Panel puts them in each pane's shadow root).
CSS = """
.pf-kpis { display: flex; flex-wrap: wrap; gap: 8px; }
.pf-kpi { border: 1px solid #ddd; border-radius: 6px; padding: 6px 12px; min-width: 110px;
          background: #fafafa; }
.pf-kpi .v { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.pf-kpi .l { font-size: 11px; color: #666; }
table.pf { border-collapse: collapse; font-size: 12px; width: 100%; }
table.pf td, table.pf th { border-bottom: 1px solid #eee; padding: 2px 4px; text-align: left; }
.pf-enter_upper { color: #d62728; } .pf-enter_lower { color: #2ca02c; } .pf-exit { color: #777; }
.pf-coint-yes { background: #e6f4e6; } .pf-coint-no { background: #fdecea; }
.pf-nocoint { font-size: 10px; color: #b00; }
.pf-win td:nth-last-child(2) { color: #2ca02c; } .pf-loss td:nth-last-child(2) { color: #d62728; }
.pf-muted { font-size: 11px; color: #666; }
.pf-badge { display: inline-block; padding: 4px 10px; border-radius: 12px; font-weight: 600;
            font-size: 13px; color: white; background: #777; white-space: nowrap; }
.pf-badge-live { background: #2ca02c; } .pf-badge-stale { background: #e67e00; }
.pf-badge-unreachable { background: #d62728; } .pf-badge-replay { background: #1f77b4; }
"""


def badge_html(state: str, text: str) -> str:
    """The header's data badge (pure): ``state`` picks the colour."""
    return (f"<span class='pf-badge pf-badge-{html.escape(state)}' data-state='"
            f"{html.escape(state)}'>{html.escape(text)}</span>")


def fmt_value(value: Any, digits: int = 4) -> str:
    """A number for a card: ``digits`` significant digits, a dash for missing or NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def short_time(ts_us: int) -> str:
    """A bar time for people: ``2024-08-08 12:34:56`` (milliseconds only when not zero)."""
    iso = us_to_iso(ts_us)
    text = iso[:23] if iso[20:23] != "000" else iso[:19]
    return text.replace("T", " ")


def duration(seconds: float | None) -> str:
    """``seconds`` as a short duration: ``42 s``, ``3.5 min``, ``2.1 h``, ``1.5 d``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def kpi_html(row: dict[str, Any] | None, bar_s: float = math.nan) -> str:
    """KPI cards of the newest pair record (pure); ``bar_s`` is the bar length in seconds."""
    if row is None:
        return "<div class='pf-kpis' id='pf-kpis'>no statistics yet</div>"
    eg = row.get("eg_pvalue")
    coint = None if eg is None else eg < COINT_P
    half_life = row.get("half_life")
    cards = [
        ("last z", fmt_value(row.get("zscore"), 4), "kpi-z", ""),
        ("β", fmt_value(row.get("beta"), 6), "kpi-beta", ""),
        ("half-life", f"{fmt_value(half_life, 3)} bars · "
         f"{duration(half_life * bar_s if half_life is not None else None)}", "kpi-halflife", ""),
        ("cointegrated (EG p < 5 %)", {None: "–", True: "yes", False: "no"}[coint],
         "kpi-coint", {None: "", True: " pf-coint-yes", False: " pf-coint-no"}[coint]),
        ("ADF p", fmt_value(row.get("adf_pvalue"), 3), "kpi-adf", ""),
        ("EG p", fmt_value(eg, 3), "kpi-eg", ""),
        ("bars in window", f"{row.get('n')} / {row.get('window')}", "kpi-n", ""),
        ("last bar end (UTC)", short_time(row["ts"]), "kpi-ts", ""),
    ]
    body = "".join(f"<div class='pf-kpi{extra}' id='{i}'><div class='l'>{html.escape(label)}"
                   f"</div><div class='v'>{html.escape(value)}</div></div>"
                   for label, value, i, extra in cards)
    reason = row.get("reason")
    note = f"<div class='pf-kpi'><div class='l'>note</div>{html.escape(reason)}</div>" if reason \
        else ""
    return f"<div class='pf-kpis' id='pf-kpis' data-ts='{row['ts']}'>{body}{note}</div>"


def alerts_html(rows: list[dict[str, Any]],
                context: dict[int, tuple[float, float, bool | None]]) -> str:
    """The alert feed, newest first (pure).

    Args:
        rows: the alerts, oldest first.
        context: the legs' closes and whether the pair was cointegrated at an alert's bar
            end (µs), where the bar is shown.
    """
    if not rows:
        return "<div id='pf-alerts'><i>no alerts for this pair and timeframe</i></div>"

    def line(r: dict[str, Any]) -> str:
        y_close, x_close, coint = context.get(r["ts"], (None, None, None))
        flag = "<div class='pf-nocoint'>not cointegrated</div>" if coint is False else ""
        return (f"<tr class='pf-{html.escape(r['kind'])}'><td>{short_time(r['ts'])}</td>"
                f"<td>{html.escape(r['kind'])}: {html.escape(direction(r['kind'], r.get('beta')))}"
                f"{flag}</td>"
                f"<td>{r['zscore']:.3f}</td><td>{fmt_value(y_close, 8)}</td>"
                f"<td>{fmt_value(x_close, 8)}</td></tr>")

    lines = "".join(line(r) for r in reversed(rows))
    return (f"<div id='pf-alerts' data-count='{len(rows)}'><table class='pf'><tr><th>time (UTC)"
            f"</th><th>alert: trade</th><th>z</th><th>Y close</th>"
            f"<th>X close</th></tr>{lines}</table></div>")


def health_html(settings: FeedSettings, status: FeedStatus, streams: list[dict[str, Any]],
                now: float) -> str:
    """The feed health view: the dashboard's own feed and the flow's live streams (pure)."""
    def age(t: float | None) -> str:
        return "–" if t is None else f"{max(now - t, 0):.1f} s"

    state = "ok" if status.ok else f"DOWN: {status.message}"
    rows = [("source", settings.source), ("state", state),
            ("reconnects", str(status.reconnects)), ("last read", age(status.last_ok))]
    # Quote bars and costs once some have streamed (a run with quotes): otherwise as before.
    for table in ("bars", "pairs", "alerts",
                  *(t for t in ("quotes", "costs") if t in status.last_row)):
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
            f"</td><td>{fmt_value(s['last_message_age_s'], 3)} s</td>"
            f"<td>{fmt_value(s['messages_per_s'], 3)}</td><td>{s['reconnects']}</td>"
            f"<td>{s['gaps_found']} ({s['gaps_unrecovered']} lost)</td>"
            f"<td>{fmt_value(s['latency_p50_ms'], 3)}/{fmt_value(s['latency_p99_ms'], 3)}</td></tr>"
            for s in streams)
        out += f"<p><b>Live streams</b> (flow health records)</p><table class='pf'>{head}" \
               f"{lines}</table>"
    else:
        out += "<p><i>no live-stream health records (replay or no live flow)</i></p>"
    return out + "</div>"
