"""HTTP/1.1 over the Docker daemon's unix socket (standard library: ``socket`` only).

Why not ``http.client``: it imports ``ssl`` and ``email`` at start-up,
~19 ms of a 2-core VM's time on every action that talks to Docker (``stop``
among them); this program speaks one dialect to one local peer, which takes
less code than working around the general client (see README, "Performance").

Each request opens its own connection and asks the daemon to close it
(``Connection: close``): a stopping dockerd closes its listening socket
first but keeps serving open keep-alive connections, so a fresh connection
is the only honest answer to "is the daemon there?", and nothing stale is
ever reused after a daemon restart.

Every request has a deadline (``timeout`` seconds for the whole exchange;
None: none, for ``wait``). ``idle`` = (seconds, callback) calls the callback
after each such stretch of silence while a response is read; it may raise to
abandon the request (the wait uses it to notice a hung daemon). Every
failure to reach or hear the daemon is an ``EngineUnavailable`` with one line.
"""

from __future__ import annotations

import socket
import time

from ecs_init.docker.api import Readable
from ecs_init.docker.errors import EngineUnavailable

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Callable, Mapping, Optional

    Idle = tuple[float, Callable[[], None]]

RECV_SIZE = 64 * 1024
SEND_CHUNK = 1024 * 1024  # request-body chunk: memory stays flat whatever the file's size
MAX_HEAD_BYTES = 64 * 1024  # status line and headers
MAX_CHUNK_LINE = 1024


def socket_path(host: str) -> str:
    """``unix:///var/run/docker.sock`` -> ``/var/run/docker.sock``; other schemes are refused."""
    if host.startswith("unix://") and len(host) > len("unix://"):
        return host[len("unix://") :]
    raise EngineUnavailable(f"DOCKER_HOST={host!r} is not supported: only unix:// sockets are")


def _connect_problem(err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        return "no socket at that path"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, PermissionError):
        return "permission denied (run as root or as a member of the docker group)"
    if isinstance(err, socket.timeout):
        return "timed out"
    return err.strerror or str(err) or type(err).__name__


class Timeout(Exception):
    """The request's deadline passed (turned into EngineUnavailable by the caller)."""


class _SendFailed(Exception):
    """The daemon stopped taking the request (it may still have answered)."""

    def __init__(self, err: OSError) -> None:
        super().__init__(str(err))
        self.err = err


class _Deadline:
    def __init__(self, timeout: Optional[float]) -> None:
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> Optional[float]:
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise Timeout()
        return left


class Response:
    """A response whose body is read on demand (``read``), de-chunked."""

    def __init__(self, conn: _Connection, method: str) -> None:
        self._conn = conn
        self.status, self.reason, self.headers = conn.read_head()
        while 100 <= self.status < 200:  # interim answers (100 Continue): read the real one
            self.status, self.reason, self.headers = conn.read_head()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self._left: Optional[int] = None  # Content-Length left, or bytes left in the current chunk
        self._done = method == "HEAD" or self.status in (204, 304)
        if not self._done and not self._chunked and "content-length" in self.headers:
            try:
                self._left = max(0, int(self.headers["content-length"]))
            except ValueError:
                raise conn.broken("sent an invalid Content-Length")
            self._done = self._left == 0

    def read(self, size: int = RECV_SIZE) -> bytes:
        """Up to ``size`` bytes of the body (at least one); b"" at its end."""
        if self._done:
            return b""
        conn = self._conn
        if self._chunked:
            if not self._left:
                self._left = self._next_chunk()
                if self._left == 0:
                    self._done = True
                    return b""
            data = conn.read_some(min(size, self._left))
            self._left -= len(data)
            if self._left == 0:
                conn.expect_crlf()
            return data
        if self._left is None:  # body runs until the daemon closes the connection
            data = conn.read_some(size, eof_ok=True)
            self._done = not data
            return data
        data = conn.read_some(min(size, self._left))
        self._left -= len(data)
        self._done = self._left == 0
        return data

    def _next_chunk(self) -> int:
        line = self._conn.read_line(MAX_CHUNK_LINE)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise self._conn.broken("sent a malformed chunk")
        if size == 0:
            while self._conn.read_line(MAX_HEAD_BYTES).strip():  # trailers, then the empty line
                pass
        return size

    def read_all(self, limit: int) -> bytes:
        """The whole body; EngineUnavailable when it exceeds ``limit`` bytes."""
        parts: list[bytes] = []
        total = 0
        while True:
            data = self.read()
            if not data:
                return b"".join(parts)
            total += len(data)
            if total > limit:
                raise self._conn.broken(f"sent an answer larger than {limit} bytes")
            parts.append(data)

    def close(self) -> None:
        self._conn.close()


class _Connection:
    """One socket, one request, with a deadline and an idle hook on every receive."""

    def __init__(self, host: str, what: str, deadline: _Deadline, idle: Optional[Idle]) -> None:
        self.host = host
        self.what = what
        self.deadline = deadline
        self.idle = idle
        self.buf = bytearray()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)

    def broken(self, problem: str) -> EngineUnavailable:
        self.close()
        return EngineUnavailable(f"Docker at {self.host} {problem} ({self.what})")

    def timed_out(self) -> EngineUnavailable:
        self.close()
        return EngineUnavailable(
            f"Docker at {self.host} does not answer: no answer within {self.deadline.timeout:.3g}s ({self.what})"
        )

    def connect(self, path: str) -> None:
        try:
            self.sock.settimeout(self.deadline.remaining())
            self.sock.connect(path)
        except Timeout:
            raise self.timed_out()
        except OSError as err:
            self.close()
            raise EngineUnavailable(f"Docker at {self.host} does not answer: {_connect_problem(err)}")

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self.deadline.remaining())
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise Timeout()
        except OSError as err:
            raise _SendFailed(err)

    def _fill(self, eof_ok: bool = False) -> bool:
        """Receive more into the buffer; False at end of stream (only when ``eof_ok``)."""
        while True:
            try:
                left = self.deadline.remaining()
            except Timeout:
                raise self.timed_out()
            wait = left
            if self.idle is not None:
                wait = self.idle[0] if left is None else min(left, self.idle[0])
            self.sock.settimeout(wait)
            try:
                data = self.sock.recv(RECV_SIZE)
            except socket.timeout:
                if self.idle is not None and (left is None or left > self.idle[0]):
                    self.idle[1]()  # may raise to abandon the request
                    continue
                raise self.timed_out()
            except OSError as err:
                raise self.broken(f"closed the connection: {err.strerror or err}")
            if data:
                self.buf += data
                return True
            if eof_ok:
                return False
            raise self.broken("closed the connection before answering in full")

    def read_line(self, limit: int) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[: end + 1])
                del self.buf[: end + 1]
                return line
            if len(self.buf) > limit:
                raise self.broken("sent an over-long line")
            self._fill()

    def read_some(self, size: int, eof_ok: bool = False) -> bytes:
        if not self.buf and not self._fill(eof_ok):
            return b""
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def expect_crlf(self) -> None:
        if self.read_line(2).strip():
            raise self.broken("sent a malformed chunk")

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD_BYTES:
                raise self.broken("sent over-long headers")
            self._fill()
        end = self.buf.index(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES:
            raise self.broken("sent over-long headers")
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise self.broken(f"answered something that is not HTTP: {head[0][:60]!r}")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        return int(parts[1]), (parts[2] if len(parts) > 2 else ""), headers

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def request(
    host: str,
    method: str,
    target: str,
    *,
    timeout: Optional[float],
    headers: Optional[Mapping[str, str]] = None,
    body: Optional[bytes] = None,
    stream: Optional[Readable] = None,
    idle: Optional[Idle] = None,
) -> Response:
    """Send one request to the daemon at ``host`` (``unix://…``); return its response.

    ``body`` is sent with a Content-Length, ``stream`` chunked, read
    ``SEND_CHUNK`` bytes at a time. The caller closes the response.
    """
    path = socket_path(host)
    conn = _Connection(host, f"{method} {_unversioned(target)}", _Deadline(timeout), idle)
    conn.connect(path)
    lines = [f"{method} {target} HTTP/1.1", "Host: docker", "User-Agent: amazon-ecs-init", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if stream is not None:
        lines.append("Transfer-Encoding: chunked")
    elif body is not None or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    try:
        try:
            conn.send(head + (body or b""))
            if stream is not None:
                _send_chunked(conn, stream)
        except _SendFailed as failed:
            # The daemon may refuse a body early and close: its answer says why.
            try:
                return Response(conn, method)
            except EngineUnavailable:
                problem = failed.err.strerror or str(failed.err)
                raise conn.broken(f"closed the connection while the request was sent: {problem}")
        return Response(conn, method)
    except Timeout:
        raise conn.timed_out()
    except BaseException:  # e.g. the request body's file cannot be read: never leak the socket
        conn.close()
        raise


def _unversioned(target: str) -> str:
    """``/v1.41/containers/x/stop?t=10`` -> ``/containers/x/stop`` (for messages)."""
    path = target.split("?", 1)[0]
    version, sep, rest = path[2:].partition("/")
    if path.startswith("/v") and sep and version.replace(".", "").isdigit():
        return "/" + rest
    return path


def _send_chunked(conn: _Connection, stream: Readable) -> None:
    while True:
        chunk = stream.read(SEND_CHUNK)
        if not chunk:
            break
        # Three sends, never one concatenation: a 1 MiB chunk is not copied again per send.
        conn.send(b"%x\r\n" % len(chunk))
        conn.send(chunk)
        conn.send(b"\r\n")
    conn.send(b"0\r\n\r\n")
