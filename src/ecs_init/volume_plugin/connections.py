"""Bounded, timed client connections for the plugin's HTTP server.

Every open connection holds one handler thread, so the number of threads is
the number of connections: it is capped. Each connection is in one of three
phases:

* ``IDLE``    -- waiting for (the first line of) a request: a fresh or
  keep-alive connection. Closed after ``idle_timeout``; the oldest idle one
  is closed early to make room when the table is full.
* ``READING`` -- reading a request's headers and body. Closed when the whole
  request has not arrived within ``request_timeout`` (a slow-loris client).
* ``WORKING`` -- answering (a mount may take minutes). Never closed here.

A new connection past ``max_connections`` evicts the oldest idle one; when
none is idle (every slot is reading or working), or the evicted ones have not
finished yet (``hard_limit``), it is refused. "Closing" is ``shutdown(2)``:
the handler thread, blocked in ``recv``, sees end of file and ends.

The table is pure bookkeeping with an injected clock; the server calls
``close_expired`` from its serve loop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

log = logging.getLogger(__name__)

IDLE = "idle"
READING = "reading"
WORKING = "working"

MAX_CONNECTIONS = 64
IDLE_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0


class Closable(Protocol):
    def shutdown(self, how: int) -> None: ...


@dataclass
class _Entry:
    conn: Closable
    phase: str
    since: float
    closing: bool = False


class ConnectionTable:
    def __init__(
        self,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        # Evicted connections keep their slot until their thread ends; this
        # much slack lets a flood go on evicting without waiting for them.
        self.hard_limit = max_connections + max(4, max_connections // 4)
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}
        self.evicted = 0
        self.refused = 0
        self.expired = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def admit(self, conn: Closable) -> bool:
        """Register a new connection (IDLE); False when it must be refused."""
        with self._lock:
            live = [e for e in self._entries.values() if not e.closing]
            if len(live) >= self.max_connections:
                idle = [e for e in live if e.phase == IDLE]
                if idle:
                    oldest = min(idle, key=lambda e: e.since)
                    self._close(oldest)
                    self.evicted += 1
            live_after = sum(1 for e in self._entries.values() if not e.closing)
            if live_after >= self.max_connections or len(self._entries) >= self.hard_limit:
                self.refused += 1
                return False
            self._entries[id(conn)] = _Entry(conn, IDLE, self.clock())
            return True

    def phase(self, conn: Closable, phase: str) -> None:
        with self._lock:
            entry = self._entries.get(id(conn))
            if entry is not None and not entry.closing:
                entry.phase = phase
                entry.since = self.clock()

    def discard(self, conn: Closable) -> None:
        """The connection's thread is done with it: its slot is free."""
        with self._lock:
            self._entries.pop(id(conn), None)

    def close_expired(self) -> int:
        """Close idle connections past ``idle_timeout`` and requests not read
        within ``request_timeout``; returns how many."""
        now = self.clock()
        closed = 0
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.closing:
                    continue
                limit = {IDLE: self.idle_timeout, READING: self.request_timeout}.get(entry.phase)
                if limit is not None and now - entry.since > limit:
                    self._close(entry)
                    closed += 1
        self.expired += closed
        return closed

    def close_all(self) -> None:
        with self._lock:
            for entry in list(self._entries.values()):
                if not entry.closing:
                    self._close(entry)

    @staticmethod
    def _close(entry: _Entry) -> None:
        entry.closing = True
        try:
            entry.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer
