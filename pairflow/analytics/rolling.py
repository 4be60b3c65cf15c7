"""The running parts a :class:`~pairflow.analytics.PairEstimator` is composed of.

Each part is a small incremental statistic in the manner of river's ``stats`` objects:
``update`` adds an observation, ``revert`` removes the one leaving the window, ``reset``
recomputes the part from the window's values (the estimator does so once per window, so the
rounding drift of a running sum never outlives one window), and the value is read from it.

State is plain floats, ints and numpy arrays, so every part pickles and deep-copies. The order
of the floating-point operations is part of the contract: records are reproducible to the bit.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pairflow.analytics import _kernel
from pairflow.analytics.settings import EstimatorSettings

__all__ = ["AnchoredCoMoments", "BarRing", "CoMoments", "HedgeRatios", "RollingGram", "ZeroRun"]


class BarRing:
    """The last ``window`` bars' transformed closes ``y``, ``x`` and differences ``dy``, ``dx``.

    A double-length ring: bar ``k`` is stored at columns ``k % window`` and
    ``k % window + window``, so any run of up to ``window`` consecutive bars is one contiguous
    slice (what the compiled kernels and numpy's reductions read).

    Args:
        window: bars kept.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        #: rows y, x, dy, dx
        self.data = np.zeros((4, 2 * window))

    def push(self, k: int, y: float, x: float, dy: float, dx: float) -> None:
        """Store bar ``k`` (overwrites bar ``k - window``)."""
        pos = k % self.window
        self.data[:, pos] = self.data[:, pos + self.window] = (y, x, dy, dx)

    def levels(self, k: int) -> tuple[float, float]:
        """``(y, x)`` of bar ``k`` (one of the last ``window`` bars)."""
        pos = k % self.window
        return self.data[0, pos], self.data[1, pos]

    def differences(self, k: int) -> tuple[float, float]:
        """``(dy, dx)`` of bar ``k`` (one of the last ``window`` bars)."""
        pos = k % self.window
        return self.data[2, pos], self.data[3, pos]

    def column(self, k: int) -> int:
        """Column of bar ``k``'s second copy: its ``window - 1`` predecessors lie before it."""
        return k % self.window + self.window

    def last(self, n: int, count: int) -> np.ndarray:
        """Rows ``y, x, dy, dx`` of the last ``n`` of ``count`` bars pushed, oldest first."""
        start = (count - n) % self.window
        return self.data[:, start : start + n]


class CoMoments:
    """Running sums of two series over a window: Σa, Σb, Σa², Σab, Σb².

    Attributes:
        sa: Σa.
        sb: Σb.
        saa: Σa².
        sab: Σab.
        sbb: Σb².
    """

    def __init__(self) -> None:
        self.sa = self.sb = self.saa = self.sab = self.sbb = 0.0

    def update(self, a: float, b: float) -> None:
        """Add the observation ``(a, b)``."""
        self.sa += a
        self.sb += b
        self.saa += a * a
        self.sab += a * b
        self.sbb += b * b

    def revert(self, a: float, b: float) -> None:
        """Remove the observation ``(a, b)``, added before."""
        self.sa -= a
        self.sb -= b
        self.saa -= a * a
        self.sab -= a * b
        self.sbb -= b * b

    def reset(self, a: np.ndarray, b: np.ndarray) -> None:
        """Recompute the sums from the window's observations."""
        self.sa = float(np.sum(a))
        self.sb = float(np.sum(b))
        self.saa = float(np.dot(a, a))
        self.sab = float(np.dot(a, b))
        self.sbb = float(np.dot(b, b))

    def corr(self, count: int) -> float | None:
        """Pearson correlation of the ``count`` observations; ``None`` when a series is flat."""
        caa = self.saa - self.sa * self.sa / count
        cbb = self.sbb - self.sb * self.sb / count
        cab = self.sab - self.sa * self.sb / count
        if caa > 0.0 and cbb > 0.0:
            return max(-1.0, min(1.0, cab / math.sqrt(caa * cbb)))
        return None


class AnchoredCoMoments(CoMoments):
    """:class:`CoMoments` of ``a - ref_a`` and ``b - ref_b``: levels taken from an anchor.

    Prices are large and close together; sums of the deviations from a recent bar keep the
    centred co-moments accurate where raw ``Σab - ΣaΣb / n`` would cancel away the digits.
    Observations are given and reverted in the series' own units.

    Attributes:
        ref_a: anchor of the first series.
        ref_b: anchor of the second series.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ref_a = self.ref_b = 0.0

    def anchor(self, ref_a: float, ref_b: float) -> None:
        """Move the anchor (the sums are stale until :meth:`reset`, unless still empty)."""
        self.ref_a = ref_a
        self.ref_b = ref_b

    def update(self, a: float, b: float) -> None:
        """Add the observation ``(a, b)``."""
        CoMoments.update(self, a - self.ref_a, b - self.ref_b)

    def revert(self, a: float, b: float) -> None:
        """Remove the observation ``(a, b)``, added before under the same anchor."""
        CoMoments.revert(self, a - self.ref_a, b - self.ref_b)

    def reset(self, a: np.ndarray, b: np.ndarray) -> None:
        """Recompute the sums from the window's observations (own units) at the anchor."""
        CoMoments.reset(self, a - self.ref_a, b - self.ref_b)

    def centred(self, count: int) -> tuple[float, float, float, float, float]:
        """Means (from the anchor) and centred co-moments of the ``count`` observations.

        Returns:
            ``(mean_a, mean_b, caa, cab, cbb)``: ``mean_a`` is the mean of ``a - ref_a``,
            ``caa`` the sum of squared deviations of ``a`` from its mean, and so on.
        """
        mean_a = self.sa / count
        mean_b = self.sb / count
        return (
            mean_a,
            mean_b,
            self.saa - self.sa * mean_a,
            self.sab - self.sa * mean_b,
            self.sbb - self.sb * mean_b,
        )


class ZeroRun:
    """Length of the trailing run of zero differences of one leg.

    An exact test of a leg that did not move over the window, where a variance computed from
    running sums would be a rounding residue instead of zero.
    """

    def __init__(self) -> None:
        self.length = 0

    def update(self, difference: float) -> None:
        """Extend the run by a zero difference, or end it."""
        self.length = self.length + 1 if difference == 0.0 else 0


class RollingGram:
    """Gram matrix ``M = Σ z_k z_kᵀ`` of the rows shared by every ADF / Engle-Granger regression.

    ``z_k = [1, u_{k-1}, v_{k-1}, dy_k, ..., dy_{k-P}, dx_k, ..., dx_{k-P}]``, with ``u``,
    ``v`` the levels from the anchor and ``P`` the largest lag; the rows are the bars of the
    window that have ``P + 1`` predecessors in it. A rank-one add and a rank-one remove per
    bar (compiled kernel), O(P²).

    Args:
        maxlag: ``P``.
    """

    def __init__(self, maxlag: int) -> None:
        self.maxlag = maxlag
        self.dim = 2 * maxlag + 5
        self.matrix = np.zeros((self.dim, self.dim))

    def update(self, ring: BarRing, k: int, y_ref: float, x_ref: float) -> None:
        """Add the row of bar ``k`` (in ``ring`` with its predecessor)."""
        _kernel.gram_row_update(self.matrix, ring.data, ring.column(k), y_ref, x_ref, True)

    def revert(self, ring: BarRing, k: int, y_ref: float, x_ref: float) -> None:
        """Remove the row of bar ``k``, added before under the same anchor."""
        _kernel.gram_row_update(self.matrix, ring.data, ring.column(k), y_ref, x_ref, False)

    def reset(self, bars: np.ndarray, y_ref: float, x_ref: float) -> None:
        """Recompute from the window's rows ``y, x, dy, dx`` (oldest first) at the anchor."""
        p = self.maxlag
        rows = bars.shape[1] - p - 1
        if rows <= 0:
            self.matrix = np.zeros((self.dim, self.dim))
            return
        z = np.empty((rows, self.dim))
        z[:, 0] = 1.0
        z[:, 1] = (bars[0] - y_ref)[p:-1]
        z[:, 2] = (bars[1] - x_ref)[p:-1]
        z[:, 3 : p + 4] = sliding_window_view(bars[2], p + 1)[1:, ::-1]
        z[:, p + 4 :] = sliding_window_view(bars[3], p + 1)[1:, ::-1]
        self.matrix = z.T @ z


class HedgeRatios:
    """Kalman and RLS hedge ratios of one pair, updated bar by bar.

    Both follow every aligned bar in O(1) (one compiled call, :func:`_kernel.hedge_update`):

    * **RLS** — recursive least squares with forgetting factor ``lambda``: at bar ``t``, the
      weighted least-squares fit of y on 1 + x over every bar ``s <= t`` with weights
      ``lambda ** (t - s)``. Kept as exponentially weighted means and co-moments (West 1979),
      which is that fit exactly (the classical covariance update started from an exact fit)
      and does not lose digits to the levels' magnitude.
    * **Kalman** — ``y_t = alpha_t + beta_t x_t + e_t``, ``Var e = r``, with ``(alpha, beta)``
      a random walk of covariance ``q I`` per bar, ``q = delta / (1 - delta)``. Started from the
      first full window's OLS fit (state = its coefficients, covariance = their OLS covariance,
      ``r`` = its residual variance unless given) and run from the next bar on. Computed in
      the equivalent coordinates ``(a, b) = (alpha + beta xc, beta)``, ``xc`` that window's mean
      of x, where the state covariance is well conditioned (log prices vary by 1e-5 around 8).

    Args:
        settings: the estimator settings (``kalman_delta``, ``kalman_obs_var``,
            ``rls_lambda``).

    Examples:
        >>> hedge = HedgeRatios(EstimatorSettings(window=10, rls_lambda=1.0))
        >>> for y, x in [(1.0, 1.0), (3.0, 2.0), (5.0, 3.0)]:
        ...     hedge.update(y, x)
        >>> hedge.estimates()
        (None, (-1.0, 2.0))
    """

    def __init__(self, settings: EstimatorSettings) -> None:
        self._lam = float(settings.rls_lambda)
        self._q = settings.kalman_state_var
        self._obs_var = settings.kalman_obs_var
        self.state = np.zeros(_kernel.HEDGE_STATE_SIZE)

    @property
    def kalman_started(self) -> bool:
        """Whether the Kalman filter has its starting fit."""
        return self.state[5] != 0.0

    def update(self, y: float, x: float) -> None:
        """Add one bar of transformed closes (the Kalman filter only once started)."""
        _kernel.hedge_update(self.state, y, x, self._lam, self._q)

    def start_kalman(self, y_mean: float, x_mean: float, beta: float, sxx: float, sse: float,
                     n: int) -> None:
        """Start the Kalman filter from the OLS fit of a full window.

        Args:
            y_mean: the window mean of y.
            x_mean: the window mean of x.
            beta: the OLS slope.
            sxx: the window's centred sum of squares of x (> 0).
            sse: the OLS residual sum of squares.
            n: bars in the window.
        """
        s2 = max(sse, 0.0) / (n - 2)
        r = s2 if self._obs_var is None else self._obs_var
        # in (a, b), a the fitted y at x_mean, the OLS estimates are uncorrelated
        self.state[5:13] = (1.0, y_mean, beta, x_mean, s2 / n, 0.0, s2 / sxx, r)

    def estimates(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        """``(alpha, beta)`` of the Kalman filter and of RLS.

        Returns:
            ``(kalman, rls)``; the Kalman pair is ``None`` before the filter starts, the
            RLS pair while x has not varied.
        """
        _, mx, my, cxx, cxy, started, a, b, xc = self.state.tolist()[:9]
        kalman = (a - b * xc, b) if started else None
        if not cxx > 0.0:
            return kalman, None
        beta = cxy / cxx
        return kalman, (my - beta * mx, beta)
