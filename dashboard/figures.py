"""The Bokeh figures of one pair, and the browser code that keeps every chart ranged.

The time charts share one ``DataRange1d`` x-range: they pan and zoom together, and it follows
the newest data until the user pans or zooms (BokehJS then stops auto-ranging), and again after
"Follow newest" or a switch to another series (a range reset in the browser; the range model
itself is never replaced, as a fresh one has no extent until BokehJS ranges it, and a chart
painted in between stays blank). Their y-ranges are plain ``Range1d`` ranges fitted
in the browser (:data:`FIT_JS`) to the data in the visible time range, whenever that range or the
data change, so that a chart is never left without a range (BokehJS draws nothing, and warns
"could not set initial ranges", while a ``DataRange1d`` has only NaN to fit) and a narrow band
is never lost in the y-span of older data. A chart the user box-zoomed keeps its y-range until
"Follow newest", its reset tool, or another series.
"""

from __future__ import annotations

from typing import Any

from bokeh.models import (
    ColumnDataSource,
    CrosshairTool,
    CustomJS,
    DataRange1d,
    HoverTool,
    Legend,
    Range1d,
    Span,
)
from bokeh.plotting import figure

from dashboard.charts import COINT_P

#: Names of the pair's time charts, top to bottom (the scatter and histogram sit between z and
#: corr).
PAIR_FIGURES = ("prices", "spread", "zscore", "corr", "pvalues", "beta")
#: Names of the quote charts (shown only for a pair with quotes): the round-trip cost, each
#: leg's quoted spread, both legs' top-of-book imbalance.
BOOK_FIGURES = ("costs", "quote_spread_y", "quote_spread_x", "imbalance")
#: The paper P&L chart (shown only for a pair whose run paper-trades).
PNL_FIGURES = ("pnl",)
#: Every time chart: they share the x-range, and each has a y-range fitted by :data:`FIT_JS`.
FIGURE_NAMES = PAIR_FIGURES + BOOK_FIGURES + PNL_FIGURES
#: Height of the time charts in pixels.
HEIGHTS = {"prices": 200, "spread": 190, "zscore": 210, "corr": 190, "pvalues": 200,
           "beta": 210, "costs": 180, "quote_spread_y": 180, "quote_spread_x": 180,
           "imbalance": 180, "pnl": 220}
#: The break-even band's legend label on the z chart.
BREAKEVEN_LABEL = "break-even ±(exit + round-trip z)"
#: One part of what a chart's y-range fits: columns of a source (by its key in the session's
#: sources) and the name of a renderer that must be visible for them to count (None: always).
FitPart = tuple[str, tuple[str, ...], str | None]
#: What each time chart's y-range fits: its parts, and fixed levels (``entry``: ± the entry
#: threshold, read from the z chart's threshold line). The break-even band counts while it is
#: shown: hiding it (a click on its legend entry) fits the z chart to the z-score again.
FITS: dict[str, tuple[tuple[FitPart, ...], tuple[Any, ...]]] = {
    "prices": ((("pair", ("y_rebased", "x_rebased"), None),), ()),
    "spread": ((("pair", ("residual", "upper", "lower", "entry_hi", "entry_lo"), None),), ()),
    "zscore": ((("pair", ("zscore",), None), ("whatif", ("zscore",), None),
                ("cost", ("breakeven_hi", "breakeven_lo"), "breakeven")), ("entry",)),
    "corr": ((("pair", ("corr",), None),), ()),
    "pvalues": ((("pair", ("adf_pvalue", "eg_pvalue"), None),), (COINT_P,)),
    "beta": ((("pair", ("beta", "beta_lo", "beta_hi", "beta_kalman", "beta_rls"), None),), ()),
    "costs": ((("cost", ("round_trip_bps", "fees_bps"), None),), (0.0,)),
    "quote_spread_y": ((("quote_y", ("spread_bps", "mean_spread_bps", "max_spread_bps"),
                         None),), ()),
    "quote_spread_x": ((("quote_x", ("spread_bps", "mean_spread_bps", "max_spread_bps"),
                         None),), ()),
    "imbalance": ((("quote_y", ("imbalance", "mean_imbalance"), None),
                   ("quote_x", ("imbalance", "mean_imbalance"), None)), ()),
    "pnl": ((("pnl", ("equity",), None), ("pnl_whatif", ("equity",), None)), (0.0,)),
}
#: Charts with a log y-axis: a leg's spread at the close is often one tick (a hundredth of a bp
#: on BTCUSDT) while its max reaches bps; their fit spans the positive values, padded by ratio.
LOG_Y = ("quote_spread_y", "quote_spread_x")

#: Fits the y-range of every time chart the user has not y-zoomed to its data in the visible
#: time range. ``mode`` tells why it runs: a replaced source (another series) or a chart's reset
#: forgets the user's y-zooms; a y-range change not made here marks that chart as user-zoomed.
FIT_JS = """
const st = window.__pf_fit || (window.__pf_fit = {user: new Set(), set: new Map()})
if (mode === 'replace') {
  // Another series: forget the user's zooms; every chart follows the new data again.
  st.user.clear()
  for (const fig of Object.values(figs)) { fig.reset.emit() }
}
if (mode === 'reset') { st.user.delete(fig_id) }
if (mode === 'yrange') {
  // CustomJS runs asynchronously: compare with what the fit set last, not with a flag.
  const r = figs[fig_name].y_range, last = st.set.get(fig_id)
  if (last == null || r.start !== last[0] || r.end !== last[1]) { st.user.add(fig_id) }
  return
}
const xr = figs.zscore.x_range
const x0 = xr.start, x1 = xr.end
const bounded = Number.isFinite(x0) && Number.isFinite(x1)
// The rows [i0, i1) of a source inside the visible time range (its t ascends), once a source.
const shown = new Map()
const inside = (name) => {
  if (!shown.has(name)) {
    const t = sources[name].data.t
    let lo = 0, hi = t.length
    if (bounded) {
      while (lo < hi) { const m = (lo + hi) >> 1; if (t[m] < x0) lo = m + 1; else hi = m }
      const i0 = lo; hi = t.length
      while (lo < hi) { const m = (lo + hi) >> 1; if (t[m] <= x1) lo = m + 1; else hi = m }
      shown.set(name, [i0, lo])
    } else {
      shown.set(name, [0, hi])
    }
  }
  return shown.get(name)
}
const entry = Math.abs(entry_span.location)
{
  for (const [name, [parts, levels]] of Object.entries(fits)) {
    const fig = figs[name]
    // A y-range other than the one fitted last was set by the user (a box zoom also moves x,
    // whose fit may run first) — except right after a reset, which restores the first one.
    const last = st.set.get(fig.id)
    const fresh = mode === 'replace' || (mode === 'reset' && fig.id === fig_id)
    if (!fresh && last != null && (fig.y_range.start !== last[0] || fig.y_range.end !== last[1])) {
      st.user.add(fig.id)
    }
    if (st.user.has(fig.id)) continue
    const log = logs.includes(name)
    let lo = Infinity, hi = -Infinity
    for (const [src, cols, gate] of parts) {
      if (gate != null && !gates[gate].visible) continue
      const data = sources[src].data
      const [i0, i1] = inside(src)
      for (const c of cols) {
        const v = data[c]
        if (v == null) continue
        for (let i = i0; i < i1; i++) {
          const y = v[i]
          if (log && !(y > 0)) continue
          if (y < lo) lo = y
          if (y > hi) hi = y
        }
      }
    }
    if (lo <= hi) {
      for (const l of levels) {
        const v = l === 'entry' ? [entry, -entry] : [l]
        for (const y of v) { if (y < lo) lo = y; if (y > hi) hi = y }
      }
    }
    let y0, y1
    if (log) {
      if (!(lo <= hi)) { lo = 0.1; hi = 1 }
      const ratio = hi > lo ? Math.pow(hi / lo, 0.06) : 1.1
      y0 = lo / ratio; y1 = hi * ratio
    } else {
      if (!(lo <= hi)) { lo = 0; hi = 1 }
      const pad = hi > lo ? 0.06 * (hi - lo) : (Math.abs(hi) * 0.05 || 0.5)
      y0 = lo - pad; y1 = hi + pad
    }
    st.set.set(fig.id, [y0, y1])
    if (fig.y_range.start !== y0 || fig.y_range.end !== y1) {
      fig.y_range.setv({start: y0, end: y1})
    }
  }
}
"""

#: Browser-side "follow newest": reset every chart's ranges to auto-ranging (as the reset tool
#: does), found by name in the page's Bokeh document so it survives a pair switch.
FOLLOW_JS = """
for (const doc of Bokeh.documents) {
  for (const name of names) {
    const fig = doc.get_model_by_name(name)
    if (fig != null) { fig.reset.emit() }
  }
}
"""


def _hover(fields: list[tuple[str, str, str]], **kw: Any) -> HoverTool:
    """A hover tool: the bar end time, then ``(label, column, printf format)`` values."""
    tooltips = [("time", "@t{%F %T}")] + [(label, f"@{{{col}}}{{{fmt}}}")
                                           for label, col, fmt in fields]
    formatters = {"@t": "datetime", **{f"@{{{col}}}": "printf" for _, col, _ in fields}}
    return HoverTool(tooltips=tooltips, formatters=formatters, **{"mode": "vline", **kw})


def _figure(name: str, title: str, x_range: Any, ylabel: str, crosshair: Span,
            height: int | None = None, datetime: bool = True) -> Any:
    log = name in LOG_Y
    fig = figure(
        name=name, title=title, x_range=x_range, y_range=Range1d(0.1 if log else 0, 1),
        y_axis_type="log" if log else "linear",
        x_axis_type="datetime" if datetime else "linear", height=height or HEIGHTS[name],
        sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset,save",
        active_drag="xpan", active_scroll="xwheel_zoom", output_backend="canvas",
        y_axis_label=ylabel, min_border_left=70,
    )
    fig.toolbar.logo = None
    if datetime:
        fig.add_tools(CrosshairTool(overlay=crosshair))
    # Above the plot area: a legend never covers data.
    fig.add_layout(Legend(click_policy="hide", orientation="horizontal", spacing=12,
                          label_text_font_size="11px", padding=2, margin=2), "above")
    return fig


def new_x_range(fit: CustomJS) -> DataRange1d:
    """The shared time range; it re-fits the charts' y-ranges when it moves."""
    x_range = DataRange1d(range_padding=0.02, range_padding_units="percent", tags=[0])
    x_range.js_on_change("start", fit)
    x_range.js_on_change("end", fit)
    return x_range


def _shade(fig: Any, source: ColumnDataSource, bar_ms: float) -> None:
    """Shade the bars where the pair was cointegrated (EG p < 5 %), the chart's full height."""
    fig.extra_y_ranges = {"shade": Range1d(0, 1)}
    fig.vbar(x="t", top="coint", bottom=0, width=bar_ms, source=source, y_range_name="shade",
             color="#2ca02c", alpha=0.08, line_alpha=0, legend_label=f"EG p < {COINT_P:.0%}",
             level="underlay", name=f"{fig.name}_shade")


def build_time_figures(sources: dict[str, ColumnDataSource], legs: tuple[str, str],
                       bar_ms: float) -> dict[str, Any]:
    """The six linked time charts of one pair.

    Args:
        sources: ``pair`` (``PAIR_COLUMNS``), ``alert`` and ``whatif_alert``
            (``ALERT_COLUMNS``), ``whatif`` (``WHATIF_COLUMNS``), ``cost`` (``COST_COLUMNS``:
            the break-even band on the z chart).
        legs: ``(Y, X)`` symbols.
        bar_ms: the timeframe's bar length in ms (width of the cointegration shading).

    Returns:
        The figures by name, the threshold spans ``entry_hi``, ``entry_lo``, ``exit_hi``,
        ``exit_lo``, the shared ``x_range``, the ``fit`` callback, the price lines ``y_line``,
        ``x_line``, the what-if renderers ``whatif_renderers``, the break-even band's
        renderers ``breakeven_renderers`` and the ``crosshair`` the time charts share.
    """
    pair = sources["pair"]
    crosshair = Span(dimension="height", line_color="#888", line_alpha=0.6)
    fit = CustomJS(code=FIT_JS)
    x_range = new_x_range(fit)
    out: dict[str, Any] = {"x_range": x_range, "fit": fit, "crosshair": crosshair}
    y_leg, x_leg = legs

    prices = _figure("prices", price_title(legs), x_range, "close rebased (first = 100)",
                     crosshair)
    _shade(prices, pair, bar_ms)
    out["y_line"] = prices.line("t", "y_rebased", source=pair, color="#1f77b4",
                                legend_label=f"{y_leg} (Y)")
    out["x_line"] = prices.line("t", "x_rebased", source=pair, color="#ff7f0e",
                                legend_label=f"{x_leg} (X)")
    prices.add_tools(_hover([(f"{y_leg} close", "y_close", "%.8g"),
                             (f"{x_leg} close", "x_close", "%.8g"),
                             ("Y rebased", "y_rebased", "%.5g"),
                             ("X rebased", "x_rebased", "%.5g")], renderers=[out["y_line"]]))
    out["prices"] = prices

    spread = _figure("spread", "Residual y − α − βx of each bar's fit, with ±k·σ band and "
                     "entry/exit levels", x_range, "residual (bps of log price)", crosshair)
    spread.varea("t", "lower", "upper", source=pair, fill_alpha=0.15, color="#9467bd",
                 legend_label="±k·σ")
    for hi, lo, color, dash, label in (("entry_hi", "entry_lo", "#d62728", "dashed", "±entry·σ"),
                                       ("exit_hi", "exit_lo", "#7f7f7f", "dotted", "±exit·σ")):
        spread.line("t", hi, source=pair, color=color, line_dash=dash, legend_label=label)
        spread.line("t", lo, source=pair, color=color, line_dash=dash, legend_label=label)
    residual = spread.line("t", "residual", source=pair, color="#1f77b4",
                           legend_label="residual")
    spread.add_tools(_hover([("residual", "residual", "%.3g"), ("k·σ", "upper", "%.3g"),
                             ("entry·σ", "entry_hi", "%.3g")], renderers=[residual]))
    out["spread"] = spread

    zfig = _figure("zscore", "Z-score with entry/exit thresholds and alerts", x_range,
                   "z (σ of the residual)", crosshair)
    _shade(zfig, pair, bar_ms)
    for name, color, dash in (("entry_hi", "#d62728", "dashed"), ("entry_lo", "#2ca02c", "dashed"),
                              ("exit_hi", "#7f7f7f", "dotted"), ("exit_lo", "#7f7f7f", "dotted")):
        span = Span(location=0, dimension="width", line_color=color, line_dash=dash,
                    line_width=1)
        zfig.add_layout(span)
        out[name] = span
    out["breakeven_renderers"] = _breakeven_band(zfig, sources["cost"])
    live_z = zfig.line("t", "zscore", source=pair, color="#1f77b4", legend_label="live z")
    markers = zfig.scatter("t", "zscore", source=sources["alert"], color="color", size=9,
                           marker="triangle", legend_label="alerts")
    zfig.add_tools(HoverTool(renderers=[markers], formatters={"@t": "datetime",
                                                              "@zscore": "printf"},
                             tooltips=[("time", "@t{%F %T}"), ("alert", "@kind"),
                                       ("trade", "@direction"), ("cointegrated", "@coint"),
                                       ("z", "@zscore{%.3f}")]))
    out["whatif_renderers"] = [
        zfig.line("t", "zscore", source=sources["whatif"], color="#ff7f0e", line_dash="dashed",
                  line_width=2, legend_label="what-if z", name="whatif_z"),
        zfig.scatter("t", "zscore", source=sources["whatif_alert"], line_color="color",
                     fill_alpha=0, size=12, marker="circle", legend_label="what-if alerts"),
    ]
    zfig.add_tools(_hover([("z", "zscore", "%.3f")], renderers=[live_z]))
    out["zscore"] = zfig

    corr = _figure("corr", "Rolling correlation of bar returns", x_range, "ρ", crosshair)
    corr.line("t", "corr", source=pair, color="#17becf", legend_label="corr")
    corr.add_tools(_hover([("corr", "corr", "%.3f")]))
    out["corr"] = corr

    pvals = _figure("pvalues", "Cointegration p-values (5 % line)", x_range, "p-value",
                    crosshair)
    pvals.add_layout(Span(location=COINT_P, dimension="width", line_color="#d62728",
                          line_dash="dashed"))
    pvals.line("t", "adf_pvalue", source=pair, color="#8c564b", legend_label="ADF p (residual)")
    pvals.line("t", "eg_pvalue", source=pair, color="#e377c2", legend_label="Engle-Granger p")
    pvals.add_tools(_hover([("ADF p", "adf_pvalue", "%.3g"), ("EG p", "eg_pvalue", "%.3g")]))
    out["pvalues"] = pvals

    out["beta"] = _beta_figure(pair, x_range, crosshair)
    return out


def _breakeven_band(zfig: Any, cost: ColumnDataSource) -> list[Any]:
    """The z chart's break-even band ±(exit + round-trip z): its shading, edges and hover."""
    common = {"source": cost, "color": "#9467bd", "legend_label": BREAKEVEN_LABEL}
    band = zfig.varea("t", "breakeven_lo", "breakeven_hi", fill_alpha=0.07, name="breakeven",
                      **common)
    upper = zfig.line("t", "breakeven_hi", line_dash="dashdot", **common)
    lower = zfig.line("t", "breakeven_lo", line_dash="dashdot", **common)
    zfig.add_tools(_hover([("break-even |z|", "breakeven_hi", "%.3f"),
                           ("round trip (z)", "round_trip_z", "%.3f"),
                           ("round trip (bps)", "round_trip_bps", "%.3f")], renderers=[upper]))
    return [band, upper, lower]


def build_book_figures(sources: dict[str, ColumnDataSource], legs: tuple[str, str],
                       time_figs: dict[str, Any]) -> dict[str, Any]:
    """The quote charts of one pair, on the time charts' shared x-range (:data:`BOOK_FIGURES`).

    Args:
        sources: ``cost`` (``COST_COLUMNS``), ``quote_y`` and ``quote_x`` (``QUOTE_COLUMNS``
            of leg Y's and X's quote bars).
        legs: ``(Y, X)`` symbols.
        time_figs: what :func:`build_time_figures` returned (its ``x_range``, ``crosshair``).

    Returns:
        The figures by name.
    """
    x_range, crosshair = time_figs["x_range"], time_figs["crosshair"]
    cost = sources["cost"]
    out: dict[str, Any] = {}
    costs = _figure("costs", "Round-trip cost at the quotes: crossing both books and taker fees "
                    "on both legs, in and out", x_range, "bps of gross notional", crosshair)
    total = costs.line("t", "round_trip_bps", source=cost, color="#9467bd",
                       legend_label="round trip")
    costs.line("t", "fees_bps", source=cost, color="#9467bd", line_dash="dashed",
               legend_label="of which taker fees")
    costs.add_tools(_hover([("round trip (bps)", "round_trip_bps", "%.4g"),
                            ("taker fees (bps)", "fees_bps", "%.4g"),
                            ("round trip (z)", "round_trip_z", "%.4g")], renderers=[total]))
    out["costs"] = costs
    for name, key, color in (("quote_spread_y", "quote_y", "#1f77b4"),
                             ("quote_spread_x", "quote_x", "#ff7f0e")):
        fig = _figure(name, "", x_range, "bps of mid (log scale)", crosshair)
        source = sources[key]
        close = fig.line("t", "spread_bps", source=source, color=color,
                         legend_label="at the close")
        fig.line("t", "mean_spread_bps", source=source, color="#333333", line_dash="dashed",
                 legend_label="time-weighted mean")
        fig.line("t", "max_spread_bps", source=source, color="#d62728", line_dash="dotted",
                 legend_label="max")
        fig.add_tools(_hover([("spread (bps)", "spread_bps", "%.4g"),
                              ("mean (bps)", "mean_spread_bps", "%.4g"),
                              ("max (bps)", "max_spread_bps", "%.4g")], renderers=[close]))
        out[name] = fig
    imbalance = _figure("imbalance", "Top-of-book imbalance (B − A)/(B + A) of the sizes at the "
                        "best bid B and ask A: at the close and time-weighted", x_range,
                        "imbalance", crosshair)
    imbalance.add_layout(Span(location=0, dimension="width", line_color="#888",
                              line_dash="dotted"))
    for key, color, leg in (("quote_y", "#1f77b4", "Y"), ("quote_x", "#ff7f0e", "X")):
        source = sources[key]
        close = imbalance.line("t", "imbalance", source=source, color=color, alpha=0.45,
                               legend_label=f"{leg} at the close", name=f"imbalance_{leg}")
        imbalance.line("t", "mean_imbalance", source=source, color=color, line_width=2,
                       legend_label=f"{leg} time-weighted")
        imbalance.add_tools(_hover([(f"{leg} close", "imbalance", "%.3f"),
                                    (f"{leg} mean", "mean_imbalance", "%.3f")],
                                   renderers=[close]))
    out["imbalance"] = imbalance
    relabel_book(out, legs)
    return out


def build_pnl_figure(sources: dict[str, ColumnDataSource], time_figs: dict[str, Any]
                     ) -> dict[str, Any]:
    """The paper P&L chart, on the time charts' shared x-range (:data:`PNL_FIGURES`).

    Args:
        sources: ``pnl`` and ``pnl_whatif`` (``t``, ``ts``, ``equity``), ``pnl_marks`` (the
            round trips' entries and exits: ``t``, ``equity``, ``what``, ``net_pnl``,
            ``color``, ``marker``).
        time_figs: what :func:`build_time_figures` returned (its ``x_range``, ``crosshair``).

    Returns:
        The figure ``pnl`` and its what-if line ``pnl_whatif_renderer``.
    """
    fig = _figure("pnl", "Paper P&L of the alert rule: equity marked to market per bar, at the "
                  "quotes, net of taker fees (round trips: ▲ entry, ● exit; green won, red lost)",
                  time_figs["x_range"], "quote currency", time_figs["crosshair"])
    fig.add_layout(Span(location=0, dimension="width", line_color="#888", line_dash="dotted"))
    curve = fig.line("t", "equity", source=sources["pnl"], color="#1f77b4", line_width=2,
                     legend_label="equity (live settings)")
    whatif = fig.line("t", "equity", source=sources["pnl_whatif"], color="#ff7f0e",
                      line_dash="dashed", legend_label="equity (what-if thresholds)")
    marks = fig.scatter("t", "equity", source=sources["pnl_marks"], color="color",
                        marker="marker", size=9, line_color="white")
    fig.add_tools(_hover([("equity", "equity", "%.2f")], renderers=[curve]))
    fig.add_tools(_hover([("round trip", "what", "%s"), ("net P&L", "net_pnl", "%.2f")],
                         renderers=[marks], mode="mouse"))
    return {"pnl": fig, "pnl_whatif_renderer": whatif}


def relabel_book(figs: dict[str, Any], legs: tuple[str, str]) -> None:
    """Title the quoted-spread charts with the pair's legs."""
    for name, leg, role in (("quote_spread_y", legs[0], "Y"), ("quote_spread_x", legs[1], "X")):
        figs[name].title.text = (f"Quoted spread of {leg} ({role}): at the close, "
                                 "time-weighted mean and max per bar")


def _beta_figure(pair: ColumnDataSource, x_range: Any, crosshair: Span) -> Any:
    beta = _figure("beta", "Hedge ratio β: OLS ± 2 SE (and Kalman, RLS where the flow computes "
                   "them)", x_range, "β (Δ log y per Δ log x)", crosshair)
    beta.varea("t", "beta_lo", "beta_hi", source=pair, fill_alpha=0.15, color="#2ca02c",
               legend_label="OLS ± 2 SE", name="beta_band")
    ols = beta.line("t", "beta", source=pair, color="#2ca02c", legend_label="β OLS")
    beta.line("t", "beta_kalman", source=pair, color="#9467bd", legend_label="β Kalman",
              name="beta_kalman")
    beta.line("t", "beta_rls", source=pair, color="#8c564b", legend_label="β RLS",
              name="beta_rls")
    beta.add_tools(_hover([("β OLS", "beta", "%.5g"), ("β −2SE", "beta_lo", "%.5g"),
                           ("β +2SE", "beta_hi", "%.5g"), ("β Kalman", "beta_kalman", "%.5g"),
                           ("β RLS", "beta_rls", "%.5g"), ("half-life (bars)", "half_life",
                                                          "%.3g"),
                           ("half-life (s)", "half_life_s", "%.3g"), ("n", "n", "%d")],
                          renderers=[ols]))
    return beta


def wire_fit(figs: dict[str, Any], sources: dict[str, ColumnDataSource]) -> None:
    """Give the fit callback its arguments and run it on data changes, resets and y-zooms."""
    fit: CustomJS = figs["fit"]
    names = {n: figs[n] for n in FIGURE_NAMES}
    fitted = sorted({src for parts, _ in FITS.values() for src, _, _ in parts})
    fit.args = {"sources": {src: sources[src] for src in fitted}, "figs": names,
                "fits": {n: [[[src, list(cols), gate] for src, cols, gate in parts], list(lv)]
                         for n, (parts, lv) in FITS.items()},
                "gates": {"breakeven": figs["breakeven_renderers"][0]}, "logs": list(LOG_Y),
                "entry_span": figs["entry_hi"], "mode": "data", "fig_id": "", "fig_name": ""}
    # The server bumps the shared x-range's tags when it shows another series.
    figs["x_range"].js_on_change("tags", CustomJS(args={**fit.args, "mode": "replace"},
                                                  code=FIT_JS))
    for src in fitted:
        sources[src].js_on_change("data", fit)
        sources[src].js_on_change("streaming", fit)
    # Hiding the band (its legend entry) fits the z chart to the z-score alone.
    figs["breakeven_renderers"][0].js_on_change("visible", fit)
    for name in FIGURE_NAMES:
        fig = names[name]
        # Resets the chart's own y-zoom mark, then fits (after BokehJS restored its ranges).
        mine = {"fig_id": fig.id, "fig_name": name}
        fig.js_on_event("reset", CustomJS(args={**fit.args, "mode": "reset", **mine},
                                          code=FIT_JS))
        user = CustomJS(args={**fit.args, "mode": "yrange", **mine}, code=FIT_JS)
        fig.y_range.js_on_change("start", user)
        fig.y_range.js_on_change("end", user)


def price_title(legs: tuple[str, str]) -> str:
    """The price chart's title for ``legs``."""
    return f"Closes rebased to 100 at the first shown bar: {legs[0]} (Y) and {legs[1]} (X)"


def relabel(figs: dict[str, Any], legs: tuple[str, str]) -> None:
    """Retitle the price chart, its legend and the quoted-spread charts for another pair."""
    relabel_book(figs, legs)
    y_leg, x_leg = legs
    figs["prices"].title.text = price_title(legs)
    for item in figs["prices"].legend[0].items:
        if figs["y_line"] in item.renderers:
            item.label = {"value": f"{y_leg} (Y)"}
        elif figs["x_line"] in item.renderers:
            item.label = {"value": f"{x_leg} (X)"}



def build_side_figures(sources: dict[str, ColumnDataSource]) -> dict[str, Any]:
    """The window's scatter of y against x with its fitted lines, and the z histogram.

    Args:
        sources: ``scatter`` (``SCATTER_COLUMNS``), ``fit`` (``FIT_COLUMNS``) and ``hist``
            (``HIST_COLUMNS``).

    Returns:
        The ``scatter`` and ``histogram`` figures (their ranges set by the server) and the
        histogram's threshold lines ``hist_spans`` (entry high, entry low, exit high, exit low).
    """
    scatter = figure(name="scatter", title="Y against X over the window: fit now, previous "
                     "window's faded", x_range=Range1d(0, 1), y_range=Range1d(0, 1), height=250,
                     sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save",
                     output_backend="canvas", x_axis_label="X (log price)",
                     y_axis_label="Y (log price)")
    scatter.toolbar.logo = None
    scatter.add_layout(Legend(orientation="horizontal", label_text_font_size="11px",
                              padding=2, margin=2), "above")
    scatter.scatter("x", "y", source=sources["scatter"], size=3, alpha=0.5, color="#1f77b4",
                    legend_label="bars in window")
    scatter.line("x", "y_prev", source=sources["fit"], color="#999999", alpha=0.6,
                 line_dash="dashed", line_width=2, legend_label="previous window α + βx")
    scatter.line("x", "y_now", source=sources["fit"], color="#d62728", line_width=2,
                 legend_label="α + βx now")
    hist = figure(name="histogram", title="Z-score distribution over the shown history",
                  x_range=Range1d(-1, 1), y_range=Range1d(0, 1), height=250,
                  sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save",
                  output_backend="canvas", x_axis_label="z (σ)", y_axis_label="bars")
    hist.toolbar.logo = None
    bars = hist.quad(left="left", right="right", top="count", bottom=0, source=sources["hist"],
                     fill_color="#1f77b4", fill_alpha=0.5, line_color="white")
    hist.add_tools(HoverTool(renderers=[bars], tooltips=[("z", "@left{%.2f} … @right{%.2f}"),
                                                         ("bars", "@count{%d}")],
                             formatters={"@left": "printf", "@right": "printf",
                                         "@count": "printf"}))
    spans = []
    for color, dash in (("#d62728", "dashed"), ("#2ca02c", "dashed"), ("#7f7f7f", "dotted"),
                        ("#7f7f7f", "dotted")):
        span = Span(location=0, dimension="height", line_color=color, line_dash=dash)
        hist.add_layout(span)
        spans.append(span)
    return {"scatter": scatter, "histogram": hist, "hist_spans": spans}
