"""Acceptance: the live flow against the local Binance server, under each fault.

Each test replays a slice of the real tape tens of times faster than real time, injects a
fault, and checks that the flow received exactly the tape's trades (no loss, no duplicate,
none late) and that its bars equal a clean replay's.
"""

from __future__ import annotations

import pytest

from tests.binance_server import Faults, Tape
from tests.live.harness import check_exact

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]

SPEED = 40.0


@pytest.fixture(scope="module")
def tape() -> Tape:
    return Tape.load(start_s=30.0, length_s=90.0)


def test_clean_run_equals_replay(tmp_path, tape):
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, Faults())
    assert totals["reconnects"] == 0
    assert totals["backfilled"] == 0


def test_abrupt_close_backfills(tmp_path, tape):
    faults = Faults(events=[(20.0, "abrupt_close", None), (50.0, "refuse", 0.3)])
    totals, stats, _ = check_exact(tmp_path, tape, SPEED, faults)
    assert totals["reconnects"] >= 2
    assert totals["backfilled"] > 0
