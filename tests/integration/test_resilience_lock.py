"""Concurrent invocations through the real CLI (issue 7, item 2).

pre-start and post-stop change the host, so they are only run here while
the test holds the lock and ECS_INIT_LOCK_TIMEOUT is short: they must fail
before touching anything. `start` runs against the real engine.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from helpers import Supervised, inspect, install_tarball, run_cli, wait_metadata

from ecs_init.core.lock import FileLock, LockTimeout

RUN_DIR = "var/run/ecs-init"


def _lock(prefix: str, name: str = "ecs-init.lock", action: str = "test") -> FileLock:
    return FileLock(os.path.join(prefix, RUN_DIR, name), action, timeout=5)


@pytest.mark.parametrize("action", ["pre-start", "post-stop"])
def test_action_fails_clearly_when_the_lock_stays_held(prefix: str, action: str) -> None:
    with _lock(prefix, action="holder-test"):
        started = time.monotonic()
        result = run_cli(prefix, action, ECS_INIT_LOCK_TIMEOUT="1", DOCKER_HOST="unix:///nonexistent.sock")
        waited = time.monotonic() - started
    assert result.returncode == 255
    assert f"{action}: waiting up to" in result.stderr and "action=holder-test" in result.stderr
    assert "ECS_INIT_LOCK_TIMEOUT" in result.stderr
    assert "netfilter" not in result.stderr and "loopback" not in result.stderr  # nothing ran
    assert waited >= 1


def test_start_waits_for_the_lock_then_proceeds(prefix: str) -> None:
    holder = _lock(prefix, action="pre-start").acquire()
    threading.Timer(1.5, holder.release).start()
    started = time.monotonic()
    # No daemon at that socket: once it has the lock, start fails connecting.
    result = run_cli(
        prefix, "start", ECS_INIT_LOCK_TIMEOUT="30", ECS_INIT_DOCKER_WAIT_TIMEOUT="1",
        DOCKER_HOST=f"unix://{prefix}/none.sock",
    )  # fmt: skip
    assert time.monotonic() - started >= 1.4
    assert result.returncode == 255
    log = result.stderr
    assert log.index("start: waiting up to") < log.index("start: got the lock") < log.index("did not answer within")


@pytest.mark.docker
def test_start_holds_the_setup_lock_only_until_the_agent_runs(prefix: str, standin_dir: str, docker_lock: None) -> None:
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    with Supervised(prefix) as sup:
        assert wait_metadata(30), sup.text()
        agent = inspect("ecs-agent")
        assert agent is not None
        # pre-start/post-stop are not blocked by a supervising start ...
        with _lock(prefix, action="post-stop") as got:
            assert got.held
        # ... but a second supervisor is refused, and leaves the agent alone.
        with pytest.raises(LockTimeout):
            FileLock(os.path.join(prefix, RUN_DIR, "ecs-init-supervisor.lock"), "t", timeout=0.3).acquire()
        second = run_cli(prefix, "start", ECS_INIT_LOCK_TIMEOUT="1")
        assert second.returncode == 255
        assert "ecs-init-supervisor.lock is still held by pid=" in second.stderr
        assert inspect("ecs-agent")["Id"] == agent["Id"]  # type: ignore[index]
        assert sup.proc.poll() is None
        assert sup.terminate() == 0
    # The supervisor's lock died with it.
    with FileLock(os.path.join(prefix, RUN_DIR, "ecs-init-supervisor.lock"), "t", timeout=1):
        pass
