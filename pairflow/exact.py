"""Correctly rounded sums of many float segments at once (Shewchuk's exact summation).

A bar's volume must not depend on how its ticks were cut into chunks, and float addition is
not associative; the exact sum rounded once is the same whatever the order. This is
``math.fsum`` — same partials algorithm, same final rounding — over consecutive segments of
one array, compiled with numba when it is installed (one call per batch of bars instead of a
Python call per bar and field).
"""

from __future__ import annotations

import math

import numpy as np

try:  # pragma: no cover - exercised where numba is installed
    from numba import njit

    COMPILED = True
except ImportError:  # pragma: no cover - math.fsum per segment instead
    COMPILED = False


def _segment_fsums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    out = np.empty(len(bounds) - 1)
    partials = np.empty(1100)  # more than the partials any float64 sum can need
    for segment in range(len(bounds) - 1):
        count = 0
        for i in range(bounds[segment], bounds[segment + 1]):
            x = values[i]
            kept = 0
            for k in range(count):
                y = partials[k]
                if abs(x) < abs(y):
                    x, y = y, x
                hi = x + y
                lo = y - (hi - x)
                if lo != 0.0:
                    partials[kept] = lo
                    kept += 1
                x = hi
            partials[kept] = x
            count = kept + 1
        # Round the partials' exact sum once, half to even, as math.fsum does.
        hi = 0.0
        if count > 0:
            count -= 1
            hi = partials[count]
            lo = 0.0
            while count > 0:
                x = hi
                count -= 1
                y = partials[count]
                hi = x + y
                lo = y - (hi - x)
                if lo != 0.0:
                    break
            if count > 0 and ((lo < 0.0 and partials[count - 1] < 0.0)
                              or (lo > 0.0 and partials[count - 1] > 0.0)):
                y = lo * 2.0
                x = hi + y
                if y == x - hi:
                    hi = x
        out[segment] = hi
    return out


if COMPILED:
    _segment_fsums = njit(cache=True)(_segment_fsums)


def segment_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``[math.fsum(values[bounds[i]:bounds[i + 1]]) for i]``, bit for bit.

    >>> segment_sums(np.array([0.1, 0.2, 0.3, 1e16, 1.0, -1e16]), np.array([0, 3, 6])).tolist()
    [0.6, 1.0]
    """
    values = np.ascontiguousarray(values, np.float64)
    bounds = np.ascontiguousarray(bounds, np.int64)
    if COMPILED:
        return _segment_fsums(values, bounds)
    return np.array([math.fsum(values[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:],
                                                                    strict=True)])
