"""Pure functions: store rows / DataFrames → the columns the charts draw.

The figures (``dashboard/figures.py``) draw these columns from Bokeh column data sources;
sessions append new rows with ``ColumnDataSource.stream(columns, rollover=N)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Columns of the pair statistics source (what the time charts draw).
PAIR_COLUMNS = (
    "t", "ts", "y_close", "x_close", "y_rebased", "x_rebased", "residual", "sigma",
    "upper", "lower", "entry_hi", "entry_lo", "exit_hi", "exit_lo", "zscore", "corr",
    "adf_pvalue", "eg_pvalue", "coint", "beta", "beta_lo", "beta_hi", "beta_kalman",
    "beta_rls", "half_life", "half_life_s", "n",
)
ALERT_COLUMNS = ("t", "ts", "zscore", "kind", "color", "threshold", "direction", "coint")
WHATIF_COLUMNS = ("t", "ts", "zscore")
SCATTER_COLUMNS = ("x", "y")
FIT_COLUMNS = ("x", "y_now", "y_prev")
HIST_COLUMNS = ("left", "right", "count")
#: Columns of a leg's quote bar source (``QuoteBar`` rows; ``t``/``ts`` its bar end): what the
#: charts draw, no more (each column costs every session a message part per streamed bar).
QUOTE_COLUMNS = ("t", "ts", "spread_bps", "mean_spread_bps", "max_spread_bps", "imbalance",
                 "mean_imbalance")
#: Columns of the pair's executable-spread source (``SpreadCost`` rows) and its break-even band.
COST_COLUMNS = ("t", "ts", "round_trip_bps", "fees_bps", "round_trip_z", "breakeven_hi",
                "breakeven_lo")
ALERT_COLORS = {"enter_upper": "#d62728", "enter_lower": "#2ca02c", "exit": "#7f7f7f"}
#: Engle-Granger p-value below which the pair counts as cointegrated.
COINT_P = 0.05
#: Residual units per unit of the price transform: basis points of log price, raw price units.
RESIDUAL_SCALE = {"log": 1e4, "raw": 1.0}
#: Standard errors either side of β in its band.
BETA_SE_BAND = 2.0
_STAT_FLOATS = ("spread", "alpha", "spread_std", "zscore", "corr", "adf_pvalue", "eg_pvalue",
                "beta", "half_life", "beta_se", "beta_kalman", "beta_rls")


@dataclass(frozen=True)
class Bands:
    """Half-widths of the residual chart's bands in σ: the band ``k`` and the alert thresholds.

    Attributes:
        k: the shaded band, ±k·σ.
        entry: the entry threshold |z|, drawn at ±entry·σ.
        exit: the exit threshold |z|, drawn at ±exit·σ.
    """

    k: float = 2.0
    entry: float = 2.0
    exit: float = 0.5


Rows = list[dict[str, Any]]


def _floats(rows: Rows, name: str) -> np.ndarray:
    """A field of store rows as floats (None or a missing field → NaN).

    Straight from the dicts: a DataFrame costs milliseconds per streamed bar and session.
    """
    return np.array([r.get(name) for r in rows], dtype=float).reshape(len(rows))


def _ts(rows: Rows, column: str = "ts") -> np.ndarray:
    return np.array([r[column] for r in rows], dtype="int64").reshape(len(rows))


def closes(values: np.ndarray, price: str) -> np.ndarray:
    """Undo the price transform of ``PairStats.y``/``x``: the bar closes."""
    return np.exp(values) if price == "log" else values


def first_finite(values: np.ndarray) -> float | None:
    """The first finite value of an array, or None."""
    finite = values[np.isfinite(values)]
    return float(finite[0]) if finite.size else None


def rebase_closes(frame: Rows, price: str) -> tuple[float | None, float | None]:
    """The closes of Y and X that rebase to 100: each leg's first finite close in ``frame``."""
    return (first_finite(closes(_floats(frame, "y"), price)),
            first_finite(closes(_floats(frame, "x"), price)))


def pair_columns(
    frame: Rows, bands: Bands, price: str, base: tuple[float | None, float | None],
    bar_s: float,
) -> dict[str, np.ndarray]:
    """Chart columns of ``PairStats`` rows (pure).

    The residual is what the z-score is computed on: ``y − α − βx`` of each bar's own fit
    (``spread − alpha``), in basis points of log price (``price="log"``) or in price units.

    Args:
        frame: ``PairStats`` rows (dicts), oldest first.
        bands: the residual chart's band and threshold half-widths in σ.
        price: the rows' price transform (``log`` or ``raw``).
        base: closes of Y and X that rebase to 100 (the first shown bar's).
        bar_s: the timeframe's bar length in seconds (half-life in time).

    Returns:
        Columns ``PAIR_COLUMNS`` as arrays (``t`` in ms since the epoch for Bokeh's datetime
        axis, ``ts`` the exact bar end in µs); missing statistics are NaN.
    """
    ts = _ts(frame)
    y_close = closes(_floats(frame, "y"), price)
    x_close = closes(_floats(frame, "x"), price)
    stats = {name: _floats(frame, name) for name in _STAT_FLOATS}
    scale = RESIDUAL_SCALE.get(price, 1.0)
    sigma = scale * stats["spread_std"]
    se_band = BETA_SE_BAND * stats["beta_se"]
    with np.errstate(invalid="ignore"):
        coint = np.where(stats["eg_pvalue"] < COINT_P, 1.0, np.nan)
    return {
        "t": ts / 1000.0,
        "ts": ts,
        "y_close": y_close,
        "x_close": x_close,
        "y_rebased": 100.0 * y_close / (base[0] or math.nan),
        "x_rebased": 100.0 * x_close / (base[1] or math.nan),
        "residual": scale * (stats["spread"] - stats["alpha"]),
        "sigma": sigma,
        **band_columns(sigma, bands),
        "zscore": stats["zscore"],
        "corr": stats["corr"],
        "adf_pvalue": stats["adf_pvalue"],
        "eg_pvalue": stats["eg_pvalue"],
        "coint": coint,
        "beta": stats["beta"],
        "beta_lo": stats["beta"] - se_band,
        "beta_hi": stats["beta"] + se_band,
        "beta_kalman": stats["beta_kalman"],
        "beta_rls": stats["beta_rls"],
        "half_life": stats["half_life"],
        "half_life_s": stats["half_life"] * bar_s,
        "n": _floats(frame, "n"),
    }


def band_columns(sigma: np.ndarray, bands: Bands) -> dict[str, np.ndarray]:
    """The residual chart's band and threshold columns for residual standard deviations."""
    return {"upper": bands.k * sigma, "lower": -bands.k * sigma,
            "entry_hi": bands.entry * sigma, "entry_lo": -bands.entry * sigma,
            "exit_hi": bands.exit * sigma, "exit_lo": -bands.exit * sigma}


def direction(kind: str, beta: float | None) -> str:
    """The trade an alert of ``kind`` calls for, in words (long Y / short β·X or reverse)."""
    b = "β" if beta is None or not math.isfinite(beta) else f"{beta:.4g}"
    if kind == "enter_upper":
        return f"short Y / long {b}·X"
    if kind == "enter_lower":
        return f"long Y / short {b}·X"
    return "close both legs"


def alert_columns(frame: Rows, coint_at: dict[int, bool]) -> dict[str, Any]:
    """Marker columns of ``Alert`` rows (pure).

    Args:
        frame: ``Alert`` rows (dicts).
        coint_at: whether the pair was cointegrated at a bar end (µs), where known.
    """
    ts = _ts(frame)
    kinds = [str(r["kind"]) for r in frame]
    betas = _floats(frame, "beta")
    return {
        "t": ts / 1000.0,
        "ts": ts,
        "zscore": _floats(frame, "zscore"),
        "kind": kinds,
        "color": [ALERT_COLORS.get(k, "black") for k in kinds],
        "threshold": _floats(frame, "threshold"),
        "direction": [direction(k, b) for k, b in zip(kinds, betas, strict=True)],
        "coint": [{True: "yes", False: "NO"}.get(coint_at.get(int(v)), "?") for v in ts],
    }


def whatif_columns(ts: np.ndarray, zscore: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of a what-if z-score line (pure)."""
    ts = np.asarray(ts, dtype="int64")
    return {"t": ts / 1000.0, "ts": ts, "zscore": np.asarray(zscore, dtype=float)}


def scatter_columns(tail: np.ndarray, window: int) -> tuple[dict[str, np.ndarray],
                                                            dict[str, np.ndarray]]:
    """The window's (x, y) points and the current and previous window's fitted lines (pure).

    Args:
        tail: rows ``(x, y, alpha, beta)`` of the newest ``window + 1`` records, oldest first.
        window: the estimator's window in bars.

    Returns:
        ``SCATTER_COLUMNS`` of the newest ``window`` finite points, and ``FIT_COLUMNS``: the
        line ``y = α + βx`` of the newest record and of the record ``window`` bars earlier
        (NaN while there is none) across the points' x-range.
    """
    tail = np.asarray(tail, dtype=float).reshape(-1, 4)
    x, y = tail[-window:, 0], tail[-window:, 1]
    finite = np.isfinite(x) & np.isfinite(y)
    ends = np.array([x[finite].min(), x[finite].max()]) if finite.any() else np.zeros(0)

    def line(i: int) -> np.ndarray:
        if len(tail) < -i:
            return np.full(ends.size, np.nan)
        return tail[i, 2] + tail[i, 3] * ends

    return ({"x": x[finite], "y": y[finite]},
            {"x": ends, "y_now": line(-1), "y_prev": line(-1 - window)})


def histogram_columns(zscore: np.ndarray, levels: tuple[float, ...] = (),
                      bins: int = 40) -> dict[str, np.ndarray]:
    """A histogram of the finite z-scores, its range widened to show ``levels`` (pure)."""
    z = np.asarray(zscore, dtype=float)
    z = z[np.isfinite(z)]
    if not z.size:
        return {c: np.zeros(0) for c in HIST_COLUMNS}
    lo, hi = min(z.min(), *levels, 0.0), max(z.max(), *levels, 0.0)
    counts, edges = np.histogram(z, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))
    return {"left": edges[:-1], "right": edges[1:], "count": counts.astype(float)}


def histogram_bin(left: np.ndarray, value: float) -> int | None:
    """The bin of ``value`` among bins starting at ``left`` (the end bins take outliers)."""
    if not len(left) or not math.isfinite(value):
        return None
    return int(min(max(np.searchsorted(left, value, side="right") - 1, 0), len(left) - 1))


def quote_columns(frame: Rows) -> dict[str, np.ndarray]:
    """Chart columns of one leg's ``QuoteBar`` rows (pure), timed at the bar end ``end``."""
    ts = _ts(frame, "end")
    return {"t": ts / 1000.0, "ts": ts,
            **{name: _floats(frame, name) for name in QUOTE_COLUMNS[2:]}}


def cost_columns(frame: Rows, exit_z: float) -> dict[str, np.ndarray]:
    """Chart columns of a pair's ``SpreadCost`` rows (pure), with the break-even band.

    ``fees_bps`` is the taker fees' part of ``round_trip_bps`` (the rest is crossing the two
    books). The band is :func:`breakeven_columns` at the exit threshold ``exit_z``.
    """
    ts = _ts(frame)
    round_trip_bps = _floats(frame, "round_trip_bps")
    crossing, fees = _floats(frame, "crossing"), _floats(frame, "fees")
    round_trip_z = _floats(frame, "round_trip_z")
    with np.errstate(invalid="ignore", divide="ignore"):
        fees_bps = round_trip_bps * (fees / (crossing + fees))
    return {"t": ts / 1000.0, "ts": ts, "round_trip_bps": round_trip_bps, "fees_bps": fees_bps,
            "round_trip_z": round_trip_z, **breakeven_columns(round_trip_z, exit_z)}


def breakeven_columns(round_trip_z: np.ndarray, exit_z: float) -> dict[str, np.ndarray]:
    """The break-even band of the z-score: ``±(exit_z + round_trip_z)`` per bar (pure).

    An entry at z pays for its round trip when the expected reversion to the exit threshold,
    ``(|z| − exit_z)·σ``, exceeds the round-trip cost ``round_trip_z·σ``: when
    ``|z| > exit_z + round_trip_z``. NaN where the cost has no σ.
    """
    breakeven = exit_z + np.asarray(round_trip_z, dtype=float)
    return {"breakeven_hi": breakeven, "breakeven_lo": -breakeven}


def empty(columns: tuple[str, ...]) -> dict[str, list]:
    """Empty columns."""
    return {c: [] for c in columns}
