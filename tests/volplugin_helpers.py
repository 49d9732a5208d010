"""Shared fakes and clients for the volume plugin tests."""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any

import jsonschema

from ecs_init.volume_plugin.drivers import VolumeError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE_SCHEMA = os.path.join(ROOT, "src", "ecs_init", "schemas", "volume-plugin-state.schema.json")

# A state file as the Go plugin writes it (json.MarshalIndent with tabs,
# omitempty fields), made by hand from ecs-init/volumes/state_manager.go:
# "efsvol" is mounted twice for one ID and once for another, "fresh" has no
# mounts (so no "mounts" key), "legacyzero" has the count 0 that Go plugins
# before mount counting left behind, "notype" was created without a type.
GO_STATE = """{
	"volumes": {
		"efsvol": {
			"type": "efs",
			"path": "/var/lib/ecs/volumes/efsvol",
			"options": {
				"device": "fs-0123456789abcdef0:/",
				"o": "tls,iam,awscredsuri=/v2/credentials/1234",
				"type": "efs"
			},
			"createdAt": "2024-05-06T07:08:09.123456789Z",
			"mounts": {
				"0b7d2a1c9e": 2,
				"5f3e8d7c6b": 1
			}
		},
		"fresh": {
			"type": "s3files",
			"path": "/mnt/s3files/fresh",
			"options": {
				"device": "my-bucket",
				"target": "/mnt/s3files/fresh",
				"type": "s3files"
			},
			"createdAt": "2024-05-06T07:08:10.5+02:00"
		},
		"legacyzero": {
			"type": "efs",
			"path": "/var/lib/ecs/volumes/legacyzero",
			"options": {
				"device": "fs-1:/",
				"type": "efs"
			},
			"createdAt": "2024-05-06T07:08:11Z",
			"mounts": {
				"old-id": 0
			}
		},
		"notype": {
			"path": "/var/lib/ecs/volumes/notype",
			"options": {
				"device": "fs-2:/"
			},
			"createdAt": "2024-05-06T07:08:12.000000001Z"
		}
	}
}"""


def validate_state(doc: Any) -> None:
    """Raise unless ``doc`` is a valid state document in the Go format."""
    with open(STATE_SCHEMA) as fh:
        jsonschema.validate(doc, json.load(fh))


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
            if path in self.mounted:
                raise VolumeError(f"{' '.join(argv)}: exit 32: {path} already mounted")
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
