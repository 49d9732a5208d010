"""systemd readiness of `start` under a NOTIFY_SOCKET listener (issue 7, item 3)."""

from __future__ import annotations

import os
import socket
import time

import pytest
from helpers import Supervised, install_tarball, metadata, run_cli

pytestmark = [pytest.mark.docker]


def _recv_until(sock: socket.socket, needle: str, timeout: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(65536).decode())
        except socket.timeout:
            continue
        if needle in got[-1]:
            break
    return got


def test_ready_status_watchdog_and_stopping(prefix: str, standin_dir: str, docker_lock: None, tmp_path) -> None:  # type: ignore[no-untyped-def]
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    try:
        with Supervised(prefix, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000") as sup:
            got = _recv_until(listener, "READY=1", 30)
            assert got and got[-1].startswith("READY=1\n"), (got, sup.text())
            # READY only once the introspection endpoint answered.
            assert metadata() is not None
            statuses = [m for m in got if m.startswith("STATUS=")]
            assert statuses[0] == "STATUS=starting the ECS agent"
            assert any(s.startswith("STATUS=ECS agent running (container ") for s in statuses)
            pings = [m for m in _recv_until(listener, "never", 1.0) if m == "WATCHDOG=1"]
            assert len(pings) >= 3  # every 0.2 s
            with open(os.path.join(prefix, "var/lib/ecs/data/standin-exit-once"), "w") as fh:
                fh.write("1")
            crash = _recv_until(listener, "STATUS=ECS agent running", 30)
            assert any(m.startswith("STATUS=ECS agent exited with code 1; restarting in") for m in crash), crash
            assert not any("READY=1" in m for m in crash)
            assert sup.terminate() == 0
        tail = _recv_until(listener, "STOPPING=1", 5)
        assert "STOPPING=1" in tail and "STATUS=ECS agent stopped (exit code 0)" in tail
    finally:
        listener.close()
