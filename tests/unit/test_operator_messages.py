"""What the program says is true (issue 20 items 3, 4, 7, 8): cache lines, history, status nits,
the bridge rule at post-stop, IMDS refusals, render's API version, a container removed behind the
supervisor's back, and whose lines are whose."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

import jsonschema
import pytest
from engine_stub import StubEngine
from fakes import LATEST, FakeEngine, tarball_text
from imds_stub import ImdsStub

from ecs_init.agent import cache, imds
from ecs_init.agent.policy import EXIT_CONTAINER_GONE, describe_exit
from ecs_init.agent.supervisor import Supervisor
from ecs_init.core import logsetup
from ecs_init.core.backoff import Backoff
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext
from ecs_init.ops import render, status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


def _schema(name: str) -> dict[str, Any]:
    with open(os.path.join(ROOT, "src/ecs_init/schemas", name)) as fh:
        found: dict[str, Any] = json.load(fh)
    return found


class Host:
    """A root prefix with a fake engine."""

    def __init__(self, tmp_path: Any, **env: str) -> None:
        self.paths = Paths(prefix=str(tmp_path / "root"))
        for d in (self.paths.cache_dir, self.paths.instance_config_dir, self.paths.run_dir):
            os.makedirs(d, exist_ok=True)
        self.engine = FakeEngine()
        self.ctx = HostContext(cfg=Config.load(environ=dict(env), paths=self.paths), docker_factory=lambda: self.engine)

    def state(self, text: str) -> None:
        with open(self.paths.cache_state, "w") as fh:
            fh.write(text)

    def tarball(self, image: str) -> None:
        with open(self.paths.cache_tarball, "w") as fh:
            fh.write(tarball_text(image))

    def events(self) -> list[dict[str, Any]]:
        with open(self.paths.events_file) as fh:
            found: list[dict[str, Any]] = json.load(fh)
        return found


# ---------------------------------------------------------------- item 3: cache lines tell the truth


def _image_line(caplog: pytest.LogCaptureFixture) -> str:
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("agent image:")]
    return line


def test_state_2_with_the_tarball_missing_says_so(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(tmp_path)
    host.state("2\n")
    host.engine.add_image(OLD, LATEST)  # the image is there; the tarball is not
    monkeypatch.setattr(cache, "_download", lambda ctx: host.tarball(NEW))
    with caplog.at_level(logging.INFO):
        assert cache.ensure_image(host.ctx) is cache.Action.DOWNLOAD_AND_LOAD
    line = _image_line(caplog)
    assert f"state file {host.paths.cache_state} holds 2 (reload)" in line
    assert f"tarball {host.paths.cache_tarball} is missing" in line
    assert f"image {LATEST} not checked" in line
    assert line.endswith("download and load (uncached: the tarball is missing)")
    assert "present=False" not in line and "cache state 0" not in line


def test_a_normal_first_start_does_not_claim_the_image_is_absent(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    host = Host(tmp_path)
    host.state("2\n")
    host.tarball(NEW)
    host.engine.add_image(OLD, LATEST)
    with caplog.at_level(logging.INFO):
        assert cache.ensure_image(host.ctx) is cache.Action.LOAD
    line = _image_line(caplog)
    assert "holds 2 (reload)" in line and "is present (" in line and "not checked" in line
    assert line.endswith("load (the state file asks for the tarball to be loaded)")


@pytest.mark.parametrize(
    ("present", "ending"),
    [(True, "nothing (cached, and the image is in Docker)"), (False, "load (cached, but the image is not in Docker)")],
)
def test_cached_state_checks_the_image_and_says_what_it_found(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, present: bool, ending: str
) -> None:
    host = Host(tmp_path)
    host.state("1\n")
    host.tarball(NEW)
    if present:
        host.engine.add_image(NEW, LATEST)
    with caplog.at_level(logging.INFO):
        cache.ensure_image(host.ctx)
    line = _image_line(caplog)
    assert f"image {LATEST} {'present' if present else 'missing'}" in line and line.endswith(ending)


@pytest.mark.parametrize(
    ("text", "reading"),
    [(None, "is missing"), ("", "is empty"), ("abc\n", "holds 'abc', not a number"), ("3\n", "holds 3 (unknown)")],
)
def test_cache_facts_read_the_file_as_it_is(tmp_path: Any, text: str | None, reading: str) -> None:
    host = Host(tmp_path)
    host.tarball(NEW)
    if text is not None:
        host.state(text)
    facts = cache.read_facts(host.paths)
    assert facts.reading == reading
    assert facts.state == (3 if text == "3\n" else 0)


def test_status_shows_the_state_files_value_and_the_tarball_truthfully(tmp_path: Any) -> None:
    host = Host(tmp_path)
    host.state("2\n")
    part = status.cache_part(host.ctx)
    assert (part["state"], part["state_name"], part["state_file_reading"]) == (2, "reload", "holds 2 (reload)")
    assert (part["effective_state"], part["effective_state_name"]) == (0, "uncached")
    assert part["effective_reason"] == "the tarball is missing" and part["tarball_present"] is False
    text = status.format_human(_report(host, cache=part))
    assert f"state file:    {host.paths.cache_state} holds 2 (reload)" in text
    assert f"tarball:       {host.paths.cache_tarball} (missing)" in text
    assert "cache state:   0 (uncached): the tarball is missing" in text
    jsonschema.validate(_report(host, cache=part), _schema("status.schema.json"))
    host.tarball(NEW)
    part = status.cache_part(host.ctx)
    assert (part["state"], part["effective_state"], part["tarball_present"]) == (2, 2, True)
    assert "cache state:" not in status.format_human(_report(host, cache=part))


# ---------------------------------------------------------------- item 4: reload-cache is history too


def test_reload_cache_records_an_event_status_shows_last(tmp_path: Any) -> None:
    host = Host(tmp_path)
    host.engine.add_image(NEW, LATEST)
    with open(host.paths.events_file, "w") as fh:
        json.dump([{"event": "upgrade", "time": "2026-01-01T00:00:00Z", "previous": OLD, "new": NEW}], fh)
    host.state("1\n")
    host.tarball(OLD)  # the manual rollback: the cached v1 tarball
    cache.reload_cache(host.ctx)
    last = host.events()[-1]
    assert (last["event"], last["previous"], last["new"], last["tarball"], last["downloaded"]) == (
        "reload-cache",
        NEW,
        OLD,
        "ecs-agent.tar",
        False,
    )
    event, error = status.last_event_part(host.ctx)
    assert event == last and error is None
    text = status.format_human(_report(host, last_event=event))
    assert f"reload-cache previous={NEW} new={OLD} tarball=ecs-agent.tar downloaded=false" in text


def test_a_heal_is_shown_as_the_last_event(tmp_path: Any) -> None:
    host = Host(tmp_path)
    heal = {"event": "heal", "time": "2026-01-01T00:00:00Z", "container_id": "abc", "reason": "no answer"}
    text = status.format_human(_report(host, last_event=heal))
    assert "Last event (upgrade, rollback, image load, heal)\n  2026-01-01T00:00:00Z heal container_id=abc" in text


def test_pre_start_load_is_recorded(tmp_path: Any) -> None:
    host = Host(tmp_path)
    host.state("2\n")
    host.tarball(NEW)
    cache.ensure_image(host.ctx)
    (event,) = host.events()
    assert (event["event"], event["by"], event["previous"], event["new"]) == ("image-load", "pre-start", None, NEW)


# ---------------------------------------------------------------- item 7: status never says None


def _report(host: Host, **parts: Any) -> dict[str, Any]:
    """A full status report built from the parts (no Docker, no iptables)."""
    doc: dict[str, Any] = {
        "time": "2026-01-01T00:00:00Z",
        "docker": {
            "reachable": True,
            "host": "unix:///x",
            "version": None,
            "api_version": "1.41",
            "server_api_version": None,
            "error": None,
        },
        "agent": status.agent_part(host.engine, time.time()),
        "supervisor": status.supervisor_part(host.ctx),
        "introspection": {
            "url": "http://127.0.0.1:51678/v1/metadata",
            "answering": True,
            "version": None,
            "cluster": None,
            "container_instance_arn": None,
            "error": None,
        },
        "cache": status.cache_part(host.ctx),
        "last_event": None,
        "last_event_error": None,
        "host_network": {"route_localnet": None, "route_localnet_ok": None, "rules": [], "notes": []},
    }
    doc.update(parts)
    code, summary = status.verdict(doc)
    doc.update(exit_code=int(code), summary=summary)
    return doc


def test_status_says_none_yet_for_a_first_run(tmp_path: Any) -> None:
    host = Host(tmp_path)
    with open(host.paths.supervisor_state, "w") as fh:
        json.dump(
            {
                "pid": os.getpid(),
                "state": "running",
                "started_at": time.time(),
                "restarts": 0,
                "last_exit_code": None,
                "updated_at": time.time(),
                "upgrade": None,
            },
            fh,
        )
    text = status.format_human(_report(host))
    assert "last agent exit code: none yet" in text
    assert "None" not in text


def test_upgrade_in_the_supervisor_state_has_wall_clock_times(tmp_path: Any) -> None:
    host = Host(tmp_path)
    host.engine.add_image(OLD, LATEST)
    clock = [2667.37]
    sup = Supervisor(host.ctx, clock=lambda: clock[0])
    with open(os.path.join(host.paths.cache_dir, "v2.tar"), "w") as fh:
        fh.write(tarball_text(NEW))
    with open(host.paths.desired_image, "w") as fh:
        fh.write("v2.tar\n")
    assert sup._upgrade() is True
    clock[0] += 5
    sup._maybe_rollback(1)
    sup.report(status_state())
    with open(host.paths.supervisor_state) as fh:
        doc = json.load(fh)
    upgrade = doc["upgrade"]
    assert set(upgrade) == {"previous_image", "new_image", "started_at", "failures", "last_failure_at"}
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert iso.match(upgrade["started_at"]) and iso.match(upgrade["last_failure_at"]) and upgrade["failures"] == 1
    assert (
        abs(
            time.mktime(time.strptime(upgrade["started_at"], "%Y-%m-%dT%H:%M:%SZ"))
            - time.mktime(time.gmtime(time.time() - 5))
        )
        <= 2
    )  # wall clock, five seconds ago (not 2667.37)
    part = status.supervisor_part(host.ctx)
    assert part["upgrade"] == upgrade
    jsonschema.validate(_report(host), _schema("status.schema.json"))
    text = json.dumps(part)
    assert "2667" not in text and "2672" not in text


def test_status_drops_a_monotonic_upgrade_written_by_an_older_version(tmp_path: Any) -> None:
    host = Host(tmp_path)
    with open(host.paths.supervisor_state, "w") as fh:
        json.dump(
            {"pid": 1, "upgrade": {"previous_image": OLD, "new_image": NEW, "started": 2667.37, "failures": [2670.1]}},
            fh,
        )
    assert status.supervisor_part(host.ctx)["upgrade"] == {"previous_image": OLD, "new_image": NEW}


def status_state() -> Any:
    from ecs_init.agent.state import SupervisorState

    return SupervisorState.RUNNING


# ---------------------------------------------------------------- item 7: IMDS 403 is a refusal


class _Refusing(ImdsStub):
    def __init__(self) -> None:
        super().__init__()
        handler = self._server.RequestHandlerClass

        class Forbidden(handler):  # type: ignore[misc, valid-type]
            def do_PUT(self) -> None:  # noqa: N802 - http.server naming
                self.server.requests.append(("PUT", self.path))
                self._reply(403)

        self._server.RequestHandlerClass = Forbidden


def test_imds_403_is_logged_as_a_refusal(caplog: pytest.LogCaptureFixture) -> None:
    with _Refusing() as stub, caplog.at_level(logging.INFO):
        assert imds.region(stub.endpoint) is None
    assert "did not answer" not in caplog.text
    (line,) = [m for m in caplog.messages if "metadata service" in m]
    assert line.startswith(f"metadata service at {stub.endpoint} refused: PUT /latest/api/token: HTTP 403")
    assert "disabled" in line


# ---------------------------------------------------------------- item 7: render asks the engine


def test_render_uses_the_engines_api_version(tmp_path: Any) -> None:
    sock = os.path.join(str(tmp_path), "d.sock")
    with StubEngine(sock, api_version="1.41") as stub:
        cfg = Config.load(environ={"ECS_INIT_PATH_PREFIX": str(tmp_path / "root"), "DOCKER_HOST": stub.host})
        doc = render.render(HostContext(cfg=cfg))
    jsonschema.validate(doc, _schema("render.schema.json"))
    assert (doc["api_version"], doc["api_version_assumed"], doc["api_version_source"]) == ("1.41", False, "engine")
    assert doc["notes"] == [] and "Docker API 1.41 (the engine's)" in render.format_human(doc)
    assert all(r.path in ("/_ping", "/version") for r in stub.requests)  # asked its version, nothing else


def test_render_assumes_only_when_the_engine_is_silent(tmp_path: Any) -> None:
    sock = os.path.join(str(tmp_path), "d.sock")
    with StubEngine(sock, api_version="1.41") as stub:
        stub.hang_paths.update({"/_ping", "/version"})
        cfg = Config.load(environ={"ECS_INIT_PATH_PREFIX": str(tmp_path / "root"), "DOCKER_HOST": stub.host})
        started = time.monotonic()
        doc = render.render(HostContext(cfg=cfg))
        assert time.monotonic() - started < render.ASK_TIMEOUT + 2
    assert (doc["api_version"], doc["api_version_source"]) == ("1.44", "assumed")
    assert "Docker API 1.44 (assumed)" in render.format_human(doc) and "1.44 assumed" in doc["notes"][0]


# ---------------------------------------------------------------- item 8: events named as they are


def _supervised(tmp_path: Any) -> tuple[Host, Supervisor]:
    host = Host(tmp_path)
    host.engine.add_image(OLD, LATEST)
    sup = Supervisor(host.ctx)
    sup.backoff = Backoff(0.0, 0.0, 0.0)
    return host, sup


def test_a_container_removed_behind_the_supervisors_back_is_said_so(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    host, sup = _supervised(tmp_path)
    runs = []

    def removed(code: int) -> None:  # docker rm -f: the wait answers 137, the container is going
        runs.append(code)
        if len(runs) == 1:
            host.engine.containers["ecs-agent"]["State"]["Status"] = "removing"
        else:
            sup.stopping.set()

    host.engine.exit_codes = [137, 0]
    host.engine.on_exit = removed
    with caplog.at_level(logging.INFO):
        assert sup.run() == 0
    text = "\n".join(caplog.messages)
    assert "exited with code 137" not in text
    assert re.search(
        r"the agent container ecs-agent \([0-9a-f]{12}\) was removed while it ran \(its wait ended "
        r"with 137\)",
        text,
    ), text
    assert re.search(r"the agent container disappeared after [0-9.]+s: restart after backoff", text)
    assert len(runs) == 2 and len(host.engine.created) == 2  # restarted


def test_a_replaced_container_is_said_so(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    host, sup = _supervised(tmp_path)
    host.engine.exit_codes = [137]
    host.engine.on_exit = lambda code: host.engine.containers["ecs-agent"].update(Id="f" * 64)
    with caplog.at_level(logging.WARNING):
        assert sup._start_and_wait() == EXIT_CONTAINER_GONE
    assert f"the agent container ecs-agent ({sup.container_id[:12]}) was replaced by another container" in caplog.text


def test_an_exit_of_the_agent_is_its_code(tmp_path: Any) -> None:
    host, sup = _supervised(tmp_path)
    host.engine.exit_codes = [137]  # killed (OOM, kill -9): the container is still there, exited
    assert sup._start_and_wait() == 137


def test_exits_are_described_as_what_they_are() -> None:
    assert describe_exit(137) == "agent exited with code 137"
    assert describe_exit(EXIT_CONTAINER_GONE) == "the agent container disappeared"


def test_stop_lines_name_the_process_and_the_container(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    host, sup = _supervised(tmp_path)
    sup.container_id = "c" * 64
    host.engine.create_container("ecs-agent", {"Image": LATEST})
    host.engine.start_container("ecs-agent")
    with caplog.at_level(logging.INFO):
        sup.stopping.clear()
        import signal as _signal

        sup.install_signal_handlers()
        try:
            os.kill(os.getpid(), _signal.SIGTERM)
            assert sup._stop_thread is not None
            sup._stop_thread.join(5)
        finally:
            _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    assert f"start (pid {os.getpid()}) received SIGTERM: stopping the agent container ecs-agent (cccccccccccc)" in (
        caplog.messages
    )
    assert "agent container ecs-agent (cccccccccccc) stopped" in caplog.messages


def test_log_lines_carry_the_pid(tmp_path: Any) -> None:
    path = str(tmp_path / "ecs-init.log")
    logsetup.setup(path, "info", console=False)
    try:
        logging.getLogger("ecs_init.t").info("hello")
        for handler in logging.getLogger().handlers:
            handler.flush()
    finally:
        logsetup.setup(None, "info", console=False)
    with open(path) as fh:
        line = fh.read().strip()
    assert line.endswith(f'msg="hello" pid={os.getpid()}')
