"""A small HTTP proxy on loopback for tests: CONNECT tunnels and absolute-form requests.

    with ProxyStub() as proxy:                    # 127.0.0.1, a free port
        env["HTTPS_PROXY"] = proxy.url
        ...
        assert ("CONNECT", "ecs.eu-west-1.amazonaws.com:443") in proxy.requests

- ``CONNECT host:port``: answered ``403`` when ``host`` is in ``deny``, else
  the proxy connects to ``host:port`` (the address ``hosts`` maps it to, else
  resolved as the proxy's own process resolves it) and relays bytes both ways; ``502`` when that fails.
- ``GET/HEAD http://host:port/path``: forwarded to the origin (origin-form,
  ``Connection: close``) and the answer relayed; ``403`` for a denied host.

Every request line is recorded as (method, target) in ``requests``, with
the ``Proxy-Authorization`` header (if any) in ``auth``.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
import urllib.parse
from typing import Optional


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    rbufsize = 0  # unbuffered: nothing the client sent after the headers is held back from the relay

    def _reply(self, status: int, reason: str) -> None:
        self.wfile.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())

    def handle(self) -> None:
        self.request.settimeout(10)
        line = self.rfile.readline(8192).decode("latin-1").strip()
        headers: list[str] = []
        while True:
            header = self.rfile.readline(8192).decode("latin-1")
            if header in ("\r\n", "\n", ""):
                break
            headers.append(header.rstrip("\r\n"))
        parts = line.split()
        if len(parts) != 3:
            self._reply(400, "Bad Request")
            return
        method, target, _ = parts
        auth = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-authorization:")), "")
        with self.server.lock:
            self.server.requests.append((method, target))
            self.server.auth.append(auth)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self._tunnel(host.strip("[]"), int(port or 443))
        else:
            self._forward(method, target, headers)

    def _open(self, host: str, port: int) -> Optional[socket.socket]:
        if host in self.server.deny:
            self._reply(403, "Forbidden")
            return None
        try:
            return socket.create_connection((self.server.hosts.get(host, host), port), timeout=5)
        except OSError:
            self._reply(502, "Bad Gateway")
            return None

    def _tunnel(self, host: str, port: int) -> None:
        upstream = self._open(host, port)
        if upstream is None:
            return
        with upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            self._relay(upstream)

    def _forward(self, method: str, target: str, headers: list[str]) -> None:
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            self._reply(400, "Bad Request")
            return
        upstream = self._open(url.hostname, url.port or 80)
        if upstream is None:
            return
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection:"))]
        request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in kept) + "Connection: close\r\n\r\n"
        with upstream:
            upstream.sendall(request.encode("latin-1"))
            self._relay(upstream)

    def _relay(self, upstream: socket.socket) -> None:
        client = self.request
        sockets = [client, upstream]
        while True:
            ready, _, _ = select.select(sockets, [], [], 10)
            if not ready:
                return
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                (upstream if sock is client else client).sendall(data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], deny: set[str], hosts: dict[str, str]) -> None:
        super().__init__(address, _Handler)
        self.deny = deny
        self.hosts = hosts
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.auth: list[str] = []


class ProxyStub:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        deny: Optional[set[str]] = None,
        hosts: Optional[dict[str, str]] = None,
    ) -> None:
        self._server = _Server((host, port), set(deny or ()), dict(hosts or {}))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._server.lock:
            return list(self._server.requests)

    @property
    def auth(self) -> list[str]:
        with self._server.lock:
            return list(self._server.auth)

    def __enter__(self) -> ProxyStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
