"""A Docker daemon that accepts connections but never answers (issue 22 item 2, SPEC §5).

The real CLI against a stand-in daemon on a unix socket (tests/engine_stub.py)
that reads every request and replies to none: every command still finishes,
with one clear line and its documented exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Iterator

import pytest
from engine_stub import StubEngine
from helpers import run_cli

pytestmark = [pytest.mark.slow]


@pytest.fixture
def hung() -> Iterator[StubEngine]:
    tmp = tempfile.mkdtemp(prefix="ecs-hung-", dir="/tmp")
    stub = StubEngine(os.path.join(tmp, "d.sock"), hang=True)
    try:
        yield stub.start()
    finally:
        stub.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("level=error")]


def timed(prefix: str, *args: str, **env: str) -> tuple[float, int, str, str]:
    started = time.monotonic()
    proc = run_cli(prefix, *args, timeout=60, **env)
    return time.monotonic() - started, proc.returncode, proc.stdout, proc.stderr


def test_status_reports_docker_does_not_answer_within_10s(prefix: str, hung: StubEngine) -> None:
    took, code, out, err = timed(prefix, "status", "--json", DOCKER_HOST=hung.host)
    assert took < 10 and code == 1, err
    doc = json.loads(out)
    assert doc["summary"] == "unknown: Docker does not answer"
    assert doc["docker"]["error"] == f"Docker at {hung.host} does not answer: no answer within 2s (GET /version)"
    assert "Traceback" not in err
    took, code, out, err = timed(prefix, "status", DOCKER_HOST=hung.host)
    assert took < 10 and code == 1 and "Docker does not answer" in out


def test_check_fails_the_docker_check_within_10s(prefix: str, hung: StubEngine) -> None:
    took, code, out, err = timed(prefix, "check", "--json", DOCKER_HOST=hung.host)
    assert took < 10 and code == 1, err
    docker = next(c for c in json.loads(out)["checks"] if c["name"] == "docker")
    assert docker["status"] == "FAIL" and "does not answer" in docker["reason"]
    assert "Traceback" not in err


def test_render_asks_docker_once_and_assumes_the_api_version(prefix: str, hung: StubEngine) -> None:
    """render asks the engine its API version (1 s bound); a hung daemon costs that second, no more."""
    took, code, out, err = timed(prefix, "render", "--json", DOCKER_HOST=hung.host)
    assert took < 10 and code == 0, err
    doc = json.loads(out)
    assert doc["name"] == "ecs-agent" and doc["api_version_source"] == "assumed"
    assert [r.path for r in hung.requests] == ["/version"]


def test_render_with_an_api_version_never_asks_docker(prefix: str, hung: StubEngine) -> None:
    took, code, out, err = timed(prefix, "render", "--json", "--api-version", "1.41", DOCKER_HOST=hung.host)
    assert took < 10 and code == 0, err
    assert json.loads(out)["name"] == "ecs-agent"
    assert hung.requests == []


def test_stop_gives_up_within_20s_when_docker_never_answers(prefix: str, hung: StubEngine) -> None:
    took, code, _, err = timed(prefix, "stop", DOCKER_HOST=hung.host)
    assert took < 20 and code == 255, err
    (line,) = errors(err)
    assert "stop: gave up after" in line and "did not answer" in line
    assert hung.connections <= 4  # short attempts with backoff, not a busy loop


def test_stop_gives_up_within_20s_when_the_stop_request_hangs(prefix: str, hung: StubEngine) -> None:
    """The daemon answers /version but never the stop itself (the Go program would wait for ever)."""
    hung.hang = False
    hung.hang_paths.add("/containers/ecs-agent/stop")
    took, code, _, err = timed(prefix, "pre-stop", DOCKER_HOST=hung.host)
    assert took < 20 and code == 255, err
    (line,) = errors(err)
    assert "stop: gave up after" in line and "does not answer" in line and "POST /containers/ecs-agent/stop" in line


def test_start_waits_for_a_hung_daemon_without_spinning(prefix: str, hung: StubEngine) -> None:
    took, code, _, err = timed(prefix, "start", DOCKER_HOST=hung.host, ECS_INIT_DOCKER_WAIT_TIMEOUT="8")
    assert 7 < took < 14 and code == 255, err
    assert "waiting for the Docker daemon" in err and "no answer within 5s (GET /_ping)" in err
    (line,) = errors(err)
    assert "did not answer within 8s" in line and "does not answer" in line
    assert hung.connections <= 3  # each attempt waits out its own timeout, then backs off
