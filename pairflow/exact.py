"""Correctly rounded sums of many float segments at once (Shewchuk's exact summation).

A bar's volume must not depend on how its ticks were cut into chunks, and float addition is
not associative; the exact sum rounded once is the same whatever the order. This is
``math.fsum`` — same partials algorithm, same final rounding — over consecutive segments of
one array, compiled with numba when it is installed (one call per batch of bars instead of a
Python call per bar and field). Numba is imported and its cache loaded on first need (~0.4 s of
start-up): sums of a few long segments (a replay's 1m or 1h bars) use Python's own
``math.fsum`` per segment and never need it.

A segment's exact sum can also be kept unrounded, as its *partials*: a few non-overlapping
floats whose exact sum it is. Sums of larger segments made of whole smaller ones (a minute of
seconds) are then exact sums of those partials, with no pass over the original values.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable

import numpy as np

COMPILED = importlib.util.find_spec("numba") is not None
#: Up to this many segments in one call, ``math.fsum`` per segment costs less than loading
#: numba: ~1 µs of Python per segment against ~0.4 s once.
FSUM_SEGMENTS = 2_000


def _segment_partials(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    partials = np.empty(1100)  # more than the partials any float64 sum can need
    # Every segment's partials one after the other (no more of them than values).
    packed = np.empty(len(values))
    count_of = np.zeros(len(bounds) - 1, np.int64)
    used = 0
    for segment in range(len(bounds) - 1):
        count = 0
        for i in range(bounds[segment], bounds[segment + 1]):
            x = values[i]
            if x == 0.0:
                continue  # exact sums of zeros and row padding: nothing to add
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
            count = kept
            if x != 0.0:  # as math.fsum: a zero is not a partial
                partials[count] = x
                count += 1
        for k in range(count):
            packed[used + k] = partials[k]
        used += count
        count_of[segment] = count
    width = max(1, count_of.max()) if len(count_of) else 1
    rows = np.zeros((len(bounds) - 1, width))
    used = 0
    for segment in range(len(bounds) - 1):
        count = count_of[segment]
        for k in range(count):
            rows[segment, width - count + k] = packed[used + k]
        used += count
    return rows


def _rounded(rows: np.ndarray) -> np.ndarray:
    out = np.empty(rows.shape[0])
    width = rows.shape[1]
    for row in range(rows.shape[0]):
        partials = rows[row]
        # Round the partials' exact sum once, half to even, as math.fsum does. Zeros before a
        # row's partials change neither the sum nor the rounding.
        count = width - 1
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
        out[row] = hi
    return out


_kernels: list[Callable[..., np.ndarray]] = []  # loaded on first need


def _compiled() -> list[Callable[..., np.ndarray]]:
    """``[segment partials, rounding]`` compiled (numba imported on the first call), or plain."""
    if not _kernels:
        if COMPILED:  # pragma: no branch - exercised where numba is installed
            from numba import njit

            _kernels.extend((njit(cache=True)(_segment_partials), njit(cache=True)(_rounded)))
        else:  # pragma: no cover - slow, but the same numbers
            _kernels.extend((_segment_partials, _rounded))
    return _kernels


def segment_partials(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Each segment's exact sum as a row of partials, ``values[bounds[i]:bounds[i + 1]]``.

    Row ``i`` holds the segment's partials in increasing magnitude at its end, zeros before
    them (rows are as wide as the widest). Partials of whole segments are values themselves:
    ``segment_partials(rows[a:b].ravel(), …)`` sums whole rows exactly.

    >>> segment_partials(np.array([1e16, 1.0, 3.0]), np.array([0, 2, 3])).tolist()
    [[1.0, 1e+16], [0.0, 3.0]]
    """
    return _compiled()[0](np.ascontiguousarray(values, np.float64),
                          np.ascontiguousarray(bounds, np.int64))


def rounded(rows: np.ndarray) -> np.ndarray:
    """Each row of :func:`segment_partials`' exact sum, correctly rounded as ``math.fsum``."""
    if rows.shape[1] == 1:  # one partial is its own sum
        return rows[:, 0].copy()
    return _compiled()[1](np.ascontiguousarray(rows, np.float64))


def segment_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``[math.fsum(values[bounds[i]:bounds[i + 1]]) for i]``, bit for bit.

    >>> segment_sums(np.array([0.1, 0.2, 0.3, 1e16, 1.0, -1e16]), np.array([0, 3, 6])).tolist()
    [0.6, 1.0]
    """
    if not COMPILED or (len(bounds) - 1 <= FSUM_SEGMENTS and not _kernels):
        listed, edges = values.tolist(), bounds.tolist()
        return np.array([math.fsum(listed[a:b]) for a, b in zip(edges[:-1], edges[1:],
                                                                strict=True)], np.float64)
    return rounded(segment_partials(values, bounds))
