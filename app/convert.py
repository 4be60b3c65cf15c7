"""``pairflow convert``: recordings and dumps into Parquet for a fast re-replay.

Ticks (recordings, trades/aggTrades dumps, NDJSON) become one Parquet file of pairflow's tick
columns in receive order; candles (klines, OHLCV) one file of bar columns. The same readers and
merge as ``pairflow replay`` are used, so a replay of the converted file gives the same bars.
``register(app)`` adds the command to the main typer app (``app/cli.py``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from app.options import Symbols
from pairflow.errors import ConfigError

#: Lines merged per read.
_BATCH_LINES = 1 << 16


def register(app: typer.Typer) -> None:
    """Add the ``convert`` command to the ``pairflow`` app."""

    @app.command()
    def convert(
        files: Annotated[list[Path], typer.Argument(help="Recordings, data.binance.vision CSV "
                                                    "(trades, aggTrades, klines) or OHLCV CSV, "
                                                    "tick NDJSON; any order, may overlap.")],
        symbols: Symbols,
        out: Annotated[Path, typer.Option(help="Parquet file to write (replaced).")],
    ) -> None:
        """Convert input files into one Parquet file of ticks (or of candles) and summarise."""
        from connectors.exports import write_parquet
        from connectors.replay import MergedReplay, inspect_file
        from connectors.replay.formats import CANDLE_LAYOUTS
        from connectors.replay.parquet import ParquetTickWriter
        from pairflow.config import load_config
        from pairflow.records import Bar, to_dict

        if out.suffix != ".parquet":
            raise ConfigError(f"--out {out} must name a .parquet file")
        wanted = load_config({"source": "replay", "files": [str(f) for f in files],
                              "symbols": symbols, "store": str(out)}, env={}).symbols
        specs = [inspect_file(f) for f in files]
        candles = {spec.layout in CANDLE_LAYOUTS for spec in specs}
        if len(candles) > 1:
            raise ConfigError("give tick files or candle files, not both: they convert into "
                              "different Parquet layouts")
        replay = MergedReplay(specs, frozenset(wanted))
        totals: Counter = Counter()
        if candles == {True}:
            def bar_rows():
                while not replay.exhausted:
                    batch = replay.read(_BATCH_LINES)
                    totals.update({"dead letters": len(batch.dead),
                                   **{f"skipped {k}": v for k, v in batch.skipped.items()}})
                    yield from (to_dict(bar) for bar in batch.bars)

            totals["candles"] = write_parquet(out, Bar, bar_rows())
        else:
            writer = ParquetTickWriter(out)
            try:
                while not replay.exhausted:
                    batch = replay.read(_BATCH_LINES)
                    totals.update({"dead letters": len(batch.dead),
                                   **{f"skipped {k}": v for k, v in batch.skipped.items()}})
                    for chunk in batch.chunks:
                        writer.write(chunk)
            finally:
                writer.close()
            totals["ticks"] = writer.rows
        for name, count in sorted(totals.items()):
            typer.echo(f"{name:<20} {count:>12,}")
        if totals["dead letters"]:
            typer.echo("dead letters are not kept by convert: replay the inputs into a store "
                       "to see them", err=True)
