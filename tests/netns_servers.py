"""Stand-ins for what ``check --network`` talks to, run *inside* a test's network namespace.

    ip netns exec NS python3 tests/netns_servers.py '{"imds": {"region": "eu-west-1"}, ...}'

Starts the stand-ins the JSON asks for, all on that namespace's loopback,
prints one JSON line naming their endpoints, then serves commands, one
JSON object per stdin line, answering each with one JSON line:

- ``{"s3_acl": "public-read" | "private"}``: re-upload the agent's ``.md5``
  objects with that ACL (an anonymous HEAD of a private one gets 403);
- ``{"credentials": true | false}``: start/stop the agent's credentials
  endpoint stand-in on 127.0.0.1:51679;
- ``{"records": true}``: what the proxy and the TLS server saw.

EOF on stdin stops everything. Stand-ins (keys of the JSON):
``imds`` (IMDSv2, ``region``), ``s3`` (moto; ``buckets``: names),
``tls`` (``cert``, ``key``, ``port``: HTTPS answering 200),
``proxy`` (``deny``: host names it refuses), ``silent`` (accepts, never
answers), ``dns_blackhole`` (an address whose UDP port 53 swallows queries),
``credentials`` (start with the credentials stand-in up).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CREDENTIALS_PORT = 51679


class _Credentials(BaseHTTPRequestHandler):
    """Answers like the agent's credentials endpoint does for an unknown ID."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        body = b'{"code":"InvalidIdInRequest","message":"CredentialsV2Request: Invalid request"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Credentials:
    def __init__(self) -> None:
        self.server: Optional[ThreadingHTTPServer] = None

    def set(self, on: bool) -> None:
        if on and self.server is None:
            self.server = ThreadingHTTPServer(("127.0.0.1", CREDENTIALS_PORT), _Credentials)
            self.server.daemon_threads = True
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
        elif not on and self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _blackhole(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 53))
    return sock  # queries pile up unread: the resolver waits for its own timeout


def main(config: dict[str, Any]) -> None:
    from imds_stub import ImdsStub, SilentServer
    from proxy_stub import ProxyStub
    from s3_stub import AGENT_BUCKET, S3Stub, agent_key
    from tls_stub import TlsServer

    endpoints: dict[str, Any] = {}
    stack: list[Any] = []
    if "imds" in config:
        imds = ImdsStub(config["imds"].get("region", "eu-west-1")).start()
        stack.append(imds)
        endpoints["imds"] = imds.endpoint
    s3: Optional[S3Stub] = None
    buckets: list[str] = []
    if "s3" in config:
        s3 = S3Stub().start()
        stack.append(s3)
        buckets = list(config["s3"].get("buckets", [AGENT_BUCKET]))
        for bucket in buckets:
            s3.bucket(bucket)
        endpoints["s3"] = s3.endpoint
    tls: Optional[TlsServer] = None
    if "tls" in config:
        tls = TlsServer(config["tls"]["cert"], config["tls"]["key"], port=int(config["tls"].get("port", 443)))
        stack.append(tls.__enter__())
        endpoints["tls_port"] = tls.port
    proxy: Optional[ProxyStub] = None
    if "proxy" in config:
        proxy = ProxyStub(deny=set(config["proxy"].get("deny", []))).__enter__()
        stack.append(proxy)
        endpoints["proxy"] = proxy.url
    if config.get("silent"):
        silent = SilentServer().__enter__()
        stack.append(silent)
        endpoints["silent"] = silent.endpoint
    holes = [_blackhole(config["dns_blackhole"])] if config.get("dns_blackhole") else []
    credentials = Credentials()
    credentials.set(bool(config.get("credentials")))

    def set_acl(acl: str) -> None:
        assert s3 is not None
        key = agent_key() + ".md5"
        for bucket in buckets:
            s3.client.put_object(Bucket=bucket, Key=key, Body=b"0" * 32 + b"\n", ACL=acl)

    if s3 is not None:
        set_acl("public-read")
    print(json.dumps(endpoints), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        answer: dict[str, Any] = {"ok": True}
        if "s3_acl" in command:
            set_acl(command["s3_acl"])
        if "credentials" in command:
            credentials.set(bool(command["credentials"]))
        if command.get("records"):
            answer["proxy"] = proxy.requests if proxy else []
            answer["tls"] = tls.requests if tls else []
        print(json.dumps(answer), flush=True)
    credentials.set(False)
    for hole in holes:
        hole.close()
    for item in reversed(stack):
        if hasattr(item, "stop"):
            item.stop()
        else:
            item.__exit__(None, None, None)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
