"""The plugin's HTTP/1.1 server on a Unix socket (Docker volume plugin protocol).

Docker POSTs JSON to ``/Plugin.Activate`` and ``/VolumeDriver.*``; every
answer is JSON with ``Content-Type: application/vnd.docker.plugins.v1.2+json``.
Request errors are ``{"Err": "..."}`` with HTTP 200 (what Docker's plugin
client expects), malformed bodies get 400, unknown endpoints 404, other
methods 405 -- always with an ``Err``. Nothing a client sends stops the
server: a body that ends before its Content-Length (or its last chunk) is
refused, not answered; connections are capped and idle or slow ones are
closed (see ``connections``).
"""

from __future__ import annotations

import argparse
import errno
import http.server
import json
import logging
import os
import signal
import socket
import socketserver
import stat
import threading
import time
from types import FrameType
from typing import Any, Mapping, Sequence

from ecs_init.core import logsetup, settings
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.volume_plugin import DEFAULT_SOCKET, PLUGIN_NAME, SOCKET_ENV
from ecs_init.volume_plugin.connections import IDLE, IDLE_TIMEOUT, READING, WORKING, ConnectionTable
from ecs_init.volume_plugin.drivers import VolumeError
from ecs_init.volume_plugin.host import HostMounter, JsonStateFile, StateFileError
from ecs_init.volume_plugin.protocol import BadRequest, dispatch
from ecs_init.volume_plugin.registry import Registry
from ecs_init.volume_plugin.state import LoadedState, StateFormatError, parse_state

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
MAX_BODY = 1024 * 1024
SD_LISTEN_FDS_START = 3
MAX_PROBLEMS_LOGGED = 20


# ---------------------------------------------------------------- HTTP


class _LastLine:
    """A reader that remembers the last line read (was the header block ended?)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.last = b""

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.raw.readline(limit)
        self.last = line
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = PLUGIN_NAME
    sys_version = ""
    # A backstop for every read and write; the connection table closes idle
    # connections and slow requests well before this.
    timeout = IDLE_TIMEOUT + 10

    server: PluginServer

    def address_string(self) -> str:
        return "unix"

    def version_string(self) -> str:
        return PLUGIN_NAME

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # do_POST logs each request with its Err

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        log.debug("http: " + format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, headers, ...) as JSON too."""
        self.close_connection = True
        try:
            self._send(code, {"Err": message or explain or f"HTTP error {code}"})
        except OSError:
            pass

    def handle_one_request(self) -> None:
        super().handle_one_request()
        self.server.connections.phase(self.connection, IDLE)

    def parse_request(self) -> bool:
        # The request line is in: from here the whole request must arrive in time.
        self.server.connections.phase(self.connection, READING)
        reader = _LastLine(self.rfile)
        self.rfile = reader  # type: ignore[assignment]
        try:
            ok = super().parse_request()
        finally:
            self.rfile = reader.raw
        if ok and reader.last not in (b"\r\n", b"\n"):
            # End of file inside the headers (a half-close, or we cut it off):
            # http.server would take what came as complete.
            self.send_error(400, "request headers ended before the blank line")
            return False
        return ok

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        # The work is done: the connection is idle (evictable) from here, so
        # a client that has read this answer always finds its slot free.
        self.server.connections.phase(self.connection, IDLE)
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw_len = (self.headers.get("Content-Length", "0") or "0").strip()
        if not (raw_len.isascii() and raw_len.isdigit()):
            self.close_connection = True
            raise BadRequest(400, f"bad Content-Length {raw_len[:40]!r}")
        length = int(raw_len)
        if length > MAX_BODY:
            self.close_connection = True
            raise BadRequest(413, f"request body of {length} bytes refused (limit {MAX_BODY})")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise BadRequest(400, f"request body ended after {len(body)} of {length} bytes")
        return body

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadRequest(400, "bad chunked encoding")
            if size == 0:
                while True:  # trailers, up to the empty line
                    trailer = self.rfile.readline(1024)
                    if not trailer:
                        self.close_connection = True
                        raise BadRequest(400, "request body ended before its last chunk's end")
                    if not trailer.strip():
                        return bytes(out)
            if size < 0 or len(out) + size > MAX_BODY:
                self.close_connection = True
                raise BadRequest(413, f"request body over {MAX_BODY} bytes refused")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(1024) not in (b"\r\n", b"\n"):
                self.close_connection = True
                raise BadRequest(400, "request body ended inside a chunk")
            out += chunk

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        try:
            body = self._read_body()
        except BadRequest as err:
            log.info("%s: %s", self.path[:200], err)
            self._send(err.status, {"Err": str(err)})
            return
        self.server.connections.phase(self.connection, WORKING)
        status, payload = dispatch(self.server.registry, self.path, body)
        log.debug("%s -> %d %s", self.path, status, payload.get("Err", ""))
        self._send(status, payload)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._send(405, {"Err": f"method {self.command} not allowed; use POST"})

    do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815


def _canned(status: str, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload).encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


_BUSY = _canned("503 Service Unavailable", {"Err": "too many connections to the volume plugin now; try again"})


class PluginServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connection, at most ``connections.hard_limit`` of them."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, registry: Registry, connections: ConnectionTable | None = None) -> None:
        super().__init__(sock.getsockname() or "", Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.registry = registry
        self.connections = connections if connections is not None else ConnectionTable()
        self._refusal_logged = 0.0

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.admit(request):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except RuntimeError as err:  # no thread could be started
            self.connections.discard(request)
            self.shutdown_request(request)
            log.error("cannot serve a connection: %s", err)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.discard(request)

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.send(_BUSY, socket.MSG_DONTWAIT)
        except OSError:
            pass
        self.shutdown_request(request)
        now = time.monotonic()
        if now - self._refusal_logged >= 60:
            self._refusal_logged = now
            log.warning(
                "refusing connections: %d open, none idle (%d refused so far)",
                len(self.connections),
                self.connections.refused,
            )

    def service_actions(self) -> None:
        self.connections.close_expired()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("connection error", exc_info=True)


# ---------------------------------------------------------------- sockets


def activated_socket(environ: Mapping[str, str], pid: int) -> socket.socket | None:
    """The socket systemd passed (``LISTEN_FDS``/``LISTEN_PID``), if any."""
    try:
        fds = int(environ.get("LISTEN_FDS", "0"))
        listen_pid = int(environ.get("LISTEN_PID", "-1"))
    except ValueError:
        return None
    if fds < 1 or listen_pid != pid:
        return None
    if fds > 1:
        log.warning("systemd passed %d sockets; using the first", fds)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.type != socket.SOCK_STREAM or sock.family != socket.AF_UNIX:
        raise OSError(errno.EINVAL, "the socket systemd passed is not a Unix stream socket")
    sock.set_inheritable(False)
    return sock


def bind_socket(path: str) -> socket.socket:
    """Listen on ``path``; a stale socket file is replaced, a live one refused."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            raise OSError(errno.EADDRINUSE, f"another process already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o660)
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


# ---------------------------------------------------------------- main


def load_state(state: JsonStateFile, volumes_dir: str) -> LoadedState:
    """The volumes in the state file. A file that cannot be used at all (a
    symlink, FIFO, device or directory, too large, not JSON, nested too deep,
    the wrong shape) is moved aside with one log line and we start empty."""
    try:
        return parse_state(state.read(), volumes_dir)
    except (StateFileError, StateFormatError) as err:
        state.quarantine(str(err))
        return LoadedState()


def build_registry(state_path: str, volumes_dir: str, mounter: HostMounter | None = None) -> Registry:
    state = JsonStateFile(state_path)
    loaded = load_state(state, volumes_dir)
    for problem in loaded.problems[:MAX_PROBLEMS_LOGGED]:
        log.warning("%s: %s", state_path, problem)
    if len(loaded.problems) > MAX_PROBLEMS_LOGGED:
        log.warning("%s: %d more problem(s) not shown", state_path, len(loaded.problems) - MAX_PROBLEMS_LOGGED)
    registry = Registry(volumes_dir, mounter or HostMounter(), state.save, loaded.volumes)
    if loaded.legacy:
        try:
            registry.save()
        except VolumeError:
            pass  # logged; the next change saves again
        else:
            log.info("rewrote %s in the Go plugin's format (%d volume(s))", state_path, len(loaded.volumes))
    stale = registry.reconcile()
    note = f"; cleared stale mounts: {stale}" if stale else ""
    log.info("loaded %d volume(s) from %s%s", len(loaded.volumes), state_path, note)
    return registry


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str], paths: Paths) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PLUGIN_NAME, description="Docker volume plugin for EFS and S3 Files")
    parser.add_argument(
        "--socket",
        default=environ.get(SOCKET_ENV) or DEFAULT_SOCKET,
        help=f"Unix socket to listen on (default ${SOCKET_ENV} or {DEFAULT_SOCKET}); "
        "ignored when systemd passes a socket",
    )
    parser.add_argument("--state", default=paths.volume_plugin_state, help="state file (JSON)")
    parser.add_argument("--volumes-dir", default=paths.volumes_dir, help="parent of default mount paths")
    parser.add_argument("--log-file", default=paths.volume_plugin_log)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    environ = dict(os.environ)
    cfg = Config.load(environ)
    args = parse_args(argv, environ, cfg.paths)
    logsetup.setup(log_file=args.log_file or None, level_name=cfg.text(settings.LOGLEVEL))
    try:
        registry = build_registry(args.state, args.volumes_dir)
        sock = activated_socket(environ, os.getpid())
        owned = sock is None
        if sock is None:
            sock = bind_socket(args.socket)
    except OSError as err:
        log.error("%s cannot start: %s", PLUGIN_NAME, err)
        return 1
    for key in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)  # not for mount helpers we run

    server = PluginServer(sock, registry)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker = threading.Thread(target=server.serve_forever, name="volume-plugin-http", daemon=True)
    worker.start()
    where = sock.getsockname() or "the socket systemd passed"
    log.info("%s listening on %s (%s)", PLUGIN_NAME, where, "own socket" if owned else "socket activation")
    while not stop.wait(3600):
        pass
    log.info("%s stopping (mounted volumes stay mounted)", PLUGIN_NAME)
    server.shutdown()
    server.server_close()
    server.connections.close_all()
    if owned:
        try:
            os.unlink(args.socket)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
