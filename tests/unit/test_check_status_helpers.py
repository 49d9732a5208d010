"""`status`: the pure helpers and the verdict (no Docker)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ecs_init.core.config import Config
from ecs_init.core.errors import UsageError
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext
from ecs_init.ops import report, status


def test_parse_docker_time() -> None:
    assert report.parse_docker_time("2024-05-01T12:00:00Z") == 1714564800.0
    assert report.parse_docker_time("2024-05-01T12:00:00.5Z") == pytest.approx(1714564800.5)
    assert report.parse_docker_time("2024-05-01T12:00:00.123456789Z") == pytest.approx(1714564800.123456789)
    assert report.parse_docker_time("2024-05-01T14:00:00+02:00") == 1714564800.0
    assert report.parse_docker_time("0001-01-01T00:00:00Z") is None
    assert report.parse_docker_time("") is None
    assert report.parse_docker_time("yesterday") is None


def test_human_units() -> None:
    assert report.human_duration(5) == "5s"
    assert report.human_duration(3725) == "1h2m5s"
    assert report.human_duration(90061) == "1d1h1m"
    assert report.human_bytes(512) == "512 B"
    assert report.human_bytes(3 * 1024 * 1024) == "3.0 MiB"


def _report(reachable: bool = True, running: bool | None = True, answering: bool = True) -> dict:  # type: ignore[type-arg]
    return {
        "docker": {"reachable": reachable},
        "agent": {"running": running, "error": None if running is not None else "boom"},
        "introspection": {"answering": answering},
    }


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({}, 0),
        ({"reachable": False}, 1),
        ({"running": None}, 1),
        ({"running": False}, 3),
        ({"running": False, "answering": False}, 3),
        ({"answering": False}, 1),
    ],
)
def test_verdict(kwargs: dict, code: int) -> None:  # type: ignore[type-arg]
    assert status.verdict(_report(**kwargs))[0] == code


def test_parser_usage_errors_exit_1_not_2() -> None:
    parser = report.make_parser("status", "x")
    assert parser.parse_args(["--json"]).json is True
    with pytest.raises(UsageError) as err:
        parser.parse_args(["--bogus"])
    assert err.value.exit_code == 1


def _ctx(tmp_path) -> HostContext:  # type: ignore[no-untyped-def]
    return HostContext(cfg=Config(paths=Paths(prefix=str(tmp_path)), environ={}))


def test_supervisor_and_event_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = _ctx(tmp_path)
    assert status.supervisor_part(ctx)["present"] is False
    assert status.last_event_part(ctx) == (None, None)
    os.makedirs(tmp_path / "var/run/ecs-init")
    os.makedirs(tmp_path / "var/lib/ecs")
    doc = {"pid": os.getpid(), "state": "running", "started_at": 0, "restarts": 2, "last_exit_code": 1}
    (tmp_path / "var/run/ecs-init/supervisor.json").write_text(json.dumps(doc))
    part = status.supervisor_part(ctx)
    assert (part["present"], part["alive"], part["restarts"], part["started_at"]) == (
        True,
        True,
        2,
        "1970-01-01T00:00:00Z",
    )
    events = [{"event": "upgrade", "time": "t1"}, {"event": "rollback", "time": "t2", "failed_image": "sha256:x"}]
    (tmp_path / "var/lib/ecs/ecs-init-events.json").write_text(json.dumps(events))
    assert status.last_event_part(ctx) == (events[-1], None)
    (tmp_path / "var/lib/ecs/ecs-init-events.json").write_text("{not json")
    event, error = status.last_event_part(ctx)
    assert event is None and error and "not valid JSON" in error


def test_dead_supervisor_pid_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(["true"])
    proc.wait()
    os.makedirs(tmp_path / "var/run/ecs-init")
    (tmp_path / "var/run/ecs-init/supervisor.json").write_text(json.dumps({"pid": proc.pid, "state": "running"}))
    assert status.supervisor_part(_ctx(tmp_path))["alive"] is False


def test_cache_part(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = _ctx(tmp_path)
    os.makedirs(tmp_path / "var/cache/ecs")
    assert status.cache_part(ctx)["tarball_present"] is False
    (tmp_path / "var/cache/ecs/ecs-agent.tar").write_bytes(b"x" * 10)
    (tmp_path / "var/cache/ecs/state").write_text("1")
    (tmp_path / "var/cache/ecs/desired-image").write_text("ecs-agent-v2.tar\n")
    part = status.cache_part(ctx)
    assert (part["state"], part["state_name"], part["tarball_bytes"], part["desired_image"]) == (
        1,
        "cached",
        10,
        "ecs-agent-v2.tar",
    )
    (tmp_path / "var/cache/ecs/state").write_text("3")
    part = status.cache_part(ctx)
    assert (part["state"], part["state_name"]) == (3, "unknown")


def test_metadata_that_does_not_answer_says_so() -> None:
    doc, error = report.fetch_metadata("http://127.0.0.1:9/v1/metadata", timeout=0.5)
    assert doc is None and "does not answer within 0.5s" in error
