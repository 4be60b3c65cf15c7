"""Parquet files of pairflow records, for research: pandas, Polars and DuckDB read them as is.

Columns are the record's fields with the record's types (times are integer µs since the epoch,
as in every pairflow record and JSON Schema; nullable where the field is). Rows are written in
row groups of :data:`ROW_GROUP` as they come, so an export of any size needs bounded memory.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pairflow.errors import ConfigError
from pairflow.records import field_names

#: Rows per row group.
ROW_GROUP = 1 << 16
_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def record_schema(cls: type) -> pa.Schema:
    """The Arrow schema of record class ``cls``: one column per field, in field order."""
    hints = typing.get_type_hints(cls)
    fields = []
    for field, column in zip(dataclasses.fields(cls), field_names(cls), strict=True):
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if args else hint
        fields.append(pa.field(column, _ARROW_TYPES.get(base, pa.string()),
                               nullable=type(None) in typing.get_args(hint)))
    return pa.schema(fields)


def write_parquet(path: str | Path, cls: type, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows (dicts of ``cls``'s fields) to a Parquet file; returns how many.

    Raises:
        ConfigError: when the file cannot be written.
    """
    schema = record_schema(cls)
    written = 0
    try:
        with pq.ParquetWriter(path, schema, compression="zstd") as writer:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) == ROW_GROUP:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    written += len(batch)
                    batch = []
            if batch or not written:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                written += len(batch)
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from error
    return written
