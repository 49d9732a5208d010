"""Loopback stand-ins for the EC2 instance metadata service (IMDSv2).

``ImdsStub``: answers the IMDSv2 token flow like the real service —
``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``
returns a token; ``GET /latest/meta-data/placement/region`` with
``X-aws-ec2-metadata-token`` returns the region; anything else is 401/404.

``SilentServer``: accepts TCP connections and never answers (a metadata
address that black-holes requests).

Both listen on 127.0.0.1 only, on a free port, and record what they saw.

    with ImdsStub("eu-west-1") as imds:
        env["ECS_INIT_IMDS_ENDPOINT"] = imds.endpoint
"""

from __future__ import annotations

import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_PATH = "/latest/api/token"
REGION_PATH = "/latest/meta-data/placement/region"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _reply(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:  # noqa: N802 - http.server naming
        self.server.requests.append(("PUT", self.path))
        if self.path != TOKEN_PATH:
            self._reply(404)
            return
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            self._reply(400)
            return
        token = secrets.token_urlsafe(24)
        self.server.tokens.add(token)
        self._reply(200, token.encode())

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.server.requests.append(("GET", self.path))
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        if token not in self.server.tokens:
            self._reply(401)
            return
        if self.path != REGION_PATH:
            self._reply(404)
            return
        self._reply(200, self.server.region.encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, region: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.region = region
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []


class ImdsStub:
    def __init__(self, region: str = "eu-west-1") -> None:
        self._server = _Server(region)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self._server.requests

    def start(self) -> ImdsStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ImdsStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SilentServer:
    """Accepts connections on 127.0.0.1 and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.accepted = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


def closed_port_endpoint() -> str:
    """A loopback URL on a port nothing listens on (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
