"""The agent's introspection probe: does ``GET /v1/metadata`` answer 2xx?

One implementation for systemd readiness (``notify``) and for the health
monitor (``health``). Standard library ``socket`` only: ``start`` must not
load ``urllib.request`` and ``http.client`` (and with them ``ssl`` and
``email``) just to ask a local endpoint for a status line. Every probe has
a deadline for the whole exchange and never raises.
"""

from __future__ import annotations

import socket
import time

from ecs_init.agent.identity import METADATA_URL
from ecs_init.core import settings
from ecs_init.core.record import dataclass

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Optional

DEFAULT_READY_URL = METADATA_URL
DEFAULT_READY_TIMEOUT = settings.READY_TIMEOUT.default_number  # seconds an agent gets to answer for the first time
PROBE_TIMEOUT = 1.0
MAX_STATUS_LINE = 4096


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str


def parse_url(url: str) -> Optional[Target]:
    """``http://host[:port][/path]`` as (host, port, path); None for anything else (https included)."""
    if not url.startswith("http://"):
        return None
    rest = url[len("http://") :]
    hostport, slash, path = rest.partition("/")
    path = slash + path.split("#", 1)[0] if slash else "/"
    if "@" in hostport or not hostport:
        return None
    if hostport.startswith("["):  # [v6]:port
        host, bracket, tail = hostport[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            return None
        port_text = tail[1:]
    else:
        host, _, port_text = hostport.partition(":")
    if not host or any(c.isspace() for c in host + path):
        return None
    if port_text == "":
        port = 80
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        return None
    return Target(host, port, path)


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host``: an IP address is connected to directly (no name lookup, which
    would load the idna codec and ``unicodedata`` on the start path), a name through getaddrinfo."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection((host, port), timeout=timeout)


def probe_url(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """True when ``url`` (plain ``http://``) answers 2xx within ``timeout`` seconds in all."""
    target = parse_url(url)
    if target is None:
        return False
    deadline = time.monotonic() + timeout
    try:
        sock = connect(target.host, target.port, max(0.001, timeout))
    except (OSError, ValueError):
        return False
    try:
        host = f"[{target.host}]" if ":" in target.host else target.host
        request = f"GET {target.path} HTTP/1.1\r\nHost: {host}:{target.port}\r\nUser-Agent: amazon-ecs-init\r\n"
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.sendall((request + "Accept: */*\r\nConnection: close\r\n\r\n").encode("latin-1"))
        head = b""
        while b"\n" not in head and len(head) < MAX_STATUS_LINE:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            data = sock.recv(MAX_STATUS_LINE)
            if not data:
                break
            head += data
        parts = head.split(b"\n", 1)[0].split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            return False
        code = parts[1]
        return len(code) == 3 and code.isdigit() and code.startswith(b"2")
    except (OSError, ValueError, UnicodeError):
        return False
    finally:
        sock.close()
