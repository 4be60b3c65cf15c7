"""The Bytewax source that replays input files: one partition, paced or as fast as possible."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.replay.formats import inspect_file
from connectors.replay.merge import MergedReplay
from connectors.replay.readers import BLOCK_LINES
from pairflow.errors import InputFileError
from pairflow.metrics import Count, counts
from pairflow.quotes import MarkChunk, QuoteChunk
from pairflow.records import SYMBOL_PATTERN, Bar, DeadLetter
from pairflow.ticks import Heartbeat, TickChunk

ReplayItem = TickChunk | QuoteChunk | MarkChunk | Bar | DeadLetter | Heartbeat | Count


class ReplaySource(FixedPartitionedSource[ReplayItem, int]):
    """Replays recorded files through the dataflow.

    Unit of parallelism: one partition (named ``replay``) reads every file, because merging
    overlapping files in receive order needs them all in one place; downstream steps are keyed
    by symbol and pair and spread over workers. Emits per-symbol :class:`TickChunk` s in
    receive order, candles as :class:`Bar` s in end order, :class:`DeadLetter` s for bad lines,
    :class:`Count` s for the summary and, at the end, a final :class:`Heartbeat` per symbol.

    Delivery: at-least-once on resume from a snapshot (resume state = lines consumed; the bar
    step drops re-read duplicates by trade id).

    Args:
        paths: input files (see :func:`inspect_file` for the layouts).
        symbols: the symbols to keep; other symbols' trades become dead letters.
        speed: ``None`` for as fast as possible, else the multiple of real time to pace at
            (1.0 = real time), using receive times.
        on_progress: called with (decompressed bytes read, total) after each batch.
        on_input_error: called with each file that could not be read to its end (cut short,
            corrupt) once the replay has emitted everything else; without it the first such
            error is raised then.
        quotes: also emit recordings' ``@bookTicker`` quotes as
            :class:`~pairflow.quotes.QuoteChunk` s and their ``@markPrice`` updates as
            :class:`~pairflow.quotes.MarkChunk` s (after the batch's tick chunks, marks first).
        market: the market of bare symbols when some symbol names its market
            (``cm:BTCUSD_PERP``).
        contract_sizes: USD per contract of COIN-M symbols overriding Binance's specification
            (COIN-M candles are read in coins and USD).
    """

    def __init__(
        self,
        paths: list[str | Path],
        symbols: list[str] | tuple[str, ...],
        speed: float | None = None,
        on_progress: Callable[[float, float], None] | None = None,
        on_input_error: Callable[[InputFileError], None] | None = None,
        quotes: bool = False,
        market: str = "spot",
        contract_sizes: Mapping[str, float] | None = None,
    ):
        if not paths:
            raise InputFileError("no input file given")
        bad = [s for s in symbols if not SYMBOL_PATTERN.match(s)]
        if bad:
            raise InputFileError(f"malformed symbols {bad}: use upper-case names like BTCUSDT "
                                 "or cm:BTCUSD_PERP")
        if speed is not None and speed <= 0:
            raise InputFileError(f"replay speed must be > 0, got {speed}")
        self.files = [inspect_file(p) for p in paths]
        self.symbols = tuple(symbols)
        self.speed = speed
        self.on_progress = on_progress
        self.on_input_error = on_input_error
        self.quotes = quotes
        self.market = market
        self.contract_sizes = dict(contract_sizes or {})

    def list_parts(self) -> list[str]:
        """The single replay partition."""
        return ["replay"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
        """Open the files, skipping the lines a previous run already emitted."""
        return _ReplayPartition(self, resume_state or 0)


class _ReplayPartition(StatefulSourcePartition[ReplayItem, int]):
    def __init__(self, source: ReplaySource, skip_lines: int):
        self._source = source
        self._replay = MergedReplay(source.files, frozenset(source.symbols),
                                    quotes=source.quotes, market=source.market,
                                    contract_sizes=source.contract_sizes)
        self._finished = False
        self._reported = 0
        self._wall_origin: float | None = None
        self._key_origin: int | None = None
        self._awake: float | None = None
        while self._replay.lines_done < skip_lines and not self._replay.exhausted:
            self._replay.read(min(skip_lines - self._replay.lines_done, BLOCK_LINES))

    def next_batch(self) -> list[ReplayItem]:
        if self._finished:
            failures = self._replay.failures
            if failures and self._source.on_input_error is None:
                raise failures[0]
            for failure in failures:
                if self._source.on_input_error is not None:
                    self._source.on_input_error(failure)
            raise StopIteration
        if self._replay.exhausted:
            self._finished = True
            self._report_progress()
            return [Heartbeat(s, 0, final=True) for s in self._source.symbols]
        until = self._pace()
        if until is False:
            return []
        out = self._replay.read(BLOCK_LINES, until if until is not True else None)
        items: list[ReplayItem] = [c for c in out.chunks if len(c)]
        if out.marks:
            # Before the batch's quotes: a quote that closes a window must find the marks
            # published before its end in place (marks only decorate bars, never close them).
            items.extend(out.marks)
            items.append(Count("marks_read", sum(len(m) for m in out.marks)))
        if out.quotes:
            items.extend(out.quotes)
            items.append(Count("quotes_read", sum(len(q) for q in out.quotes)))
        items.extend(out.bars)
        items.extend(counts(Counter(f"bars:{bar.timeframe}" for bar in out.bars)))
        items.extend(out.dead)
        items.append(Count("frames", out.frames))
        items.extend(counts(out.skipped, "skipped:"))
        items.append(Count("ticks_read", sum(len(c) for c in out.chunks)))
        for failure in self._replay.failures[self._reported:]:
            items.append(DeadLetter("replay", f"input_error: {failure}", "", 0))
            items.append(Count("input_errors", 1))
        self._reported = len(self._replay.failures)
        self._report_progress()
        return items

    def _pace(self) -> int | bool:
        """True when unpaced; else the receive time up to which lines may go, or False."""
        speed = self._source.speed
        if speed is None:
            return True
        now = time.monotonic()
        next_key = self._replay.next_key
        if self._wall_origin is None:
            self._wall_origin, self._key_origin = now, next_key
        allowed = self._key_origin + int((now - self._wall_origin) * speed * 1_000_000)
        if next_key is not None and next_key > allowed:
            wait_s = min((next_key - allowed) / 1_000_000 / speed, 0.05)
            self._awake = now + wait_s
            return False
        self._awake = None
        return allowed

    def _report_progress(self) -> None:
        if self._source.on_progress is not None:
            self._source.on_progress(self._replay.bytes_read, self._replay.total_bytes)

    def next_awake(self):  # noqa: D102 - bytewax API
        if self._awake is None:
            return None
        return datetime.now(UTC) + timedelta(seconds=max(self._awake - time.monotonic(), 0))

    def snapshot(self) -> int:  # noqa: D102 - bytewax API
        return self._replay.lines_done

    def close(self) -> None:  # noqa: D102 - bytewax API
        self._finished = True
