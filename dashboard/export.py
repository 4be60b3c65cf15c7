"""CSV export of what the dashboard shows, in the format of ``pairflow export``."""

from __future__ import annotations

import csv
import io
from typing import Any

from pairflow.records import field_names, us_to_iso

#: Fields holding µs timestamps, written as ISO-8601 UTC (as ``pairflow export`` does).
TIME_FIELDS = {"start", "end", "ts", "recv_ts"}


def csv_value(column: str, value: Any) -> Any:
    """One CSV cell: empty for null, ISO time for time fields, ``repr`` for floats."""
    if value is None:
        return ""
    if column in TIME_FIELDS and isinstance(value, int):
        return us_to_iso(value)
    if isinstance(value, float):
        return repr(value)
    return value


def to_csv(rows: list[dict[str, Any]], cls: type) -> str:
    """Rows of record class ``cls`` as CSV text with a header of its field names."""
    columns = field_names(cls)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(csv_value(c, row.get(c)) for c in columns)
    return out.getvalue()
