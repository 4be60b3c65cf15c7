"""CSV export of what the dashboard shows, in the format of ``pairflow export``."""

from __future__ import annotations

import io
from typing import Any

from pairflow.records import write_csv


def to_csv(rows: list[dict[str, Any]], cls: type) -> str:
    """Rows of record class ``cls`` as CSV text, exactly as ``pairflow export`` writes them."""
    out = io.StringIO()
    write_csv(out, cls, rows)
    return out.getvalue()
