"""A NOTIFY_SOCKET listener for tests of systemd notification (a bound AF_UNIX datagram socket)."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid


class Listener:
    """A NOTIFY_SOCKET server: a bound AF_UNIX datagram socket."""

    def __init__(self, abstract: bool = False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"ecs-init-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
            self.dir = ""
        else:
            self.dir = tempfile.mkdtemp(prefix="notify-")
            path = os.path.join(self.dir, "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(0.1)

    def messages(self, wait: float = 0.5, until: str = "") -> list[str]:
        out: list[str] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                out.append(self.sock.recv(65536).decode())
            except socket.timeout:
                continue
            if until and until in out[-1]:
                break
        return out

    def close(self) -> None:
        self.sock.close()
        if self.dir:
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            os.rmdir(self.dir)
