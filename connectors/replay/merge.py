"""The block-wise merge of several files' lines on receive time, parsed a batch at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from connectors.binance.wire import FrameParser
from connectors.replay.blocks import Block, CandleBlock, RecordingBlock
from connectors.replay.files import decompressed_size, read_ahead
from connectors.replay.formats import InputFile
from connectors.replay.readers import file_blocks
from pairflow.errors import InputFileError
from pairflow.quotes import MarkChunk, QuoteChunk
from pairflow.records import Bar, DeadLetter
from pairflow.ticks import TickChunk


@dataclass
class ReplayBatch:
    """What one :meth:`MergedReplay.read` gives: ticks, candles, dead letters, skip counts.

    ``frames`` counts the lines parsed (dead ones included).
    """

    chunks: list[TickChunk]
    dead: list[DeadLetter]
    skipped: Counter
    frames: int = 0
    bars: list[Bar] = field(default_factory=list)
    quotes: list[QuoteChunk] = field(default_factory=list)
    marks: list[MarkChunk] = field(default_factory=list)


@dataclass
class _PendingFrames:
    """Recording frames taken in merge order, not parsed yet, with their receive times.

    They are parsed together before a run of already parsed lines and at the end of a batch.
    """

    frames: list[bytes] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    lines: list[np.ndarray] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def origin_at(self) -> Callable[[int], str]:
        """``path:line`` of pending frame ``i`` (only looked up for a dead letter)."""
        ends = np.cumsum(self.sizes)
        lines = np.concatenate(self.lines)

        def origin(index: int) -> str:
            return f"{self.files[int(np.searchsorted(ends, index, side='right'))]}:{lines[index]}"

        return origin


class _LatestCandles:
    """The end of the last candle given per symbol and timeframe.

    Files may overlap (a daily and a monthly dump of the same days): a candle ending at or
    before the last one given is a duplicate, dropped and counted (``skipped:duplicate_candle``)
    so the pair step sees each end once, in order.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def fresh(self, block: CandleBlock, first: int, last: int, out: ReplayBatch) -> list[Bar]:
        """The bars of candles ``first`` to ``last`` of ``block`` that end after all given."""
        ends = block.keys[first:last]
        if not len(ends):
            return []
        key = (block.symbol, block.timeframe)
        # A block's ends never decrease: a candle is new when it ends after the ones before it.
        before = np.maximum.accumulate(np.concatenate(([self._last.get(key, -1)], ends)))[:-1]
        new = ends > before
        self._last[key] = max(self._last.get(key, -1), int(ends[-1]))
        if new.all():
            return block.bars(first, last)
        out.skipped["duplicate_candle"] += int((~new).sum())
        return [bar for bar, keep in zip(block.bars(first, last), new.tolist(), strict=True)
                if keep]


class _Cursor:
    """One file's position: the current block and the index of its next line.

    A file is opened only when the merge reaches its first key, so a month of daily files
    holds one file's blocks in memory at a time, not thirty.
    """

    def __init__(self, spec: InputFile, open_blocks: Callable[[InputFile], Iterator[Block]],
                 failures: list[InputFileError]):
        self.first_key = spec.first_key
        self._failures = failures
        self._spec = spec
        self._open_blocks = open_blocks
        self._blocks: Iterator[Block] | None = None
        self.block: Block | None = None
        self.pos = 0
        self.done = False

    @property
    def waiting(self) -> bool:
        """Not opened yet."""
        return self._blocks is None and not self.done

    def open(self) -> None:
        self._blocks = read_ahead(self._open_blocks(self._spec))
        self.advance()

    def advance(self) -> None:
        self.block, self.pos = None, 0
        try:
            for block in self._blocks:
                if len(block.keys) or block.dead:
                    self.block = block
                    return
        except InputFileError as error:
            # The file ends here (cut short, corrupt): what it held so far goes on, the other
            # files too, and the replay reports the error when it ends.
            self._failures.append(error)
        self.done = True

    @property
    def head(self) -> int:
        assert self.block is not None
        return int(self.block.keys[self.pos]) if len(self.block.keys) else -(1 << 62)


#: A cursor's lines due in a round: (index among the live cursors, cursor, start, stop).
_Piece = tuple[int, _Cursor, int, int]


class MergedReplay:
    """Lines of several files in receive-time order, parsed into tick chunks a batch at a time.

    Args:
        files: the input files (any order; they are sorted by first receive time, then path).
        symbols: the symbols to keep.
        stage: the dead-letter stage name for bad lines.
        quotes: parse recordings' ``@bookTicker`` frames into quote chunks and
            ``@markPrice`` frames into mark-price chunks too.
        market: the market of bare symbols when some symbol names its market.
        contract_sizes: USD per contract of COIN-M symbols overriding Binance's specification.
    """

    def __init__(self, files: list[InputFile], symbols: frozenset[str], stage: str = "replay",
                 quotes: bool = False, market: str = "spot",
                 contract_sizes: Mapping[str, float] | None = None):
        ordered = sorted(files, key=lambda f: (f.first_key, str(f.path)))
        self.paths = [f.path for f in ordered]
        #: Decompressed bytes in all files: with :attr:`bytes_read`, the progress of a replay.
        self.total_bytes = sum(decompressed_size(p) for p in self.paths)
        # One counter per file: each file is read on its own thread.
        self._bytes_read: list[list[int]] = []
        self._parser = FrameParser(symbols, "replay", stage=stage, quotes=quotes,
                                   market=market)

        def open_blocks(spec: InputFile) -> Iterator[Block]:
            self._bytes_read.append([0])
            return file_blocks(spec, symbols, stage, self._bytes_read[-1], contract_sizes)

        #: Files that could not be read to their end (cut short, corrupt), in order met.
        self.failures: list[InputFileError] = []
        self._cursors = [_Cursor(f, open_blocks, self.failures) for f in ordered]
        self._candles = _LatestCandles()
        self.lines_done = 0

    @property
    def bytes_read(self) -> int:
        """Decompressed bytes read so far (of :attr:`total_bytes`)."""
        return sum(counter[0] for counter in self._bytes_read)

    @property
    def exhausted(self) -> bool:
        """True when every file has been read to its end."""
        return all(c.done for c in self._cursors)

    @property
    def next_key(self) -> int | None:
        """Receive time (µs) of the next line, or None at the end."""
        heads = [c.head for c in self._cursors if c.block is not None]
        if heads:
            return min(heads)
        return min((c.first_key for c in self._cursors if c.waiting), default=None)

    def _open_due(self) -> None:
        """Open every file whose first key the merge may have reached.

        A file's keys never fall below its first key, so it cannot hold a line due before
        then; while no file is open, the next one in order is.
        """
        while True:
            live = [c for c in self._cursors if c.block is not None]
            waiting = [c for c in self._cursors if c.waiting]
            if not waiting:
                return
            if not live:
                waiting[0].open()
                continue
            bound = min(int(c.block.keys[-1]) if len(c.block.keys) else -1 for c in live)
            due = [c for c in waiting if c.first_key <= bound]
            if not due:
                return
            for cursor in due:
                cursor.open()

    def read(self, max_lines: int, until_key: int | None = None) -> ReplayBatch:
        """Parse up to ``max_lines`` lines with receive time ``<= until_key``.

        Each round takes, from every file, the lines up to the smallest last key of the
        current blocks — nothing later in any file can sort before them — and orders them with
        one stable sort (ties go to the earlier file).
        """
        out = ReplayBatch([], [], Counter())
        pending = _PendingFrames()
        consumed = 0
        while consumed < max_lines:
            self._open_due()
            live = [c for c in self._cursors if c.block is not None]
            if not live:
                break
            pieces = _due_pieces(live, until_key, out)
            if not pieces and all(len(c.block.keys) for c in live):
                break  # paced: nothing due yet
            if pieces:
                consumed += self._take(live, pieces, max_lines - consumed, pending, out)
            for cursor in live:
                if cursor.pos >= len(cursor.block.keys):
                    cursor.advance()
        self._flush(pending, out)
        return out

    def _take(self, live: list[_Cursor], pieces: list[_Piece], budget: int,
              pending: _PendingFrames, out: ReplayBatch) -> int:
        """Take up to ``budget`` lines of the pieces in merge order; returns how many."""
        if len(pieces) == 1:  # one file due (the usual case): already in order, one run
            _, cursor, start, stop = pieces[0]
            stop = min(stop, start + budget)
            self._emit_run(cursor.block, start, stop, pending, out)
            self.lines_done += stop - start
            cursor.pos = stop
            return stop - start
        keys = np.concatenate([c.block.keys[a:b] for _, c, a, b in pieces])
        owner = np.concatenate([np.full(b - a, i) for i, _, a, b in pieces])
        # Exactly ``max_lines`` in all: a resumed replay skips exactly the lines its snapshot
        # counted. A prefix of the merged order is a prefix of every piece.
        owner = owner[np.argsort(keys, kind="stable")[:budget]]
        taken = np.bincount(owner, minlength=len(live))
        pieces = [(i, c, a, a + int(taken[i])) for i, c, a, _ in pieces if taken[i]]
        offsets = {i: a for i, _, a, _ in pieces}
        # Runs of consecutive lines of one file, in merge order.
        runs = np.flatnonzero(np.diff(owner)) + 1
        for run_start, run_stop in zip(np.concatenate(([0], runs)).tolist(),
                                       np.concatenate((runs, [len(owner)])).tolist(),
                                       strict=True):
            index = int(owner[run_start])
            first = offsets[index]
            last = offsets[index] = first + run_stop - run_start
            self._emit_run(live[index].block, first, last, pending, out)
        for _, cursor, _, stop in pieces:
            self.lines_done += stop - cursor.pos
            cursor.pos = stop
        return len(owner)

    def _emit_run(self, block: Block, first: int, last: int, pending: _PendingFrames,
                  out: ReplayBatch) -> None:
        """Emit lines ``first`` to ``last`` of one file's block.

        Recording frames gather in ``pending`` to be parsed together; a run of parsed lines
        (CSV, NDJSON) first flushes them, so the output keeps the merge order.
        """
        if isinstance(block, RecordingBlock):
            pending.frames.extend(block.frames[first:last])
            pending.keys.append(block.keys[first:last])
            pending.files.append(block.path)
            pending.lines.append(block.lines[first:last])
            pending.sizes.append(last - first)
            return
        self._flush(pending, out)
        out.frames += last - first
        if isinstance(block, CandleBlock):
            out.bars.extend(self._candles.fresh(block, first, last, out))
        else:
            out.chunks.append(block.chunk.take(slice(first, last)))

    def _flush(self, pending: _PendingFrames, out: ReplayBatch) -> None:
        if not pending.frames:
            return
        parsed = self._parser.parse_columns(np.concatenate(pending.keys), pending.frames,
                                            pending.origin_at())
        out.frames += parsed.frames
        out.skipped.update(parsed.skipped)
        out.dead.extend(parsed.dead)
        out.chunks.extend(parsed.chunks.values())
        out.quotes.extend(parsed.quotes.values())
        out.marks.extend(parsed.marks.values())
        for column in (pending.frames, pending.keys, pending.files, pending.lines,
                       pending.sizes):
            column.clear()


def _due_pieces(live: list[_Cursor], until_key: int | None, out: ReplayBatch) -> list[_Piece]:
    """Each live cursor's lines that may go this round; its block's dead letters go to ``out``.

    A line may go when its key is at most the smallest last key of the current blocks (and at
    most ``until_key``): no later line of any file can sort before it.
    """
    bound = min(int(c.block.keys[-1]) if len(c.block.keys) else -1 for c in live)
    if until_key is not None:
        bound = min(bound, until_key)
    pieces = []
    for index, cursor in enumerate(live):
        block = cursor.block
        if block.dead:
            out.dead.extend(block.dead)
            out.frames += len(block.dead)
            block.dead = []
        stop = int(np.searchsorted(block.keys, bound, side="right"))
        if stop > cursor.pos:
            pieces.append((index, cursor, cursor.pos, stop))
    return pieces
