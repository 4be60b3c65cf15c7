"""Run a pairflow dataflow in this process for a command, and summarise it.

The heavy imports (Bytewax's runner, the flow, rich's progress bar) happen when a run starts,
so that ``pairflow --help`` and a mistyped flag answer at once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from app.signals import finish_stop, sigterm_interrupts
from pairflow.config import PairflowConfig
from pairflow.errors import ConfigError, InputFileError, PairflowError

#: Recovery partitions made by default: the most workers (threads × processes) a resumed run
#: may use; the count can never change for a recovery directory.
RECOVERY_PARTITIONS = 4


def run_flow(config: PairflowConfig, workers: int, show_progress: bool,
             input_errors: list[InputFileError] | None = None,
             process_id: int | None = None,
             addresses: list[str] | None = None) -> tuple[Counter, float]:
    """Run the flow in this process to its end or to a stop signal.

    Args:
        config: the checked configuration of the run.
        workers: worker threads.
        show_progress: draw a progress bar of the replayed bytes on stderr.
        input_errors: receives the replayed files that could not be read to their end (cut
            short, corrupt); the rest of the replay is done and stored.
        process_id: this process's index in ``addresses`` (a cluster of processes).
        addresses: ``host:port`` of every process of the cluster (None: this one alone).

    Returns:
        The run's counters and its elapsed seconds.

    Raises:
        PairflowError: what a step raised for a user-facing cause (store full, broker gone).
    """
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    from connectors.metrics import CountTally
    from flows.pairs import build_flow

    tally = CountTally()
    progress, on_progress = _progress_bar() if show_progress else (None, None)
    flow = build_flow(config, tally, on_progress,
                      None if input_errors is None else input_errors.append)
    recovery = {}
    if config.recovery_dir:
        recovery = {"recovery_config": RecoveryConfig(ensure_recovery_dir(config.recovery_dir)),
                    "epoch_interval": timedelta(seconds=config.snapshot_s)}
    sigterm_interrupts()
    started = time.perf_counter()
    try:
        if progress is not None:
            progress.start()
        with _without_engine_panics():
            cli_main(flow, workers_per_process=workers, process_id=process_id,
                     addresses=addresses, **recovery)
    except Exception as error:
        # Bytewax wraps what a step raised (and Ctrl-C / SIGTERM as KeyboardInterrupt); a
        # user-facing cause (store full, broker gone, a stop signal) is handled as itself.
        cause = _cause(error, (PairflowError, KeyboardInterrupt))
        if isinstance(cause, KeyboardInterrupt):
            finish_stop(kafka=bool(config.kafka))
        elif cause is not None:
            raise cause from None
        else:
            raise
    except KeyboardInterrupt:
        finish_stop(kafka=bool(config.kafka))
    finally:
        if progress is not None:
            progress.stop()
    return tally.totals(), time.perf_counter() - started


def _progress_bar():
    """A transient progress bar of replayed bytes, and the callback the replay source feeds."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("replay"), BarColumn(), DownloadColumn(),
                        TimeElapsedColumn(), transient=True)
    task = progress.add_task("replay", total=None)

    def on_progress(done: float, total: float) -> None:
        progress.update(task, completed=done, total=total or None)

    return progress, on_progress


#: What Bytewax's Rust core prints when a step raises; the cause is reported as one line.
_PANIC_LINES = ("thread '", "Box<dyn Any>", "note: run with `RUST_BACKTRACE")


@contextlib.contextmanager
def _without_engine_panics() -> Iterator[None]:
    """Forward everything written to fd 2 meanwhile, except the engine's panic report.

    ``PAIRFLOW_DEBUG=1`` shows everything, the Rust backtrace included.
    """
    if os.environ.get("PAIRFLOW_DEBUG"):
        yield
        return
    # A step that raises makes Bytewax's Rust core panic; its backtrace says nothing to a user,
    # who gets the cause as one line instead.
    os.environ["RUST_BACKTRACE"] = "0"
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe, os.fdopen(os.dup(original), "wb", 0) as out:
            in_panic = False
            for line in pipe:
                text = line.decode("utf-8", "replace")
                # The report ends with a blank line, which would open the user's error output.
                panic_line = text.startswith(_PANIC_LINES) or (in_panic and not text.strip())
                if not panic_line:
                    out.write(line)
                in_panic = panic_line

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last writer: the thread drains and ends
        os.close(original)
        thread.join(timeout=5)


def _cause(error: BaseException, kinds: tuple[type, ...]) -> BaseException | None:
    """The first exception of one of ``kinds`` in an exception's chain of causes, if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kinds):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def ensure_recovery_dir(path: str, partitions: int = RECOVERY_PARTITIONS) -> Path:
    """The recovery directory, with its partitions created on first use.

    Raises:
        ConfigError: when the directory cannot be created.
    """
    from bytewax.recovery import init_db_dir

    directory = Path(path)
    if not any(directory.glob("part-*.sqlite3")):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            init_db_dir(directory, partitions)
        except OSError as error:
            raise ConfigError(f"cannot create recovery directory {directory}: {error}") from error
    return directory


def print_summary(totals: Counter, elapsed: float) -> None:
    """Print a run's counters as a table on stdout: frames, ticks, bars, records, dead letters."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="replay summary", show_header=False, box=None)
    ticks = totals["ticks_read"] - totals["duplicates"] - totals["dead:late"]
    rows = [("frames read", totals["frames"])]
    rows += [(f"  skipped {k.partition(':')[2]}", v) for k, v in sorted(totals.items())
             if k.startswith("skipped:")]
    rows += [("ticks", totals["ticks_read"]), ("duplicates dropped", totals["duplicates"]),
             ("late trades", totals["dead:late"]), ("ticks in bars", ticks)]
    rows += [(f"bars {k.partition(':')[2]}", v) for k, v in sorted(totals.items())
             if k.startswith("bars:")]
    rows += [("pair records", totals["pairs"]), ("alerts", totals["alerts"])]
    rows += [("scan records", totals["scans"])] if totals["scans"] else []
    # A summary comes with every paper entry and exit: none means no position was ever taken.
    rows += [("paper round trips", totals["trades"])] if totals["pnls"] else []
    if totals["quotes_read"]:
        rows += [("quotes", totals["quotes_read"]), ("late quotes", totals["quotes_late"])]
        rows += [(f"quote bars {k.partition(':')[2]}", v) for k, v in sorted(totals.items())
                 if k.startswith("quote_bars:")]
        rows += [("spread costs", totals["costs"])]
    dead = {k.partition(":")[2]: v for k, v in totals.items() if k.startswith("dead:")}
    rows += [("dead letters", sum(dead.values()))]
    rows += [(f"  {reason}", v) for reason, v in sorted(dead.items())]
    rows += [("elapsed", f"{elapsed:.2f} s"),
             ("ticks/s", f"{totals['ticks_read'] / elapsed:,.0f}" if elapsed > 0 else "-")]
    for name, value in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else value)
    Console().print(table)
