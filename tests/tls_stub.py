"""A test certificate authority made at test time, and an HTTPS server it signs.

    ca = TestCA(tmp_dir)                         # ca.cert_path: PEM to trust (SSL_CERT_FILE=...)
    cert, key = ca.issue(["ecs.eu-west-1.amazonaws.com"])
    with TlsServer(cert, key) as server:         # 127.0.0.1, a free port (or port=443)
        ...

The server answers every GET/HEAD with 200 and ``body`` (default: a line naming it),
and records the requests it saw. Nothing here is trusted by the host: a
client trusts the CA only when told to (``ssl.create_default_context(cafile=...)``
or ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return path


class TestCA:
    """A throw-away CA (EC P-256) whose certificate is written to ``cert_path``."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: str, name: str = "ecs-init test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = _write(
            os.path.join(directory, "test-ca.pem"), self.cert.public_bytes(serialization.Encoding.PEM)
        )

    def issue(self, names: list[str], stem: str = "server") -> tuple[str, str]:
        """A server certificate for ``names`` (DNS names or IP addresses): (cert path, key path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = _write(os.path.join(self.directory, f"{stem}.pem"), cert.public_bytes(serialization.Encoding.PEM))
        key_path = _write(
            os.path.join(self.directory, f"{stem}.key"),
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _answer(self, with_body: bool) -> None:
        self.server.requests.append((self.command, self.path, self.headers.get("Host", "")))
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._answer(False)


class _Server(ThreadingHTTPServer):
    """The TLS handshake happens in each request's thread, so a client that never
    finishes one (or rejects the certificate) cannot stall the accept loop."""

    daemon_threads = True
    requests: list[tuple[str, str, str]]
    context: ssl.SSLContext
    body: bytes

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


class TlsServer:
    """HTTPS on ``host:port`` (port 0: a free one) with ``cert``/``key``."""

    def __init__(self, cert: str, key: str, host: str = "127.0.0.1", port: int = 0, body: bytes = b"tls stand-in\n"):
        self._server = _Server((host, port), _Handler)
        self._server.requests = []
        self._server.body = body
        self._server.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server.context.load_cert_chain(cert, key)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[tuple[str, str, str]]:
        return self._server.requests

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
