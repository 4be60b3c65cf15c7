"""Command-line options shared by ``pairflow replay``, ``live`` and ``record``.

One spelling and one help text for each option, whichever command takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

Symbols = Annotated[str, typer.Option("--symbols", help="Comma-separated symbols, e.g. "
                                      "BTCUSDT,ETHUSDT.")]
Timeframes = Annotated[str | None, typer.Option(help="Comma-separated bar timeframes "
                                                "[default: 1s,1m,5m].")]
Pairs = Annotated[str | None, typer.Option(help="Comma-separated pairs Y/X, e.g. "
                                           "BTCUSDT/ETHUSDT (Y is regressed on X).")]
Store = Annotated[Path | None, typer.Option(help="SQLite store to write (created if absent).")]
Kafka = Annotated[str | None, typer.Option("--kafka", help="Kafka bootstrap servers, e.g. "
                                           "127.0.0.1:9092.")]
KafkaPrefix = Annotated[str | None, typer.Option(help="Kafka topic prefix "
                                                 "[default: pairflow.].")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML configuration file "
                                                 "(flags and PAIRFLOW_* override it).")]
RecoveryDir = Annotated[Path | None, typer.Option(help="Bytewax recovery directory: snapshot "
                                                "state there and resume from it after a crash.")]
SnapshotInterval = Annotated[float | None, typer.Option(help="Seconds between snapshots "
                                                        "[default: 10].")]
Window = Annotated[int | None, typer.Option(help="Bars in the rolling window [default: 300].")]
Price = Annotated[str | None, typer.Option(help="Price transform: log or raw [default: log].")]
Lag = Annotated[str | None, typer.Option(help="ADF/EG lag policy: aic, bic or a fixed lag "
                                         "[default: aic].")]
EntryZ = Annotated[float | None, typer.Option("--entry-z", help="Alert entry |z| [default: 2].")]
ExitZ = Annotated[float | None, typer.Option("--exit-z", help="Alert exit |z| [default: 0.5].")]
Cooldown = Annotated[int | None, typer.Option(help="Bars after an exit with no new entry "
                                              "[default: 0].")]
Lateness = Annotated[float | None, typer.Option(help="Seconds a trade may arrive after its "
                                                "window ends [default: 2].")]
Workers = Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker threads.")]


def analytics_options(window: int | None, price: str | None, lag: str | None,
                      entry_z: float | None, exit_z: float | None,
                      cooldown: int | None) -> dict[str, Any]:
    """The statistics and alert flags as configuration keys (``None``: not given)."""
    return {"window": window, "price": price, "lag": lag, "entry_z": entry_z,
            "exit_z": exit_z, "cooldown_bars": cooldown}
