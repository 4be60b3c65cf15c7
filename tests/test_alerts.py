"""Alert state machine on crafted z sequences, and end to end on the real tape."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairflow.alerts import AlertState
from pairflow.errors import ConfigError
from tests.helpers import SPOT_FILES, run_replay, store_bars, table_rows


def feed(state: AlertState, zs, pair="BTCUSDT/ETHUSDT", timeframe="1s"):
    """(bar index, kind, threshold) of every alert fired over a z sequence."""
    fired = []
    for i, z in enumerate(zs):
        for alert in state.update(pair, timeframe, 1_000_000 * (i + 1), z, 0.1 * i, 1.5):
            fired.append((i, alert.alert_kind, alert.threshold))
    return fired


def test_enter_upper_no_reentry_then_exit():
    zs = [1.0, 2.1, 3.0, 2.5, 0.6, 0.5, 0.4, 1.0, 2.0]
    assert feed(AlertState(2.0, 0.5), zs) == [
        (1, "enter_upper", 2.0), (6, "exit", 0.5), (8, "enter_upper", 2.0)]


def test_enter_lower_and_exit():
    zs = [-1.9, -2.0, -5.0, -0.6, -0.49, -2.2]
    assert feed(AlertState(2.0, 0.5), zs) == [
        (1, "enter_lower", -2.0), (4, "exit", 0.5), (5, "enter_lower", -2.0)]


def test_cross_through_zero_exits_and_enters_other_side_in_one_bar():
    fired = feed(AlertState(2.0, 0.5), [2.5, -2.6, -1.0, 0.3])
    assert fired == [(0, "enter_upper", 2.0), (1, "exit", 0.5), (1, "enter_lower", -2.0),
                     (3, "exit", 0.5)]
    assert feed(AlertState(2.0, 0.5), [2.5, -1.0]) == [(0, "enter_upper", 2.0),
                                                      (1, "exit", 0.5)]


def test_none_z_leaves_state_alone():
    state = AlertState(2.0, 0.5)
    assert feed(state, [2.5, None, 0.1]) == [(0, "enter_upper", 2.0), (2, "exit", 0.5)]
    state = AlertState(2.0, 0.5)
    assert state.update("A/B", "1s", 1, 3.0, None, 1.0) == []  # no spread: no statistic
    assert state.update("A/B", "1s", 2, 3.0, 0.1, None) == []
    assert state.side == 0


def test_alert_fields_and_deterministic_id():
    state = AlertState(2.0, 0.5)
    (alert,) = state.update("BTCUSDT/ETHUSDT", "1m", 1_723_161_300_000_000, -2.25, -0.01, 0.8)
    assert alert.alert_id == "BTCUSDT/ETHUSDT|1m|1723161300000000|enter_lower"
    assert (alert.pair, alert.timeframe, alert.ts, alert.alert_kind) == (
        "BTCUSDT/ETHUSDT", "1m", 1_723_161_300_000_000, "enter_lower")
    assert (alert.zscore, alert.threshold, alert.spread, alert.beta) == (-2.25, -2.0, -0.01, 0.8)
    assert alert.key == "BTCUSDT/ETHUSDT"


def test_cooldown_blocks_entries_but_not_exits():
    # cooldown 3: the exit bar and the next bars cannot enter; a later bar can.
    zs = [2.5, 0.0, 2.5, 2.5, 2.5, 2.5, 2.5]
    fired = feed(AlertState(2.0, 0.5, cooldown_bars=3), zs)
    assert fired[:2] == [(0, "enter_upper", 2.0), (1, "exit", 0.5)]
    assert [kind for _, kind, _ in fired[2:]] == ["enter_upper"]
    assert fired[2][0] > 3  # bars 2 and 3 (1 and 2 bars after the exit) are cooling
    # No cross-through entry on the exit bar itself while cooling.
    assert feed(AlertState(2.0, 0.5, cooldown_bars=1), [2.5, -2.5]) == [
        (0, "enter_upper", 2.0), (1, "exit", 0.5)]


@pytest.mark.parametrize("cooldown", [1, 2, 5])
def test_cooldown_counts_bars_after_the_exit(cooldown):
    # Docs (config, CLI --help): "bars after an exit during which no new entry fires".
    # With cooldown N, the N bars following the exit bar must not enter; bar N+1 after may.
    zs = [2.5, 0.0] + [2.5] * (cooldown + 2)
    fired = feed(AlertState(2.0, 0.5, cooldown_bars=cooldown), zs)
    entries = [i for i, kind, _ in fired if kind == "enter_upper"]
    assert entries == [0, 1 + cooldown + 1], fired


def test_bad_settings():
    for entry, exit_, cooldown in ((2.0, 2.0, 0), (1.0, 1.5, 0), (2.0, -0.1, 0), (2.0, 0.5, -1)):
        with pytest.raises(ConfigError):
            AlertState(entry, exit_, cooldown)


def reference_alerts(zs, entry, exit_):
    """Plain hysteresis without cooldown, written from the documented rules."""
    side, out = 0, []
    for i, z in enumerate(zs):
        if z is None:
            continue
        if side == 1 and z < exit_ or side == -1 and z > -exit_:
            side = 0
            out.append((i, "exit"))
        if side == 0 and z >= entry:
            side = 1
            out.append((i, "enter_upper"))
        elif side == 0 and z <= -entry:
            side = -1
            out.append((i, "enter_lower"))
    return out


@settings(max_examples=200, deadline=None)
@given(zs=st.lists(st.none() | st.floats(-6, 6), max_size=60),
       entry=st.floats(0.5, 4), ratio=st.floats(0, 0.99))
def test_state_machine_matches_reference(zs, entry, ratio):
    exit_ = entry * ratio
    fired = [(i, kind) for i, kind, _ in feed(AlertState(entry, exit_), zs)]
    assert fired == reference_alerts(zs, entry, exit_)
    # Never two entries without an exit between them.
    kinds = [kind for _, kind in fired]
    for a, b in zip(kinds, kinds[1:], strict=False):
        assert not (a.startswith("enter") and b.startswith("enter"))


# ---------------------------------------------------------------------------- real tape

WINDOW = 120
ENTRY, EXIT = 3.0, 0.5


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    if len(SPOT_FILES) != 4:
        pytest.skip("real spot tape not found")
    folder = tmp_path_factory.mktemp("alerts")
    stores = []
    for name in ("a.db", "b.db"):
        db = folder / name
        run_replay(SPOT_FILES, db, timeframes="1s", pairs="BTCUSDT/ETHUSDT", window=WINDOW,
                   price="log", entry_z=ENTRY, exit_z=EXIT)
        stores.append(db)
    return stores


def independent_z(db):
    """z of log BTC on log ETH over the last WINDOW aligned 1s closes (centred OLS)."""
    y_bars = {b["end"]: b["close"] for b in store_bars(db, "BTCUSDT", "1s")}
    x_bars = {b["end"]: b["close"] for b in store_bars(db, "ETHUSDT", "1s")}
    ends = sorted(set(y_bars) & set(x_bars))
    y = np.log([y_bars[e] for e in ends])
    x = np.log([x_bars[e] for e in ends])
    zs = {}
    for i in range(WINDOW - 1, len(ends)):
        yw, xw = y[i - WINDOW + 1:i + 1], x[i - WINDOW + 1:i + 1]
        xc = xw - xw.mean()
        beta = float(xc @ (yw - yw.mean()) / (xc @ xc))
        residual = yw - beta * xw
        zs[ends[i]] = float((residual[-1] - residual.mean()) / residual.std(ddof=1))
    return ends, zs


def test_real_tape_z_excursions_and_alerts(real_run):
    db = real_run[0]
    ends, zs = independent_z(db)
    with sqlite3.connect(db) as connection:
        stored = dict(connection.execute(
            "SELECT ts, zscore FROM pairs WHERE timeframe = '1s' AND zscore IS NOT NULL"))
        alerts = connection.execute(
            "SELECT ts, kind, zscore, threshold FROM alerts ORDER BY ts, kind != 'exit'"
        ).fetchall()
    assert set(stored) == set(zs)
    assert max(abs(stored[t] - zs[t]) for t in zs) < 1e-6
    biggest = max(abs(z) for z in zs.values())
    assert biggest > 3.5  # the tape has real excursions (max |z| here is about 3.86)
    sequence = [zs.get(e) for e in ends]
    expected = [(ends[i], kind) for i, kind in reference_alerts(sequence, ENTRY, EXIT)]
    assert [(ts, kind) for ts, kind, _, _ in alerts] == expected
    assert any(kind == "enter_upper" for _, kind in expected) or any(
        kind == "enter_lower" for _, kind in expected)
    for ts, kind, z, threshold in alerts:
        assert math.isclose(z, zs[ts], abs_tol=1e-6)
        assert threshold == {"enter_upper": ENTRY, "enter_lower": -ENTRY, "exit": EXIT}[kind]


def test_replay_twice_gives_the_same_alerts(real_run):
    a, b = real_run
    assert table_rows(a, "alerts") == table_rows(b, "alerts")
    assert len(table_rows(a, "alerts")) >= 2
