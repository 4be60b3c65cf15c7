"""The universe q-value gate of alert entries (``max_pvalue`` with a watched pair in the universe).

Unit tests feed :class:`PairState` hand-made :class:`ScanRecord` s before, after and between
the bars and check the alerts against an independent hysteresis over the pair's z-scores with
the q-value in force (the latest scan time at or before each end). The replay test runs the
real candles with a universe, recomputes the gate from the stored ``scan`` and ``pairs``
tables, and checks that two workers give the same alerts.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

import pairflow.pairs
from pairflow.alerts import AlertState
from pairflow.analytics import EstimatorSettings
from pairflow.pairs import PairState
from pairflow.records import Alert, Bar, PairStats, QuoteBar, ScanRecord, SpreadCost
from tests.helpers import SHARED_DATA, run_replay

SECOND = 1_000_000
SCAN_EVERY = 10 * SECOND
FIRST_SCAN = 50 * SECOND
ENTRY, EXIT, MAX_P = 1.0, 0.2, 0.05


def _bars(n: int = 300) -> list[list[Bar]]:
    """Two legs' 1 s bars: B a random walk, A = B times a mean-reverting (AR 0.8) spread."""
    rng = np.random.default_rng(5)
    b = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.zeros(n)
    for i in range(1, n):
        spread[i] = 0.8 * spread[i - 1] + rng.normal(0, 0.01)
    a = 2.0 * b * np.exp(spread)
    return [[Bar(symbol, "1s", i * SECOND, (i + 1) * SECOND, c, c, c, c, 1.0, c, c, 1, 0.0,
                 i, i) for i, c in enumerate(closes.tolist())]
            for symbol, closes in (("A", a), ("B", b))]


def _quotes(bars: list[list[Bar]]) -> list[list[QuoteBar]]:
    return [[QuoteBar(bar.symbol, "1s", bar.start, bar.end, bar.close * 0.9999, 1.0,
                      bar.close * 1.0001, 1.0, 2.0, 0.0, bar.close, 2.0, 0.0, 2.0, 3, None,
                      None, None) for bar in leg] for leg in bars]


def _scans(last: int) -> list[ScanRecord]:
    """The scan records of the universe pair ``B/A`` (the universe names B first): q-values
    on both sides of ``MAX_P``, and now and then none."""
    rng = np.random.default_rng(9)
    out = []
    for ts in range(FIRST_SCAN, last + 1, SCAN_EVERY):
        q = None if ts // SCAN_EVERY % 7 == 0 else float(rng.uniform(0.0, 0.1))
        out.append(ScanRecord("B/A", "1s", ts, ts, 30, 30, *[None] * 8, q, None, None, None))
    return out


def _q_in_force(scans: list[ScanRecord], ts: int) -> float | None:
    """The q-value of the latest scan at or before ``ts`` (None: no scan yet, or no q)."""
    before = [scan for scan in scans if scan.ts <= ts]
    return before[-1].eg_qvalue if before else None


def _expected(zscores: list[tuple[int, float | None]], gate) -> list[tuple[int, str]]:
    """(ts, kind) of an independent hysteresis over ``(ts, z)``, entries gated by ``gate(ts)``."""
    side, fired = 0, []
    for ts, z in zscores:
        if z is None:
            continue
        if side and side * z < EXIT:
            fired.append((ts, "exit"))
            side = 0
        significance = gate(ts)
        if side == 0 and abs(z) >= ENTRY and significance is not None and significance < MAX_P:
            side = 1 if z > 0 else -1
            fired.append((ts, "enter_upper" if z > 0 else "enter_lower"))
    return fired


def _zscores(records: list) -> list[tuple[int, float | None]]:
    return [(r.ts, r.zscore) for r in records if isinstance(r, PairStats)]


def _gated_state(**options) -> PairState:
    net = options.pop("net_of_cost", False)
    return PairState("A/B", "1s", EstimatorSettings(window=30),
                     AlertState(ENTRY, EXIT, max_pvalue=MAX_P, net_of_cost=net),
                     scan_every_us=SCAN_EVERY, **options)


def _run(order: str, state: PairState | None = None, quote_lag: int | None = None) -> list:
    """Feed bars (and quote bars ``quote_lag`` ends behind, every 13th pair missing) and
    the scans in ``order``; return every record emitted."""
    state = state or _gated_state()
    bars = _bars()
    quotes = _quotes(bars)
    scans = _scans(bars[0][-1].end)
    out = []
    if order == "scans first":
        for scan in scans:
            out += state.scanned(scan)
    pending = list(scans)
    for i in range(len(bars[0])):
        out += state.update(1, bars[1][i]) + state.update(0, bars[0][i])
        if quote_lag is not None and i >= quote_lag and (i - quote_lag) % 13:
            out += state.update(0, quotes[0][i - quote_lag])
            out += state.update(1, quotes[1][i - quote_lag])
        # lagging: each scan comes 25 bars after its time
        while order == "lagging" and pending and pending[0].ts + 25 * SECOND <= bars[0][i].end:
            out += state.scanned(pending.pop(0))
    if order != "scans first":
        for scan in pending:
            out += state.scanned(scan)
    return out


def _alerts(records: list) -> list[Alert]:
    return [r for r in records if isinstance(r, Alert)]


def test_entries_are_gated_by_the_q_value_in_force_whenever_the_scans_arrive():
    first = _run("scans first")
    zscores = _zscores(first)
    scans = _scans(zscores[-1][0])
    alerts = _alerts(first)
    assert [(a.ts, a.alert_kind) for a in alerts] == _expected(
        zscores, lambda ts: _q_in_force(scans, ts))
    entries = [a for a in alerts if a.alert_kind != "exit"]
    assert len(entries) >= 5
    for entry in entries:
        assert entry.qvalue == _q_in_force(scans, entry.ts) < MAX_P
        assert entry.ts >= FIRST_SCAN
    assert all(a.qvalue is None for a in alerts if a.alert_kind == "exit")
    # Without the gate, entries fire where the q-value is at or above MAX_P, is missing, or
    # before the first scan: the gate suppressed them.
    ungated = {e for e in _expected(zscores, lambda ts: 0.0) if e[1] != "exit"}
    suppressed = ungated - {(a.ts, a.alert_kind) for a in entries}
    assert any(ts < FIRST_SCAN for ts, _ in suppressed)
    assert any(_q_in_force(scans, ts) is None for ts, _ in suppressed if ts >= FIRST_SCAN)
    assert any((_q_in_force(scans, ts) or 0) >= MAX_P for ts, _ in suppressed)
    assert _alerts(_run("scans last")) == alerts == _alerts(_run("lagging"))


def test_decisions_wait_for_the_scan_and_only_for_it():
    state = _gated_state()
    bars = _bars()
    for i in range(60):  # the first scan (50 s) is not in yet: every end waits
        assert not _alerts(state.update(0, bars[0][i]) + state.update(1, bars[1][i]))
    assert len(state.waiting) == 60
    scans = _scans(60 * SECOND)
    # the 50 s scan decides the ends up to 59 s (the 60 s scan is what end 60 s needs)
    state.scanned(scans[0])
    assert [s.ts for s in state.waiting] == [60 * SECOND]
    state.scanned(scans[1])
    assert state.waiting == [] and list(state.qvalues) == [60 * SECOND]


def test_a_pair_outside_the_universe_keeps_its_p_value_gate():
    state = PairState("A/B", "1s", EstimatorSettings(window=30),
                      AlertState(ENTRY, EXIT, max_pvalue=MAX_P))
    bars = _bars()
    out = [r for i in range(len(bars[0]))
           for r in state.update(0, bars[0][i]) + state.update(1, bars[1][i])]
    stats = {r.ts: r for r in out if isinstance(r, PairStats)}
    alerts = _alerts(out)
    assert [(a.ts, a.alert_kind) for a in alerts] == _expected(
        _zscores(out), lambda ts: stats[ts].eg_pvalue)
    assert alerts and all(a.qvalue is None for a in alerts)


def test_cost_and_scan_waits_combine():
    """Net of cost and q-gated: quote bars 3 ends behind (some never), scans 25 s behind."""
    def run(order, lag):
        return _run(order, _gated_state(net_of_cost=True, quotes=True), quote_lag=lag)

    early, late = run("scans first", 0), run("lagging", 3)
    costs = {c.ts: c for c in early if isinstance(c, SpreadCost)}
    # Each 13th end's quote bars never come: no entry there (decided once a later end is
    # costed). The lagging run's last 3 ends wait for quote bars past the input's end: no
    # alert at all. Elsewhere the alerts are the same.
    missing = {(i + 1) * SECOND for i in range(300) if not i % 13}
    tail = 297 * SECOND

    def comparable(alerts: list[Alert]) -> list[Alert]:
        return [a for a in alerts if a.ts <= tail and (a.ts not in missing
                                                       or a.alert_kind == "exit")]

    assert comparable(_alerts(early)) == comparable(_alerts(late))
    assert all(a.ts <= tail for a in _alerts(late))
    entries = [a for a in _alerts(early) if a.alert_kind != "exit"]
    assert entries
    scans = _scans(300 * SECOND)
    for entry in entries:
        cost = costs[entry.ts]
        assert entry.qvalue == _q_in_force(scans, entry.ts) < MAX_P
        assert entry.edge == (abs(entry.zscore) - EXIT) * next(
            s.spread_std for s in early if isinstance(s, PairStats) and s.ts == entry.ts) - (
            cost.crossing + cost.fees) > 0


def test_waiting_is_bounded(monkeypatch):
    monkeypatch.setattr(pairflow.pairs, "MAX_PENDING", 5)
    state = _gated_state()
    bars = _bars()
    alerts = []
    for i in range(40):  # no scan ever: the oldest ends are decided without one
        alerts += _alerts(state.update(0, bars[0][i]) + state.update(1, bars[1][i]))
        assert len(state.waiting) <= 5
    assert alerts == []


CANDLES = SHARED_DATA / "candles-2018-01-5m"
UNIVERSE = ("ADABTC", "DASHBTC", "ETCBTC", "ETHBTC", "LTCBTC")
GATED, OUTSIDE = "LTCBTC/ETHBTC", "XMRBTC/ETHBTC"  # the universe scans ETHBTC/LTCBTC


def _replay(store: Path, workers: int) -> dict:
    files = [CANDLES / f"{symbol}-5m-2018-01.csv" for symbol in (*UNIVERSE, "XMRBTC")]
    return run_replay(files, store, workers=workers, symbols=("XMRBTC",), timeframes="5m",
                      pairs=f"{GATED},{OUTSIDE}", window=48, universe=",".join(UNIVERSE),
                      scan_timeframe="5m", scan_window=48, scan_every=12, max_pvalue=MAX_P,
                      entry_z=ENTRY, exit_z=EXIT, pnl=False, scan_retention_days=1e6)


def _rows(store: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as connection:
        return connection.execute(sql).fetchall()


def test_replay_gates_universe_pairs_by_q_value_on_one_or_two_workers(tmp_path):
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    _replay(one, 1)
    scans = sorted(_rows(one, "SELECT ts, eg_qvalue FROM scan WHERE pair = 'ETHBTC/LTCBTC'"))
    assert len(scans) > 400 and sum(q is not None and q < MAX_P for _, q in scans) > 20
    scan_times = [ts for ts, _ in scans]

    def q_in_force(ts: int) -> float | None:
        i = int(np.searchsorted(scan_times, ts, side="right"))
        return scans[i - 1][1] if i else None

    for pair in (GATED, OUTSIDE):
        rows = _rows(one, f"SELECT ts, zscore, eg_pvalue FROM pairs WHERE pair = '{pair}' "
                          f"ORDER BY ts")
        zscores = [(ts, z) for ts, z, _ in rows]
        pvalues = {ts: p for ts, _, p in rows}
        alerts = _rows(one, f"SELECT ts, kind, qvalue FROM alerts WHERE pair = '{pair}' "
                            f"ORDER BY ts, kind = 'exit' DESC")
        gate = q_in_force if pair == GATED else pvalues.get
        assert [(ts, kind) for ts, kind, _ in alerts] == _expected(zscores, gate)
        entries = [(ts, q) for ts, kind, q in alerts if kind != "exit"]
        assert len(entries) > 20
        if pair == GATED:
            assert all(q == q_in_force(ts) < MAX_P for ts, q in entries)
            # entries the pair's own p-value or no gate would have let in, the q-value did not
            ungated = {e for e in _expected(zscores, lambda ts: 0.0) if e[1] != "exit"}
            suppressed = ungated - {(ts, kind) for ts, kind, _ in alerts}
            assert sum((q_in_force(ts) or 1.0) >= MAX_P for ts, _ in suppressed) > 10
        else:
            assert all(q is None for _, q in entries)
    _replay(two, 2)
    every_alert = "SELECT * FROM alerts ORDER BY alert_id"
    assert _rows(two, every_alert) == _rows(one, every_alert)


@pytest.mark.parametrize("pairs, gated", [
    ("ETHBTC/LTCBTC", {"ETHBTC/LTCBTC": ["ETHBTC/LTCBTC"]}),
    ("LTCBTC/ETHBTC,ETHBTC/LTCBTC", {"ETHBTC/LTCBTC": ["LTCBTC/ETHBTC", "ETHBTC/LTCBTC"]}),
    ("XMRBTC/ETHBTC", {}),
])
def test_which_watched_pairs_the_universe_gates(pairs, gated):
    from flows.universe import qvalue_gated
    from pairflow.config import load_config

    settings = {"source": "replay", "files": ["x.csv"], "symbols": "XMRBTC", "pairs": pairs,
                "universe": ",".join(UNIVERSE), "store": "s.db"}
    assert qvalue_gated(load_config({**settings, "max_pvalue": MAX_P}, env={})) == gated
    assert qvalue_gated(load_config(settings, env={})) == {}
