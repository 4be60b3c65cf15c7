"""Exact segment sums against ``math.fsum``, bit for bit, and sums of partial rows."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pairflow.exact import FSUM_SEGMENTS, rounded, segment_partials, segment_sums

# Finite floats over the whole range, with the values that stress rounding: ties, cancellation,
# subnormals. Large enough to overflow an intermediate sum is math.fsum's error, not a sum.
VALUES = st.lists(st.one_of(
    st.floats(-1e300, 1e300, allow_nan=False), st.sampled_from(
        [1e16, -1e16, 1.0, 0.1, 0.2, 0.3, 2.0**53, 1.0 + 2.0**-52, 2.0**-1074, 0.0, -0.0])),
    max_size=60)


@settings(max_examples=300, deadline=None)
@given(values=VALUES, cuts=st.lists(st.integers(0, 60), max_size=5))
def test_segment_sums_are_math_fsum(values, cuts):
    bounds = np.array([0, *sorted(min(c, len(values)) for c in cuts), len(values)])
    array = np.array(values, np.float64)
    expected = [math.fsum(values[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    assert segment_sums(array, bounds).tolist() == expected


@settings(max_examples=300, deadline=None)
@given(values=VALUES, cuts=st.lists(st.integers(0, 60), max_size=5),
       groups=st.integers(1, 4))
def test_sums_of_partial_rows_are_the_values_sums(values, cuts, groups):
    # Rows of partials of small segments, summed in groups of whole rows, are the exact sums of
    # the groups' values: what a minute made of seconds relies on.
    bounds = np.array([0, *sorted(min(c, len(values)) for c in cuts), len(values)])
    rows = segment_partials(np.array(values, np.float64), bounds)
    assert rows.shape[0] == len(bounds) - 1
    assert rounded(rows).tolist() == [math.fsum(values[a:b])
                                      for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    row_bounds = np.unique(np.append(np.arange(0, len(rows), groups), len(rows)))
    by_group = rounded(segment_partials(rows.ravel(), row_bounds * rows.shape[1]))
    value_bounds = bounds[row_bounds]
    assert by_group.tolist() == [math.fsum(values[a:b]) for a, b in
                                 zip(value_bounds[:-1], value_bounds[1:], strict=True)]


def test_many_segments_use_the_compiled_sums_and_agree_with_math_fsum():
    rng = np.random.default_rng(5)
    values = rng.standard_normal(40_000) * 10.0 ** rng.integers(-12, 12, 40_000)
    bounds = np.unique(np.concatenate(([0, len(values)], rng.integers(0, len(values), 8_000))))
    assert len(bounds) - 1 > FSUM_SEGMENTS
    assert segment_sums(values, bounds).tolist() == [
        math.fsum(values[a:b].tolist()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
