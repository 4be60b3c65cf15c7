"""Connection supervision of one Binance combined stream: connect, read, reconnect, roll over.

Shaped like cryptofeed's ``connection_handler.py`` (a loop per connection that reconnects on
any failure, a watcher beside it), minus its uncapped backoff and venue code:

- **reconnect** on every failure, forever, after a capped exponential backoff with jitter that
  is reset once a connection delivers data; the reason is logged.
- **handshake rate limit**: new connections of the whole process stay under Binance's 300 per
  5 minutes (:class:`HandshakeLimit`).
- **planned rollover**: before ``max_connection_age_s`` (Binance cuts at 24 h) a replacement
  connection is opened; the old one is closed once the new one delivers (or the overlap ran
  out), so no frame is missed; the overlap's duplicates are the reader's to drop.
- **replacement on request**: :meth:`ConnectionSupervisor.replace` does the same for a
  connection the reader found silent.

Frames go to ``on_frame`` with their receive time as soon as they are read (replies to
subscription requests are skipped); the supervisor knows nothing about trades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

#: Binance's limit of new connections per 5 minutes per IP.
MAX_CONNECTS_PER_5MIN = 300
#: How often the watcher checks ages and replacements, s.
WATCH_EVERY_S = 0.01

OpenKind = Literal["first", "reconnect", "rollover"]


class HandshakeLimit:
    """New connections per process under Binance's limit (a sliding 5-minute window).

    Args:
        limit: connections allowed per window.
        window_s: the window, s.
        reserve: connections kept in hand below the limit.
    """

    def __init__(self, limit: int = MAX_CONNECTS_PER_5MIN, window_s: float = 300.0,
                 reserve: int = 10):
        self.limit = limit
        self.window_s = window_s
        self.reserve = reserve
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def delay_s(self) -> float:
        """Seconds to wait before connecting; 0: the connection is counted, go ahead."""
        with self._lock:
            now = time.monotonic()
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) >= self.limit - self.reserve:
                return self.window_s - (now - self._times[0]) + 0.1
            self._times.append(now)
            return 0.0


#: The limit shared by every connection of this process (Binance counts per IP).
HANDSHAKES = HandshakeLimit()


class Backoff:
    """Capped exponential backoff with jitter (each delay drawn from [½, 1] × the step).

    Args:
        initial_s: the first step.
        max_s: the largest step.
    """

    def __init__(self, initial_s: float, max_s: float):
        self.initial_s = initial_s
        self.max_s = max_s
        self._step = initial_s

    def next_delay_s(self) -> float:
        """The delay before the next attempt; the step after it doubles up to the cap."""
        delay = self._step * (0.5 + random.random() / 2)
        self._step = min(self._step * 2, self.max_s)
        return delay

    def reset(self) -> None:
        """Back to the first step (after a connection that delivered)."""
        self._step = self.initial_s


@dataclass
class Connection:
    """One supervised connection (it reconnects under the same identity)."""

    conn_id: int
    opened: float = 0.0
    up: bool = False
    got_data: bool = False
    ws: Any = None
    task: asyncio.Task | None = None
    replacing: Connection | None = None  # the connection this one will replace


@dataclass(frozen=True)
class SupervisorSettings:
    """Timing of a supervisor (fields as in ``LiveSettings``)."""

    backoff_initial_s: float
    backoff_max_s: float
    max_connection_age_s: float
    rollover_overlap_s: float


def _ignore(*_: Any) -> None:
    return None


class ConnectionSupervisor:
    """Keeps one combined stream connected; runs inside the caller's event loop.

    Args:
        name: name in logs (the partition).
        url: the combined-stream URL.
        settings: backoff and rollover timing.
        on_frame: ``(recv_ns, frame)`` for every data frame read.
        on_open: a connection is up; ``first``, ``reconnect`` (the streams were down) or
            ``rollover`` (a replacement while the old connection was still up).
        on_down: no connection is up any more (the reason).
        on_replace: a replacement connection is being opened (why: ``rollover`` or the
            caller's reason).
        paused: while it returns True, reading stops so TCP pushes back on the sender.
        handshakes: the process-wide connection rate limit.
    """

    def __init__(self, name: str, url: str, settings: SupervisorSettings,
                 on_frame: Callable[[int, bytes], None], *,
                 on_open: Callable[[OpenKind], None] = _ignore,
                 on_down: Callable[[str], None] = _ignore,
                 on_replace: Callable[[str], None] = _ignore,
                 paused: Callable[[], bool] = lambda: False,
                 handshakes: HandshakeLimit = HANDSHAKES):
        self.name = name
        self.url = url
        self.settings = settings
        self.on_frame = on_frame
        self.on_open = on_open
        self.on_down = on_down
        self.on_replace = on_replace
        self.paused = paused
        self.handshakes = handshakes
        self.reconnects = 0
        self.conns: list[Connection] = []
        self._next_id = 0
        self._ever_connected = False
        self._watcher: asyncio.Task | None = None

    @property
    def up(self) -> bool:
        """Some connection is up."""
        return any(c.up for c in self.conns)

    def start(self) -> None:
        """Open the first connection and start the watcher (inside the running loop)."""
        self._open()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        """Close every connection and stop the watcher."""
        tasks = [c.task for c in self.conns if c.task is not None]
        if self._watcher is not None:
            tasks.append(self._watcher)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    def replace(self, why: str) -> None:
        """Replace every current connection (e.g. one found silent), without a hole."""
        for conn in [c for c in self.conns if c.up and c.replacing is None]:
            self._replace(conn, why)

    # ------------------------------------------------------------------ internals

    def _open(self, replacing: Connection | None = None) -> Connection:
        conn = Connection(self._next_id, replacing=replacing)
        self._next_id += 1
        self.conns.append(conn)
        conn.task = asyncio.get_running_loop().create_task(self._run(conn))
        return conn

    async def _run(self, conn: Connection) -> None:
        """Keep one connection up: connect, read, reconnect with backoff, until replaced."""
        backoff = Backoff(self.settings.backoff_initial_s, self.settings.backoff_max_s)
        while True:
            delay = self.handshakes.delay_s()
            if delay:
                logger.warning("connection rate limit reached; waiting %.1f s", delay)
                await asyncio.sleep(delay)
            try:
                await self._read(conn, backoff)
                reason = "closed"
            except asyncio.CancelledError:
                conn.up = False
                raise
            except Exception as error:  # noqa: BLE001 - every failure reconnects
                reason = f"{type(error).__name__}: {error}"
            conn.up, conn.ws, conn.got_data = False, None, False
            if conn not in self.conns:
                return  # replaced (rollover / silent): this connection is done
            if not self.up:
                self.on_down(reason)
            delay = backoff.next_delay_s()
            logger.warning("binance connection lost part=%s reason=%s retry_in_s=%.2f",
                           self.name, reason, delay)
            await asyncio.sleep(delay)

    async def _read(self, conn: Connection, backoff: Backoff) -> None:
        from websockets.asyncio.client import connect

        host = urlparse(self.url).hostname
        proxy = None if host in ("127.0.0.1", "localhost", "::1") else True
        async with connect(self.url, proxy=proxy, max_size=1 << 24, open_timeout=10,
                           ping_interval=20, ping_timeout=20, close_timeout=2,
                           compression=None) as ws:
            conn.ws, conn.up, conn.opened = ws, True, time.monotonic()
            self._opened(conn)
            while True:
                frame = await ws.recv(decode=False)
                recv_ns = time.time_ns()
                if not conn.got_data:
                    conn.got_data = True
                    backoff.reset()
                if frame.startswith(b'{"result"') or frame.startswith(b'{"id"'):
                    continue  # a reply to SUBSCRIBE / LIST_SUBSCRIPTIONS
                self.on_frame(recv_ns, frame)
                while self.paused():
                    await asyncio.sleep(0.01)

    def _opened(self, conn: Connection) -> None:
        logger.info("binance connected part=%s conn=%d url=%s", self.name, conn.conn_id,
                    self.url)
        if conn.replacing is not None and conn.replacing.up:
            kind: OpenKind = "rollover"
        elif self._ever_connected:
            kind = "reconnect"
            self.reconnects += 1
        else:
            kind = "first"
        self._ever_connected = True
        self.on_open(kind)

    def _replace(self, old: Connection, why: str) -> None:
        """Open a replacement for ``old``; the watcher closes ``old`` once it delivers."""
        if any(c.replacing is old for c in self.conns):
            return
        logger.info("binance replacing connection part=%s conn=%d why=%s", self.name,
                    old.conn_id, why)
        self._open(replacing=old)
        self.on_replace(why)

    def _retire(self, old: Connection) -> None:
        if old in self.conns:
            self.conns.remove(old)
        for c in self.conns:
            if c.replacing is old:
                c.replacing = None
        if old.task is not None:
            old.task.cancel()

    async def _watch(self) -> None:
        while True:
            self.check(time.monotonic())
            await asyncio.sleep(WATCH_EVERY_S)

    def check(self, now: float) -> None:
        """Finish replacements that delivered; roll over connections near the age limit."""
        s = self.settings
        for conn in list(self.conns):
            new = next((c for c in self.conns if c.replacing is conn), None)
            if new is not None:
                # Switch once the replacement delivers (or the overlap ran out while it is up),
                # or at once when the old one is down anyway.
                if not conn.up or (new.up and (new.got_data or
                                               now - new.opened > s.rollover_overlap_s)):
                    self._retire(conn)
                continue
            if conn.up and now - conn.opened > s.max_connection_age_s:
                self._replace(conn, "rollover")
