"""What the CSV readers share: Arrow's typed parse of a block of lines, and bad rows' letters.

Binance dumps never quote a field, so quoting is off: a stray quote is a bad value of its row,
never the start of a field that swallows the rest of the file. A block Arrow cannot type as a
whole (a bad value, a row of the wrong width, a blank line) is left to the reader's row-by-row
check, so each bad row becomes a dead letter with its line number and every other row is kept.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.arrow import numpy_view
from connectors.replay.files import TextBlock
from pairflow.records import DeadLetter

#: Decompressed bytes parsed at a time (~250 k rows of a trades dump): large enough for
#: Arrow's per-call cost to vanish, small enough that memory stays flat.
CSV_BLOCK_BYTES = 1 << 24


def read_typed(data: bytes, width: int, types: dict[int, pa.DataType]) -> pa.Table | None:
    """The block's columns ``c<i>`` of ``types``, or None when any row does not fit them.

    Args:
        data: whole lines of ``width`` comma-separated fields.
        width: the number of fields of a row.
        types: the columns to read (by index) and their types.
    """
    if not data:
        return None
    invalid: list[int | None] = []

    def skip_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.number)
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(width)],
                                           use_threads=False, block_size=len(data) + 1),
            # A blank line is a row of empty values, which no typed column takes: rows stay
            # lines.
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False,
                                             invalid_row_handler=skip_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{i}": t for i, t in types.items()},
                include_columns=[f"c{i}" for i in types], null_values=[],
                strings_can_be_null=False, true_values=["true", "True"],
                false_values=["false", "False"]))
    except pa.ArrowInvalid:
        return None
    if invalid:
        return None
    if b"\r" in data and table.num_rows != data.count(b"\n") + (not data.endswith(b"\n")):
        return None  # a lone carriage return: a row break to Arrow, not a line
    return table


def csv_lines(block: TextBlock) -> list[tuple[int, bytes]]:
    """The block's non-blank lines with their line numbers."""
    return [(block.first_line + i, line.rstrip(b"\r"))
            for i, line in enumerate(block.data.split(b"\n")) if line.strip()]


def without_header(block: TextBlock) -> TextBlock:
    """The block without its first line."""
    end = block.data.find(b"\n")
    return TextBlock(block.data[end + 1 :] if end >= 0 else b"", block.first_line + 1)


def dead_letter(stage: str, reason: str, line: bytes, path: str, number: int) -> DeadLetter:
    """The dead letter of a bad row: its text, and ``path:line`` as its origin."""
    return DeadLetter(stage, reason, line.rstrip(b"\r").decode("utf-8", "replace"), 0,
                      f"{path}:{number}")


def split_by_width(lines: list[tuple[int, bytes]], width: int, path: str, stage: str
                   ) -> tuple[list[tuple[int, bytes]], list[DeadLetter]]:
    """The numbered lines of ``width`` fields, and a ``bad_row`` dead letter for each other."""
    kept, dead = [], []
    for number, line in lines:
        fields = line.count(b",") + 1
        if fields == width:
            kept.append((number, line))
        else:
            dead.append(dead_letter(stage, f"bad_row: expected {width} fields, got {fields}",
                                    line, path, number))
    return kept, dead


def column(table: pa.Table, index: int) -> np.ndarray:
    """Column ``c<index>`` of a parsed block as a numpy array."""
    chunks = table.column(f"c{index}").chunks
    return numpy_view(chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks))
