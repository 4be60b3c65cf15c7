"""False-discovery-rate control over the many pairs of a universe (Benjamini–Hochberg)."""

from __future__ import annotations

import numpy as np

__all__ = ["bh_qvalues"]


def bh_qvalues(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values of the defined p-values; NaN stays NaN.

    With the m defined p-values sorted, ``q_(i) = min_{j >= i} m p_(j) / j``, capped at 1:
    a pair with ``q <= 0.05`` is a discovery at a 5 % false-discovery rate among the m
    tested. Tied p-values get the same q-value.

    Args:
        pvalues: p-values, NaN where a pair has none.

    Returns:
        The q-values, aligned with ``pvalues``.

    Examples:
        >>> [round(q, 4) for q in bh_qvalues(np.array([0.01, np.nan, 0.04, 0.03, 0.5])).tolist()]
        [0.04, nan, 0.0533, 0.0533, 0.5]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    if m == 0:
        return q
    order = defined[np.argsort(p[defined], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q
