"""A hung agent on the real engine is stopped and started again (issue 22 item 1).

The stand-in agent plays a hung agent: ``<data>/standin-hang-once`` freezes
its HTTP server (the container stays up, the port stays open, nothing
answers) until the container restarts; ``<data>/standin-hang`` does that in
every run. The "health" variant has a Docker health check that fails while
``<data>/standin-unhealthy`` exists. Small settings keep each test short.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import Any, Optional

import pytest
from helpers import Supervised, inspect, install_tarball, metadata, run_cli, wait_metadata, wait_until

pytestmark = [pytest.mark.docker]

INTERVAL = 1.0
TIMEOUT = 4.0
HEAL_LINE = "stopping it to restart it"
# On top of a bound the design promises: the log line reaching us, a loaded 2-core machine.
SLACK = 2.0


def _data(prefix: str, name: str) -> str:
    return os.path.join(prefix, "var/lib/ecs/data", name)


def _touch(path: str) -> None:
    with open(path, "w"):
        pass


def _events(prefix: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(prefix, "var/lib/ecs/ecs-init-events.json")) as fh:
            return list(json.load(fh))
    except FileNotFoundError:
        return []


def _heal_events(prefix: str) -> list[dict[str, Any]]:
    """The heal history (the set-up's reload-cache is history too)."""
    return [e for e in _events(prefix) if e["event"].startswith("heal")]


def _container_id() -> Optional[str]:
    found = inspect("ecs-agent")
    if found and found["State"]["Running"]:
        return str(found["Id"])
    return None


def _started_at(container: dict[str, Any]) -> float:
    """The container's State.StartedAt as epoch seconds (Docker writes nanoseconds)."""
    text = str(container["State"]["StartedAt"])
    whole, _, frac = text.rstrip("Z").partition(".")
    stamp = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp() + float("0." + (frac or "0"))


def _load_v1(prefix: str, standin_dir: str, variant: str = "v1") -> None:
    install_tarball(prefix, os.path.join(standin_dir, f"ecs-agent-{variant}.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0


def _settings(timeout: float = TIMEOUT, **extra: str) -> dict[str, str]:
    return {"ECS_INIT_HEALTH_INTERVAL": str(INTERVAL), "ECS_INIT_HEALTH_TIMEOUT": str(timeout), **extra}


def test_a_hung_agent_is_restarted_and_answers_again(prefix: str, standin_dir: str, docker_lock: None) -> None:
    _load_v1(prefix, standin_dir)
    with Supervised(prefix, **_settings()) as sup:
        assert wait_metadata(30), sup.text()
        first = _container_id()
        assert first, sup.text()
        time.sleep(INTERVAL * 1.5)  # the monitor has seen it answer
        _touch(_data(prefix, "standin-hang-once"))
        hung_at = time.monotonic()
        assert wait_until(lambda: metadata(timeout=0.5) is None, timeout=5), "the stand-in kept answering"
        assert _container_id() == first  # hung, not gone

        assert wait_until(lambda: HEAL_LINE in sup.text(), timeout=TIMEOUT + INTERVAL + 20), sup.text()
        healed_after = time.monotonic() - hung_at
        assert sup.proc.poll() is None, sup.text()
        assert wait_until(lambda: _container_id() not in (None, first), timeout=20), sup.text()
        assert wait_metadata(20), sup.text()  # the new agent answers
        restarted_after = time.monotonic() - hung_at
        assert sup.proc.poll() is None, sup.text()
        print(f"hung -> heal {healed_after:.2f}s, hung -> answering again {restarted_after:.2f}s")
        # Silent since at most the hang; the probe at the deadline waits one interval at most.
        assert healed_after <= TIMEOUT + INTERVAL + SLACK, (healed_after, sup.text())
        assert healed_after >= TIMEOUT - INTERVAL, healed_after  # never early

        time.sleep(INTERVAL * 3)  # the new agent answers: left alone
        heals = [e for e in _events(prefix) if e["event"] == "heal"]
        assert len(heals) == 1 and heals[0]["container_id"] == first, _events(prefix)
        assert heals[0]["reason"].endswith("does not answer within 1s")
        status = run_cli(prefix, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        supervisor = doc["supervisor"]
        assert (supervisor["alive"], supervisor["restarts"], supervisor["last_exit_code"], supervisor["state"]) == (
            True,
            1,
            -3,
            "running",
        ), supervisor
        assert doc["last_event"]["event"] == "heal"
        assert sup.text().count(HEAL_LINE) == 1
        assert sup.terminate() == 0


def test_with_healing_off_a_hung_agent_is_left_alone(prefix: str, standin_dir: str, docker_lock: None) -> None:
    _load_v1(prefix, standin_dir)
    with Supervised(prefix, **_settings(timeout=0)) as sup:
        assert wait_metadata(30), sup.text()
        first = _container_id()
        _touch(_data(prefix, "standin-hang-once"))
        assert wait_until(lambda: metadata(timeout=0.5) is None, timeout=5)
        time.sleep(TIMEOUT + 2 * INTERVAL + 1)
        assert _container_id() == first and metadata(timeout=0.5) is None
        assert sup.proc.poll() is None
        assert _heal_events(prefix) == [] and HEAL_LINE not in sup.text()
        assert "healing a hung agent is off (ECS_INIT_HEALTH_TIMEOUT=0)" in sup.text()
        assert sup.terminate() == 0


@pytest.mark.slow
def test_an_agent_that_never_answers_first_gets_the_readiness_timeout(
    prefix: str, standin_dir: str, docker_lock: None
) -> None:
    ready = 3.0
    _load_v1(prefix, standin_dir)
    never = _data(prefix, "standin-hang")
    _touch(never)
    with Supervised(prefix, **_settings(timeout=2, ECS_INIT_READY_TIMEOUT=str(ready))) as sup:
        assert wait_until(_container_id, timeout=30), sup.text()
        container = inspect("ecs-agent")
        assert container is not None
        assert wait_until(lambda: HEAL_LINE in sup.text(), timeout=ready + 2 + 20), sup.text()
        seen = time.time()
        os.unlink(never)  # the next run answers
        after_start = seen - _started_at(container)
        print(f"a never-answering agent was healed {after_start:.2f}s after its container started")
        assert ready + 2 <= after_start <= ready + 2 + INTERVAL + SLACK, (after_start, sup.text())
        assert wait_metadata(30), sup.text()
        assert [e["event"] for e in _heal_events(prefix)] == ["heal"]
        assert sup.terminate() == 0


@pytest.mark.slow
def test_docker_reporting_the_agent_unhealthy_heals_it(prefix: str, standin_dir: str, docker_lock: None) -> None:
    _load_v1(prefix, standin_dir, variant="health")
    with Supervised(prefix, **_settings(timeout=3)) as sup:
        assert wait_metadata(30), sup.text()
        first = _container_id()
        unhealthy = _data(prefix, "standin-unhealthy")
        _touch(unhealthy)
        state = lambda: (inspect("ecs-agent") or {}).get("State", {}).get("Health", {}).get("Status")  # noqa: E731
        assert wait_until(lambda: state() == "unhealthy", timeout=20), inspect("ecs-agent")
        assert metadata() is not None  # the endpoint itself still answers
        assert wait_until(lambda: HEAL_LINE in sup.text(), timeout=3 + INTERVAL + 20), sup.text()
        os.unlink(unhealthy)
        assert wait_until(lambda: _container_id() not in (None, first), timeout=20), sup.text()
        assert wait_until(lambda: state() == "healthy", timeout=20), inspect("ecs-agent")
        [event] = _heal_events(prefix)
        assert (event["event"], event["reason"]) == ("heal", "Docker's health check reports it unhealthy")
        assert sup.terminate() == 0
