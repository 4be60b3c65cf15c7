"""Leg alignment of a pair: gaps and a leg that has not started yet give records without
statistics and with the right reason; statistics use aligned bars only."""

from pairflow.alerts import AlertState
from pairflow.analytics import EstimatorSettings
from pairflow.pairs import PairState
from pairflow.records import Bar, PairStats


def _bar(symbol: str, end: int, close: float) -> Bar:
    return Bar(symbol, "1s", end - 1, end, close, close, close, close, 1.0, close, close, 1, 0.0,
               end, end)


def test_a_leg_that_starts_late_and_a_gap_are_told_apart():
    state = PairState("A/B", "1s", EstimatorSettings(window=10), AlertState(2.0, 0.5))
    out = []
    out += state.update(0, _bar("A", 1, 10.0))
    out += state.update(0, _bar("A", 2, 10.0))
    assert out == []  # B may still send bars ending at 1 and 2
    out += state.update(1, _bar("B", 2, 5.0))
    out += state.update(1, _bar("B", 3, 5.0))
    out += state.update(1, _bar("B", 4, 5.0))
    out += state.update(0, _bar("A", 4, 6.0))
    assert [(r.ts, r.reason, r.n) for r in out] == [
        (1, "B has not started", 0),
        (2, "n < window", 1),
        (3, "no A bar: feed gap", 1),
        (4, "n < window", 2),
    ]
    assert out[0].x is None and out[2].y is None and out[2].x is not None
    assert all(r.beta is None for r in out)


def test_statistics_do_not_depend_on_how_the_legs_interleave():
    closes = [(100.0 + i % 7 + 0.1 * i, 50.0 + (i * 3) % 5 + 0.05 * i) for i in range(40)]

    def run(order):
        state = PairState("A/B", "1s", EstimatorSettings(window=12), AlertState(1.0, 0.2))
        out = []
        for leg, i in order:
            out += state.update(leg, _bar("AB"[leg], i + 1, closes[i][leg]))
        return out

    legs_in_turn = run([(leg, i) for i in range(40) for leg in (0, 1)])
    y_far_ahead = run([(0, i) for i in range(40)] + [(1, i) for i in range(40)])
    assert legs_in_turn == y_far_ahead
    stats = [r for r in legs_in_turn if isinstance(r, PairStats)]
    assert len(stats) == 40
    assert sum(1 for r in stats if r.zscore is not None) == 40 - 11
