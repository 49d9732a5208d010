"""A small stand-in Docker daemon on a unix socket, for protocol-level tests.

It speaks just enough HTTP/1.1 to answer the Engine client: ``/version`` and
``/_ping`` by default (reporting ``api_version``), anything else from
``routes`` (keyed by method and the path without its ``/v1.xx`` prefix or
query), 404 otherwise. Every request is recorded with the API version it
used and its decoded body.

``hang=True`` accepts connections and reads requests but never answers (a
wedged dockerd); ``hang_paths`` does that for some paths only.

    with StubEngine(str(tmp_path / "d.sock"), api_version="1.24") as stub:
        stub.routes["GET", "/info"] = lambda req: Reply(200, {"DockerRootDir": "/x"})
        ... DOCKER_HOST=stub.host ...
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")


@dataclass
class Request:
    method: str
    target: str  # as sent, with version prefix and query
    path: str  # without version prefix and query
    api_version: Optional[str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Union[bytes, str, dict[str, Any], list[Any], None] = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Optional[list[bytes]] = None  # send chunked, these chunks
    raw: Optional[bytes] = None  # send exactly this (malformed answers)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        headers = dict(self.headers)
        if isinstance(self.body, (dict, list)):
            payload = json.dumps(self.body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(self.body, str):
            payload = self.body.encode()
        else:
            payload = self.body or b""
        if self.chunks is not None:
            headers["Transfer-Encoding"] = "chunked"
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in self.chunks if c) + b"0\r\n\r\n"
        else:
            headers["Content-Length"] = str(len(payload))
        head = f"HTTP/1.1 {self.status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode() + b"Connection: close\r\n\r\n" + payload


Handler = Callable[[Request], Reply]


class StubEngine:
    def __init__(self, path: str, api_version: str = "1.41", min_api: str = "1.12", hang: bool = False) -> None:
        self.path = path
        self.api_version = api_version
        self.min_api = min_api
        self.hang = hang
        self.hang_paths: set[str] = set()
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Request] = []
        self.connections = 0
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def host(self) -> str:
        return "unix://" + self.path

    def start(self) -> StubEngine:
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._sock.bind(self.path)
        self._sock.listen(64)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            for conn in self._held:
                conn.close()
            self._held.clear()
        if self._thread is not None:
            self._thread.join(5)
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self) -> StubEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    # ------------------------------------------------------------ serving

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._held.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            request = _read_request(conn)
            if request is None:
                return
            with self._lock:
                self.requests.append(request)
            if self.hang or request.path in self.hang_paths:
                self._stopped.wait()  # never answer; stop() closes the socket
                return
            conn.sendall(self._reply(request).encode())
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _reply(self, request: Request) -> Reply:
        handler = self.routes.get((request.method, request.path))
        if handler is not None:
            return handler(request)
        if request.path == "/version":
            return Reply(200, {"Version": "stub", "ApiVersion": self.api_version, "MinAPIVersion": self.min_api})
        if request.path == "/_ping":  # engines of API 1.25 and later name their version here
            modern = tuple(int(p) for p in self.api_version.split(".")) >= (1, 25)
            return Reply(200, "OK", headers={"Api-Version": self.api_version} if modern else {})
        return Reply(404, {"message": f"page not found: {request.method} {request.path}"})


def _read_request(conn: socket.socket) -> Optional[Request]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = rest
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(conn, rest)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        while len(body) < length:
            data = conn.recv(65536)
            if not data:
                break
            body += data
    path, _, query_text = target.partition("?")
    query = dict(part.partition("=")[::2] for part in query_text.split("&") if part)
    version = None
    match = _VERSIONED.match(path)
    if match:
        version, path = match.group(1), match.group(2)
    return Request(method, target, path, version, query, headers, body)


def _read_chunked(conn: socket.socket, buf: bytes) -> bytes:
    out = bytearray()
    while True:
        while b"\r\n" not in buf:
            buf += conn.recv(65536)
        line, _, buf = buf.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        while len(buf) < size + 2:
            data = conn.recv(65536)
            if not data:
                return bytes(out)
            buf += data
        out += buf[:size]
        buf = buf[size + 2 :]
