"""Estimator state: pickles, deep-copies, and restore-then-continue equals never stopping."""

from __future__ import annotations

import copy
import inspect
import pickle

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import pairflow.analytics as analytics
from pairflow.analytics import EstimatorSettings, PairEstimator, PairResult


def _estimator_classes() -> list[type]:
    """Every public estimator class of the package (collected, so new ones are covered)."""
    exported = {name: getattr(analytics, name) for name in analytics.__all__}
    return [obj for name, obj in exported.items()
            if inspect.isclass(obj) and name.endswith("Estimator")]


def test_estimators_collected():
    assert PairEstimator in _estimator_classes()


def _series(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.round(2680.0 + np.cumsum(rng.normal(size=n)) * 0.5, 2)
    y = np.round(61800.0 + 23.0 * (x - 2680.0) + np.cumsum(rng.normal(size=n)) * 3.0, 2)
    return y, x


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.integers(10, 80),
    cut=st.integers(0, 250),
    how=st.sampled_from(["pickle", "deepcopy"]),
    lag=st.sampled_from(["aic", "bic", 1]),
)
def test_restore_then_continue_is_identical(seed, window, cut, how, lag):
    n = 260
    y, x = _series(seed, n)
    for cls in _estimator_classes():
        cfg = EstimatorSettings(
            window=window,
            price="log",
            lag=min(lag, window // 2 - 2) if isinstance(lag, int) else lag,
        )
        straight = cls(cfg)
        expected: list[PairResult] = []
        for k in range(n):
            straight.update(y[k], x[k])
            expected.append(straight.result())
        est = cls(cfg)
        got: list[PairResult] = []
        for k in range(cut):
            est.update(y[k], x[k])
            got.append(est.result())
        est = pickle.loads(pickle.dumps(est)) if how == "pickle" else copy.deepcopy(est)
        for k in range(cut, n):
            est.update(y[k], x[k])
            got.append(est.result())
        assert got == expected


def test_copy_is_independent():
    y, x = _series(3, 200)
    est = PairEstimator(EstimatorSettings(window=50))
    for k in range(100):
        est.update(y[k], x[k])
    snap = copy.deepcopy(est)
    before = snap.result()
    for k in range(100, 200):
        est.update(y[k], x[k])
    assert snap.result() == before
    assert est.result() != before


_PLAIN = (int, float, str, bool, type(None), np.ndarray, EstimatorSettings, PairResult)


def _assert_plain(value: object, path: str) -> None:
    """Plain data, or one of the estimator's running parts made of plain data."""
    if isinstance(value, _PLAIN):
        return
    assert type(value).__module__ == "pairflow.analytics.rolling", (path, type(value))
    for name, inner in vars(value).items():
        _assert_plain(inner, f"{path}.{name}")


def test_state_is_plain_data():
    est = PairEstimator(EstimatorSettings(window=30))
    y, x = _series(5, 70)
    for k in range(70):
        est.update(y[k], x[k])
    for name, value in vars(est).items():
        _assert_plain(value, name)


def test_result_is_frozen_and_slotted():
    est = PairEstimator(EstimatorSettings(window=10))
    est.update(2.0, 3.0)
    r = est.result()
    assert not hasattr(r, "__dict__")
    try:
        r.beta = 1.0  # type: ignore[misc]
    except AttributeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("PairResult must be frozen")
    assert [f for f in PairResult.__dataclass_fields__] == [
        "y", "x", "n", "beta", "alpha", "spread", "spread_mean", "spread_std", "zscore",
        "corr", "adf_stat", "adf_pvalue", "adf_lags", "eg_stat", "eg_pvalue", "half_life",
        "beta_ols", "beta_kalman", "beta_rls", "beta_se", "reason",
    ]  # fmt: skip
