"""Healing a hung agent and the watchdog heartbeat (issue 22 item 1, issue 15 item 5).

First the health monitor alone, one tick at a time on a fake clock against
the shared FakeEngine: when it heals, what it records, how a failed heal is
retried and reported. Then the real Supervisor with the monitor's thread
(small intervals, a FakeEngine whose waits last until the container is
stopped): a hung agent is stopped and started again, the restart counted;
with healing off it is left alone. Last the systemd watchdog against a real
AF_UNIX datagram listener: WATCHDOG=1 stops when the supervision loop stalls
and when healing fails, and comes back when it makes progress again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Callable, Iterator, Optional

import pytest
from fakes import LATEST, FakeEngine
from notify_listener import Listener

from ecs_init.agent import health, notify
from ecs_init.agent.events import events_path
from ecs_init.agent.healer import HealthMonitor
from ecs_init.agent.health import HEAL_LIMIT, HealthPolicy, Heartbeat
from ecs_init.agent.identity import AGENT_NAME
from ecs_init.agent.policy import EXIT_HEALED, UpgradeWatch
from ecs_init.agent.supervisor import Supervisor
from ecs_init.core.backoff import Backoff
from ecs_init.core.config import Config, Paths
from ecs_init.docker.errors import EngineUnavailable
from ecs_init.host.context import HostContext

IMAGE = "sha256:" + "e" * 64
OTHER = "sha256:" + "f" * 64


def make_ctx(root: str, fake: FakeEngine, **environ: str) -> HostContext:
    paths = Paths(prefix=root)
    for d in (paths.cache_dir, paths.instance_config_dir, paths.run_dir):
        os.makedirs(d, exist_ok=True)
    return HostContext(cfg=Config.load(environ=environ, paths=paths), docker_factory=lambda: fake)


def events(ctx: HostContext) -> list[dict[str, Any]]:
    try:
        with open(events_path(ctx)) as fh:
            return list(json.load(fh))
    except FileNotFoundError:
        return []


def kinds(ctx: HostContext) -> list[str]:
    return [e["event"] for e in events(ctx)]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return predicate()


# ------------------------------------------------------------ the monitor, tick by tick


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MonitorRig:
    def __init__(self, root: str) -> None:
        policy = HealthPolicy(interval=30, timeout=300, ready_timeout=120)
        self.fake = FakeEngine()
        self.fake.add_image(IMAGE, LATEST)
        self.ctx = make_ctx(root, self.fake)
        self.clock = Clock()
        self.answers = True
        self.reports: list[tuple[str, dict[str, Any]]] = []
        self.stopping = threading.Event()
        self.monitor = HealthMonitor(
            self.ctx,
            policy,
            self.stopping,
            lambda state, **info: self.reports.append((state, info)),
            url="http://agent.invalid/v1/metadata",
            probe=lambda _url, _timeout: self.answers,
            clock=self.clock,
        )

    def run_agent(self) -> str:
        self.fake.remove_container(AGENT_NAME)
        cid = self.fake.create_container(AGENT_NAME, {"Image": LATEST})
        self.fake.start_container(AGENT_NAME)
        self.monitor.listener("running", {"container_id": cid})
        return cid

    def tick_at(self, now: float) -> float:
        self.clock.now = now
        return self.monitor.tick()


@pytest.fixture
def mrig(tmp_path: Any) -> MonitorRig:
    return MonitorRig(str(tmp_path / "root"))


def test_monitor_heals_once_the_agent_is_silent_for_the_timeout(
    mrig: MonitorRig, caplog: pytest.LogCaptureFixture
) -> None:
    cid = mrig.run_agent()
    assert mrig.tick_at(1001) == 30  # answered: next probe in one interval
    mrig.answers = False
    with caplog.at_level(logging.INFO, logger="ecs_init.agent.supervisor"):
        assert mrig.tick_at(1031) == 30
        assert mrig.tick_at(1290) == 11  # the next probe falls on the deadline (1001 + 300)
        assert "stop_container" not in mrig.fake.calls
        mrig.tick_at(1301)
    assert mrig.fake.calls.count("stop_container") == 1
    assert not mrig.fake.containers[AGENT_NAME]["State"]["Running"]
    [event] = events(mrig.ctx)
    assert (event["event"], event["container_id"], event["unhealthy_seconds"]) == ("heal", cid, 300)
    assert event["reason"] == "http://agent.invalid/v1/metadata does not answer within 5s"
    assert mrig.reports == [("healing", {"reason": event["reason"]})]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("restarting it unless it recovers within 270s" in line for line in lines) == 1  # warned once
    assert sum("stopping it to restart it (ECS_INIT_HEALTH_TIMEOUT=300)" in line for line in lines) == 1
    assert mrig.monitor.take_heal(cid) and not mrig.monitor.take_heal(cid)  # taken once
    assert mrig.monitor.healing_failed() is None


def test_monitor_recovery_cancels_the_count(mrig: MonitorRig, caplog: pytest.LogCaptureFixture) -> None:
    mrig.run_agent()
    mrig.tick_at(1001)
    mrig.answers = False
    mrig.tick_at(1200)
    mrig.answers = True
    with caplog.at_level(logging.INFO, logger="ecs_init.agent.supervisor"):
        mrig.tick_at(1290)
    assert "the agent is healthy again" in caplog.text
    mrig.answers = False
    mrig.tick_at(1310)
    assert "stop_container" not in mrig.fake.calls and kinds(mrig.ctx) == []


def test_docker_reporting_unhealthy_counts_as_a_failed_probe(mrig: MonitorRig) -> None:
    cid = mrig.run_agent()
    mrig.tick_at(1001)
    mrig.fake.containers[AGENT_NAME]["State"]["Health"] = {"Status": "unhealthy"}
    mrig.tick_at(1031)  # the endpoint answers, Docker says unhealthy
    mrig.tick_at(1301)
    assert mrig.fake.calls.count("stop_container") == 1
    assert events(mrig.ctx)[0]["reason"] == "Docker's health check reports it unhealthy"
    assert mrig.monitor.take_heal(cid)


def test_docker_health_of_another_container_or_healthy_does_not_count(mrig: MonitorRig) -> None:
    mrig.run_agent()
    mrig.tick_at(1001)
    mrig.fake.containers[AGENT_NAME]["State"]["Health"] = {"Status": "healthy"}
    mrig.tick_at(1200)
    mrig.fake.containers[AGENT_NAME]["Id"] = "someone-else"
    mrig.fake.containers[AGENT_NAME]["State"]["Health"] = {"Status": "unhealthy"}
    mrig.tick_at(1400)
    assert "stop_container" not in mrig.fake.calls


def test_a_never_answering_agent_gets_the_readiness_timeout_first(mrig: MonitorRig) -> None:
    mrig.answers = False
    mrig.clock.now = 1000
    mrig.run_agent()  # started at 1000: heal due at 1000 + 120 + 300
    assert mrig.tick_at(1000.5) == health.FIRST_ANSWER_POLL
    mrig.tick_at(1419)
    assert "stop_container" not in mrig.fake.calls
    mrig.tick_at(1420)
    assert mrig.fake.calls.count("stop_container") == 1


def test_a_failed_heal_is_reported_retried_and_recorded_once(
    mrig: MonitorRig, caplog: pytest.LogCaptureFixture
) -> None:
    cid = mrig.run_agent()
    mrig.tick_at(1001)
    mrig.answers = False
    mrig.fake.fail("stop_container", EngineUnavailable("Docker at x does not answer: no answer within 30s"))
    with caplog.at_level(logging.INFO, logger="ecs_init.agent.supervisor"):
        mrig.tick_at(1301)
        assert mrig.monitor.healing_failed() == (
            "the agent is unhealthy and stopping it failed: Docker at x does not answer: no answer within 30s"
        )
        mrig.tick_at(1331)  # retried at the next interval
        mrig.tick_at(1361)
    assert mrig.fake.calls.count("stop_container") == 3
    assert kinds(mrig.ctx) == ["heal", "heal-failed"]  # one of each, not one per attempt
    assert sum("trying again to stop container" in r.getMessage() for r in caplog.records) == 2
    mrig.fake.heal("stop_container")
    mrig.tick_at(1391)
    assert not mrig.fake.containers[AGENT_NAME]["State"]["Running"]
    assert mrig.monitor.healing_failed() is None  # stopped at last
    mrig.monitor.listener("backoff", {})  # the loop saw the exit
    assert mrig.monitor.take_heal(cid)


def test_a_heal_whose_container_keeps_running_fails_after_the_limit(mrig: MonitorRig) -> None:
    mrig.run_agent()
    mrig.tick_at(1001)
    mrig.answers = False
    original_stop = mrig.fake.stop_container
    mrig.fake.stop_container = lambda name, grace=10, timeout=None: True  # type: ignore[method-assign]
    mrig.tick_at(1301)
    assert mrig.monitor.healing_failed() is None  # the stop was asked for; give it HEAL_LIMIT
    mrig.clock.now = 1301 + HEAL_LIMIT + 1
    assert mrig.monitor.healing_failed() == (
        f"the agent is unhealthy and its container still runs {HEAL_LIMIT + 1:.0f}s after it was stopped"
    )
    mrig.fake.stop_container = original_stop  # type: ignore[method-assign]
    mrig.tick_at(1301 + HEAL_LIMIT + 2)  # retried
    assert not mrig.fake.containers[AGENT_NAME]["State"]["Running"]
    assert kinds(mrig.ctx) == ["heal", "heal-failed"]
    assert events(mrig.ctx)[1]["reason"] == f"the container still runs {HEAL_LIMIT + 2:.0f}s after it was stopped"
    assert mrig.monitor.healing_failed() is None  # this stop worked: the loop has HEAL_LIMIT to see the exit


def test_no_heal_when_the_container_already_exited_or_while_stopping(mrig: MonitorRig) -> None:
    mrig.run_agent()
    mrig.tick_at(1001)
    mrig.answers = False
    mrig.fake.exit(AGENT_NAME, 1)  # exited just now; the supervisor has not reported it yet
    mrig.tick_at(1301)
    assert "stop_container" not in mrig.fake.calls and kinds(mrig.ctx) == []
    assert mrig.monitor.healing_failed() is None
    mrig.run_agent()
    mrig.tick_at(1302)
    mrig.stopping.set()  # SIGTERM: no more probes, no heal
    probes_before = len(mrig.fake.calls)
    mrig.tick_at(2000)
    assert "stop_container" not in mrig.fake.calls and len(mrig.fake.calls) == probes_before


def test_other_states_pause_the_monitor_and_a_reattach_resumes_it(mrig: MonitorRig) -> None:
    cid = mrig.run_agent()
    mrig.tick_at(1001)
    mrig.answers = False
    mrig.tick_at(1100)
    mrig.monitor.listener("docker-lost", {})
    mrig.tick_at(1400)  # paused: no probe, no heal
    assert "stop_container" not in mrig.fake.calls
    mrig.clock.now = 1500
    mrig.monitor.listener("running", {"container_id": cid, "reattached": True})
    mrig.tick_at(1501)
    mrig.tick_at(1799)
    assert "stop_container" not in mrig.fake.calls  # the outage's silence did not count
    mrig.tick_at(1800)
    assert mrig.fake.calls.count("stop_container") == 1


def test_the_monitor_thread_outlives_a_failing_tick(root: str, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeEngine()
    calls: list[float] = []

    def probe(_url: str, _timeout: float) -> bool:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("boom")
        return True

    monitor = HealthMonitor(
        make_ctx(root, fake), HealthPolicy(interval=0.05, timeout=10), threading.Event(), lambda *_a, **_k: None,
        probe=probe,
    )  # fmt: skip
    monitor.listener("running", {"container_id": "c"})
    monitor.start()
    try:
        with caplog.at_level(logging.ERROR, logger="ecs_init.agent.supervisor"):
            assert wait_for(lambda: len(calls) >= 3)
        assert "the agent's health monitor failed: RuntimeError('boom'); probing again in 0.05s" in caplog.text
    finally:
        monitor.close()


# ------------------------------------------------------------ the supervisor with the monitor's thread


class Rig:
    """A Supervisor on a FakeEngine whose waits last until the container stops; a fake probe."""

    def __init__(self, root: str, **environ: str) -> None:
        self.fake = FakeEngine()
        self.fake.hold_waits = True
        self.fake.add_image(IMAGE, LATEST)
        self.ctx = make_ctx(root, self.fake, **environ)
        self.sup = Supervisor(self.ctx)
        self.sup.backoff = Backoff(0.0, 0.0, 0.0)
        self.hung: set[str] = set()  # container IDs that do not answer
        self.probes = 0
        if self.sup.health is not None:
            self.sup.health.probe = self.probe
        self.states: list[str] = []
        self.sup.listeners.append(lambda state, doc: self.states.append(state))
        self.result: Optional[int] = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def probe(self, _url: str, _timeout: float) -> bool:
        self.probes += 1
        return self.current() not in self.hung

    def current(self) -> str:
        return str(self.fake.containers.get(AGENT_NAME, {}).get("Id", ""))

    def _run(self) -> None:
        self.result = self.sup.run()

    def start(self) -> Rig:
        self.thread.start()
        assert wait_for(lambda: self.current() and "running" in self.states)
        return self

    def shutdown(self) -> int:
        """What SIGTERM does, without the signal."""
        self.sup.stopping.set()
        self.fake.stop_container(AGENT_NAME)
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.result is not None
        return self.result


@pytest.fixture
def root(tmp_path: Any) -> Iterator[str]:
    yield str(tmp_path / "root")


def test_a_hung_agent_is_stopped_and_started_again(root: str) -> None:
    rig = Rig(root, ECS_INIT_HEALTH_INTERVAL="0.1", ECS_INIT_HEALTH_TIMEOUT="0.5").start()
    try:
        first = rig.current()
        assert wait_for(lambda: rig.probes >= 2)  # answering: left alone
        assert "stop_container" not in rig.fake.calls
        hung_at = time.monotonic()
        rig.hung.add(first)
        assert wait_for(lambda: rig.current() not in ("", first) and rig.states[-1] == "running")
        took = time.monotonic() - hung_at
        assert 0.4 <= took < 0.5 + 0.1 + 2.0, took  # the timeout, at most one interval more (and slack)
        second = rig.current()
        probes = rig.probes
        assert wait_for(lambda: rig.probes >= probes + 3)
        assert rig.current() == second  # the new agent answers: left alone
        assert kinds(rig.ctx) == ["heal"]
        assert rig.sup.restarts == 1 and rig.sup.last_exit == EXIT_HEALED
        assert rig.states.count("healing") == 1 and rig.states.index("healing") < rig.states.index("backoff")
        with open(rig.ctx.paths.supervisor_state) as fh:
            doc = json.load(fh)
        assert (doc["state"], doc["restarts"], doc["last_exit_code"]) == ("running", 1, EXIT_HEALED)
    finally:
        assert rig.shutdown() == 0
    assert rig.fake.calls.count("stop_container") == 2  # the heal, then the shutdown


def test_with_healing_off_a_hung_agent_is_left_alone(root: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        rig = Rig(root, ECS_INIT_HEALTH_INTERVAL="0.1", ECS_INIT_HEALTH_TIMEOUT="0")
    assert rig.sup.health is None
    assert "healing a hung agent is off (ECS_INIT_HEALTH_TIMEOUT=0)" in caplog.text
    rig.start()
    try:
        rig.hung.add(rig.current())
        time.sleep(1.0)
        assert rig.probes == 0 and "stop_container" not in rig.fake.calls
        assert rig.sup.restarts == 0 and kinds(rig.ctx) == []
        assert rig.sup.stalled() is None
    finally:
        assert rig.shutdown() == 0


def test_a_heal_counts_against_an_upgrade_only_while_it_is_watched(root: str) -> None:
    rig = Rig(root, ECS_INIT_HEALTH_INTERVAL="0.1", ECS_INIT_HEALTH_TIMEOUT="0.3", ECS_INIT_ROLLBACK_WINDOW="300")
    rig.fake.add_image(OTHER)
    rig.sup.watch = UpgradeWatch(previous_image=OTHER, new_image=IMAGE, started=rig.sup.clock())
    rig.start()
    try:
        first = rig.current()
        assert wait_for(lambda: rig.probes >= 2)  # it answered: healed after the health timeout alone
        rig.hung.add(first)
        assert wait_for(lambda: rig.current() not in ("", first) and rig.sup.restarts == 1)
        assert rig.sup.watch is not None and len(rig.sup.watch.failures) == 1  # just upgraded: it counts
    finally:
        rig.shutdown()
    proven = Rig(root + "2", ECS_INIT_HEALTH_INTERVAL="0.1", ECS_INIT_HEALTH_TIMEOUT="0.3")
    proven.sup.rollback_window = 0.0  # the upgrade has proved itself by the time of the heal
    proven.sup.watch = UpgradeWatch(previous_image=OTHER, new_image=IMAGE, started=proven.sup.clock() - 1)
    proven.start()
    try:
        first = proven.current()
        assert wait_for(lambda: proven.probes >= 2)
        proven.hung.add(first)
        assert wait_for(lambda: proven.current() not in ("", first) and proven.sup.restarts == 1)
        assert proven.sup.watch is None  # no longer watched: the heal was not counted
        assert "rollback" not in kinds(proven.ctx)
    finally:
        proven.shutdown()


def test_sigterm_while_the_monitor_waits_ends_it_at_once(root: str) -> None:
    rig = Rig(root, ECS_INIT_HEALTH_INTERVAL="3600", ECS_INIT_HEALTH_TIMEOUT="300").start()
    monitor = rig.sup.health
    assert monitor is not None and monitor._thread is not None
    started = time.monotonic()
    assert rig.shutdown() == 0
    monitor._thread.join(5)
    assert not monitor._thread.is_alive()
    assert time.monotonic() - started < 3


# ------------------------------------------------------------ the systemd watchdog


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


def pings(listener: Listener, seconds: float) -> int:
    return listener.messages(seconds).count("WATCHDOG=1")


def watchdog_for(rig: Rig, listener: Listener) -> notify.SupervisorNotifier:
    hooked = notify.SupervisorNotifier(
        notify.Notifier({"NOTIFY_SOCKET": listener.env_value}),
        watchdog=0.05,
        probe=lambda _url: True,
        stalled=rig.sup.stalled,
    )
    rig.sup.listeners.append(hooked.listener)
    return hooked


def test_the_watchdog_is_fed_while_the_loop_waits_and_stops_when_it_stalls(
    root: str, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(root, ECS_INIT_HEALTH_TIMEOUT="0")
    rig.sup.heartbeat = Heartbeat(lease=0.4)
    hooked = watchdog_for(rig, listener)
    release = threading.Event()
    real_create = rig.fake.create_container
    creates = 0

    def create(name: str, body: Any) -> str:
        nonlocal creates
        creates += 1
        if creates == 2:
            release.wait(30)  # the second create never returns: the loop is stuck
        return real_create(name, body)

    rig.fake.create_container = create  # type: ignore[method-assign]
    rig.start()
    try:
        # Waiting for the container (the wait beats after each answered ping): fed.
        assert pings(listener, 1.0) >= 10
        with caplog.at_level(logging.INFO, logger="ecs_init.agent.notify"):
            rig.fake.exit(AGENT_NAME, 1)  # the agent crashes; the restart's create hangs
            assert wait_for(lambda: creates == 2)
            time.sleep(0.6)  # the lease runs out
            listener.messages(0.1)  # drop what was in flight
            assert pings(listener, 0.8) == 0
            assert "not feeding the systemd watchdog: the supervision loop made no progress for" in caplog.text
            release.set()
            assert wait_for(lambda: rig.states[-1] == "running")
            assert pings(listener, 0.8) >= 5  # progress again: fed again
        assert "feeding the systemd watchdog again" in caplog.text
    finally:
        release.set()
        rig.shutdown()
        hooked.close()


def test_the_watchdog_starves_while_the_agent_is_unhealthy_and_healing_fails(
    root: str, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(root, ECS_INIT_HEALTH_INTERVAL="0.1", ECS_INIT_HEALTH_TIMEOUT="0.3")
    hooked = watchdog_for(rig, listener)
    rig.start()
    try:
        assert pings(listener, 0.5) >= 5
        assert wait_for(lambda: rig.probes >= 2)  # it answered
        rig.fake.fail("stop_container", EngineUnavailable("Docker at x does not answer: no answer within 30s"))
        with caplog.at_level(logging.INFO):
            rig.hung.add(rig.current())
            assert wait_for(lambda: "heal-failed" in kinds(rig.ctx))
            listener.messages(0.1)
            assert pings(listener, 0.8) == 0  # the loop itself still beats: the heal failing starves it
            assert rig.sup.heartbeat.fresh()
            assert "not feeding the systemd watchdog: the agent is unhealthy and stopping it failed" in caplog.text
            rig.fake.heal("stop_container")  # the next retry works; the agent is started again
            assert wait_for(lambda: rig.sup.restarts == 1 and rig.states[-1] == "running")
            assert pings(listener, 0.8) >= 5
        assert kinds(rig.ctx) == ["heal", "heal-failed"]
    finally:
        rig.shutdown()
        hooked.close()
