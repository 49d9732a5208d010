"""Shared fakes and clients for the volume plugin tests."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from ecs_init.volume_plugin.drivers import VolumeError


class FakeMounter:
    """Records every side effect; ``mount``/``umount`` argv toggle ``mounted``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.prepared: list[str] = []
        self.released: list[str] = []
        self.mounted: set[str] = set()
        self.fail_mount = False
        self.fail_umount = False
        self.fail_prepare = False

    def prepare(self, path: str) -> None:
        if self.fail_prepare:
            raise VolumeError(f"cannot create {path}: Permission denied")
        self.prepared.append(path)

    def release(self, path: str) -> None:
        self.released.append(path)

    def run(self, argv: list[str]) -> None:
        self.calls.append(list(argv))
        path = argv[-1]
        if argv[0] == "mount":
            if self.fail_mount:
                raise VolumeError(f"{' '.join(argv)}: exit 32: mount failed")
            self.mounted.add(path)
        elif argv[0] == "umount":
            if self.fail_umount:
                raise VolumeError(f"{' '.join(argv)}: exit 32: umount failed")
            self.mounted.discard(path)

    def is_mounted(self, path: str) -> bool:
        return path in self.mounted


class FakeSaver:
    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, doc: dict[str, Any]) -> None:
        if self.fail:
            raise OSError(28, "No space left on device")
        self.docs.append(json.loads(json.dumps(doc)))

    @property
    def last(self) -> dict[str, Any]:
        return self.docs[-1]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def call(
    sock_path: str, endpoint: str, body: Any = None, raw: bytes | None = None, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    """One request on a fresh connection; returns (status, parsed JSON)."""
    conn = UnixHTTPConnection(sock_path)
    try:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        conn.request(method, endpoint, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.getheader("Content-Type") == "application/vnd.docker.plugins.v1.2+json"
        return resp.status, json.loads(payload)
    finally:
        conn.close()
