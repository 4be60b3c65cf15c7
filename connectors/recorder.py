"""Raw frame recorder: ``<local_receive_time_ns> <frame exactly as received>`` per line, gzip.

The format of the real captures in ``../shared/data`` (DESIGN.md "Recording format"), so
``pairflow replay`` reads what ``pairflow record`` / ``pairflow live --record`` write. Files
rotate every hour of receive time (``<prefix>-YYYYMMDDTHH.gz``; an existing file of the same
hour gets a ``.N`` suffix instead of being overwritten). The gzip stream is sync-flushed every
``flush_s`` seconds so a killed process loses at most that much (its file then lacks the gzip
end: a replay reads it to the last flush and reports it as cut short), and every open recorder is
closed (gzip trailer written) by :func:`close_all_recorders`, which the CLI calls on
SIGINT/SIGTERM and at exit.
"""

from __future__ import annotations

import atexit
import gzip
import logging
import threading
import time
import weakref
import zlib
from datetime import UTC, datetime
from pathlib import Path

from pairflow.errors import PairflowError

logger = logging.getLogger(__name__)

_OPEN: weakref.WeakSet[FrameRecorder] = weakref.WeakSet()


class RecorderError(PairflowError):
    """The recording directory cannot be created or written."""


class FrameRecorder:
    """Appends raw frames with their receive time to hourly gzip files; thread-safe.

    Args:
        directory: where files go (created if absent).
        prefix: file name prefix, e.g. ``binance-spot-conn0``.
        rotate_s: seconds of receive time per file (3600: hourly).
        flush_s: how often the gzip stream is sync-flushed to disk.

    Raises:
        RecorderError: when the directory cannot be created.
    """

    def __init__(self, directory: str | Path, prefix: str, rotate_s: int = 3600,
                 flush_s: float = 1.0):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RecorderError(f"cannot create recording directory {directory}: "
                                f"{error.strerror}") from error
        self.prefix = prefix
        self.rotate_s = rotate_s
        self.flush_s = flush_s
        self.frames = 0
        self.paths: list[Path] = []
        self._lock = threading.Lock()
        self._file: gzip.GzipFile | None = None
        self._period: int | None = None
        self._last_flush = time.monotonic()
        self._closed = False
        _OPEN.add(self)

    def write(self, recv_ns: int, frame: bytes | str) -> None:
        """Record one frame received at ``recv_ns`` (ns since the epoch)."""
        if isinstance(frame, str):
            frame = frame.encode()
        line = b"%d %s\n" % (recv_ns, frame.rstrip(b"\r\n"))
        with self._lock:
            if self._closed:
                return
            period = recv_ns // 1_000_000_000 // self.rotate_s
            if period != self._period:
                self._rotate(period)
            self._file.write(line)
            self.frames += 1
            now = time.monotonic()
            if now - self._last_flush >= self.flush_s:
                self._file.flush(zlib.Z_SYNC_FLUSH)
                self._last_flush = now

    def _rotate(self, period: int) -> None:
        if self._file is not None:
            self._file.close()
        stamp = datetime.fromtimestamp(period * self.rotate_s, UTC).strftime("%Y%m%dT%H%M")
        path = self.directory / f"{self.prefix}-{stamp}.gz"
        suffix = 1
        while path.exists():
            path = self.directory / f"{self.prefix}-{stamp}.{suffix}.gz"
            suffix += 1
        try:
            self._file = gzip.open(path, "wb", compresslevel=6)
        except OSError as error:
            raise RecorderError(f"cannot write recording {path}: {error.strerror}") from error
        self.paths.append(path)
        self._period = period
        logger.info("recording path=%s", path)

    def flush(self) -> None:
        """Sync-flush the current file (readable up to here even if the process dies)."""
        with self._lock:
            if self._file is not None:
                self._file.flush(zlib.Z_SYNC_FLUSH)

    def close(self) -> None:
        """Flush and close the current file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None
        _OPEN.discard(self)


def close_all_recorders() -> None:
    """Close every open recorder of this process (on SIGINT/SIGTERM and at exit)."""
    for recorder in list(_OPEN):
        try:
            recorder.close()
        except OSError:
            logger.exception("closing recorder failed")


atexit.register(close_all_recorders)
