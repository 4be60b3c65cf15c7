"""How a ``pairflow`` command line ends: a user's mistake is one line and exit code 2."""

from __future__ import annotations

import sys

import typer

from pairflow.errors import PairflowError


def run_reporting_errors(command: typer.Typer) -> None:
    """Run a typer app; a :class:`~pairflow.errors.PairflowError` ends it as one line.

    The line is ``error: …`` on stderr and the exit code 2, never a traceback. Usage errors
    are the command-line parser's own (usage line, message, exit 2).
    """
    try:
        command()
    except PairflowError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(2)
