"""Self-update on exit 42, the desired-image locator, automatic and manual rollback.

Real Docker engine, stand-in agent images (standin/build.py). The running
stand-in is told to exit with a code by writing it into
``<prefix>/var/lib/ecs/data/standin-exit-once``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from typing import Any, Callable, Iterator

import pytest
from helpers import (
    Supervised,
    image_id,
    init_log,
    inspect,
    install_tarball,
    metadata,
    run_cli,
    tarball_image_id,
    wait_until,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

AGENT_NAME = "ecs-agent"
V1 = "v1.105.1"
V2 = "v1.106.0"
STOP_TIMEOUT = 15.0


# ---------------------------------------------------------------- helpers


def cache_dir(prefix: str) -> str:
    return os.path.join(prefix, "var/cache/ecs")


def write_desired(prefix: str, text: str) -> None:
    with open(os.path.join(cache_dir(prefix), "desired-image"), "w") as fh:
        fh.write(text)


def agent_exit_once(prefix: str, code: int) -> None:
    with open(os.path.join(prefix, "var/lib/ecs/data/standin-exit-once"), "w") as fh:
        fh.write(f"{code}\n")


def events(prefix: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(prefix, "var/lib/ecs/ecs-init-events.json")) as fh:
            found = json.load(fh)
    except FileNotFoundError:
        return []
    assert isinstance(found, list)
    return found


def container_id() -> str | None:
    found = inspect(AGENT_NAME)
    return str(found["Id"]) if found else None


def running_version() -> str:
    found = metadata()
    return str(found.get("Version", "")) if found else ""


def wait_serving(version: str, other_than: str | None = None, timeout: float = 30.0) -> str:
    """Wait until the agent answers /v1/metadata with ``version``; return its container ID.

    ``other_than``: a container ID the answering agent must not have (a restart).
    """

    def ready() -> str | None:
        if version not in running_version():
            return None
        cid = container_id()
        if cid is None or cid == other_than:
            return None
        return cid

    cid = wait_until(ready, timeout)
    assert cid, f"no agent {version} answered within {timeout}s (now: {running_version()!r})"
    return str(cid)


def container_events(since: float, until: float) -> list[tuple[str, int]]:
    """(action, time in ns) of the ecs-agent container's events in [since, until]."""
    out = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            f"{since:.3f}",
            "--until",
            f"{until:.3f}",
            "--filter",
            "type=container",
            "--filter",
            f"container={AGENT_NAME}",
            "--format",
            "{{.Action}} {{.TimeNano}}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    found = []
    for line in out.splitlines():
        action, _, nanos = line.rpartition(" ")
        found.append((action, int(nanos)))
    return found


def restart_gap(since: float) -> float:
    """Seconds from the first death of the agent container after ``since`` to the next start."""

    def found() -> tuple[int, int] | None:
        evs = container_events(since, time.time())
        dies = [t for a, t in evs if a == "die"]
        if not dies:
            return None
        starts = [t for a, t in evs if a == "start" and t > dies[0]]
        return (dies[0], starts[0]) if starts else None

    pair = wait_until(found, 10)
    assert pair, container_events(since, time.time())
    return float(pair[1] - pair[0]) / 1e9


@pytest.fixture
def v1_running(
    prefix: str, standin_dir: str, docker_lock: None, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    """v1 loaded by reload-cache and supervised by `start`; SIGTERM'd (exit 0 asserted) at the end."""
    env: dict[str, str] = getattr(request, "param", {}) or {}
    v1_tar = os.path.join(standin_dir, "ecs-agent-v1.tar")
    install_tarball(prefix, v1_tar, state="2")
    loaded = run_cli(prefix, "reload-cache")
    assert loaded.returncode == 0, loaded.stderr
    v1_id = tarball_image_id(v1_tar)
    assert image_id() == v1_id
    sup = Supervised(prefix, **env)
    stopped = False
    try:
        cid = wait_serving(V1)
        yield {"sup": sup, "v1_id": v1_id, "container": cid}
        code = sup.terminate()
        stopped = True
        assert code == 0, sup.text()[-3000:]
    finally:
        if not stopped:
            sup.terminate()


def stage(prefix: str, source: str, name: str) -> str:
    """Copy a stand-in tarball into the cache dir under ``name``; point desired-image at it."""
    dest = os.path.join(cache_dir(prefix), name)
    shutil.copyfile(source, dest)
    write_desired(prefix, name + "\n")
    return dest


def assert_failed_upgrade_recovered(
    prefix: str, ctx: dict[str, Any], expect_log: str, since: float, events_before: tuple[str, ...] = ("reload-cache",)
) -> None:
    """After a refused/failed upgrade: backoff, the old image restarted, unchanged; the events file holds
    ``events_before`` (the fixture's reload-cache), then the failure."""
    cid = wait_serving(V1, other_than=ctx["container"])
    gap = restart_gap(since)
    print(f"failed upgrade -> old agent restarted: {gap:.3f}s")
    assert gap >= 0.45, f"restarted after {gap:.3f}s: the first backoff is 0.5 s (-10 %)"
    assert image_id() == ctx["v1_id"]
    assert inspect(AGENT_NAME)["Image"] == ctx["v1_id"]  # type: ignore[index]
    log_text = init_log(prefix)
    assert expect_log in log_text, log_text[-3000:]
    after = log_text[log_text.index("agent exited with code 42") :]
    assert "agent upgrade failed" in after
    assert "restarting the agent in" in after, "a failed upgrade must fall through to backoff"
    kinds = [e["event"] for e in events(prefix)]
    assert kinds == [*events_before, "upgrade-failed"], kinds
    assert ctx["sup"].proc.poll() is None
    ctx["container"] = cid


# ---------------------------------------------------------------- exit 42


def test_exit_42_loads_desired_image_and_restarts_at_once(
    prefix: str, standin_dir: str, v1_running: dict[str, Any]
) -> None:
    v2_tar = os.path.join(standin_dir, "ecs-agent-v2.tar")
    v2_id = tarball_image_id(v2_tar)
    assert v2_id != v1_running["v1_id"]
    stage(prefix, v2_tar, "ecs-agent-v1.106.0.tar")
    since = time.time() - 0.2
    agent_exit_once(prefix, 42)

    cid = wait_serving(V2, other_than=v1_running["container"])
    assert image_id() == v2_id
    assert inspect(AGENT_NAME)["Image"] == v2_id  # type: ignore[index]

    # restarted at once: from the old container's death to the new one's start
    gap = restart_gap(since)
    print(f"exit 42 -> upgraded agent started: {gap:.3f}s (includes loading the tarball)")
    assert gap < 1.0, f"restart after exit 42 took {gap:.3f}s"

    log_text = init_log(prefix)
    after = log_text[log_text.index("agent exited with code 42") :]
    assert "agent upgraded" in after
    assert "restarting the agent in" not in after, "an upgrade must not back off"

    ups = [e for e in events(prefix) if e["event"] == "upgrade"]
    assert len(ups) == 1, events(prefix)
    assert ups[0]["previous"] == v1_running["v1_id"]
    assert ups[0]["new"] == v2_id
    assert ups[0]["tarball"] == "ecs-agent-v1.106.0.tar"

    # the upgraded agent stays up and nothing is rolled back
    time.sleep(2)
    assert container_id() == cid
    assert image_id() == v2_id
    assert "ROLLBACK" not in init_log(prefix)


@pytest.mark.parametrize(
    "v1_running", [{"ECS_INIT_ROLLBACK_FAILURES": "2", "ECS_INIT_ROLLBACK_WINDOW": "60"}], indirect=True
)
def test_crash_looping_upgrade_is_rolled_back(prefix: str, standin_dir: str, v1_running: dict[str, Any]) -> None:
    bad_tar = os.path.join(standin_dir, "ecs-agent-crashloop.tar")
    bad_id = tarball_image_id(bad_tar)
    v1_id = v1_running["v1_id"]
    stage(prefix, bad_tar, "ecs-agent-v1.107.0.tar")
    triggered = time.monotonic()
    agent_exit_once(prefix, 42)

    def rolled_back() -> bool:
        return any(e["event"] == "rollback" for e in events(prefix))

    assert wait_until(rolled_back, 40), init_log(prefix)[-3000:]
    cid = wait_serving(V1, other_than=v1_running["container"])
    print(f"exit 42 to a crash-looping image -> v1 serving again: {time.monotonic() - triggered:.1f}s")
    assert image_id() == v1_id
    assert inspect(AGENT_NAME)["Image"] == v1_id  # type: ignore[index]

    log_text = init_log(prefix)
    assert "ROLLBACK" in log_text
    assert log_text.count("upgraded agent") >= 2  # both failures were counted

    kinds = [e["event"] for e in events(prefix)]
    assert kinds == ["reload-cache", "upgrade", "rollback"], kinds
    rollback = events(prefix)[-1]
    assert rollback["failed_image"] == bad_id
    assert rollback["restored_image"] == v1_id
    assert rollback["last_exit_code"] == 1

    # healthy again: the same v1 container keeps answering
    time.sleep(3)
    assert container_id() == cid
    assert V1 in running_version()
    assert v1_running["sup"].proc.poll() is None


# ---------------------------------------------------------------- refused locators


def _absolute(prefix: str, standin_dir: str) -> None:
    write_desired(prefix, os.path.join(standin_dir, "ecs-agent-v2.tar") + "\n")


def _dotdot(prefix: str, standin_dir: str) -> None:
    # ../x exists (next to the cache dir): only the rule refuses it
    shutil.copyfile(os.path.join(standin_dir, "ecs-agent-v2.tar"), os.path.join(prefix, "var/cache/x"))
    write_desired(prefix, "../x\n")


def _symlink_out(prefix: str, standin_dir: str) -> None:
    os.symlink(os.path.join(standin_dir, "ecs-agent-v2.tar"), os.path.join(cache_dir(prefix), "ecs-agent-v2.tar"))
    write_desired(prefix, "ecs-agent-v2.tar\n")


def _empty(prefix: str, standin_dir: str) -> None:
    write_desired(prefix, "")


def _missing(prefix: str, standin_dir: str) -> None:
    pass


@pytest.mark.parametrize(
    "make_locator, expect_log",
    [
        (_absolute, "must be a file name inside"),
        (_dotdot, "must be a file name inside"),
        (_symlink_out, "resolves outside"),
        (_empty, "is empty"),
        (_missing, "cannot read"),
    ],
    ids=["absolute", "dotdot", "symlink-out", "empty", "missing"],
)
def test_refused_locator_is_a_failed_upgrade(
    prefix: str,
    standin_dir: str,
    v1_running: dict[str, Any],
    make_locator: Callable[[str, str], None],
    expect_log: str,
) -> None:
    make_locator(prefix, standin_dir)
    since = time.time() - 0.2
    agent_exit_once(prefix, 42)
    assert_failed_upgrade_recovered(prefix, v1_running, expect_log, since)
    assert "refusing desired image" in init_log(prefix) or expect_log in ("is empty", "cannot read")


@pytest.mark.parametrize("variant", ["truncated", "corrupt"])
def test_failed_load_keeps_previous_image(
    prefix: str, standin_dir: str, v1_running: dict[str, Any], variant: str
) -> None:
    state_path = os.path.join(cache_dir(prefix), "state")
    with open(state_path) as fh:
        state_before = fh.read()
    stage(prefix, os.path.join(standin_dir, f"ecs-agent-{variant}.tar"), "ecs-agent-v1.106.0.tar")
    since = time.time() - 0.2
    agent_exit_once(prefix, 42)
    assert_failed_upgrade_recovered(prefix, v1_running, "Docker refused the image archive", since)
    with open(state_path) as fh:
        assert fh.read() == state_before


# ---------------------------------------------------------------- manual rollback (seed behaviour)


def test_stop_reload_cache_start_restores_cached_agent(prefix: str, standin_dir: str, docker_lock: None) -> None:
    v1_tar = os.path.join(standin_dir, "ecs-agent-v1.tar")
    v2_tar = os.path.join(standin_dir, "ecs-agent-v2.tar")
    v1_id, v2_id = tarball_image_id(v1_tar), tarball_image_id(v2_tar)
    install_tarball(prefix, v1_tar, state="1")
    subprocess.run(["docker", "load", "-i", v2_tar], capture_output=True, check=True, timeout=120)
    assert image_id() == v2_id

    sup = Supervised(prefix)
    try:
        wait_serving(V2)
        stopped = run_cli(prefix, "stop")
        assert stopped.returncode == 0, stopped.stderr
        # the agent exited 0: `start` stops supervising by itself
        assert sup.proc.wait(timeout=STOP_TIMEOUT) == 0, sup.text()[-3000:]
    finally:
        assert sup.terminate() == 0

    reloaded = run_cli(prefix, "reload-cache")
    assert reloaded.returncode == 0, reloaded.stderr
    assert image_id() == v1_id

    sup = Supervised(prefix)
    try:
        wait_serving(V1)
        assert inspect(AGENT_NAME)["Image"] == v1_id  # type: ignore[index]
    finally:
        assert sup.terminate() == 0, sup.text()[-3000:]
