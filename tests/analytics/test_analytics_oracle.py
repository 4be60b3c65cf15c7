"""Every PairResult field against the exact oracle, on generated series of every kind.

The estimator runs over a series longer than its window (so bars are evicted and the
anchors re-set at least once), and sampled bars are compared with the oracle computed from
scratch on that bar's window. Tolerances are the contract: 1e-6 (relative above 1), beta
1e-7 relative, chosen lags identical.
"""

from __future__ import annotations

import numpy as np
import pytest
from analytics_oracle import mismatches, oracle, transform
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairflow.analytics import EstimatorSettings, run_history

SETTINGS = settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])

lags = st.one_of(st.sampled_from(["aic", "bic"]), st.integers(min_value=0, max_value=4))


def _check(y_close, x_close, window: int, price: str, lag, bars: list[int]) -> None:
    res = run_history(EstimatorSettings(window=window, price=price, lag=lag), y_close, x_close)
    y = transform(y_close, price)
    x = transform(x_close, price)
    for k in bars:
        r = res[k]
        assert r.n == window
        exp = oracle(y[k - window + 1 : k + 1], x[k - window + 1 : k + 1], lag)
        bad = mismatches(r, exp)
        assert not bad, f"bar {k}, window {window}, lag {lag}: {bad}"


def _bars(length: int, window: int) -> list[int]:
    """First full window, one in the middle, the last (after evictions and re-anchoring)."""
    return sorted({window - 1, (window - 1 + length - 1) // 2, length - 1})


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.integers(30, 150),
    extra=st.integers(0, 250),
    lag=lags,
)
def test_random_walks_raw(seed, window, extra, lag):
    rng = np.random.default_rng(seed)
    n = window + extra
    scale = 10.0 ** rng.uniform(-3, 3)
    y = 100.0 + np.cumsum(rng.normal(size=n)) * scale
    x = -50.0 + np.cumsum(rng.normal(size=n)) * scale * rng.uniform(0.1, 10)
    _check(y, x, window, "raw", lag, _bars(n, window))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.integers(30, 200),
    extra=st.integers(0, 300),
    phi=st.floats(0.0, 0.95),
    noise=st.floats(0.05, 2.0),
    lag=lags,
)
def test_cointegrated_pairs(seed, window, extra, phi, noise, lag):
    rng = np.random.default_rng(seed)
    n = window + extra
    x = 20.0 + np.cumsum(rng.normal(size=n))
    eps = np.empty(n)
    eps[0] = rng.normal()
    for t in range(1, n):
        eps[t] = phi * eps[t - 1] + rng.normal()
    y = 3.0 + rng.uniform(-2, 2) * x + noise * eps
    _check(y, x, window, "raw", lag, _bars(n, window))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.integers(50, 250),
    extra=st.integers(0, 300),
    phi=st.floats(0.97, 1.0),
    lag=lags,
)
def test_near_unit_root_spread(seed, window, extra, phi, lag):
    rng = np.random.default_rng(seed)
    n = window + extra
    x = 5.0 + np.cumsum(rng.normal(size=n)) * 0.1
    eps = np.zeros(n)
    for t in range(1, n):
        eps[t] = phi * eps[t - 1] + rng.normal() * 0.05
    y = 1.0 + 0.8 * x + eps
    _check(y, x, window, "raw", lag, _bars(n, window))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.integers(30, 200),
    extra=st.integers(0, 300),
    lag=lags,
    tight=st.booleans(),
)
def test_btc_scale_raw_prices(seed, window, extra, lag, tight):
    """Prices near 60 000 on a 0.01 tick, differing in the 7th-8th digit."""
    rng = np.random.default_rng(seed)
    n = window + extra
    eth = np.round(2680.0 + 0.01 * np.cumsum(rng.integers(-2, 3, size=n)), 2)
    own = 0.01 * np.cumsum(rng.integers(-5, 6, size=n))
    btc = np.round(61800.0 + (23.0 * (eth - 2680.0) if tight else 0.0) + own, 2)
    if np.ptp(eth[-window:]) == 0 or np.ptp(btc[-window:]) == 0:
        return
    _check(btc, eth, window, "raw", lag, _bars(n, window))


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.integers(30, 200),
    extra=st.integers(0, 300),
    lag=lags,
    beta=st.floats(0.5, 2.0),
)
def test_log_prices_of_1s_bars(seed, window, extra, lag, beta):
    """Log closes varying by ~1e-5 around 8-11: the badly conditioned real-life case."""
    rng = np.random.default_rng(seed)
    n = window + extra
    eth = np.round(2680.0 + 0.01 * np.cumsum(rng.integers(-1, 2, size=n)), 2)
    ret = np.log(eth / eth[0])
    btc = np.round(61800.0 * np.exp(beta * ret) + 0.01 * np.cumsum(rng.integers(-3, 4, size=n)), 2)
    if np.ptp(eth[-window:]) == 0:
        return
    _check(btc, eth, window, "log", lag, _bars(n, window))


@pytest.mark.parametrize("window", [400, 1500])
def test_long_windows(window):
    """Larger windows: more lags (maxlag 17 / 24) and longer rolling sums."""
    rng = np.random.default_rng(window)
    n = 2 * window + 37
    x = 100.0 + np.cumsum(rng.normal(size=n))
    eps = np.zeros(n)
    for t in range(1, n):
        eps[t] = 0.9 * eps[t - 1] + rng.normal()
    y = 10.0 + 1.5 * x + eps
    _check(y, x, window, "raw", "aic", [window - 1, window + 311, n - 1])


def test_every_prefix_small_window():
    """Every bar of a run, including while the window fills and right after re-anchoring."""
    rng = np.random.default_rng(7)
    n, window = 90, 25
    x = 50.0 + np.cumsum(rng.normal(size=n))
    y = 2.0 * x + np.cumsum(rng.normal(size=n)) * 0.3
    res = run_history(EstimatorSettings(window=window, price="raw"), y, x)
    for k, r in enumerate(res):
        assert r.n == min(k + 1, window)
        assert r.y == y[k] and r.x == x[k]
        if k < window - 1:
            assert r.reason == "n < window"
            assert r.beta is None and r.adf_stat is None and r.corr is None
    _check(y, x, window, "raw", "aic", list(range(window - 1, n)))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    window=st.integers(30, 120),
    extra=st.integers(1, 400),
    lag=lags,
)
def test_result_depends_only_on_the_window(seed, window, extra, lag):
    """After any history, the statistics equal a fresh run over just the last window.

    The incremental state (rolling sums, anchors, Gram matrix) carries no trace of evicted
    bars beyond rounding: the sliding analogue of "merged halves equal the whole".
    """
    rng = np.random.default_rng(seed)
    n = window + extra
    x = np.round(2680.0 + np.cumsum(rng.normal(size=n)) * 0.3, 2)
    y = np.round(61800.0 + 23.0 * (x - 2680.0) + np.cumsum(rng.normal(size=n)) * 2.0, 2)
    cfg = EstimatorSettings(window=window, price="log", lag=lag)
    long_run = run_history(cfg, y, x)[-1]
    fresh = run_history(cfg, y[-window:], x[-window:])[-1]
    assert (long_run.reason, long_run.adf_lags, long_run.n) == (
        fresh.reason,
        fresh.adf_lags,
        fresh.n,
    )
    for f in ("beta", "alpha", "spread_std", "zscore", "corr", "adf_stat", "eg_stat", "half_life"):
        a, b = getattr(long_run, f), getattr(fresh, f)
        assert (a is None) == (b is None), f
        if a is not None:
            assert abs(a - b) <= 1e-8 * max(1.0, abs(b)), (f, a, b)


def test_log_equals_raw_of_logs():
    """price="log" is exactly price="raw" applied to math.log of the closes."""
    rng = np.random.default_rng(5)
    n, window = 200, 60
    x = 2680.0 * np.exp(np.cumsum(rng.normal(size=n)) * 1e-3)
    y = 61800.0 * np.exp(np.cumsum(rng.normal(size=n)) * 1e-3)
    a = run_history(EstimatorSettings(window=window, price="log"), y, x)
    b = run_history(
        EstimatorSettings(window=window, price="raw"), transform(y, "log"), transform(x, "log")
    )
    assert a == b


@pytest.mark.parametrize("window", [20, 21])
def test_short_windows_where_adf_and_eg_maxlags_differ(window):
    """Windows <= 21: the ADF's max lag is one below Engle-Granger's (statsmodels' caps).

    The ADF candidates then start one row earlier than the shared Gram matrix's rows; the
    ADF fields and half-life still match. (Engle-Granger's largest model has no residual
    degrees of freedom here, so it may be None with a reason.)
    """
    cfg = EstimatorSettings(window=window, price="raw")
    assert cfg.adf_maxlag == cfg.eg_maxlag - 1
    for seed in range(15):
        rng = np.random.default_rng(seed)
        n = window + 30
        x = 100 + np.cumsum(rng.normal(size=n))
        y = 2 * x + np.cumsum(rng.normal(size=n))
        res = run_history(cfg, y, x)
        for k in (window - 1, n - 1):
            exp = oracle(y[k - window + 1 : k + 1], x[k - window + 1 : k + 1])
            bad = [m for m in mismatches(res[k], exp) if not m.startswith("eg_")]
            assert not bad, (seed, k, bad)
            if res[k].eg_stat is None:
                assert "Engle-Granger" in res[k].reason
