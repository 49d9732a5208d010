"""The core init against the real Docker engine and the stand-in agent (issue 2).

pre-start changes host network settings, so it only ever runs inside a
network namespace the test creates (``netns`` fixture); `start`, `stop` and
`reload-cache` only talk to Docker.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from helpers import (
    Supervised,
    docker,
    image_id,
    init_log,
    inspect,
    install_tarball,
    remove_agent_image,
    run_cli,
    tarball_image_id,
    wait_metadata,
    write_config,
)

pytestmark = [pytest.mark.docker]


def _wait_container(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = inspect("ecs-agent")
        if state and predicate(state):
            return state
        time.sleep(0.1)
    return None


def _state(prefix: str) -> str:
    with open(os.path.join(prefix, "var/cache/ecs/state")) as fh:
        return fh.read().strip()


# ------------------------------------------------------------------ image cache


def test_pre_start_loads_when_reload_needed(prefix: str, standin_dir: str, docker_lock: None, netns: str) -> None:
    v1 = os.path.join(standin_dir, "ecs-agent-v1.tar")
    install_tarball(prefix, v1, state="2")
    # something else holds the tag: state 2 must replace it
    install_tarball(prefix + "/other", os.path.join(standin_dir, "ecs-agent-v2.tar"), state="2")
    assert run_cli(prefix + "/other", "reload-cache").returncode == 0
    assert image_id() == tarball_image_id(os.path.join(standin_dir, "ecs-agent-v2.tar"))

    result = run_cli(prefix, "pre-start", netns=netns)
    assert result.returncode == 0, result.stderr
    assert image_id() == tarball_image_id(v1)
    assert _state(prefix) == "1"
    log = init_log(prefix)
    state_file = os.path.join(prefix, "var/cache/ecs/state")
    assert f"agent image: state file {state_file} holds 2 (reload); tarball" in log
    assert "load (the state file asks for the tarball to be loaded)" in log
    assert "loaded amazon/amazon-ecs-agent:latest" in log
    # every pre-start step is logged, in the SPEC's order
    steps = [
        "pre-start: GPU setup",
        "pre-start: AppArmor",
        "pre-start: loopback routing and IPv6 router advertisements",
        "pre-start: IPv6-only route",
        "pre-start: netfilter rules",
        "pre-start: EBS mount directory",
        "pre-start: agent image",
    ]
    positions = [log.index(step) for step in steps]
    assert positions == sorted(positions)
    assert os.path.isdir(os.path.join(prefix, "mnt/ecs/ebs"))
    assert oct(os.stat(os.path.join(prefix, "mnt/ecs/ebs")).st_mode & 0o777) == "0o755"
    assert run_cli(prefix, "post-stop", netns=netns).returncode == 0


def test_pre_start_skips_load_when_cached_and_present(
    prefix: str, standin_dir: str, docker_lock: None, netns: str
) -> None:
    v1 = os.path.join(standin_dir, "ecs-agent-v1.tar")
    v2 = os.path.join(standin_dir, "ecs-agent-v2.tar")
    install_tarball(prefix, v2, state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    v2_id = image_id()
    # the cache now holds v1 with state 1; Docker has an image tagged latest: no load
    install_tarball(prefix, v1, state="1")
    result = run_cli(prefix, "pre-start", netns=netns)
    assert result.returncode == 0, result.stderr
    assert image_id() == v2_id
    assert "image amazon/amazon-ecs-agent:latest present: nothing (cached, and the image is in Docker)" in init_log(
        prefix
    )
    # the image is gone: state 1 loads it again
    remove_agent_image()
    result = run_cli(prefix, "pre-start", netns=netns)
    assert result.returncode == 0, result.stderr
    assert image_id() == tarball_image_id(v1)
    assert _state(prefix) == "1"
    run_cli(prefix, "post-stop", netns=netns)


@pytest.mark.parametrize("variant", ["truncated", "corrupt"])
def test_failed_load_leaves_image_and_state(prefix: str, standin_dir: str, docker_lock: None, variant: str) -> None:
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    before = image_id()
    install_tarball(prefix, os.path.join(standin_dir, f"ecs-agent-{variant}.tar"), state="2")
    result = run_cli(prefix, "reload-cache")
    assert result.returncode == 255
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("level=error")]
    assert len(errors) == 1 and "image archive" in errors[0]
    assert image_id() == before
    assert _state(prefix) == "2"


def test_reload_cache_missing_tarball_is_one_clear_line(prefix: str, docker_lock: None) -> None:
    # state says cached but the tarball is a directory: unreadable
    os.makedirs(os.path.join(prefix, "var/cache/ecs/ecs-agent.tar"))
    with open(os.path.join(prefix, "var/cache/ecs/state"), "w") as fh:
        fh.write("1")
    result = run_cli(
        prefix, "reload-cache", ECS_INIT_S3_ENDPOINT="http://127.0.0.1:9", ECS_INIT_IMDS_ENDPOINT="http://127.0.0.1:9"
    )
    assert result.returncode == 255
    assert "Traceback" not in result.stderr
    assert len([x for x in result.stderr.splitlines() if x.startswith("level=error")]) == 1


def test_unknown_cache_state_fails_pre_start_but_reload_cache_loads(
    prefix: str, standin_dir: str, docker_lock: None, netns: str
) -> None:
    """SPEC §4 (Go reference: engine.PreStart's 'could not handle cache state'): state 3 is
    exit 255 with one line, nothing downloaded or loaded; reload-cache still loads."""
    v1 = os.path.join(standin_dir, "ecs-agent-v1.tar")
    install_tarball(prefix, v1, state="3")
    remove_agent_image()
    result = run_cli(prefix, "pre-start", netns=netns, ECS_INIT_S3_ENDPOINT="http://127.0.0.1:9", ECS_LOGLEVEL="info")
    assert result.returncode == 255, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("level=error")]
    assert len(errors) == 1 and "holds 3, which is not a known state" in errors[0], result.stderr
    assert image_id() is None
    assert _state(prefix) == "3"
    assert run_cli(prefix, "post-stop", netns=netns).returncode == 0

    result = run_cli(prefix, "reload-cache")
    assert result.returncode == 0, result.stderr
    assert image_id() == tarball_image_id(v1)
    assert _state(prefix) == "1"


# ------------------------------------------------------------------ the container


def test_start_creates_the_agent_container_per_spec(prefix: str, standin_dir: str, docker_lock: None) -> None:
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    write_config(prefix, "ECS_CLUSTER=from-instance\nECS_RESERVED_MEMORY=32\n", instance=True)
    write_config(
        prefix,
        "ECS_CLUSTER=spec-test\n"
        'ECS_AGENT_LABELS={"team":"core","tier":"1"}\n'
        "ECS_LOG_DRIVER=json-file\n"
        "ECS_INIT_DOCKER_LOG_FILE_SIZE=8m\n"
        "ECS_AGENT_PID_NAMESPACE_HOST=true\n"
        "garbage line without equals\n"
        "ECS_ENGINE_AUTH_DATA=topsecretauthdata\n",
    )
    os.makedirs(os.path.join(prefix, "mnt/ecs/ebs"))
    with Supervised(prefix) as sup:
        meta = wait_metadata()
        assert meta and meta["Cluster"] == "spec-test", sup.text()
        info = inspect("ecs-agent")
        assert info is not None
        env = dict(item.split("=", 1) for item in info["Config"]["Env"])
        assert env["ECS_CLUSTER"] == "spec-test"
        assert env["ECS_RESERVED_MEMORY"] == "32"
        assert env["ECS_LOGFILE"] == "/log/ecs-agent.log"
        assert env["ECS_DATADIR"] == "/data"
        assert env["ECS_AGENT_CONFIG_FILE_PATH"] == f"{prefix}/etc/ecs/ecs.config.json"
        assert env["ECS_UPDATE_DOWNLOAD_DIR"] == f"{prefix}/var/cache/ecs"
        assert env["ECS_EBSTA_SUPPORTED"] == "true"
        assert env["ECS_DETAILED_OS_FAMILY"] == "debian_12"
        assert env["SSL_CERT_DIR"] == "/etc/ssl/certs"
        assert info["Config"]["Labels"]["team"] == "core" and info["Config"]["Labels"]["tier"] == "1"
        assert info["Config"]["Image"] == "amazon/amazon-ecs-agent:latest"
        host = info["HostConfig"]
        assert host["NetworkMode"] == "host"
        assert host["UsernsMode"] == "host"
        assert host["Init"] is True
        assert sorted(host["CapAdd"]) == ["CAP_NET_ADMIN", "CAP_SYS_ADMIN"] or sorted(host["CapAdd"]) == [
            "NET_ADMIN",
            "SYS_ADMIN",
        ]
        assert host["PidMode"] == "host"
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "4", "max-size": "8m"}}
        binds = host["Binds"]
        for bind in (
            "/var/run:/var/run",
            f"{prefix}/var/log/ecs:/log",
            f"{prefix}/var/lib/ecs/data:/data",
            f"{prefix}/etc/ecs:{prefix}/etc/ecs",
            f"{prefix}/var/cache/ecs:{prefix}/var/cache/ecs",
            "/sys/fs/cgroup:/sys/fs/cgroup",
            f"{prefix}/var/lib/ecs:{prefix}/var/lib/ecs",
            f"{prefix}/var/log/ecs/exec:/log/exec",
            "/proc:/host/proc:ro",
            "/usr/bin/lsblk:/usr/bin/lsblk",
            "/etc/ssl:/etc/ssl:ro",
        ):
            assert bind in binds
        # the agent's log reaches the host through the /log bind, as the seed promises
        with open(os.path.join(prefix, "var/log/ecs/ecs-agent.log")) as fh:
            agent_log = fh.read()
        assert "env ECS_CLUSTER=spec-test" in agent_log
        assert sup.terminate() == 0
    assert "topsecretauthdata" not in init_log(prefix)
    assert "topsecretauthdata" not in sup.text()


def test_invalid_labels_still_start(prefix: str, standin_dir: str, docker_lock: None) -> None:
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    write_config(prefix, "ECS_CLUSTER=labels\nECS_AGENT_LABELS={broken\n")
    with Supervised(prefix) as sup:
        assert wait_metadata(), sup.text()
        info = inspect("ecs-agent")
        assert info is not None
        assert "team" not in (info["Config"]["Labels"] or {})
        assert sup.terminate() == 0
    errors = [line for line in sup.text().splitlines() if "ECS_AGENT_LABELS" in line]
    assert len(errors) == 1 and ("level=warn" in errors[0] or "level=error" in errors[0])


# ------------------------------------------------------------------ exit codes


def _running(prefix: str, standin_dir: str, **env: str) -> Supervised:
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    sup = Supervised(prefix, **env)
    assert wait_metadata(), sup.text()
    return sup


def _trigger(prefix: str, code: int, once: bool = True) -> None:
    name = "standin-exit-once" if once else "standin-exit"
    with open(os.path.join(prefix, "var/lib/ecs/data", name), "w") as fh:
        fh.write(str(code))


def test_exit_0_stops_supervising(prefix: str, standin_dir: str, docker_lock: None) -> None:
    sup = _running(prefix, standin_dir)
    _trigger(prefix, 0)
    assert sup.wait(20) == 0
    assert "agent exited with code 0" in sup.text()


def test_exit_5_is_terminal(prefix: str, standin_dir: str, docker_lock: None) -> None:
    sup = _running(prefix, standin_dir)
    _trigger(prefix, 5)
    assert sup.wait(20) == 5
    assert "terminal" in sup.text()
    assert "Traceback" not in sup.text()


def test_exit_2_logs_the_agent_tail_then_restarts(prefix: str, standin_dir: str, docker_lock: None) -> None:
    sup = _running(prefix, standin_dir)
    first = inspect("ecs-agent")
    assert first is not None
    _trigger(prefix, 2)
    restarted = _wait_container(lambda s: s["Id"] != first["Id"] and s["State"]["Running"])
    assert restarted, sup.text()
    assert wait_metadata()
    assert sup.terminate() == 0
    log = init_log(prefix)
    assert "agent exited with code 2" in log
    # the agent's own output, with Docker's timestamps, is in ecs-init.log
    assert 'msg="agent: 20' in log and "[standin] exiting with 2" in log


def test_crash_restarts_with_backoff(prefix: str, standin_dir: str, docker_lock: None) -> None:
    sup = _running(prefix, standin_dir)
    _trigger(prefix, 1, once=False)  # every run crashes at once
    time.sleep(5)
    os.unlink(os.path.join(prefix, "var/lib/ecs/data/standin-exit"))
    assert wait_metadata(timeout=20), sup.text()
    assert sup.terminate() == 0
    delays = [
        float(line.split("restarting the agent in ")[1].split("s")[0])
        for line in sup.text().splitlines()
        if "restarting the agent in" in line
    ]
    assert len(delays) >= 3, sup.text()
    for before, after in zip(delays, delays[1:]):
        assert after > before * 1.5  # doubling, within 10 % jitter
    assert 0.45 <= delays[0] <= 0.55


def test_sigterm_stops_the_agent_and_exits_0(prefix: str, standin_dir: str, docker_lock: None) -> None:
    sup = _running(prefix, standin_dir)
    started = time.monotonic()
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait(20) == 0
    assert time.monotonic() - started < 12
    state = inspect("ecs-agent")
    assert state is None or not state["State"]["Running"]


def test_stop_action_stops_the_agent(prefix: str, standin_dir: str, docker_lock: None) -> None:
    sup = _running(prefix, standin_dir)
    result = run_cli(prefix, "stop")
    assert result.returncode == 0
    assert sup.wait(20) == 0  # the agent exited 0: the supervisor is done too
    state = inspect("ecs-agent")
    assert state is not None and not state["State"]["Running"]
    # stop with no agent is fine
    assert run_cli(prefix, "pre-stop").returncode == 0


def test_start_without_image_is_one_clear_line(prefix: str, docker_lock: None) -> None:
    remove_agent_image()
    result = run_cli(prefix, "start", timeout=60)
    assert result.returncode == 255
    assert "reload-cache" in result.stderr and "Traceback" not in result.stderr


# ------------------------------------------------------------------ Docker late


def test_start_waits_for_a_late_docker_daemon(prefix: str, standin_dir: str, docker_lock: None) -> None:
    from dockerd import TestDockerd

    daemon = TestDockerd()
    try:
        daemon.start()
        daemon.docker("load", "-i", os.path.join(standin_dir, "ecs-agent-v1.tar"))
        daemon.stop()
        assert not daemon.answers()
        sup = Supervised(prefix, DOCKER_HOST=daemon.host, ECS_INIT_DOCKER_WAIT_TIMEOUT="120")
        try:
            time.sleep(4)
            assert sup.proc.poll() is None, sup.text()
            assert "waiting for the Docker daemon" in sup.text()
            daemon.start()
            assert wait_metadata(timeout=60), sup.text()
            assert sup.terminate() == 0
        finally:
            if sup.proc.poll() is None:
                sup.terminate()
    finally:
        daemon.cleanup()


def test_docker_never_answers_gives_up_clearly(prefix: str) -> None:
    result = run_cli(prefix, "start", DOCKER_HOST="unix:///tmp/no-such-docker.sock", ECS_INIT_DOCKER_WAIT_TIMEOUT="2")
    assert result.returncode == 255
    errors = [line for line in result.stderr.splitlines() if line.startswith("level=error")]
    assert len(errors) == 1 and "did not answer within 2s" in errors[0]


def test_unknown_action(prefix: str) -> None:
    result = run_cli(prefix, "restart-everything")
    assert result.returncode == 1
    assert "unknown action" in result.stderr and "Usage:" in result.stderr


def test_garbage_config_refuses_start_with_one_line(prefix: str, standin_dir: str, docker_lock: None) -> None:
    """Issue 20 item 1: binary garbage in ecs.config refuses start (one error line, 255) instead of starting an
    agent without its cluster; a KEY=VALUE file with a stray byte and a bad line starts, with a warning."""
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    before = inspect("ecs-agent")
    path = os.path.join(prefix, "etc/ecs/ecs.config")
    with open(path, "wb") as fh:
        fh.write(b"\xff\xfe\x00garbage\nECS_CLUSTER=garbled\n\x00\x01=\x02\nnoequals\n")
    result = run_cli(prefix, "start", timeout=60)
    assert result.returncode == 255, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("level=error")]
    assert len(errors) == 1 and "start: refusing to run: config file" in errors[0] and "NUL bytes" in errors[0]
    after = inspect("ecs-agent")
    assert (after or {}).get("Id") == (before or {}).get("Id")  # no agent container was created
    with open(path, "wb") as fh:
        fh.write(b'ECS_CLUSTER=garbled\nECS_INSTANCE_ATTRIBUTES={"site":"Z\xfcrich"}\nnoequals\nECS_LOGLEVEL=info\n')
    with Supervised(prefix) as sup:
        meta = wait_metadata()
        assert meta and meta["Cluster"] == "garbled", sup.text()
        assert sup.terminate() == 0
    assert f"ecs.config: 1 line(s) without KEY=VALUE, ignored (not passed to the agent): {path} line(s) 3" in sup.text()


def test_container_removed_behind_the_supervisors_back(prefix: str, standin_dir: str, docker_lock: None) -> None:
    """Issue 20 item 8: `docker rm -f ecs-agent` is told as the container removed, not as exit 137."""
    sup = _running(prefix, standin_dir)
    first = inspect("ecs-agent")
    assert first is not None
    docker("rm", "-f", "ecs-agent")
    restarted = _wait_container(lambda s: s["Id"] != first["Id"] and s["State"]["Running"])
    assert restarted, sup.text()
    assert wait_metadata()
    assert sup.terminate() == 0
    log = init_log(prefix)
    gone = f"the agent container ecs-agent ({first['Id'][:12]})"
    assert f"{gone} was removed while it ran" in log or f"{gone} disappeared while it ran" in log, log[-3000:]
    assert "the agent container disappeared after" in log and "exited with code 137" not in log


def test_stop_lines_name_the_supervisor_and_the_container(prefix: str, standin_dir: str, docker_lock: None) -> None:
    """Issue 20 item 8: quick restarts interleave processes; each line says whose it is."""
    sup = _running(prefix, standin_dir)
    running = inspect("ecs-agent")
    assert running is not None
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.wait(20) == 0
    short = running["Id"][:12]
    log = init_log(prefix)
    said = f"start (pid {sup.proc.pid}) received SIGTERM: stopping the agent container ecs-agent ({short})"
    assert said in log and f"agent container ecs-agent ({short}) stopped" in log
    mine = [line for line in log.splitlines() if f" pid={sup.proc.pid}" in line]
    assert any(said in line for line in mine) and any("started" in line for line in mine)
