"""The introspection probe connects to an IP address directly (no name lookup: no idna codec on the
start path) and to a name through the resolver; both answer the same."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from typing import Iterator

import pytest

from ecs_init.agent import probe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/v1/metadata" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _Server6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _serve(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def port4() -> Iterator[int]:
    yield from _serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer))


def test_an_ipv4_address_and_a_name_answer_alike(port4: int) -> None:
    assert probe.probe_url(f"http://127.0.0.1:{port4}/v1/metadata")
    assert not probe.probe_url(f"http://127.0.0.1:{port4}/nope")
    assert probe.probe_url(f"http://localhost:{port4}/v1/metadata") == any(
        info[4][0] == "127.0.0.1" for info in socket.getaddrinfo("localhost", port4, type=socket.SOCK_STREAM)
    )
    sock = probe.connect("127.0.0.1", port4, 1.0)
    try:
        assert sock.family == socket.AF_INET and sock.getpeername() == ("127.0.0.1", port4)
    finally:
        sock.close()


def test_an_ipv6_address_is_connected_to_directly() -> None:
    try:
        server = _Server6(("::1", 0), _Answer)
    except OSError:
        pytest.skip("no IPv6 loopback in this network namespace")
    for port in _serve(server):
        assert probe.probe_url(f"http://[::1]:{port}/v1/metadata")
        sock = probe.connect("::1", port, 1.0)
        try:
            assert sock.family == socket.AF_INET6
        finally:
            sock.close()


def test_nothing_listening_is_false_never_an_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]  # bound, not listening: refused
        assert not probe.probe_url(f"http://127.0.0.1:{port}/v1/metadata", timeout=0.5)


def test_probing_an_address_loads_no_idna_codec(port4: int) -> None:
    code = (
        "import sys\nfrom ecs_init.agent import probe\n"
        f"assert probe.probe_url('http://127.0.0.1:{port4}/v1/metadata')\n"
        "print(sorted(m for m in ('encodings.idna', 'unicodedata', 'stringprep') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
