"""The step-by-step probe (ecs_init.ops.netprobe) and the download's proxy, against loopback stand-ins.

Everything listens on 127.0.0.1 of the test's own namespace: a closed
port, a server that never answers, plain HTTP answering 403, an HTTPS
server signed by a CA made for the test, and the proxy stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from imds_stub import SilentServer, closed_port_endpoint
from proxy_stub import ProxyStub
from tls_stub import TestCA, TlsServer

from ecs_init.agent import download
from ecs_init.agent.proxy import Proxy
from ecs_init.ops import netprobe


class _Status(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _answer(self) -> None:
        status = int(self.path.strip("/").split("/")[0] or 200)
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"ok")

    do_GET = do_HEAD = do_PUT = _answer  # noqa: N815 - http.server naming


@pytest.fixture
def http_server() -> Iterator[str]:
    """http://127.0.0.1:PORT; the first path segment is the status it answers (/403 -> 403)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ca(tmp_path: Any) -> TestCA:
    return TestCA(str(tmp_path))


@pytest.fixture
def tls(ca: TestCA) -> Iterator[TlsServer]:
    cert, key = ca.issue(["127.0.0.1", "ecs.test-region.example"])
    with TlsServer(cert, key, body=b"0123456789abcdef0123456789abcdef\n") as server:
        yield server


def trusting(ca: TestCA) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca.cert_path)


def test_refused() -> None:
    outcome = netprobe.probe(closed_port_endpoint() + "/x", timeout=2)
    assert (outcome.ok, outcome.step, outcome.cause) == (False, netprobe.CONNECT, netprobe.REFUSED)
    assert "refused" in outcome.error and outcome.addresses == ["127.0.0.1"]


def test_a_server_that_never_answers_costs_the_timeout_and_no_more() -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        outcome = netprobe.probe(silent.endpoint + "/x", method="GET", timeout=1.0)
        took = time.monotonic() - started
    assert (outcome.step, outcome.cause) == (netprobe.HTTP, netprobe.TIMEOUT)
    assert "no answer within 1s" in outcome.error
    assert 0.9 <= took < 1.6


def test_http_error_status_fails_the_http_step(http_server: str) -> None:
    outcome = netprobe.probe(http_server + "/403/key.md5")
    assert (outcome.ok, outcome.step, outcome.status) == (False, netprobe.HTTP, 403)
    assert outcome.error.endswith("HTTP 403 Forbidden")
    assert netprobe.probe(http_server + "/200/key.md5").ok


def test_put_with_headers_and_body(http_server: str) -> None:
    outcome = netprobe.probe(http_server + "/200/token", method="PUT", headers={"X-Test": "1"})
    assert outcome.ok and outcome.body == b"ok"


def test_tls_untrusted_then_trusted(ca: TestCA, tls: TlsServer) -> None:
    url = f"https://127.0.0.1:{tls.port}/"
    untrusted = netprobe.probe(url, tls_only=True)
    assert (untrusted.step, untrusted.cause) == (netprobe.TLS, netprobe.UNTRUSTED)
    assert "is not trusted" in untrusted.error
    trusted = netprobe.probe(url, tls_only=True, context=trusting(ca))
    assert trusted.ok and trusted.tls_version.startswith("TLS")
    assert tls.requests == []  # tls_only: no HTTP request was sent


def test_tls_name_mismatch_is_untrusted(ca: TestCA) -> None:
    cert, key = ca.issue(["other.example"], stem="other")
    with TlsServer(cert, key) as server:
        outcome = netprobe.probe(f"https://127.0.0.1:{server.port}/", tls_only=True, context=trusting(ca))
    assert outcome.cause == netprobe.UNTRUSTED and "mismatch" in outcome.error.lower()


def test_https_through_a_proxy_tunnel(ca: TestCA, tls: TlsServer) -> None:
    with ProxyStub(hosts={"ecs.test-region.example": "127.0.0.1"}) as proxy:
        url = f"https://ecs.test-region.example:{tls.port}/v1"
        outcome = netprobe.probe(url, method="GET", proxy=Proxy(proxy.url, "HTTPS_PROXY"), context=trusting(ca))
        assert outcome.ok and outcome.status == 200, outcome.error
        assert proxy.requests == [("CONNECT", f"ecs.test-region.example:{tls.port}")]
    assert outcome.proxy == proxy.url and outcome.addresses == []  # the name was the proxy's to resolve
    assert tls.requests[0][:2] == ("GET", "/v1")


def test_proxy_refusing_the_tunnel(tls: TlsServer) -> None:
    with ProxyStub(deny={"ecs.test-region.example"}) as proxy:
        outcome = netprobe.probe(
            "https://ecs.test-region.example/", proxy=Proxy(proxy.url, "HTTPS_PROXY"), tls_only=True
        )
    assert outcome.step == netprobe.PROXY
    assert "refused to open a tunnel to ecs.test-region.example:443: HTTP 403" in outcome.error


def test_plain_http_through_a_proxy_sends_the_absolute_url_and_credentials(http_server: str) -> None:
    with ProxyStub() as proxy:
        authed = proxy.url.replace("http://", "http://ops:s3cr%3At@")
        outcome = netprobe.probe(http_server + "/200/bucket/key.md5", proxy=Proxy(authed, "HTTP_PROXY"))
        assert outcome.ok, outcome.error
        assert proxy.requests == [("HEAD", http_server + "/200/bucket/key.md5")]
        assert proxy.auth == ["Basic " + base64.b64encode(b"ops:s3cr:t").decode()]
    assert "s3cr" not in outcome.proxy and "<redacted>" in outcome.proxy


def test_an_unusable_url_is_an_outcome_not_an_exception() -> None:
    assert netprobe.probe("ftp://x/").error.endswith("is not an http(s) URL")
    assert not netprobe.probe("http://127.0.0.1:notaport/").ok


def test_dns_lookup_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that never answers costs the timeout, not the resolver's own retries."""
    release = threading.Event()

    def hung(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hung)
    started = time.monotonic()
    outcome = netprobe.probe("https://ecs.us-east-1.amazonaws.com/", timeout=0.5, tls_only=True)
    release.set()
    assert (outcome.step, outcome.cause) == (netprobe.DNS, netprobe.TIMEOUT)
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------- the download's proxy (SPEC §10)


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_download_goes_through_http_proxy_for_https(
    clean_proxy_env: pytest.MonkeyPatch, ca: TestCA, tls: TlsServer
) -> None:
    """Only HTTP_PROXY set (as the AWS documentation does): the https download still uses it."""
    host = "amazon-ecs-agent.s3.us-east-1.amazonaws.com"
    cert, key = ca.issue([host], stem="s3")
    body = hashlib.md5(b"x").hexdigest().encode() + b"\n"
    with TlsServer(cert, key, body=body) as s3, ProxyStub(hosts={host: "127.0.0.1"}) as proxy:
        clean_proxy_env.setenv("HTTP_PROXY", proxy.url.replace("http://", ""))
        clean_proxy_env.setenv("SSL_CERT_FILE", ca.cert_path)
        digest = download.fetch_md5(f"https://{host}:{s3.port}/ecs-agent-v1.tar.md5", timeout=5)
        assert digest == hashlib.md5(b"x").hexdigest()
        assert proxy.requests == [("CONNECT", f"{host}:{s3.port}")]


def test_download_honours_no_proxy(clean_proxy_env: pytest.MonkeyPatch, http_server: str) -> None:
    with ProxyStub(deny={"127.0.0.1"}) as proxy:
        clean_proxy_env.setenv("HTTPS_PROXY", proxy.url)
        clean_proxy_env.setenv("NO_PROXY", ".amazonaws.com")
        with pytest.raises(download.SourceError):
            # excluded by NO_PROXY: resolved directly (and this name does not exist), the proxy never asked
            download.fetch_md5("https://amazon-ecs-agent.s3.no-such-region-9.amazonaws.com/k.md5", timeout=3)
        assert proxy.requests == []
