"""`start` survives a restart of the Docker daemon (issue 7, item 1).

The host's dockerd is shared, so each test starts its own (tests/dockerd.py:
own data-root, exec-root and containerd, socket under /tmp, no iptables) and
points the CLI at it with DOCKER_HOST. The agent uses host networking and
port 51678, hence ``docker_lock``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Iterator

import pytest
from dockerd import TestDockerd
from helpers import Supervised, install_tarball, metadata, run_cli, wait_metadata

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(params=[True, False], ids=["live-restore", "no-live-restore"])
def test_daemon(request, docker_lock: None) -> Iterator[TestDockerd]:  # type: ignore[no-untyped-def]
    daemon = TestDockerd(live_restore=request.param)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


def _agent_id(daemon: TestDockerd) -> str:
    return daemon.docker("inspect", "-f", "{{.Id}}", "ecs-agent", check=False)


def _running_id(daemon: TestDockerd, timeout: float = 30.0, other_than: str = "") -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = daemon.docker("inspect", "-f", "{{.State.Running}} {{.Id}}", "ecs-agent", check=False)
        if out.startswith("true ") and out.split()[1] != other_than:
            return out.split()[1]
        time.sleep(0.1)
    return ""


def _status(prefix: str) -> dict:  # type: ignore[type-arg]
    with open(os.path.join(prefix, "var/run/ecs-init/supervisor.json")) as fh:
        return json.load(fh)  # type: ignore[no-any-return]


def _wait_status(prefix: str, predicate, timeout: float = 30.0) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout
    doc: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        try:
            doc = _status(prefix)
        except (OSError, ValueError):
            doc = {}
        if doc and predicate(doc):
            return doc
        time.sleep(0.1)
    return doc


def test_supervisor_survives_a_docker_restart(prefix: str, standin_dir: str, test_daemon: TestDockerd) -> None:
    live = test_daemon.live_restore
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    loaded = run_cli(prefix, "reload-cache", DOCKER_HOST=test_daemon.host)
    assert loaded.returncode == 0, loaded.stderr

    with Supervised(prefix, DOCKER_HOST=test_daemon.host, ECS_INIT_DOCKER_WAIT_TIMEOUT="20") as sup:
        assert wait_metadata(30), sup.text()
        before = _running_id(test_daemon)
        assert before

        test_daemon.stop()
        time.sleep(1.5)  # the daemon is really gone for a while
        assert sup.proc.poll() is None, sup.text()
        if live:
            assert metadata() is not None  # live-restore: the agent keeps serving
        else:
            assert metadata() is None  # the daemon's shutdown stopped the agent
        assert _wait_status(prefix, lambda d: d["state"] == "docker-lost", 10)["state"] == "docker-lost"
        test_daemon.start()

        after = _running_id(test_daemon, other_than="" if live else before)
        assert after, sup.text()
        assert wait_metadata(30), sup.text()
        doc = _wait_status(prefix, lambda d: d["state"] == "running", 30)
        assert doc["state"] == "running" and doc["pid"] == sup.proc.pid
        assert sup.proc.poll() is None, sup.text()
        if live:
            assert after == before  # re-attached to the same container
            assert doc.get("reattached") is True
            assert "still running: re-attached" in sup.text()
        else:
            assert after != before  # restarted by the normal policy
            assert "the agent was stopped with the daemon: restarting it" in sup.text() or (
                "the agent container is gone" in sup.text()
            )
            assert "restarting the agent in" in sup.text()

        # Supervision really resumed: a crash is seen and the agent restarted.
        with open(os.path.join(prefix, "var/lib/ecs/data/standin-exit-once"), "w") as fh:
            fh.write("1")
        restarted = _running_id(test_daemon, other_than=after)
        assert restarted and restarted != after, sup.text()
        assert wait_metadata(30), sup.text()
        assert "agent exited with code 1" in sup.text()

        assert sup.terminate() == 0
    assert "start failed" not in sup.text() and "level=error" not in sup.text()


def test_sigterm_while_docker_is_away_exits_promptly(prefix: str, standin_dir: str, docker_lock: None) -> None:
    daemon = TestDockerd(live_restore=False)
    try:
        daemon.start()
        install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
        assert run_cli(prefix, "reload-cache", DOCKER_HOST=daemon.host).returncode == 0
        with Supervised(prefix, DOCKER_HOST=daemon.host, stop_timeout=15) as sup:
            assert wait_metadata(30), sup.text()
            daemon.stop()
            assert _wait_status(prefix, lambda d: d["state"] == "docker-lost", 15)["state"] == "docker-lost"
            started = time.monotonic()
            code = sup.terminate()
            assert code == 0, sup.text()
            assert time.monotonic() - started < 5
    finally:
        daemon.cleanup()
