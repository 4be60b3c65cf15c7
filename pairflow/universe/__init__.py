"""Universe scan: every pair of N symbols, ranked by cointegration with false-discovery control.

Settings and the Benjamini–Hochberg q-values load without numba; the scan engine compiles its
kernel on first use (like :mod:`pairflow.analytics`).
"""

from typing import TYPE_CHECKING, Any

from pairflow.universe.fdr import bh_qvalues
from pairflow.universe.settings import ScanSettings

if TYPE_CHECKING:
    from pairflow.universe.scan import STAT_COLUMNS, ScanFrame, UniverseScan

__all__ = ["STAT_COLUMNS", "ScanFrame", "ScanSettings", "UniverseScan", "bh_qvalues"]


def __getattr__(name: str) -> Any:
    if name in ("STAT_COLUMNS", "ScanFrame", "UniverseScan"):
        from pairflow.universe import scan

        return getattr(scan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
