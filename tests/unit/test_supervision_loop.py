"""The supervision loop (SPEC §5) driven through the shared FakeEngine with a fake clock.

No Docker and no waiting: the clock moves only when the agent "runs" (each
exit advances it by the uptime the test gives) or the supervisor pauses
between restarts (``pause`` records the delay and advances the clock).
Covered: the backoff and its reset after a healthy uptime and after a
Docker loss, the restart count in the status file, the stop path (during a
backoff and by SIGTERM), terminal and clean exits, the upgrade on 42, and
the rollback with both its ``rollback`` and ``rollback-failed`` events.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import re
import signal
import threading
import time
from typing import Any, Optional

import pytest
from fakes import LATEST, FakeEngine, tarball_text

from ecs_init.agent import stop as agent_stop
from ecs_init.agent.events import events_path, rolled_back_images
from ecs_init.agent.healer import HealthMonitor
from ecs_init.agent.health import HealthPolicy
from ecs_init.agent.policy import EXIT_HEALED
from ecs_init.agent.supervisor import EXIT_DOCKER_LOST, MAX_START_FAILURES, Supervisor
from ecs_init.core.backoff import Backoff
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError, TerminalExit
from ecs_init.core.paths import Paths
from ecs_init.docker.errors import EngineError, EngineUnavailable, NotFound
from ecs_init.host.context import HostContext

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64
TARBALL = "ecs-agent-v1.106.0.tar"


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loop:
    """A supervisor over a FakeEngine, a fake clock and a fake pause, under a temporary root."""

    def __init__(self, root: str, **env: str) -> None:
        self.paths = Paths(prefix=root)
        for d in (self.paths.cache_dir, self.paths.instance_config_dir, self.paths.run_dir):
            os.makedirs(d, exist_ok=True)
        self.fake = FakeEngine()
        self.fake.add_image(OLD, LATEST)
        self.fake.on_exit = self._exited
        self.clock = Clock()
        self.uptimes: list[float] = []  # how long each run of the agent lasts (then 1 s)
        self.delays: list[float] = []  # every pause between restarts
        self.stop_at_pause: Optional[int] = None  # stop supervising during this pause (1-based)
        self.exits = 0
        self.ctx = HostContext(cfg=Config.load(environ=dict(env), paths=self.paths), docker_factory=lambda: self.fake)
        self.sup = Supervisor(self.ctx, clock=self.clock, pause=self._pause)
        self.sup.backoff = Backoff(0.5, 15.0, 0.0)  # the real steps, without jitter
        self.states: list[tuple[str, dict[str, Any]]] = []
        self.sup.listeners.append(lambda state, doc: self.states.append((state, dict(doc))))

    def _exited(self, code: int) -> None:
        self.exits += 1
        self.clock.now += self.uptimes.pop(0) if self.uptimes else 1.0

    def _pause(self, delay: float) -> bool:
        self.delays.append(delay)
        self.clock.now += delay
        if self.stop_at_pause == len(self.delays):
            self.sup.stopping.set()
        return self.sup.stopping.is_set()

    def desire(self, image: str, name: str = TARBALL) -> None:
        with open(os.path.join(self.paths.cache_dir, name), "w") as fh:
            fh.write(tarball_text(image))
        with open(self.paths.desired_image, "w") as fh:
            fh.write(name + "\n")

    def cache(self, image: str) -> None:
        with open(self.paths.cache_tarball, "w") as fh:
            fh.write(tarball_text(image))

    def events(self) -> list[dict[str, Any]]:
        try:
            with open(events_path(self.ctx)) as fh:
                found: list[dict[str, Any]] = json.load(fh)
        except FileNotFoundError:
            return []
        for event in found:
            del event["time"]
        return found

    def status(self) -> dict[str, Any]:
        with open(self.paths.supervisor_state) as fh:
            doc: dict[str, Any] = json.load(fh)
        return doc

    def names(self) -> list[str]:
        return [state for state, _ in self.states]


@pytest.fixture
def loop(tmp_path: Any) -> Loop:
    return Loop(str(tmp_path / "root"))


# ---------------------------------------------------------------- backoff, restarts, clean stop


def test_backoff_doubles_and_restarts_at_the_start_after_a_healthy_uptime(loop: Loop) -> None:
    loop.fake.exit_codes = [1, 1, 1, 1, 137, 0]
    loop.uptimes = [1, 1, 60.0, 59.9, 1, 1]  # 60 s is healthy (>= ECS_INIT_BACKOFF_RESET_SECONDS); 59.9 is not
    assert loop.sup.run() == 0
    assert loop.delays == [0.5, 1.0, 0.5, 1.0, 2.0]
    assert loop.fake.calls.count("create_container") == 6
    assert loop.sup.restarts == 5 and loop.sup.last_exit == 0


def test_the_reset_uptime_comes_from_the_configuration(tmp_path: Any) -> None:
    loop = Loop(str(tmp_path), ECS_INIT_BACKOFF_RESET_SECONDS="10")
    loop.fake.exit_codes = [1, 1, 1, 0]
    loop.uptimes = [1, 10, 9.5]
    assert loop.sup.run() == 0
    assert loop.delays == [0.5, 0.5, 1.0]


def test_states_restart_count_and_status_file(loop: Loop) -> None:
    loop.fake.exit_codes = [3, 1, 0]
    assert loop.sup.run() == 0
    assert loop.names() == ["starting", "running", "backoff", "running", "backoff", "running", "stopped"]
    backoffs = [doc for state, doc in loop.states if state == "backoff"]
    assert [(d["restarts"], d["exit_code"], d["last_exit_code"], d["delay"]) for d in backoffs] == [
        (1, 3, 3, 0.5),
        (2, 1, 1, 1.0),
    ]
    status = loop.status()  # what `status` shows
    assert (status["state"], status["exit_code"], status["restarts"], status["last_exit_code"]) == ("stopped", 0, 2, 0)
    assert status["container_id"] == loop.fake.containers["ecs-agent"]["Id"]
    assert status["upgrade"] is None and status["pid"] == os.getpid()


def test_terminal_exit_is_reported_and_ends_supervision(loop: Loop) -> None:
    loop.fake.exit_codes = [1, 5]
    with pytest.raises(TerminalExit) as err:
        loop.sup.run()
    assert str(err.value) == "the agent exited with code 5 (terminal): not restarting it"
    assert loop.names()[-1] == "terminal" and loop.states[-1][1]["exit_code"] == 5
    assert loop.status()["state"] == "terminal" and loop.sup.restarts == 1


# ---------------------------------------------------------------- a lost Docker daemon


def _lose_docker_after(loop: Loop, exits: int, error: Exception) -> None:
    """The wait after ``exits`` exits fails with ``error``; while Docker is away the container goes."""

    def exited(code: int) -> None:
        Loop._exited(loop, code)
        if loop.exits == exits:
            loop.fake.fail("wait_container", error, times=1)  # type: ignore[arg-type]

    def gone(state: str, _doc: dict[str, Any]) -> None:
        if state == "docker-lost":
            loop.fake.containers.pop("ecs-agent", None)

    loop.fake.on_exit = exited
    loop.sup.listeners.append(gone)


def test_backoff_restarts_at_the_start_after_docker_was_lost(loop: Loop) -> None:
    """A Docker outage is not the agent's failure: the next restart waits only the first step."""
    loop.fake.exit_codes = [1, 1, 0]
    _lose_docker_after(loop, 2, EngineUnavailable("Docker daemon at unix:///run/fake-docker.sock does not answer"))
    assert loop.sup.run() == 0
    assert loop.delays == [0.5, 1.0, 0.5]
    backoffs = [doc for state, doc in loop.states if state == "backoff"]
    assert [d["exit_code"] for d in backoffs] == [1, 1, EXIT_DOCKER_LOST]
    assert "docker-lost" in loop.names() and loop.sup.restarts == 3


def test_a_container_that_disappeared_is_a_docker_loss(loop: Loop) -> None:
    loop.fake.exit_codes = [1, 1, 0]
    _lose_docker_after(loop, 2, NotFound("No such container: ecs-agent", 404))
    assert loop.sup.run() == 0
    assert loop.delays == [0.5, 1.0, 0.5]


def test_a_docker_loss_does_not_count_against_an_upgrade(loop: Loop) -> None:
    loop.desire(NEW)
    loop.fake.exit_codes = [42, 1, 1, 0]
    _lose_docker_after(loop, 3, EngineUnavailable("gone"))
    assert loop.sup.run() == 0
    assert loop.sup.watch is not None and len(loop.sup.watch.failures) == 2  # the outage is not a third
    assert [e["event"] for e in loop.events()] == ["upgrade"]


# ---------------------------------------------------------------- stopping


def test_stop_during_a_backoff_ends_supervision_at_once(loop: Loop) -> None:
    loop.fake.exit_codes = [1, 1, 1]
    loop.stop_at_pause = 2
    assert loop.sup.run() == 0
    assert loop.delays == [0.5, 1.0] and loop.fake.calls.count("create_container") == 2
    assert loop.names()[-1] == "stopped" and loop.states[-1][1]["exit_code"] == 0
    assert loop.status()["state"] == "stopped" and loop.sup.restarts == 2


def test_sigterm_stops_the_agent_and_supervision(loop: Loop) -> None:
    """The signal handler stops the agent from another thread; the loop waits for it, then reports stopped."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def exited(code: int) -> None:
        Loop._exited(loop, code)
        os.kill(os.getpid(), signal.SIGTERM)  # while the agent "exits": as when systemd stops the service

    loop.fake.on_exit = exited
    loop.fake.exit_codes = [143]
    try:
        loop.sup.install_signal_handlers()
        assert loop.sup.run() == 0
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert loop.sup.stopping.is_set() and loop.sup._stop_thread is not None
    assert not loop.sup._stop_thread.is_alive()  # joined before the loop returned
    assert "stop_container" in loop.fake.calls
    assert loop.delays == [] and loop.sup.last_exit is None  # the exit was not taken for a crash
    assert loop.names()[-1] == "stopped" and loop.fake.calls.count("create_container") == 1


# ---------------------------------------------------------------- upgrade and rollback


def test_upgrade_restarts_at_once_with_the_new_image(loop: Loop) -> None:
    loop.desire(NEW)
    loop.fake.exit_codes = [1, 42, 0]
    assert loop.sup.run() == 0
    assert loop.delays == [0.5]  # no backoff for an upgrade
    assert loop.sup.restarts == 2 and loop.fake.tags[LATEST] == NEW
    assert loop.fake.containers["ecs-agent"]["Image"] == NEW
    assert loop.events() == [{"event": "upgrade", "previous": OLD, "new": NEW, "tarball": TARBALL}]
    upgrade = loop.status()["upgrade"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", upgrade.pop("started_at"))  # wall clock, never monotonic
    assert upgrade == {"previous_image": OLD, "new_image": NEW, "failures": 0, "last_failure_at": None}


def test_failed_upgrade_backs_off_with_the_image_it_had(loop: Loop) -> None:
    with open(loop.paths.desired_image, "w") as fh:
        fh.write("../../etc/passwd\n")
    loop.fake.exit_codes = [42, 0]
    assert loop.sup.run() == 0
    assert loop.delays == [0.5] and loop.fake.tags[LATEST] == OLD
    assert [e["event"] for e in loop.events()] == ["upgrade-failed"]


def test_rollback_after_three_failures_then_the_same_image_is_refused(loop: Loop) -> None:
    loop.desire(NEW)
    loop.fake.exit_codes = [42, 1, 1, 1, 42, 0]
    assert loop.sup.run() == 0
    # the upgrade resets the backoff; the rollback resets it again
    assert loop.delays == [0.5, 1.0, 0.5, 1.0]
    assert loop.events() == [
        {"event": "upgrade", "previous": OLD, "new": NEW, "tarball": TARBALL},
        {
            "event": "rollback",
            "failed_image": NEW,
            "restored_image": OLD,
            "last_exit_code": 1,
            "how": f"re-tagged the previous image {OLD[:19]}",
        },
        {"event": "upgrade-refused", "image": NEW, "tarball": TARBALL, "kept": OLD},
    ]
    assert loop.fake.tags[LATEST] == OLD and loop.fake.containers["ecs-agent"]["Image"] == OLD
    assert loop.sup.watch is None and loop.sup.restarts == 5


def test_rollback_from_the_cached_tarball_when_the_old_image_is_gone(loop: Loop) -> None:
    loop.desire(NEW)
    loop.cache(OLD)
    loop.fake.exit_codes = [42, 1, 1, 1, 0]

    def prune(state: str, _doc: dict[str, Any]) -> None:
        if state == "running" and loop.fake.tags.get(LATEST) == NEW:
            loop.fake.images.discard(OLD)  # the old image was pruned after the upgrade

    loop.sup.listeners.append(prune)
    assert loop.sup.run() == 0
    assert loop.events()[-1] == {
        "event": "rollback",
        "failed_image": NEW,
        "restored_image": OLD,
        "last_exit_code": 1,
        "how": f"reloaded the cached tarball ({OLD[:19]})",
    }
    assert loop.fake.loaded == [NEW, OLD] and loop.fake.tags[LATEST] == OLD


def test_failed_rollback_is_recorded_and_does_not_bar_the_image(loop: Loop) -> None:
    """A rollback that could not restore anything leaves the new image running; a later
    upgrade to it is not refused as 'rolled back before' (only a done rollback bars it)."""
    loop.desire(NEW)
    loop.cache(NEW)  # the cached tarball holds the failed image itself
    loop.fake.exit_codes = [42, 1, 1, 1, 42, 0]

    def prune(state: str, _doc: dict[str, Any]) -> None:
        if state == "running" and loop.fake.tags.get(LATEST) == NEW:
            loop.fake.images.discard(OLD)

    loop.sup.listeners.append(prune)
    assert loop.sup.run() == 0
    assert loop.delays == [0.5, 1.0, 2.0]  # no reset: nothing was rolled back
    events = loop.events()
    assert [e["event"] for e in events] == ["upgrade", "rollback-failed", "upgrade"]
    assert events[1] == {
        "event": "rollback-failed",
        "reason": f"the cached tarball holds the failed image {NEW[:19]} itself",
        "failed_image": NEW,
        "last_exit_code": 1,
    }
    assert loop.fake.tags[LATEST] == NEW and loop.sup.restarts == 5


def test_only_a_done_rollback_bars_an_image(loop: Loop) -> None:
    with open(events_path(loop.ctx), "w") as fh:
        json.dump(
            [
                {"event": "rollback-failed", "failed_image": "sha256:f1", "reason": "x"},
                {"event": "rollback", "failed_image": "sha256:r1"},
                {"event": "upgrade-refused", "image": "sha256:u1", "failed_image": "sha256:u2"},
                {"event": "rollback", "failed_image": ""},
                "junk",
            ],
            fh,
        )
    assert rolled_back_images(loop.ctx) == {"sha256:r1"}


def test_upgrade_to_the_image_running_says_so(loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    loop.desire(OLD)
    loop.fake.exit_codes = [42, 0]
    with caplog.at_level(logging.INFO, logger="ecs_init.supervisor"):
        assert loop.sup.run() == 0
    messages = [r.getMessage() for r in caplog.records]
    assert f"agent upgrade from {TARBALL} did not change the agent image ({OLD[:19]})" in messages
    assert not any(m.startswith("agent upgraded from") for m in messages)
    assert loop.sup.watch is None


def test_exit_2_shows_the_agent_log_and_other_exits_do_not(loop: Loop) -> None:
    loop.fake.exit_codes = [1, 2, 3, 0]
    assert loop.sup.run() == 0
    assert loop.fake.calls.count("logs_tail") == 1


def test_start_failures_in_a_row_end_start_with_one_line(loop: Loop) -> None:
    loop.fake.fail("start_container", EngineError("OCI runtime create failed: boom\nmore", 500))
    with pytest.raises(InitError) as err:
        loop.sup.run()
    assert str(err.value) == (
        f"cannot start the agent container ({MAX_START_FAILURES} failures in a row, last: OCI runtime create failed: "
        "boom); exiting so that the service manager runs pre-start again"
    )
    assert loop.delays == [0.5, 1.0, 2.0, 4.0]  # backed off between the tries


def test_the_upgrade_in_the_status_file_is_in_wall_clock_time(tmp_path: Any) -> None:
    """`status` shows when the watched upgrade started and last failed: the monotonic times moved to the wall clock."""
    loop = Loop(str(tmp_path), ECS_INIT_ROLLBACK_WINDOW="7200")
    loop.desire(NEW)
    loop.fake.exit_codes = [42, 1, 0]
    loop.uptimes = [3600.0, 1800.0]  # the upgraded agent fails 30 minutes after the upgrade
    loop.sup.backoff = Backoff(600.0, 600.0, 0.0)  # and is started again 10 minutes later
    before = time.time()
    assert loop.sup.run() == 0
    after = time.time()
    (doc,) = [doc for state, doc in loop.states if state == "running"][-1:]
    upgrade = doc["upgrade"]
    assert (upgrade["previous_image"], upgrade["new_image"], upgrade["failures"]) == (OLD, NEW, 1)

    def epoch(text: str) -> float:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))

    assert before - 2400 - 1 <= epoch(upgrade["started_at"]) <= after - 2400
    assert before - 600 - 1 <= epoch(upgrade["last_failure_at"]) <= after - 600


class StubMonitor(HealthMonitor):
    """The health monitor without its thread: it says it stopped the agent whose container is ``healed``."""

    def __init__(self, loop: Loop) -> None:
        super().__init__(loop.ctx, HealthPolicy.from_config(loop.ctx.cfg), loop.sup.stopping, loop.sup.report)
        self.started = self.closed = False
        self.healed = ""
        self.asked: list[str] = []

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def take_heal(self, container_id: str) -> bool:
        self.asked.append(container_id)
        return container_id == self.healed


def test_an_exit_the_health_monitor_caused_is_told_as_a_heal(loop: Loop, caplog: pytest.LogCaptureFixture) -> None:
    monitor = StubMonitor(loop)
    loop.sup.health = monitor
    ran: list[str] = []  # the container of each run, as it exits

    def exited(code: int) -> None:
        Loop._exited(loop, code)
        ran.append(loop.sup.container_id)
        if len(ran) == 2:
            monitor.healed = loop.sup.container_id  # the monitor stopped the second agent

    loop.fake.on_exit = exited
    loop.fake.exit_codes = [1, 137, 0]
    with caplog.at_level(logging.INFO):
        assert loop.sup.run() == 0
    assert monitor.started and monitor.closed
    assert monitor.asked == ran and len(set(ran)) == 3  # asked about each run's own container
    assert [doc["exit_code"] for state, doc in loop.states if state == "backoff"] == [1, EXIT_HEALED]
    assert "the agent was stopped by the health monitor after 1.0s: restart after backoff" in caplog.messages


def test_a_stop_that_hangs_keeps_the_exit_waiting_only_so_long(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM's stop thread gets GIVE_UP seconds; a Docker that never answers does not hold `start` longer."""
    monkeypatch.setattr(agent_stop, "GIVE_UP", 0.2)
    release = threading.Event()
    hung = threading.Thread(target=release.wait, args=(10.0,), daemon=True)

    def exited(code: int) -> None:
        Loop._exited(loop, code)
        loop.sup.stopping.set()  # what the signal handler does: stop, and a thread stopping the agent
        loop.sup._stop_thread = hung
        hung.start()

    loop.fake.on_exit = exited
    loop.fake.exit_codes = [143]
    started = time.monotonic()
    try:
        assert loop.sup.run() == 0
        assert time.monotonic() - started < 5.0 and hung.is_alive()
    finally:
        release.set()
    assert loop.names()[-1] == "stopped" and loop.states[-1][1]["exit_code"] == 0
