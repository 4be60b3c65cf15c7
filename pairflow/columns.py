"""Numpy columns handed to records' constructors as Python values, None where a value is absent."""

from __future__ import annotations

import numpy as np


def values_or_none(values: np.ndarray, present: np.ndarray) -> list:
    """``values`` as Python numbers, None where not ``present``.

    >>> values_or_none(np.array([1.5, 2.0]), np.array([True, False]))
    [1.5, None]
    """
    if present.all():
        return values.tolist()
    return np.where(present, values.astype(object), None).tolist()
