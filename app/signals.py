"""The one owner of SIGINT and SIGTERM for the ``pairflow`` commands.

A stop signal (Ctrl-C or SIGTERM) ends a run cleanly: Bytewax stops at once on
``KeyboardInterrupt``, sinks have committed every finished batch, and what Kafka producers hold
is flushed. A second signal exits at once without waiting for that flush. Nothing below the
application layer installs a signal handler.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

import typer

from pairflow.errors import SinkError


def sigterm_interrupts() -> None:
    """Make SIGTERM behave like Ctrl-C: raise ``KeyboardInterrupt`` in the main thread."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    os._exit(128 + signum)


def finish_stop(kafka: bool) -> None:
    """A stop was asked (Ctrl-C, SIGTERM): flush what Kafka producers hold, then carry on.

    Every finished batch is already committed to the store; a second signal from here on
    exits at once without waiting for the flush.

    Args:
        kafka: whether the run wrote to Kafka (its producers hold records to flush).

    Raises:
        SinkError: when records could not be delivered to Kafka.
    """
    signal.signal(signal.SIGINT, _exit_now)
    signal.signal(signal.SIGTERM, _exit_now)
    if kafka:
        # Imported here: a run without Kafka should not load confluent_kafka only to stop.
        from connectors.kafka import flush_all

        undelivered = flush_all()
        if undelivered:
            raise SinkError(f"stopped with {undelivered} Kafka records undelivered")
    typer.echo("stopped: everything processed so far is written", err=True)
