"""One bounded HTTP(S) probe, step by step: DNS, TCP, proxy tunnel, TLS, HTTP.

``probe`` walks the steps a client takes to reach a URL and stops at the
first that fails, naming it (``Outcome.step``) with one line, so a
connectivity check can say *which* part is broken: the name does not
resolve, nothing answers, the connection is refused, the proxy refuses the
tunnel, the certificate is not trusted, or the server answers with an HTTP
error. The whole probe keeps to one deadline; a DNS lookup (which has no
timeout of its own) runs in a daemon thread, so a hung resolver cannot
hold the caller or the interpreter's exit.

Standard library only; imported by ``check --network`` alone.
"""

from __future__ import annotations

import base64
import errno
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ecs_init.agent.proxy import DEFAULT_PORTS, Proxy

DNS = "dns"
CONNECT = "connect"
PROXY = "proxy"
TLS = "tls"
HTTP = "http"
STEPS = (DNS, CONNECT, PROXY, TLS, HTTP)
REFUSED = "refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
UNTRUSTED = "untrusted"

MAX_BODY = 4096
USER_AGENT = "amazon-ecs-init"


@dataclass
class Outcome:
    """What a probe found. ``step`` is the step that failed ("" when every step passed)."""

    url: str
    ok: bool = False
    step: str = ""
    cause: str = ""  # REFUSED, TIMEOUT, UNREACHABLE or UNTRUSTED when the failure was one of those
    error: str = ""
    status: Optional[int] = None
    reason: str = ""
    body: bytes = b""
    addresses: list[str] = field(default_factory=list)
    tls_version: str = ""
    proxy: str = ""
    elapsed: float = 0.0

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url, "elapsed_ms": round(self.elapsed * 1000)}
        if self.addresses:
            out["addresses"] = list(self.addresses)
        if self.proxy:
            out["proxy"] = self.proxy
        if self.status is not None:
            out["http_status"] = self.status
        if self.tls_version:
            out["tls_version"] = self.tls_version
        if self.step:
            out["failed_step"] = self.step
        return out


class _Failed(Exception):
    def __init__(self, step: str, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.cause = cause


class _Clock:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def left(self, step: str, what: str) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0.01:
            raise _Failed(step, f"{what}: no answer within {self.timeout:g}s", TIMEOUT)
        return remaining


def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of ``host`` (IPv4 first), in at most ``timeout`` seconds; _Failed otherwise."""
    found: dict[str, Any] = {}

    def lookup() -> None:
        try:
            found["answer"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as err:
            found["error"] = err

    worker = threading.Thread(target=lookup, name=f"dns {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _Failed(DNS, f"DNS lookup of {host} did not answer within {timeout:g}s", TIMEOUT)
    if "error" in found:
        err = found["error"]
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise _Failed(DNS, f"DNS lookup of {host} failed: {reason}")
    addresses: list[str] = []
    for family, _, _, _, sockaddr in found.get("answer", []):
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    if not addresses:
        raise _Failed(DNS, f"DNS lookup of {host} returned no address")
    addresses.sort(key=lambda a: ":" in a)
    return addresses


def _connect_error(where: str, err: OSError) -> _Failed:
    if isinstance(err, ConnectionRefusedError):
        return _Failed(CONNECT, f"connection to {where} refused", REFUSED)
    if isinstance(err, socket.timeout):
        return _Failed(CONNECT, f"no answer from {where} (the connection timed out)", TIMEOUT)
    if err.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return _Failed(CONNECT, f"cannot reach {where}: {err.strerror} (no route)", UNREACHABLE)
    return _Failed(CONNECT, f"cannot connect to {where}: {err.strerror or err}")


def _connect(addresses: list[str], port: int, clock: _Clock, label: str) -> socket.socket:
    last: Optional[_Failed] = None
    for address in addresses:
        where = f"{label} ({address}:{port})" if address != label else f"{address}:{port}"
        try:
            return socket.create_connection((address, port), timeout=clock.left(CONNECT, f"connect to {where}"))
        except OSError as err:
            last = _connect_error(where, err)
    raise last or _Failed(CONNECT, f"cannot connect to {label}:{port}")


def _read_response(sock: socket.socket, method: str, clock: _Clock, step: str, what: str) -> http.client.HTTPResponse:
    sock.settimeout(clock.left(step, what))
    resp = http.client.HTTPResponse(sock, method=method)
    try:
        resp.begin()
    except socket.timeout:
        raise _Failed(step, f"{what}: no answer within {clock.timeout:g}s", TIMEOUT)
    except (OSError, http.client.HTTPException) as err:
        raise _Failed(step, f"{what}: {getattr(err, 'strerror', None) or err or type(err).__name__}")
    return resp


def _proxy_auth(proxy: Proxy) -> dict[str, str]:
    creds = proxy.credentials
    if creds is None:
        return {}
    token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode("ascii")
    return {"Proxy-Authorization": f"Basic {token}"}


def _tunnel(sock: socket.socket, proxy: Proxy, host: str, port: int, clock: _Clock) -> None:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    lines += [f"{k}: {v}" for k, v in _proxy_auth(proxy).items()]
    sock.settimeout(clock.left(PROXY, f"proxy {proxy.host}:{proxy.port}"))
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    except OSError as err:
        raise _Failed(PROXY, f"proxy {proxy.host}:{proxy.port} closed the connection: {err.strerror or err}")
    resp = _read_response(sock, "CONNECT", clock, PROXY, f"proxy {proxy.host}:{proxy.port}")
    if resp.status != 200:
        answer = f"HTTP {resp.status} {resp.reason}".rstrip()
        raise _Failed(PROXY, f"proxy {proxy.host}:{proxy.port} refused to open a tunnel to {authority}: {answer}")


def _tls(sock: socket.socket, host: str, context: ssl.SSLContext, clock: _Clock, step: str = TLS) -> ssl.SSLSocket:
    sock.settimeout(clock.left(step, f"TLS handshake with {host}"))
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as err:
        why = err.verify_message or err.reason or str(err)
        raise _Failed(step, f"the certificate of {host} is not trusted: {why}", UNTRUSTED)
    except socket.timeout:
        raise _Failed(step, f"TLS handshake with {host}: no answer within {clock.timeout:g}s", TIMEOUT)
    except (ssl.SSLError, OSError) as err:
        reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or str(err)
        raise _Failed(step, f"TLS handshake with {host} failed: {reason}")


def probe(
    url: str,
    *,
    method: str = "HEAD",
    headers: Optional[Mapping[str, str]] = None,
    proxy: Optional[Proxy] = None,
    timeout: float = 3.0,
    tls_only: bool = False,
    context: Optional[ssl.SSLContext] = None,
) -> Outcome:
    """Reach ``url`` step by step within ``timeout`` seconds; never raises.

    ``tls_only``: stop after the TLS handshake (no HTTP request). An HTTP
    answer of 400 or above counts as a failure of the ``http`` step.
    """
    started = time.monotonic()
    outcome = Outcome(url=url, proxy=_shown(proxy))
    sock: Optional[socket.socket] = None
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        if scheme not in DEFAULT_PORTS or not host:
            raise _Failed(DNS, f"{url} is not an http(s) URL")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise _Failed(DNS, f"{url} has an invalid port")
        clock = _Clock(timeout)
        hop_host, hop_port = (proxy.host, proxy.port) if proxy else (host, port)
        addresses = resolve(hop_host, hop_port, clock.left(DNS, f"DNS lookup of {hop_host}"))
        if proxy is None:
            outcome.addresses = addresses
        sock = _connect(addresses, hop_port, clock, hop_host)
        if proxy is not None and proxy.parts.scheme == "https":
            sock = _tls(sock, proxy.host, context or ssl.create_default_context(), clock, PROXY)
        if proxy is not None and scheme == "https":
            _tunnel(sock, proxy, host, port, clock)
        if scheme == "https":
            sock = _tls(sock, host, context or ssl.create_default_context(), clock)
            outcome.tls_version = str(getattr(sock, "version", lambda: "")() or "")
        if tls_only:
            outcome.ok = True
            return outcome
        _http(sock, outcome, method, parts, headers or {}, proxy if scheme == "http" else None, clock)
    except _Failed as failed:
        outcome.ok, outcome.step, outcome.error, outcome.cause = False, failed.step, failed.message, failed.cause
    finally:
        if sock is not None:
            sock.close()
        outcome.elapsed = time.monotonic() - started
    return outcome


def _http(
    sock: socket.socket,
    outcome: Outcome,
    method: str,
    parts: urllib.parse.SplitResult,
    headers: Mapping[str, str],
    proxy: Optional[Proxy],
    clock: _Clock,
) -> None:
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    target = urllib.parse.urlunsplit(parts._replace(fragment="")) if proxy else path
    all_headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": USER_AGENT, "Connection": "close"}
    if proxy is not None:
        all_headers.update(_proxy_auth(proxy))
    all_headers.update(headers)
    if method in ("PUT", "POST"):
        all_headers.setdefault("Content-Length", "0")
    request = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
    what = f"{method} {outcome.url}"
    sock.settimeout(clock.left(HTTP, what))
    try:
        sock.sendall(request.encode("latin-1"))
    except OSError as err:
        raise _Failed(HTTP, f"{what}: the connection closed ({err.strerror or err})")
    resp = _read_response(sock, method, clock, HTTP, what)
    outcome.status, outcome.reason = resp.status, resp.reason
    if method != "HEAD":
        try:
            sock.settimeout(clock.left(HTTP, what))
            outcome.body = resp.read(MAX_BODY)
        except (OSError, http.client.HTTPException):
            outcome.body = b""
    if resp.status >= 400:
        raise _Failed(HTTP, f"{what}: HTTP {resp.status} {resp.reason}".rstrip())
    outcome.ok = True


def _shown(proxy: Optional[Proxy]) -> str:
    """The proxy's URL without its password (for reports)."""
    if proxy is None:
        return ""
    parts = proxy.parts
    if parts.password is None:
        return proxy.url
    netloc = f"{parts.username}:<redacted>@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
