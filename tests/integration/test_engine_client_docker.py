"""Every Engine client call against the real dockerd (issue 12).

Images are tagged ``ecs-init-test/...`` and containers named ``ecs-init-test-...``
so nothing here touches the agent's tag or name; the tests still hold
``docker_lock`` (one engine, shared with every other test run on the host).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest
from dockerd import TestDockerd
from helpers import ROOT, Supervised, docker, inspect, install_tarball, run_cli, wait_metadata

from ecs_init.docker import client
from ecs_init.docker.api import LogLine, default_bridge
from ecs_init.docker.errors import Conflict, EngineError, EngineUnavailable, NotFound

pytestmark = [pytest.mark.docker]

HOST = "unix:///var/run/docker.sock"
TAG = "ecs-init-test/engine-client:latest"
NAMES = ("ecs-init-test-a", "ecs-init-test-b", "ecs-init-test-logs")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z ")

_spec = importlib.util.spec_from_file_location("standin_build", os.path.join(ROOT, "standin", "build.py"))
assert _spec and _spec.loader
standin_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin_build)


def cleanup() -> None:
    subprocess.run(["docker", "rm", "-f", *NAMES], capture_output=True)
    subprocess.run(["docker", "rmi", "-f", TAG, "ecs-init-test/big:latest"], capture_output=True)


@pytest.fixture
def engine(docker_lock: None, tmp_path: Any) -> Iterator[client.EngineClient]:
    cleanup()
    standin_build.build("v1", str(tmp_path / "test.tar"), tag=TAG)
    docker("load", "-q", "-i", str(tmp_path / "test.tar"))
    try:
        yield client.connect(HOST, 30)
    finally:
        cleanup()


def body(*cmd: str, **env: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"Image": TAG, "Env": [f"{k}={v}" for k, v in env.items()], "HostConfig": {}}
    if cmd:
        doc.update(Entrypoint=["/bin/sh", "-c"], Cmd=[" ".join(cmd)])
    return doc


def test_version_negotiation_ping_info_and_networks(engine: client.EngineClient) -> None:
    server = docker("version", "--format", "{{.Server.APIVersion}}")
    expected = server if tuple(map(int, server.split("."))) <= (1, 44) else "1.44"
    assert engine.api_version == expected and engine.server_version["ApiVersion"] == server
    assert engine.probe() is True
    assert engine.info()["DockerRootDir"] == docker("info", "--format", "{{.DockerRootDir}}")
    bridge = docker("network", "inspect", "bridge", "--format", '{{index .Options "com.docker.network.bridge.name"}}')
    assert default_bridge(engine.networks()) == bridge


def test_images_inspect_tag_and_not_found(engine: client.EngineClient) -> None:
    image_id = engine.image_id(TAG)
    assert image_id and image_id == docker("image", "inspect", "-f", "{{.Id}}", TAG)
    assert engine.image_id("ecs-init-test/none:latest") is None
    engine.tag_image(image_id, "ecs-init-test/engine-client", "retagged")
    try:
        assert engine.image_id("ecs-init-test/engine-client:retagged") == image_id
    finally:
        docker("rmi", "ecs-init-test/engine-client:retagged")
    with pytest.raises(NotFound):
        engine.tag_image("sha256:" + "0" * 64, "ecs-init-test/x", "y")


def test_container_lifecycle_of_the_stand_in(engine: client.EngineClient) -> None:
    cid = engine.create_container(NAMES[0], body(STANDIN_EXIT_AFTER="1", STANDIN_EXIT_CODE="7", STANDIN_PORT="51690"))
    state = engine.container_state(NAMES[0])
    assert state and state["Id"] == cid and state["State"]["Status"] == "created"
    engine.start_container(NAMES[0])
    assert engine.wait_container(NAMES[0]) == 7
    state = engine.container_state(NAMES[0])
    assert state and state["State"]["Running"] is False and state["State"]["ExitCode"] == 7
    assert engine.stop_container(NAMES[0]) is False  # not running
    assert engine.remove_container(NAMES[0]) is True
    assert engine.remove_container(NAMES[0]) is False
    assert engine.container_state(NAMES[0]) is None

    engine.create_container(NAMES[1], body(STANDIN_PORT="51691"))
    engine.start_container(NAMES[1])
    engine.start_container(NAMES[1])  # already running: fine
    started = time.monotonic()
    assert engine.stop_container(NAMES[1], grace=10) is True  # the stand-in exits on SIGTERM
    assert time.monotonic() - started < 10
    state = engine.container_state(NAMES[1])
    assert state and not state["State"]["Running"]
    assert engine.wait_container(NAMES[1]) == 0  # an exited container's wait returns at once


def test_not_found_and_conflict(engine: client.EngineClient) -> None:
    with pytest.raises(NotFound, match="No such image"):
        engine.create_container(NAMES[0], {"Image": "ecs-init-test/none:latest", "HostConfig": {}})
    with pytest.raises(NotFound):
        engine.start_container("ecs-init-test-missing")
    with pytest.raises(NotFound):
        engine.wait_container("ecs-init-test-missing")
    assert engine.container_state("ecs-init-test-missing") is None
    assert engine.logs_tail("ecs-init-test-missing") == []
    assert engine.stop_container("ecs-init-test-missing") is False
    engine.create_container(NAMES[0], body("sleep 30"))
    with pytest.raises(Conflict) as err:
        engine.create_container(NAMES[0], body("sleep 30"))
    assert err.value.status == 409 and NAMES[0] in err.value.message


def test_logs_are_demuxed_in_order_with_timestamps(engine: client.EngineClient) -> None:
    script = "echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; echo out2; sleep 0.05; echo err2 >&2"
    engine.create_container(NAMES[2], body(script))
    engine.start_container(NAMES[2])
    assert engine.wait_container(NAMES[2]) == 0
    lines = engine.logs_tail(NAMES[2], 200)
    assert [(line.stream, TIMESTAMP.sub("", line.text)) for line in lines] == [
        ("stdout", "out1"),
        ("stderr", "err1"),
        ("stdout", "out2"),
        ("stderr", "err2"),
    ]
    stamps = [line.text.split(" ", 1)[0] for line in lines]
    assert all(TIMESTAMP.match(line.text) for line in lines) and stamps == sorted(stamps)
    assert engine.logs_tail(NAMES[2], 1) == [lines[-1]]
    assert isinstance(lines[0], LogLine)


def test_truncated_and_corrupt_tarballs_are_one_clear_line(engine: client.EngineClient, standin_dir: str) -> None:
    for variant in ("truncated", "corrupt"):
        with open(os.path.join(standin_dir, f"ecs-agent-{variant}.tar"), "rb") as fh, pytest.raises(EngineError) as err:
            engine.load_image(fh)
        text = str(err.value)
        assert text.startswith("Docker refused the image archive: ") and "\n" not in text, text
        assert not isinstance(err.value, EngineUnavailable)


LOAD_SCRIPT = """
import sys
from ecs_init.docker import client
engine = client.connect("unix:///var/run/docker.sock", 30)
with open(sys.argv[1], "rb") as fh:
    names = engine.load_image(fh)
with open("/proc/self/status") as fh:
    hwm = [int(line.split()[1]) for line in fh if line.startswith("VmHWM:")][0]
print(" ".join(names), hwm)
"""


@pytest.mark.slow
def test_a_large_tarball_is_streamed_with_bounded_memory(engine: client.EngineClient, tmp_path: Any) -> None:
    path = str(tmp_path / "big.tar")
    standin_build.build("v1", path, pad_bytes=512 * 1024 * 1024, tag="ecs-init-test/big:latest")
    size = os.path.getsize(path)
    assert size > 500 * 1024 * 1024
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, path], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names, hwm_kb = proc.stdout.split()
    assert "ecs-init-test/big:latest" in names.split()
    assert int(hwm_kb) < 64 * 1024, f"peak RSS {int(hwm_kb) // 1024} MiB while loading {size >> 20} MiB"
    assert docker("image", "inspect", "-f", "{{.Size}}", "ecs-init-test/big:latest")


def test_engine_unavailable_when_the_socket_is_absent(tmp_path: Any) -> None:
    host = f"unix://{tmp_path}/absent.sock"
    with pytest.raises(EngineUnavailable, match="no socket at that path"):
        client.connect_quick(host, 1)
    with pytest.raises(EngineUnavailable, match="did not answer within 1s"):
        client.connect(host, 1)


@pytest.mark.slow
def test_daemon_restart_mid_wait_is_engine_unavailable_and_live_restore_keeps_the_container(
    docker_lock: None, tmp_path: Any
) -> None:
    standin_build.build("v1", str(tmp_path / "test.tar"), tag=TAG)
    with TestDockerd(live_restore=True) as daemon:
        daemon.docker("load", "-q", "-i", str(tmp_path / "test.tar"))
        engine = client.connect(daemon.host, 30)
        cid = engine.create_container(NAMES[0], body("sleep 300"))
        engine.start_container(NAMES[0])
        outcome: list[BaseException | int] = []

        def wait() -> None:
            try:
                outcome.append(engine.wait_container(NAMES[0]))
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                outcome.append(err)

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        time.sleep(1)
        daemon.restart()
        waiter.join(30)
        assert not waiter.is_alive(), "the wait did not end when the daemon went away"
        assert isinstance(outcome[0], EngineUnavailable), outcome
        assert engine.probe() is True
        engine.reconnect(30)
        state = engine.container_state(NAMES[0])
        assert state and state["Id"] == cid and state["State"]["Running"] is True  # same container


def test_agent_env_is_exactly_the_spec_despite_docker_config_proxies(
    prefix: str, standin_dir: str, docker_lock: None, tmp_path: Any
) -> None:
    """The SDK copied ~/.docker/config.json proxies into every container; nothing may be added (SPEC §5)."""
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    proxies = {"httpProxy": "http://proxy:3128", "httpsProxy": "http://proxy:3128", "noProxy": "localhost"}
    (home / ".docker" / "config.json").write_text(json.dumps({"proxies": {"default": proxies}}))
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache", HOME=str(home)).returncode == 0
    rendered = run_cli(prefix, "render", "--json", "--show-secrets", HOME=str(home))
    assert rendered.returncode == 0, rendered.stderr
    spec_env = set(json.loads(rendered.stdout)["body"]["Env"])
    with Supervised(prefix, HOME=str(home)) as sup:
        assert wait_metadata(), sup.text()
        info = inspect("ecs-agent")
        assert info is not None
        assert sup.terminate() == 0
    image_env = set(json.loads(docker("image", "inspect", "-f", "{{json .Config.Env}}", info["Image"])))
    env = set(info["Config"]["Env"])
    assert env == spec_env | image_env
    assert not {e.split("=", 1)[0] for e in env} & {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                                                     "https_proxy", "no_proxy", "FTP_PROXY", "ftp_proxy"}  # fmt: skip
