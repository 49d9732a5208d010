"""Supervision at the Docker edges (SPEC §5; issue 13 item 4, issue 22 item 2).

The supervisor against the shared FakeEngine: a missing agent image heals
itself once in-process, create/start errors never loop forever, a daemon
that stops answering during the wait is treated like a lost one (same
container re-attached), the first connect failing ends `start`; `stop`
gives up; `post-stop` attempts every step and exits 0. At the end, `start`
through the real CLI against stand-in daemons reporting API 1.24 and 1.41.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Iterator

import pytest
from engine_stub import Reply, Request, StubEngine
from fakes import LATEST, FakeEngine, tarball_text

from ecs_init import actions as engine
from ecs_init.agent import stop as agent_stop
from ecs_init.agent.events import events_path
from ecs_init.agent.supervisor import MAX_START_FAILURES, Supervisor
from ecs_init.core.backoff import Backoff
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.paths import Paths
from ecs_init.docker.errors import EngineError, EngineUnavailable, NotFound
from ecs_init.host.context import HostContext

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE = "sha256:" + "d" * 64


class Rig:
    def __init__(self, root: str, fake: FakeEngine) -> None:
        self.paths = Paths(prefix=root)
        for d in (self.paths.cache_dir, self.paths.instance_config_dir, self.paths.run_dir):
            os.makedirs(d, exist_ok=True)
        self.fake = fake
        self.ctx = HostContext(cfg=Config.load(environ={}, paths=self.paths), docker_factory=lambda: self.fake)
        self.sup = Supervisor(self.ctx)
        self.sup.backoff = Backoff(0.0, 0.0, 0.0)  # no waiting between restarts
        self.states: list[tuple[str, dict[str, Any]]] = []
        self.sup.listeners.append(lambda state, doc: self.states.append((state, doc)))

    def cache(self, image_id: str) -> None:
        with open(self.paths.cache_tarball, "w") as fh:
            fh.write(tarball_text(image_id))

    def events(self) -> list[str]:
        try:
            with open(events_path(self.ctx)) as fh:
                return [e["event"] for e in json.load(fh)]
        except FileNotFoundError:
            return []


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return Rig(str(tmp_path / "root"), FakeEngine())


# ------------------------------------------------------------ a missing image heals itself


def test_missing_image_is_reloaded_from_the_cache_once_and_the_agent_starts(rig: Rig) -> None:
    rig.cache(IMAGE)  # Docker has no agent image (an image prune): the cache has it
    assert rig.sup.run() == 0
    assert rig.fake.loaded == [IMAGE]
    assert rig.fake.calls.count("create_container") == 2
    assert rig.fake.created[-1]["Image"] == LATEST
    assert rig.events() == ["image-reload"]
    with open(rig.paths.cache_state) as fh:
        assert fh.read().strip() == "1"


def test_missing_image_without_a_usable_cache_exits_255_for_pre_start(rig: Rig) -> None:
    with pytest.raises(InitError) as err:
        rig.sup.run()  # no tarball at all
    assert err.value.exit_code == 255
    assert "reload-cache" in str(err.value) and "\n" not in str(err.value)
    assert rig.fake.calls.count("create_container") == 1  # no loop


def test_image_still_missing_after_the_reload_is_not_retried(rig: Rig) -> None:
    rig.cache(IMAGE)
    rig.fake.fail("create_container", NotFound("No such image: amazon/amazon-ecs-agent:latest", 404))
    with pytest.raises(InitError, match="still missing after reloading"):
        rig.sup.run()
    assert rig.fake.calls.count("create_container") == 2 and rig.fake.loaded == [IMAGE]


def test_a_later_prune_heals_again_after_a_good_start(rig: Rig) -> None:
    rig.cache(IMAGE)
    rig.fake.exit_codes = [1, 0]  # the agent crashes once ...

    def prune(code: int) -> None:
        if code == 1:  # ... and the image is pruned meanwhile
            rig.fake.images.clear()
            rig.fake.tags.clear()

    rig.fake.on_exit = prune
    assert rig.sup.run() == 0
    assert rig.fake.loaded == [IMAGE, IMAGE]
    assert rig.events() == ["image-reload", "image-reload"]


def test_the_reload_is_recorded_with_what_was_missing(rig: Rig) -> None:
    rig.cache(IMAGE)
    assert rig.sup.run() == 0
    with open(events_path(rig.ctx)) as fh:
        (event,) = json.load(fh)
    assert (event["event"], event["reason"]) == ("image-reload", f"No such image: {LATEST}")


def test_image_missing_again_before_a_good_start_is_not_reloaded_twice(rig: Rig) -> None:
    """Reloaded, created, but the start failed; by the retry the image is gone again: `start` exits 255."""
    rig.cache(IMAGE)
    rig.fake.fail("start_container", EngineError("OCI runtime create failed: boom", 500), times=1)

    def prune(state: str, _doc: dict[str, Any]) -> None:
        if state == "backoff":
            rig.fake.images.clear()
            rig.fake.tags.clear()

    rig.sup.listeners.append(prune)
    with pytest.raises(InitError) as err:
        rig.sup.run()
    assert str(err.value) == (
        f"the agent image {LATEST} is missing again (No such image: {LATEST}) after reloading "
        f"{rig.paths.cache_tarball}: run `amazon-ecs-init reload-cache`"
    )
    assert err.value.exit_code == 255 and rig.fake.loaded == [IMAGE] and rig.events() == ["image-reload"]


def test_a_failed_reload_says_why_in_one_line(rig: Rig) -> None:
    with pytest.raises(InitError) as err:
        rig.sup.run()  # no tarball at all
    said = str(err.value)
    assert said.startswith(
        f"the agent image {LATEST} is not loaded and reloading the cached tarball failed (cannot load agent image: "
    )
    assert said.endswith("): run `amazon-ecs-init reload-cache` (systemd runs pre-start again)")
    assert rig.paths.cache_tarball in said and "\n" not in said  # the loader's one line names the tarball


def test_a_reload_whose_cache_state_cannot_be_written_ends_start(rig: Rig) -> None:
    rig.cache(IMAGE)
    os.makedirs(os.path.join(rig.paths.cache_state, "in-the-way"))  # a directory where the state file goes
    with pytest.raises(InitError) as err:
        rig.sup.run()
    prefix = f"the agent image {LATEST} is not loaded; cannot record the cache state: "
    assert str(err.value).startswith(prefix) and len(str(err.value)) > len(prefix)
    assert err.value.exit_code == 255 and rig.fake.loaded == [IMAGE]


# ------------------------------------------------------------ other create/start errors never loop forever


def test_create_errors_end_start_after_a_bounded_number_of_tries(rig: Rig) -> None:
    rig.fake.add_image(IMAGE, LATEST)
    rig.fake.fail("start_container", EngineError("OCI runtime create failed: boom", 500))
    with pytest.raises(InitError) as err:
        rig.sup.run()
    assert f"{MAX_START_FAILURES} failures in a row" in str(err.value) and "boom" in str(err.value)
    assert rig.fake.calls.count("start_container") == MAX_START_FAILURES


def test_start_failures_are_counted_in_a_row_only(rig: Rig) -> None:
    rig.fake.add_image(IMAGE, LATEST)
    rig.fake.fail("create_container", EngineError("transient", 500), times=MAX_START_FAILURES - 1)
    assert rig.sup.run() == 0  # the fifth try worked: supervision went on
    assert rig.sup.start_failures == 0


# ------------------------------------------------------------ a daemon that stops answering (issue 22)


def test_hung_daemon_during_the_wait_is_treated_like_a_lost_one(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.fake.add_image(IMAGE, LATEST)
    rig.fake.fail("wait_container", EngineUnavailable("Docker at x does not answer: no answer to a ping"), times=1)
    with caplog.at_level(logging.INFO):
        assert rig.sup.run() == 0
    assert rig.fake.calls.count("create_container") == 1  # the same container: re-attached, not recreated
    assert "reconnect" in rig.fake.calls
    assert ("docker-lost" in [s for s, _ in rig.states]) and any(d.get("reattached") for _, d in rig.states)
    assert "does not answer" in caplog.text and "re-attached" in caplog.text


def test_first_connect_failing_ends_start(tmp_path: Any) -> None:
    def unreachable() -> FakeEngine:
        raise EngineUnavailable("Docker daemon at unix:///x did not answer within 2s: no socket at that path")

    paths = Paths(prefix=str(tmp_path))
    ctx = HostContext(cfg=Config.load(environ={}, paths=paths), docker_factory=unreachable)
    with pytest.raises(EngineUnavailable, match="did not answer within 2s"):
        Supervisor(ctx).run()


# ------------------------------------------------------------ stop and post-stop


def test_stop_stops_the_agent(rig: Rig) -> None:
    rig.fake.add_image(IMAGE, LATEST)
    rig.fake.create_container("ecs-agent", {"Image": LATEST})
    rig.fake.start_container("ecs-agent")
    assert agent_stop.stop(rig.ctx) == 0
    assert rig.fake.containers["ecs-agent"]["State"]["Running"] is False
    assert rig.ctx.docker_wait == agent_stop.CONNECT_WAIT  # the wait for a silent daemon is capped


def test_stop_gives_up_with_one_line_when_docker_does_not_answer(rig: Rig) -> None:
    rig.fake.fail("stop_container", EngineUnavailable("Docker at x does not answer: no answer within 19s"))
    with pytest.raises(EngineUnavailable) as err:
        agent_stop.stop(rig.ctx)
    assert str(err.value).startswith("stop: gave up after ") and err.value.exit_code == 255


def test_post_stop_attempts_every_step_and_exits_0(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def step(name: str, error: Exception | None) -> Any:
        def run(_ctx: HostContext) -> None:
            ran.append(name)
            if error is not None:
                raise error

        return name, run

    steps = (step("a", InitError("iptables: exit 4: boom")), step("b", None), step("c", OSError(5, "EIO")))
    monkeypatch.setattr(engine, "POST_STOP", tuple((name, name) for name, _ in steps))
    monkeypatch.setattr(engine, "step_function", dict(steps).__getitem__)
    ctx = HostContext(cfg=Config.load(environ={}, paths=Paths(prefix=str(tmp_path))))
    with caplog.at_level(logging.INFO):
        assert engine.run_post_stop(ctx) == 0
    assert ran == ["a", "b", "c"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0] == "post-stop: a failed: iptables: exit 4: boom"
    assert errors[1].startswith("post-stop: c failed: ")
    assert errors[2] == "post-stop: done with 2 failed step(s): a, c"


# ------------------------------------------------------------ `start` against stand-in daemons of two ages


@pytest.fixture
def sockdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ecs-neg-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("reported,init,eni", [("1.24", False, "false"), ("1.41", True, "true")])
def test_start_speaks_the_negotiated_version_and_adapts_the_container(
    sockdir: str, tmp_path: Any, reported: str, init: bool, eni: str
) -> None:
    created: list[Request] = []

    def create(req: Request) -> Reply:
        created.append(req)
        return Reply(201, {"Id": "e" * 64})

    with StubEngine(os.path.join(sockdir, "d.sock"), api_version=reported) as stub:
        stub.routes["DELETE", "/containers/ecs-agent"] = lambda r: Reply(404, {"message": "No such container"})
        stub.routes["POST", "/containers/create"] = create
        stub.routes["POST", "/containers/ecs-agent/start"] = lambda r: Reply(204)
        stub.routes["POST", "/containers/ecs-agent/wait"] = lambda r: Reply(200, {"StatusCode": 0})
        exited = {"Id": "e" * 64, "State": {"Status": "exited", "Running": False, "ExitCode": 0}}
        stub.routes["GET", "/containers/ecs-agent/json"] = lambda r: Reply(200, exited)
        env = dict(os.environ, DOCKER_HOST=stub.host, ECS_INIT_PATH_PREFIX=str(tmp_path), PYTHONPATH=f"{ROOT}/src")
        env.pop("NOTIFY_SOCKET", None)
        proc = subprocess.run([sys.executable, "-m", "ecs_init", "start"], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        versions = {r.api_version for r in stub.requests if r.path not in ("/version", "/_ping")}
        assert versions == {reported}
    body = created[0].json()
    assert created[0].query == {"name": "ecs-agent"}
    assert ("Init" in body["HostConfig"]) is init
    assert f"ECS_ENABLE_TASK_ENI={eni}" in body["Env"]


def test_post_stop_through_the_cli_exits_0_when_steps_fail(tmp_path: Any) -> None:
    """No sysctl/ip/iptables on PATH: each failing step is one error line, the exit is 0 (SPEC §5 Beyond)."""
    env = dict(os.environ, ECS_INIT_PATH_PREFIX=str(tmp_path), PYTHONPATH=f"{ROOT}/src", PATH="/nonexistent")
    proc = subprocess.run([sys.executable, "-m", "ecs_init", "post-stop"], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("level=error")]
    assert any("post-stop: loopback routing failed" in line for line in errors), proc.stderr
    assert "post-stop: done with" in errors[-1] and "Traceback" not in proc.stderr
