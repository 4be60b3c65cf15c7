"""The estimator's running parts: revert undoes update, reset agrees with the running value."""

from __future__ import annotations

import numpy as np
import pytest

from pairflow.analytics.rolling import (
    AnchoredCoMoments,
    BarRing,
    CoMoments,
    RollingGram,
    ZeroRun,
)


def _sums(m: CoMoments) -> tuple[float, ...]:
    return m.sa, m.sb, m.saa, m.sab, m.sbb


def test_comoments_revert_undoes_update_and_reset_agrees():
    # small integers: every sum is exact, so the running and the recomputed sums are equal
    a = np.array([3.0, -1.0, 4.0, 1.0, -5.0, 9.0])
    b = np.array([2.0, 7.0, -1.0, 8.0, 2.0, -8.0])
    running = CoMoments()
    for ai, bi in zip(a, b, strict=True):
        running.update(ai, bi)
    running.revert(a[0], b[0])
    again = CoMoments()
    again.reset(a[1:], b[1:])
    assert _sums(running) == _sums(again)
    assert _sums(again) == (8.0, 8.0, 124.0, -85.0, 182.0)


def test_comoments_corr():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.normal(size=50)
    m = CoMoments()
    m.reset(a, b)
    assert m.corr(50) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    flat = CoMoments()
    flat.reset(np.ones(5), b[:5])
    assert flat.corr(5) is None


def test_anchored_comoments_centre_at_the_anchor():
    rng = np.random.default_rng(2)
    a = 61800.0 + rng.normal(size=40)
    b = 2680.0 + rng.normal(size=40)
    m = AnchoredCoMoments()
    m.anchor(a[-1], b[-1])
    m.reset(a, b)
    mean_a, mean_b, caa, cab, cbb = m.centred(40)
    assert mean_a == pytest.approx(np.mean(a) - a[-1], abs=1e-9)
    assert mean_b == pytest.approx(np.mean(b) - b[-1], abs=1e-9)
    cov = np.cov(a, b, ddof=0) * 40
    assert (caa, cab, cbb) == pytest.approx((cov[0, 0], cov[0, 1], cov[1, 1]), rel=1e-9)
    for ai, bi in zip(a[:10], b[:10], strict=True):
        m.revert(ai, bi)
    again = AnchoredCoMoments()
    again.anchor(a[-1], b[-1])
    again.reset(a[10:], b[10:])
    assert _sums(m) == pytest.approx(_sums(again), rel=1e-9, abs=1e-9)


def test_zero_run_counts_trailing_zero_differences():
    run = ZeroRun()
    for d in (0.0, 0.5, 0.0, 0.0, 0.0):
        run.update(d)
    assert run.length == 3


def test_ring_keeps_the_last_window_contiguous():
    ring = BarRing(4)
    for k in range(7):
        ring.push(k, 10.0 + k, 20.0 + k, 1.0, 1.0)
    assert ring.last(4, 7)[0].tolist() == [13.0, 14.0, 15.0, 16.0]
    assert ring.last(2, 7)[1].tolist() == [25.0, 26.0]
    assert ring.levels(5) == (15.0, 25.0)
    assert ring.differences(5) == (1.0, 1.0)
    column = ring.column(6)
    assert ring.data[0, column - 3 : column + 1].tolist() == [13.0, 14.0, 15.0, 16.0]


def test_rolling_gram_update_and_revert_match_reset():
    window, maxlag = 12, 2
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.integers(-3, 4, size=30)).astype(float)
    x = np.cumsum(rng.integers(-3, 4, size=30)).astype(float)
    ring = BarRing(window)
    gram = RollingGram(maxlag)
    for k in range(30):
        if k >= window:
            gram.revert(ring, k - window + maxlag + 1, 0.0, 0.0)
        dy = y[k] - y[k - 1] if k else 0.0
        dx = x[k] - x[k - 1] if k else 0.0
        ring.push(k, y[k], x[k], dy, dx)
        if k >= maxlag + 1:
            gram.update(ring, k, 0.0, 0.0)
    fresh = RollingGram(maxlag)
    fresh.reset(ring.last(window, 30), 0.0, 0.0)
    # integer data: every entry is exact, the running matrix equals the recomputed one
    np.testing.assert_array_equal(gram.matrix, fresh.matrix)
    assert gram.matrix[0, 0] == window - maxlag - 1
