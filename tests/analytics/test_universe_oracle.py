"""Every scan statistic against the exact oracle, on random universes with gaps.

Each pair's window is rebuilt independently from the raw input (the bar ends where both legs
have a bar, at or before the scan time, the last ``window`` of them) and its statistics are
computed exactly: mpmath at 60 digits for OLS, z, correlation, half-life, variance ratio and
Hurst exponent; statsmodels' ``adfuller`` + ``mackinnonp`` on the exact residual for the
Engle-Granger tests in both directions; Benjamini–Hochberg with fractions. Tolerances are the
contract: 1e-6 (relative above 1), beta 1e-7 relative.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from analytics_oracle import oracle, transform
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairflow.universe import ScanSettings, UniverseScan, bh_qvalues

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MINUTE = 60_000_000
TOL = 1e-6
BETA_TOL = 1e-7


def persistence_oracle(y: np.ndarray, x: np.ndarray, vr_lag: int, hurst_max_lag: int):
    """Variance ratio and Hurst exponent of the exact OLS residual of y on x (mpmath)."""
    with mpmath.workdps(60):
        ys = [mpmath.mpf(float(v)) for v in y]
        xs = [mpmath.mpf(float(v)) for v in x]
        n = len(ys)
        my = mpmath.fsum(ys) / n
        mx = mpmath.fsum(xs) / n
        beta = mpmath.fsum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / \
            mpmath.fsum((a - mx) ** 2 for a in xs)
        e = [(b - my) - beta * (a - mx) for a, b in zip(xs, ys, strict=True)]

        def mean_sq(q: int):
            return mpmath.fsum((e[t] - e[t - q]) ** 2 for t in range(q, n)) / (n - q)

        vr = mean_sq(vr_lag) / (vr_lag * mean_sq(1))
        taus = range(2, hurst_max_lag + 1)
        lx = [mpmath.log(t) for t in taus]
        ly = [mpmath.log(mpmath.sqrt(mean_sq(t))) for t in taus]
        mlx = mpmath.fsum(lx) / len(lx)
        mly = mpmath.fsum(ly) / len(ly)
        hurst = mpmath.fsum((a - mlx) * (b - mly) for a, b in zip(lx, ly, strict=True)) / \
            mpmath.fsum((a - mlx) ** 2 for a in lx)
        return float(vr), float(hurst)


def bh_oracle(pvalues: list[float | None]) -> list[float | None]:
    """Benjamini–Hochberg straight from the definition, in exact fractions."""
    defined = [Fraction(p) for p in pvalues if p is not None]
    m = len(defined)
    ranked = sorted(defined)
    out = []
    for p in pvalues:
        if p is None:
            out.append(None)
            continue
        i = ranked.index(Fraction(p)) + 1  # first rank of a tied value: min over j >= i
        q = min(m * ranked[j - 1] / j for j in range(i, m + 1))
        out.append(float(min(q, Fraction(1))))
    return out


def close(got, want, tol=TOL) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return abs(got - want) <= tol * max(1.0, abs(want))


def universe(seed: int, symbols: int, length: int, gap: float, tight: bool) -> np.ndarray:
    """Random closes (bars × symbols), a common factor so some pairs cointegrate; NaN = gap."""
    rng = np.random.default_rng(seed)
    factor = np.cumsum(rng.normal(0, 0.01, length))
    closes = np.empty((length, symbols))
    for s in range(symbols):
        noise = np.empty(length)
        noise[0] = 0.0
        phi = rng.uniform(0.0, 0.99)
        for t in range(1, length):
            noise[t] = phi * noise[t - 1] + rng.normal(0, 0.002 if tight else 0.01)
        own = 0.0 if s % 2 else np.cumsum(rng.normal(0, 0.005, length))
        closes[:, s] = 10.0 ** rng.uniform(-5, 4) * np.exp(rng.uniform(0.5, 2) * factor
                                                            + noise + own)
    closes[rng.random((length, symbols)) < gap] = np.nan
    return closes


def check_scan(closes: np.ndarray, scan: ScanSettings, frames_checked: int = 3) -> int:
    """Run the scan over ``closes`` and compare sampled frames with the oracle; rows checked."""
    names = tuple(f"S{i}X" for i in range(closes.shape[1]))
    engine = UniverseScan(names, scan, capacity=closes.shape[0])
    frames = [(t, f) for t in range(closes.shape[0])
              for f in engine.push((t + 1) * MINUTE, closes[t])]
    assert frames
    logp = np.column_stack([transform(np.nan_to_num(c, nan=1.0), scan.price) for c in closes.T])
    logp[np.isnan(closes)] = np.nan
    sample = {0, len(frames) // 2, len(frames) - 1}
    checked = 0
    for t, frame in (frames[i] for i in sorted(sample, reverse=True)[:frames_checked]):
        assert frame.ts == (t + 1) * MINUTE
        rows = frame.rows()
        expected_p = []
        for row, (a, b) in zip(rows, scan.pairs(names), strict=True):
            ia, ib = names.index(a), names.index(b)
            both = np.flatnonzero(~np.isnan(logp[: t + 1, ia]) & ~np.isnan(logp[: t + 1, ib]))
            assert row["pair"] == f"{a}/{b}"
            assert row["n"] == min(len(both), scan.scan_window)
            assert row["as_of"] == (None if not len(both) else (int(both[-1]) + 1) * MINUTE)
            if len(both) < scan.scan_window:
                assert row["reason"] == "n < window"
                assert all(row[c] is None for c in ("beta", "zscore", "eg_pvalue", "hurst"))
                expected_p.append(None)
                continue
            rows_ = both[-scan.scan_window:]
            y, x = logp[rows_, ia], logp[rows_, ib]
            yx = oracle(y, x, scan.lag)
            xy = oracle(x, y, scan.lag)
            assert close(row["beta"], yx["beta"], BETA_TOL), (row, yx)
            for field in ("zscore", "corr", "half_life", "eg_stat"):
                assert close(row[field], yx[field]), (field, row[field], yx[field])
            assert close(row["eg_pvalue_yx"], yx["eg_pvalue"])
            assert close(row["eg_pvalue_xy"], xy["eg_pvalue"])
            want_p = None if yx["eg_pvalue"] is None or xy["eg_pvalue"] is None else \
                max(yx["eg_pvalue"], xy["eg_pvalue"])
            assert close(row["eg_pvalue"], want_p)
            expected_p.append(want_p)
            if yx["zscore"] is not None:
                vr, hurst = persistence_oracle(y, x, scan.vr_lag, scan.hurst_max_lag)
                assert close(row["variance_ratio"], vr), (row["variance_ratio"], vr)
                assert close(row["hurst"], hurst), (row["hurst"], hurst)
            checked += 1
        for row, want_q in zip(rows, bh_oracle(expected_p), strict=True):
            assert close(row["eg_qvalue"], want_q), (row["eg_qvalue"], want_q)
    return checked


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    symbols=st.integers(2, 4),
    window=st.integers(30, 90),
    extra=st.integers(0, 120),
    gap=st.sampled_from([0.0, 0.0, 0.05, 0.3]),
    every=st.integers(1, 40),
    lag=st.one_of(st.sampled_from(["aic", "bic"]), st.integers(0, 3)),
    price=st.sampled_from(["log", "raw"]),
    tight=st.booleans(),
)
def test_scan_matches_oracle(seed, symbols, window, extra, gap, every, lag, price, tight):
    closes = universe(seed, symbols, window + extra + 10, gap, tight)
    scan = ScanSettings(scan_window=window, scan_every=every, scan_timeframe="1m",
                        vr_lag=int(np.random.default_rng(seed).integers(2, 12)),
                        hurst_max_lag=int(np.random.default_rng(seed + 1).integers(3, 25)),
                        lag=lag, price=price)
    check_scan(closes, scan)


def test_default_settings_on_a_wide_universe():
    """Window 240, AIC, vr_lag 10, Hurst to 20: the issue's defaults, six symbols, gaps."""
    closes = universe(20260101, 6, 400, 0.02, tight=False)
    assert check_scan(closes, ScanSettings(scan_every=80, scan_timeframe="1m"),
                      frames_checked=1) == 15


@SETTINGS
@given(p=st.lists(st.one_of(st.none(), st.floats(0.0, 1.0), st.sampled_from([0.01, 0.05])),
                  max_size=40))
def test_bh_matches_definition(p):
    got = bh_qvalues(np.array([math.nan if v is None else v for v in p], dtype=float))
    for g, want in zip(got.tolist(), bh_oracle(p), strict=True):
        assert (math.isnan(g) and want is None) or abs(g - want) <= 1e-12


def test_a_symbol_without_bars_leaves_its_pairs_without_statistics():
    closes = universe(5, 3, 80, 0.0, tight=True)
    closes[:, 2] = np.nan
    engine = UniverseScan(("AAA", "BBB", "CCC"),
                          ScanSettings(scan_window=40, scan_every=80, hurst_max_lag=5),
                          capacity=80)
    frames = [f for t in range(80) for f in engine.push((t + 1) * MINUTE, closes[t])]
    (frame,) = frames
    rows = frame.rows()
    assert rows[0]["reason"] is None and rows[0]["eg_qvalue"] is not None
    for row in rows[1:]:
        assert (row["n"], row["as_of"], row["reason"], row["beta"]) == (0, None, "n < window",
                                                                        None)


def test_scan_times_inside_a_gap_carry_the_last_aligned_bar():
    closes = universe(9, 2, 60, 0.0, tight=False)
    engine = UniverseScan(("AAA", "BBB"), ScanSettings(scan_window=30, scan_every=10,
                                                       hurst_max_lag=5))
    frames = [f for t in range(45) for f in engine.push((t + 1) * MINUTE, closes[t])]
    frames += engine.push(70 * MINUTE, closes[45])  # nothing from 46 to 69 minutes
    assert [f.ts // MINUTE for f in frames] == [10, 20, 30, 40, 50, 60, 70]
    gap_rows = [f.rows()[0] for f in frames[4:6]]
    assert [r["as_of"] for r in gap_rows] == [45 * MINUTE, 45 * MINUTE]
    assert gap_rows[0] == {**gap_rows[1], "ts": gap_rows[0]["ts"]}
    assert frames[6].rows()[0]["as_of"] == 70 * MINUTE


@pytest.mark.parametrize("end", [MINUTE + 1, MINUTE])
def test_out_of_order_or_misaligned_ends_are_rejected(end):
    from pairflow.analytics import InputError

    engine = UniverseScan(("AAA", "BBB"), ScanSettings(scan_window=30, hurst_max_lag=5))
    with pytest.raises(InputError, match="nothing to scan"):
        engine.scan(MINUTE)
    engine.push(MINUTE, np.array([1.0, 2.0]))
    with pytest.raises(InputError):
        engine.push(end, np.array([1.0, 2.0]))
    with pytest.raises(InputError, match="BBB close must be positive"):
        engine.push(2 * MINUTE, np.array([1.0, -2.0]))


@pytest.mark.parametrize("module", ["pairflow.universe.scan", "pairflow.universe.fdr",
                                    "pairflow.universe.settings"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_a_ring_of_history_scans_as_the_whole_input_while_windows_fit():
    """A short ring (wrapping many times, then a jump in time longer than the ring) gives the
    same bits as a history of the whole input while windows fit in it, and no statistics —
    never stale bars — when they do not."""
    closes = universe(11, 3, 400, 0.0, tight=False)
    settings = ScanSettings(scan_window=40, scan_every=7, hurst_max_lag=6, vr_lag=3)
    ends = [(t + 1 + (500 if t >= 300 else 0)) * MINUTE for t in range(400)]
    closes[300:302, 1] = np.nan  # B misses the bars after the jump: A/B needs older ones
    whole = UniverseScan(("AAA", "BBB", "CCC"), settings, capacity=1000)
    ring = UniverseScan(("AAA", "BBB", "CCC"), settings, capacity=41)
    same = short = 0
    for end, row in zip(ends, closes, strict=True):
        got, want = ring.push(end, row), whole.push(end, row)
        assert [f.ts for f in got] == [f.ts for f in want]
        for g, w in zip(got, want, strict=True):
            if g.n.tolist() == w.n.tolist():
                assert g.rows() == w.rows()
            for rg, rw in zip(g.rows(), w.rows(), strict=True):
                del rg["eg_qvalue"], rw["eg_qvalue"]  # BH counts the pairs with a p-value
                if rg == rw:
                    same += rg["n"] == 40
                    continue
                # the window reaches back past the ring's 41 bars (across the jump, or B's
                # missing bars after it): the ring holds fewer, never stale ones
                assert rg["n"] < rw["n"] == 40 and rg["reason"] == "n < window", (rg, rw)
                assert rg["as_of"] == rw["as_of"] and rg["n"] <= (end - 800 * MINUTE) // MINUTE
                short += 1
    assert short and same > 100
    assert ring.scan(ends[-1]).rows() == whole.scan(ends[-1]).rows()


def test_degenerate_legs_give_reasons_never_nan_or_inf():
    """A flat leg, legs tied exactly, absurd raw magnitudes: null statistics with a reason."""
    from pairflow.records import to_json

    rng = np.random.default_rng(3)
    walk = 100.0 + np.cumsum(rng.normal(size=60))
    closes = np.column_stack([walk, np.full(60, 7.0), 2.0 * walk, walk * 1e300,
                              1e-300 + np.cumsum(rng.random(60)) * 1e-300])
    engine = UniverseScan(("WALK", "FLAT", "TWICE", "HUGE", "TINY"),
                          ScanSettings(scan_window=40, scan_every=60, hurst_max_lag=5,
                                       price="raw"))
    (frame,) = [f for t in range(60) for f in engine.push((t + 1) * MINUTE, closes[t])]
    rows = {r["pair"]: r for r in frame.rows()}
    assert rows["WALK/FLAT"]["reason"] == "zero variance in x; zero variance in returns"
    assert rows["FLAT/TWICE"]["beta"] == 0.0 and "zero variance in y" in rows["FLAT/TWICE"][
        "reason"]
    assert rows["WALK/TWICE"]["reason"] == "collinear legs" and rows["WALK/TWICE"]["zscore"] \
        is None
    assert rows["WALK/HUGE"]["reason"] == "non-finite intermediate result"
    assert rows["WALK/HUGE"]["beta"] is None
    for record in frame.records():
        to_json(record)  # no NaN or inf reaches a record
        values = [getattr(record, c) for c in ("beta", "zscore", "hurst", "eg_qvalue")]
        assert all(v is None or math.isfinite(v) for v in values)
        assert record.reason is not None or None not in values


@SETTINGS
@given(stats=st.lists(st.one_of(st.floats(-30.0, 5.0), st.just(math.nan),
                                 st.sampled_from([-18.86, -18.861, 0.92, 0.921, -2.62])),
                       max_size=30), n=st.sampled_from([1, 2]))
def test_mackinnonp_array_is_mackinnonp_bit_for_bit(stats, n):
    from pairflow.analytics.mackinnon import mackinnonp, mackinnonp_array

    got = mackinnonp_array(np.array(stats, dtype=float), "c", n).tolist()
    want = [math.nan if math.isnan(s) else mackinnonp(s, "c", n) for s in stats]
    assert [repr(g) for g in got] == [repr(w) for w in want]
