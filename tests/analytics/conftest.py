"""Fixtures of the analytics tests; helpers live in ``analytics_oracle.py`` beside this file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analytics_oracle import DATA_DIR, RealBars, load_real_bars  # noqa: E402


@pytest.fixture(scope="session")
def real_bars() -> RealBars:
    """1 s closes of BTCUSDT (y) and ETHUSDT (x) from ../shared/data, aligned."""
    bars = load_real_bars()
    if bars is None:
        pytest.fail(f"real data not found at {DATA_DIR}: clone pairflow beside ../shared "
                    "or set PAIRFLOW_TEST_DATA")
    return bars

