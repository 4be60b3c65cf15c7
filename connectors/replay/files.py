"""Reading input files: plain, gzip (multi-member) or a one-member zip, in blocks of lines.

A file's blocks can be read ahead on another thread (:func:`read_ahead`).
"""

from __future__ import annotations

import io
import os
import queue
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from isal import isal_zlib

from pairflow.errors import InputFileError

_READ_BYTES = 1 << 22
_NEWLINE = ord("\n")
T = TypeVar("T")


class _InflateReader(io.RawIOBase):
    """Inflates a gzip file (all its members) or a zip member's deflate data through ISA-L.

    The gzip module's per-read Python overhead and second CRC pass cost a tenth of a replay;
    ISA-L inflates about 3 times as fast as zlib (0.16 s instead of 0.46 s for the 2 M-tick
    bench tape: 6 % of the whole replay).

    Args:
        path: the file.
        wbits: 31 for gzip, -15 for the raw deflate data of a zip member.
        offset: where the compressed data starts.
    """

    def __init__(self, path: Path, wbits: int = 31, offset: int = 0):
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._file.seek(offset)
        self._wbits = wbits
        self._inflate = isal_zlib.decompressobj(wbits=wbits)

    def read(self, size: int = -1) -> bytes:
        while True:
            raw = self._file.read(_READ_BYTES // 4)
            if not raw:
                rest = self._inflate.flush()
                if not rest and not self._inflate.eof:
                    # A cut file (a copy stopped early, a disk filled) would otherwise replay
                    # its first part and succeed: the end of a member is where a file may end.
                    raise EOFError(f"the compressed data end after {self._file.tell():,} "
                                   "bytes, inside a member: the file was cut short")
                return rest
            data = self._inflate.decompress(raw)
            while self._wbits == 31 and self._inflate.eof and self._inflate.unused_data:
                rest = self._inflate.unused_data
                self._inflate = isal_zlib.decompressobj(wbits=31)
                data += self._inflate.decompress(rest)
            if data or self._inflate.eof:
                return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        super().close()


#: A zip local file header: signature, versions, flags, method, times, CRC, sizes, name and
#: extra-field lengths.
_ZIP_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


def _open_zip(path: Path) -> io.IOBase:
    """The single member of a zip.

    A zip cut short (no central directory) is read from its first local header, so what it
    holds is replayed before the cut is reported.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as handle:
            header = handle.read(_ZIP_LOCAL_HEADER.size)
        if len(header) < _ZIP_LOCAL_HEADER.size:
            raise InputFileError(f"{path}: the zip ends inside its first header: it was cut "
                                 "short") from None
        _, _, _, method, _, _, _, _, _, name_len, extra_len = _ZIP_LOCAL_HEADER.unpack(header)
        if method != zipfile.ZIP_DEFLATED:
            raise InputFileError(f"{path}: a corrupt zip (no central directory, member not "
                                 "deflated)") from None
        return _InflateReader(path, -15, _ZIP_LOCAL_HEADER.size + name_len + extra_len)
    members = [m for m in archive.namelist() if not m.endswith("/")]
    if len(members) != 1:
        raise InputFileError(f"{path}: a zip must hold exactly one CSV, found {members}")
    return archive.open(members[0])


def _open_binary(path: Path) -> io.IOBase:
    """Open a file for reading bytes, through gzip or the single member of a zip."""
    try:
        with open(path, "rb") as probe:
            magic = probe.read(4)
        if magic[:2] == b"\x1f\x8b":
            return _InflateReader(path)
        if magic == b"PK\x03\x04":
            return _open_zip(path)
        return open(path, "rb")
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from error


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Whole lines of a file, decompressed.

    ``data`` ends with a newline unless it holds the file's last line; ``first_line`` is the
    1-based line number of its first line.
    """

    data: bytes
    first_line: int


def iter_blocks(path: Path, progress: list[int] | None = None,
                block_bytes: int = _READ_BYTES) -> Iterator[TextBlock]:
    """The file's content in blocks of about ``block_bytes`` decompressed bytes, cut at lines.

    Memory stays bounded by the block size whatever the file's size.

    Args:
        path: the file.
        progress: when given, ``progress[0]`` is increased by the decompressed bytes read.
        block_bytes: decompressed bytes read at a time.

    Raises:
        InputFileError: when the file cannot be opened, or its compression is corrupt or cut
            short (after the blocks before the fault were given).
    """
    with _open_binary(path) as handle:
        tail = b""
        line = 1
        while True:
            try:
                data = handle.read(block_bytes)
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error,
                    isal_zlib.error) as error:
                raise InputFileError(f"{path}: corrupt or truncated ({error})") from error
            if not data:
                break
            if progress is not None:
                progress[0] += len(data)
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a block: read on
                tail += data
                continue
            # One copy of the block (the line carried over, then this read up to its last
            # newline): the copy holds the GIL, which the flow's thread shares.
            block = b"".join((tail, memoryview(data)[:cut]))
            tail = data[cut:]
            yield TextBlock(block, line)
            # Counted by numpy, which lets go of the GIL meanwhile: the flow runs on.
            line += int(np.count_nonzero(np.frombuffer(block, np.uint8) == _NEWLINE))
        if tail:
            yield TextBlock(tail, line)


def iter_lines(path: Path, progress: list[int] | None = None) -> Iterator[list[bytes]]:
    """Lists of lines (without newline) read in large decompressed blocks.

    Raises:
        InputFileError: when the file cannot be opened or its compression is corrupt.
    """
    for block in iter_blocks(path, progress):
        lines = block.data.split(b"\n")
        if not lines[-1]:
            lines.pop()
        yield lines


def decompressed_size(path: Path) -> int:
    """Size of a file's content: gzip's ISIZE trailer (mod 4 GiB), a zip member's size."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
        if magic[:2] == b"\x1f\x8b":
            handle.seek(-4, os.SEEK_END)
            return int.from_bytes(handle.read(4), "little")
    if magic == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                return sum(i.file_size for i in archive.infolist())
        except zipfile.BadZipFile:
            pass  # cut short: its local header's size (if any) is not to be trusted
    return os.path.getsize(path)


def first_lines(path: Path, count: int) -> list[bytes]:
    """The file's first ``count`` non-blank lines (fewer if it has fewer), stripped."""
    found: list[bytes] = []
    for lines in iter_lines(path):
        found += [line.strip() for line in lines if line.strip()][: count - len(found)]
        if len(found) == count:
            break
    return found


_END = object()


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """The items of ``items``, produced by a thread up to ``depth`` items ahead.

    Reading, inflating and Arrow's parsing release the GIL, so a file's next block is read on
    the second core while the flow folds the current one. Memory grows by ``depth`` blocks per
    open file. An error of the producer is raised at the item where it happened.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            slots.put(error)

    threading.Thread(target=produce, name="pairflow-read-ahead", daemon=True).start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
