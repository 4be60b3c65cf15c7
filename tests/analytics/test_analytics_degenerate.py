"""Degenerate input never crashes and never yields NaN; bad input and settings are rejected."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairflow.analytics import (
    EstimatorSettings,
    InputError,
    PairEstimator,
    PairResult,
    SettingsError,
    run_history,
)
from pairflow.errors import PairflowError

STATS = (
    "beta", "alpha", "spread", "spread_mean", "spread_std", "zscore", "corr",
    "adf_stat", "adf_pvalue", "eg_stat", "eg_pvalue", "half_life",
)  # fmt: skip


def _well_formed(r: PairResult) -> None:
    for f in STATS:
        v = getattr(r, f)
        assert v is None or (isinstance(v, float) and math.isfinite(v)), (f, v)
    assert r.adf_lags is None or (isinstance(r.adf_lags, int) and r.adf_lags >= 0)
    missing = [f for f in STATS if getattr(r, f) is None] + (
        ["adf_lags"] if r.adf_lags is None else []
    )
    # a None statistic always comes with a reason, and a reason only with a None statistic
    assert bool(missing) == (r.reason is not None), (missing, r.reason)
    if r.corr is not None:
        assert -1.0 <= r.corr <= 1.0
    for p in (r.adf_pvalue, r.eg_pvalue):
        assert p is None or 0.0 <= p <= 1.0


def test_before_window_only_levels():
    res = run_history(EstimatorSettings(window=10), [100.0] * 9, [50.0] * 9)
    assert [r.n for r in res] == list(range(1, 10))
    for r in res:
        assert r.reason == "n < window"
        assert r.y == math.log(100.0) and r.x == math.log(50.0)
        assert all(getattr(r, f) is None for f in STATS)
        _well_formed(r)


def test_x_never_moves():
    rng = np.random.default_rng(0)
    y = 100 + np.cumsum(rng.normal(size=40))
    r = run_history(EstimatorSettings(window=20, price="raw"), y, [7.0] * 40)[-1]
    assert r.beta is None and r.zscore is None and r.corr is None
    assert r.reason.startswith("zero variance in x")
    _well_formed(r)


def test_y_never_moves():
    rng = np.random.default_rng(1)
    x = 100 + np.cumsum(rng.normal(size=40))
    r = run_history(EstimatorSettings(window=20, price="raw"), [5.0] * 40, x)[-1]
    assert r.beta == 0.0 and r.spread_std == 0.0 and r.spread == 5.0 and r.alpha == 5.0
    assert r.zscore is None and r.adf_stat is None and r.corr is None
    assert r.reason.startswith("zero variance in y")
    _well_formed(r)


def test_leg_stops_moving_then_resumes():
    rng = np.random.default_rng(2)
    x = 100 + np.cumsum(rng.normal(size=120))
    x[30:70] = x[30]
    y = 2 * x + rng.normal(size=120)
    res = run_history(EstimatorSettings(window=25, price="raw"), y, x)
    assert res[69].reason.startswith("zero variance in x")
    assert res[119].reason is None or "zero variance" not in res[119].reason
    for r in res:
        _well_formed(r)


@pytest.mark.parametrize("scale", [1.0, -3.0, 1e-6])
def test_perfectly_collinear_legs(scale):
    rng = np.random.default_rng(3)
    x = 100 + np.cumsum(rng.normal(size=60))
    y = 10.0 + scale * x
    r = run_history(EstimatorSettings(window=30, price="raw"), y, x)[-1]
    assert r.beta == pytest.approx(scale, rel=1e-9)
    assert r.zscore is None and r.eg_stat is None and r.adf_stat is None
    assert r.reason.startswith("collinear legs")
    _well_formed(r)


def test_smallest_window_runs():
    rng = np.random.default_rng(4)
    x = 100 + np.cumsum(rng.normal(size=60))
    y = 2 * x + rng.normal(size=60)
    for lag in ("aic", "bic", 0, 3):
        for r in run_history(EstimatorSettings(window=10, price="raw", lag=lag), y, x):
            _well_formed(r)


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from([1.0, 1.5, 2.0, 2.5, 1e5, 1e-5]), st.sampled_from([3.0, 3.5, 1e4, 1e-4])
        ),
        min_size=1,
        max_size=60,
    ),
    window=st.integers(10, 25),
    lag=st.sampled_from(["aic", "bic", 0, 2]),
    price=st.sampled_from(["log", "raw"]),
)
def test_arbitrary_input_never_nan_never_raises(data, window, lag, price):
    """Few distinct values, huge jumps, long flat stretches: never NaN, never an exception."""
    ys, xs = zip(*data, strict=True)
    for r in run_history(EstimatorSettings(window=window, price=price, lag=lag), ys, xs):
        _well_formed(r)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "abc", None])
def test_non_finite_input_rejected(bad):
    est = PairEstimator(EstimatorSettings(window=10))
    est.update(1.0, 2.0)
    with pytest.raises(InputError):
        est.update(bad, 2.0)
    with pytest.raises(InputError):
        est.update(1.0, bad)
    assert est.n == 1  # unchanged


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_non_positive_rejected_for_log_only(bad):
    est = PairEstimator(EstimatorSettings(window=10, price="log"))
    with pytest.raises(InputError, match="positive"):
        est.update(bad, 2.0)
    raw = PairEstimator(EstimatorSettings(window=10, price="raw"))
    raw.update(bad, 2.0)
    assert raw.result().y == bad


def test_errors_are_value_errors_and_pairflow_errors():
    assert issubclass(InputError, ValueError) and issubclass(InputError, PairflowError)
    assert issubclass(SettingsError, ValueError) and issubclass(SettingsError, PairflowError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 5}, "window must be at least 10 bars, got 5"),
        ({"window": 10.5}, "window must be an int"),
        ({"price": "pct"}, "price transform must be 'log' or 'raw', got 'pct'"),
        ({"lag": "hqic"}, "lag must be 'aic', 'bic' or an int >= 0, got 'hqic'"),
        ({"lag": -1}, "lag must be at least 0, got -1"),
        ({"window": 20, "lag": 9}, "lag must be at most window // 2 - 2 = 8 for window 20, got 9"),
        ({"lag": 1.5}, "lag must be 'aic', 'bic' or an int >= 0"),
    ],
)
def test_settings_rejected_with_bound(kwargs, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EstimatorSettings(**kwargs)


def test_settings_defaults_and_frozen():
    s = EstimatorSettings()
    assert (s.window, s.price, s.lag) == (300, "log", "aic")
    with pytest.raises(AttributeError):
        s.window = 3  # type: ignore[misc]
    with pytest.raises(SettingsError):
        PairEstimator({"window": 300})  # type: ignore[arg-type]


def test_run_history_length_mismatch():
    with pytest.raises(InputError, match="same length"):
        run_history(EstimatorSettings(window=10), [1.0, 2.0], [1.0])


def test_result_before_any_bar():
    """The flow asks for ``n`` of a pair whose legs have not both started: no exception."""
    r = PairEstimator(EstimatorSettings(window=10)).result()
    assert (r.n, r.y, r.x, r.reason) == (0, None, None, "n < window")
    assert all(getattr(r, f) is None for f in STATS)
