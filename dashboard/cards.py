"""The HTML cards (pure): KPIs of the newest pair record, the alert list, the feed health."""

from __future__ import annotations

import html
import math
from typing import Any

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
"""


def fmt_value(value: Any, digits: int = 4) -> str:
    """A number for a card: ``digits`` significant digits, a dash for missing or NaN."""
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
        ("last z", fmt_value(row.get("zscore"), 4), "kpi-z"),
        ("β", fmt_value(row.get("beta"), 6), "kpi-beta"),
        ("half-life (bars)", fmt_value(row.get("half_life"), 4), "kpi-halflife"),
        ("ADF p", fmt_value(row.get("adf_pvalue"), 3), "kpi-adf"),
        ("EG p", fmt_value(row.get("eg_pvalue"), 3), "kpi-eg"),
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


def health_html(settings: FeedSettings, status: FeedStatus, streams: list[dict[str, Any]],
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
