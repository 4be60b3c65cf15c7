"""The fast MacKinnon p-value equals statsmodels' to the last bit."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.tsa.adfvalues import mackinnonp as sm_mackinnonp

import pairflow.analytics
import pairflow.analytics.mackinnon
import pairflow.analytics.pair
import pairflow.analytics.settings
from pairflow.analytics.mackinnon import mackinnonp


@pytest.mark.parametrize("regression", ["c"])
@pytest.mark.parametrize("n", [1, 2])
def test_grid_identical(regression, n):
    for stat in np.linspace(-40.0, 10.0, 5001):
        assert mackinnonp(float(stat), regression, n) == sm_mackinnonp(
            float(stat), regression=regression, N=n
        )


@settings(max_examples=300, deadline=None)
@given(stat=st.floats(-1e3, 1e3), regression=st.just("c"), n=st.sampled_from([1, 2]))
def test_random_identical(stat, regression, n):
    assert mackinnonp(stat, regression, n) == sm_mackinnonp(stat, regression=regression, N=n)


@pytest.mark.parametrize(
    "module",
    [
        pairflow.analytics,
        pairflow.analytics.mackinnon,
        pairflow.analytics.pair,
        pairflow.analytics.settings,
    ],
)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_tables_equal_statsmodels():
    from statsmodels.tsa import adfvalues

    from pairflow.analytics.mackinnon import _TABLES

    for (reg, n), (mx, mn, star, small, large) in _TABLES.items():
        assert mx == adfvalues._tau_maxs[reg][n - 1]
        assert mn == adfvalues._tau_mins[reg][n - 1]
        assert star == adfvalues._tau_stars[reg][n - 1]
        assert small == tuple(float(c) for c in adfvalues._tau_smallps[reg][n - 1])
        assert large == tuple(float(c) for c in adfvalues._tau_largeps[reg][n - 1])
