"""Pure functions: store rows / DataFrames → chart columns, and the Bokeh figures drawing them.

Each chart is a Bokeh figure over a ``ColumnDataSource``; sessions append new rows with
``ColumnDataSource.stream(columns, rollover=N)`` (a patch of the new rows only, bounded memory).
All figures share one ``DataRange1d`` x-range: they pan and zoom together, and the range follows
the newest data until the user pans or zooms (BokehJS then stops auto-ranging), and again after
"Follow newest" (a range reset in the browser).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from bokeh.models import (
    ColumnDataSource,
    DataRange1d,
    HoverTool,
    Legend,
    Span,
)
from bokeh.plotting import figure

from pairflow.records import us_to_iso

#: Columns of the pair statistics source (what the charts draw).
PAIR_COLUMNS = (
    "t", "time", "ts", "y_close", "x_close", "y_rebased", "x_rebased", "spread", "spread_mean",
    "upper", "lower", "zscore", "corr", "adf_pvalue", "eg_pvalue", "beta", "half_life", "n",
)
ALERT_COLUMNS = ("t", "time", "zscore", "kind", "color", "threshold")
WHATIF_COLUMNS = ("t", "time", "zscore")
ALERT_COLORS = {"enter_upper": "#d62728", "enter_lower": "#2ca02c", "exit": "#7f7f7f"}
_STAT_FLOATS = ("spread", "spread_mean", "spread_std", "zscore", "corr", "adf_pvalue",
                "eg_pvalue", "beta", "half_life")


def rows_frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> pd.DataFrame:
    """Store rows (dicts) as a DataFrame with exactly ``columns`` (missing ones are None)."""
    return pd.DataFrame.from_records(rows, columns=list(columns))


def _floats(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def closes(values: np.ndarray, price: str) -> np.ndarray:
    """Undo the price transform of ``PairStats.y``/``x``: the bar closes."""
    return np.exp(values) if price == "log" else values


def first_finite(values: np.ndarray) -> float | None:
    """The first finite value of an array, or None."""
    finite = values[np.isfinite(values)]
    return float(finite[0]) if finite.size else None


def rebase_closes(frame: pd.DataFrame, price: str) -> tuple[float | None, float | None]:
    """The closes of Y and X that rebase to 100: each leg's first finite close in ``frame``."""
    return (first_finite(closes(_floats(frame["y"]), price)),
            first_finite(closes(_floats(frame["x"]), price)))


def pair_columns(
    frame: pd.DataFrame, k: float, price: str, base: tuple[float | None, float | None]
) -> dict[str, np.ndarray | list]:
    """Chart columns of a frame of ``PairStats`` rows (pure).

    Args:
        frame: rows with the ``PairStats`` field names, oldest first.
        k: half-width of the spread band in standard deviations.
        price: the rows' price transform (``log`` or ``raw``).
        base: closes of Y and X that rebase to 100 (the first shown bar's).

    Returns:
        Columns ``PAIR_COLUMNS`` as arrays (``t`` in ms since the epoch for Bokeh's datetime
        axis, ``time`` the exact ISO time of the bar end).
    """
    ts = frame["ts"].to_numpy(dtype="int64") if len(frame) else np.zeros(0, dtype="int64")
    y_close = closes(_floats(frame["y"]), price)
    x_close = closes(_floats(frame["x"]), price)
    stats = {name: _floats(frame[name]) for name in _STAT_FLOATS}
    base_y = base[0] if base[0] else math.nan
    base_x = base[1] if base[1] else math.nan
    return {
        "t": ts / 1000.0,
        "time": [us_to_iso(int(v)) for v in ts],
        "ts": ts,
        "y_close": y_close,
        "x_close": x_close,
        "y_rebased": 100.0 * y_close / base_y,
        "x_rebased": 100.0 * x_close / base_x,
        "spread": stats["spread"],
        "spread_mean": stats["spread_mean"],
        "upper": stats["spread_mean"] + k * stats["spread_std"],
        "lower": stats["spread_mean"] - k * stats["spread_std"],
        "zscore": stats["zscore"],
        "corr": stats["corr"],
        "adf_pvalue": stats["adf_pvalue"],
        "eg_pvalue": stats["eg_pvalue"],
        "beta": stats["beta"],
        "half_life": stats["half_life"],
        "n": pd.to_numeric(frame["n"], errors="coerce").to_numpy(dtype=float,
                                                                   na_value=np.nan),
    }


def alert_columns(frame: pd.DataFrame) -> dict[str, np.ndarray | list]:
    """Marker columns of a frame of ``Alert`` rows (pure)."""
    ts = frame["ts"].to_numpy(dtype="int64") if len(frame) else np.zeros(0, dtype="int64")
    kinds = [str(k) for k in frame["kind"]]
    return {
        "t": ts / 1000.0,
        "time": [us_to_iso(int(v)) for v in ts],
        "zscore": _floats(frame["zscore"]),
        "kind": kinds,
        "color": [ALERT_COLORS.get(k, "black") for k in kinds],
        "threshold": _floats(frame["threshold"]),
    }


def whatif_columns(ts: np.ndarray, zscore: np.ndarray) -> dict[str, np.ndarray | list]:
    """Columns of a what-if z-score line (pure)."""
    ts = np.asarray(ts, dtype="int64")
    return {"t": ts / 1000.0, "time": [us_to_iso(int(v)) for v in ts],
            "zscore": np.asarray(zscore, dtype=float)}


def empty(columns: tuple[str, ...]) -> dict[str, list]:
    """Empty columns."""
    return {c: [] for c in columns}


def _hover(fields: list[tuple[str, str]]) -> HoverTool:
    tooltips = [("time", "@time")] + [(label, f"@{{{col}}}{{%.10g}}") for label, col in fields]
    return HoverTool(tooltips=tooltips, formatters={f"@{{{col}}}": "printf" for _, col in fields},
                     mode="vline")


def _figure(name: str, title: str, x_range: DataRange1d, height: int, ylabel: str):
    fig = figure(
        name=name, title=title, x_range=x_range, x_axis_type="datetime", height=height,
        sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset,save",
        active_drag="xpan", active_scroll="xwheel_zoom", output_backend="canvas",
        y_axis_label=ylabel,
    )
    fig.toolbar.logo = None
    fig.add_layout(Legend(click_policy="hide", location="top_left"), "center")
    return fig


def build_figures(
    pair_source: ColumnDataSource,
    alert_source: ColumnDataSource,
    whatif_source: ColumnDataSource,
    whatif_alert_source: ColumnDataSource,
    legs: tuple[str, str],
) -> dict[str, Any]:
    """The six linked charts of one pair.

    Args:
        pair_source: columns ``PAIR_COLUMNS``.
        alert_source: columns ``ALERT_COLUMNS`` (live alerts).
        whatif_source: columns ``WHATIF_COLUMNS`` (recomputed z-score).
        whatif_alert_source: columns ``ALERT_COLUMNS`` (recomputed alerts).
        legs: ``(Y, X)`` symbols.

    Returns:
        ``{"prices", "spread", "zscore", "corr", "pvalues", "beta"}`` figures and the
        threshold spans ``entry_hi``, ``entry_lo``, ``exit_hi``, ``exit_lo``, the shared
        ``x_range`` and the legend-labelled renderers to relabel.
    """
    y_leg, x_leg = legs
    x_range = DataRange1d(range_padding=0.02, range_padding_units="percent")
    out: dict[str, Any] = {"x_range": x_range}

    prices = _figure("prices", f"Prices rebased to 100 at the first shown bar: {y_leg} (Y) and "
                     f"{x_leg} (X)", x_range, 230, "rebased close (first = 100)")
    out["y_line"] = prices.line("t", "y_rebased", source=pair_source, color="#1f77b4",
                                legend_label=f"{y_leg} (Y)")
    out["x_line"] = prices.line("t", "x_rebased", source=pair_source, color="#ff7f0e",
                                legend_label=f"{x_leg} (X)")
    prices.add_tools(_hover([(f"{y_leg} close", "y_close"), (f"{x_leg} close", "x_close"),
                             (f"{y_leg} rebased", "y_rebased"),
                             (f"{x_leg} rebased", "x_rebased")]))
    out["prices"] = prices

    spread = _figure("spread", "Spread y − βx with mean ± k·σ band", x_range, 200, "spread")
    spread.varea("t", "lower", "upper", source=pair_source, fill_alpha=0.15, color="#9467bd",
                 legend_label="mean ± k·σ")
    spread.line("t", "spread", source=pair_source, color="#1f77b4", legend_label="spread")
    spread.line("t", "spread_mean", source=pair_source, color="#9467bd", line_dash="dashed",
                legend_label="mean")
    spread.add_tools(_hover([("spread", "spread"), ("mean", "spread_mean"), ("upper", "upper"),
                             ("lower", "lower")]))
    out["spread"] = spread

    zfig = _figure("zscore", "Z-score with entry/exit thresholds and alerts", x_range, 230, "z")
    for name, color, dash in (("entry_hi", "#d62728", "dashed"), ("entry_lo", "#2ca02c", "dashed"),
                              ("exit_hi", "#7f7f7f", "dotted"), ("exit_lo", "#7f7f7f", "dotted")):
        span = Span(location=0, dimension="width", line_color=color, line_dash=dash,
                    line_width=1)
        zfig.add_layout(span)
        out[name] = span
    live_z = zfig.line("t", "zscore", source=pair_source, color="#1f77b4", legend_label="live z")
    zfig.line("t", "zscore", source=whatif_source, color="#ff7f0e", line_dash="dashed",
              line_width=2, legend_label="what-if z", name="whatif_z")
    zfig.scatter("t", "zscore", source=alert_source, color="color", size=9, marker="triangle",
                 legend_label="alerts")
    zfig.scatter("t", "zscore", source=whatif_alert_source, line_color="color", fill_alpha=0,
                 size=12, marker="circle", legend_label="what-if alerts")
    zfig.add_tools(HoverTool(renderers=[live_z], mode="vline",
                             tooltips=[("time", "@time"), ("z", "@{zscore}{%.10g}")],
                             formatters={"@{zscore}": "printf"}))
    out["zscore"] = zfig

    corr = _figure("corr", "Rolling correlation of bar returns", x_range, 170, "corr")
    corr.line("t", "corr", source=pair_source, color="#17becf", legend_label="corr")
    corr.add_tools(_hover([("corr", "corr")]))
    out["corr"] = corr

    pvals = _figure("pvalues", "Cointegration p-values (5 % line)", x_range, 170, "p-value")
    pvals.add_layout(Span(location=0.05, dimension="width", line_color="#d62728",
                          line_dash="dashed"))
    pvals.line("t", "adf_pvalue", source=pair_source, color="#8c564b",
               legend_label="ADF p (spread)")
    pvals.line("t", "eg_pvalue", source=pair_source, color="#e377c2",
               legend_label="Engle-Granger p")
    pvals.add_tools(_hover([("ADF p", "adf_pvalue"), ("EG p", "eg_pvalue")]))
    out["pvalues"] = pvals

    beta = _figure("beta", "Hedge ratio β (OLS of y on 1 + x)", x_range, 170, "β")
    beta.line("t", "beta", source=pair_source, color="#2ca02c", legend_label="β")
    beta.add_tools(_hover([("β", "beta"), ("half-life (bars)", "half_life"), ("n", "n")]))
    out["beta"] = beta
    return out


def relabel(figs: dict[str, Any], legs: tuple[str, str]) -> None:
    """Retitle the price chart and its legend for another pair."""
    y_leg, x_leg = legs
    prices = figs["prices"]
    prices.title.text = (f"Prices rebased to 100 at the first shown bar: {y_leg} (Y) and "
                         f"{x_leg} (X)")
    for item in prices.legend[0].items:
        if figs["y_line"] in item.renderers:
            item.label = {"value": f"{y_leg} (Y)"}
        elif figs["x_line"] in item.renderers:
            item.label = {"value": f"{x_leg} (X)"}


#: Names of the chart figures, top to bottom.
FIGURE_NAMES = ("prices", "spread", "zscore", "corr", "pvalues", "beta")
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
