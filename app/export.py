"""``pairflow export``: stored records as CSV or Parquet files for research.

``register(app)`` adds the command to the main typer app (``app/cli.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from pairflow.errors import ConfigError
from pairflow.records import field_names, iso_to_us, write_csv


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to the ``pairflow`` app."""

    @app.command()
    def export(
        store: Annotated[Path, typer.Option(help="SQLite store written by replay/live.")],
        kind: Annotated[str, typer.Option(help="bars, quotes, costs, pairs, alerts, trades, "
                                          "pnl, scan, deadletter or health.")],
        out: Annotated[str, typer.Option(help="File to write, or - for stdout (CSV only).")],
        file_format: Annotated[str | None, typer.Option(
            "--format", help="csv or parquet (default: parquet for a .parquet file, else csv).",
        )] = None,
        symbol: Annotated[str | None, typer.Option(
            help="Only this symbol (bars, quotes).")] = None,
        pair: Annotated[str | None, typer.Option(
            help="Only this pair Y/X (pairs, alerts, costs, trades, pnl, scan).")] = None,
        timeframe: Annotated[str | None, typer.Option(help="Only this timeframe.")] = None,
        start: Annotated[str | None, typer.Option(
            help="From this ISO-8601 time (inclusive).")] = None,
        end: Annotated[str | None, typer.Option(
            help="Until this ISO-8601 time (exclusive).")] = None,
    ) -> None:
        """Export stored records as CSV or Parquet.

        CSV: a header of the record's fields, times in ISO-8601 UTC. Parquet: the record's
        fields and types, times in µs since the epoch (pandas, Polars and DuckDB read it as is).
        """
        from connectors.store import TABLES, StoreReader

        chosen = file_format or ("parquet" if out.endswith(".parquet") else "csv")
        if chosen not in ("csv", "parquet"):
            raise ConfigError(f"unknown --format {chosen!r}: choose csv or parquet")
        if chosen == "parquet" and out == "-":
            raise ConfigError("Parquet cannot go to stdout: give --out FILE.parquet")
        if kind not in TABLES:
            raise ConfigError(f"unknown kind {kind!r}: choose {', '.join(TABLES)}")
        where = _filters(kind, symbol, pair, timeframe)
        try:
            time_range = (iso_to_us(start) if start else None, iso_to_us(end) if end else None)
        except ValueError as error:
            raise ConfigError(f"--start/--end must be ISO-8601 times: {error}") from error
        rows = StoreReader(store).query(kind, where, time_range)
        if chosen == "parquet":
            from connectors.exports import write_parquet

            write_parquet(out, TABLES[kind].record, rows)
            return
        handle = sys.stdout if out == "-" else _open_out(out)
        try:
            write_csv(handle, TABLES[kind].record, rows)
        finally:
            if handle is not sys.stdout:
                handle.close()


def _filters(kind: str, symbol: str | None, pair: str | None,
             timeframe: str | None) -> dict[str, Any]:
    """The equality filters of an export, checked against what the kind has."""
    from connectors.store import TABLES
    from pairflow.config import upper_names

    if symbol and pair:
        raise ConfigError("give --symbol or --pair, not both")
    columns = field_names(TABLES[kind].record)
    where: dict[str, Any] = {}
    for column, value in (("symbol", symbol), ("pair", pair)):
        if value:
            if column not in columns:
                have = [name for name, t in TABLES.items() if column in field_names(t.record)]
                raise ConfigError(f"--{column} filters {', '.join(have)}")
            where[column] = upper_names(value)[0]
    if timeframe:
        if kind == "deadletter":
            raise ConfigError("dead letters have no timeframe")
        where["timeframe"] = timeframe
    return where


def _open_out(path: str):
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror}") from error


