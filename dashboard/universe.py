"""The universe page's data (pure): the latest scan rows as table and heat-map columns.

The table shows one row per pair of the latest universe scan (``scan`` records), each numeric
column twice: the number the table sorts on (NaN where undefined) and the text it shows
(``<column>_text``), so the browser sorts numbers while the page decides how they read. The
heat map has two cells per pair (A × B and B × A) coloured by q-value or correlation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import numpy as np

from dashboard.cards import duration, fmt_value

#: The heat map's measures: label → scan field.
MEASURES = {"q-value": "eg_qvalue", "correlation": "corr"}
#: The page's ``?view=`` names: the universe table and a pair computed on demand.
UNIVERSE_VIEW = "universe"
ON_DEMAND_VIEW = "on-demand"

#: Table columns: (field the table sorts on, header, how the value reads).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("eg_qvalue", "q-value"),
    ("half_life_s", "half-life"),
    ("abs_z", "|z|"),
    ("zscore", "z"),
    ("beta", "β"),
    ("corr", "corr"),
    ("hurst", "Hurst"),
    ("variance_ratio", "VR"),
    ("n", "bars n"),
    ("age_s", "age"),
)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _fixed(value: float, digits: int) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


def cell_texts(row: dict[str, Any], bar_s: float, reference_us: int) -> dict[str, str]:
    """How each table column of one scan row reads (pure; a dash where undefined).

    Args:
        row: a scan row (``ScanRecord`` fields).
        bar_s: the scan timeframe in seconds (half-life bars × ``bar_s`` is its time).
        reference_us: now (a live source) or the newest data time (µs); the age is this
            minus the row's scan time.
    """
    half_life = row.get("half_life")
    z = _number(row.get("zscore"))
    return {
        "eg_qvalue": fmt_value(row.get("eg_qvalue"), 3),
        "half_life_s": duration(None if half_life is None else half_life * bar_s),
        "abs_z": _fixed(abs(z), 2),
        "zscore": _fixed(z, 2),
        "beta": fmt_value(row.get("beta"), 4),
        "corr": _fixed(_number(row.get("corr")), 3),
        "hurst": _fixed(_number(row.get("hurst")), 3),
        "variance_ratio": _fixed(_number(row.get("variance_ratio")), 3),
        "n": f"{row['n']} / {row['window']}",
        "age_s": duration((reference_us - row["ts"]) / 1e6),
    }


def page_link(pair: str, timeframe: str, watched: bool) -> str:
    """The URL query of a pair's page: the live pair page, or the page computed on demand."""
    query = {"pair": pair, "timeframe": timeframe}
    if not watched:
        query = {"view": ON_DEMAND_VIEW, **query}
    return "?" + urlencode(query)


@dataclass(frozen=True)
class Filters:
    """Which scan rows the table shows.

    Attributes:
        q_max: the largest q-value shown (None: no limit; a row without a q-value is hidden
            by any limit).
        z_min: the smallest |z| shown (None: no limit; likewise for a row without z).
        text: a case-insensitive part of the pair's name ("" shows every pair).
    """

    q_max: float | None = None
    z_min: float | None = None
    text: str = ""

    def keep(self, row: dict[str, Any]) -> bool:
        """Whether the table shows ``row``."""
        if self.text.strip() and self.text.strip().upper() not in row["pair"].upper():
            return False
        q, z = row.get("eg_qvalue"), row.get("zscore")
        if self.q_max is not None and (q is None or q > self.q_max):
            return False
        return self.z_min is None or (z is not None and abs(z) >= self.z_min)


def table_columns(rows: list[dict[str, Any]], timeframe: str, bar_s: float,
                  reference_us: int, watched: set[str]) -> dict[str, Any]:
    """The table's source columns of ``rows`` (pure).

    Args:
        rows: the scan rows shown, in pair order.
        timeframe: the scan timeframe (for the links).
        bar_s: the scan timeframe in seconds.
        reference_us: the time ages are measured to (µs).
        watched: the pairs with ``pairs`` records on ``timeframe`` (their link opens the
            live pair page).
    """
    columns: dict[str, Any] = {
        "pair": [r["pair"] for r in rows],
        "ts": np.array([r["ts"] for r in rows], dtype="int64"),
        "eg_qvalue": np.array([_number(r.get("eg_qvalue")) for r in rows]),
        "half_life_s": np.array([_number(r.get("half_life")) * bar_s for r in rows]),
        "abs_z": np.abs(np.array([_number(r.get("zscore")) for r in rows])),
        "n": np.array([r["n"] for r in rows], dtype="int64"),
        "age_s": np.array([(reference_us - r["ts"]) / 1e6 for r in rows]),
        "page": ["live" if r["pair"] in watched else "on demand" for r in rows],
        "link": [page_link(r["pair"], timeframe, r["pair"] in watched) for r in rows],
    }
    for name in ("zscore", "beta", "corr", "hurst", "variance_ratio"):
        columns[name] = np.array([_number(r.get(name)) for r in rows])
    texts = [cell_texts(r, bar_s, reference_us) for r in rows]
    for name, _ in TABLE_COLUMNS:
        columns[f"{name}_text"] = [t[name] for t in texts]
    return columns


def universe_order(pairs: Iterable[str]) -> list[str]:
    """The universe's symbols in its own order, read back from the pairs' names ``A/B``.

    Each pair is named with A before B, so the k-th symbol is A in ``n - 1 - k`` pairs; symbols
    with as many (pairs missing) fall back to alphabetical order.

    >>> universe_order(["ETHBTC/LTCBTC", "ETHBTC/ADABTC", "LTCBTC/ADABTC"])
    ['ETHBTC', 'LTCBTC', 'ADABTC']
    """
    leading: dict[str, int] = {}
    for pair in pairs:
        a, _, b = pair.partition("/")
        leading[a] = leading.get(a, 0) + 1
        leading.setdefault(b, 0)
    return sorted(leading, key=lambda symbol: (-leading[symbol], symbol))


def heatmap_columns(rows: list[dict[str, Any]], measure: str,
                    watched: set[str], timeframe: str) -> dict[str, Any]:
    """The heat map's cells: A × B and B × A of every pair, valued by ``measure`` (pure).

    Args:
        rows: the latest scan rows (every pair, whatever the table's filters).
        measure: a label of :data:`MEASURES`.
        watched: the watched pairs (their cells link to the live pair page).
        timeframe: the scan timeframe.
    """
    field = MEASURES[measure]
    cells: dict[str, list] = {"x": [], "y": [], "pair": [], "value": [], "text": [],
                              "link": []}
    for row in rows:
        a, _, b = row["pair"].partition("/")
        value = _number(row.get(field))
        text = fmt_value(row.get(field), 3)
        link = page_link(row["pair"], timeframe, row["pair"] in watched)
        for x, y in ((b, a), (a, b)):
            cells["x"].append(x)
            cells["y"].append(y)
            cells["pair"].append(row["pair"])
            cells["value"].append(value)
            cells["text"].append(text)
            cells["link"].append(link)
    cells["value"] = np.array(cells["value"], dtype=float)
    return cells
