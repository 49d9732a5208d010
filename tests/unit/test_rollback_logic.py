"""Upgrade on exit 42 and automatic rollback: the counting, the window, the fallbacks.

The supervisor runs against a fake Docker engine (images and tags in a
dict) and a fake clock; files (locator, tarballs, events) are real, under a
temporary root prefix.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

import pytest
from fakes import LATEST, FakeEngine, tarball_text

from ecs_init.agent.events import events_path
from ecs_init.agent.policy import UpgradeWatch
from ecs_init.agent.supervisor import Supervisor
from ecs_init.core import settings
from ecs_init.core.config import Config
from ecs_init.core.exitcodes import AgentExit
from ecs_init.core.paths import Paths
from ecs_init.docker.errors import EngineError, EngineUnavailable
from ecs_init.host.context import HostContext

DEFAULT_ROLLBACK_FAILURES = settings.ROLLBACK_FAILURES.default_number
DEFAULT_ROLLBACK_WINDOW = settings.ROLLBACK_WINDOW.default_number
EXIT_UPGRADE = AgentExit.UPGRADE

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Rig:
    def __init__(self, root: str, **env: str):
        self.paths = Paths(prefix=root)
        for d in (self.paths.cache_dir, self.paths.instance_config_dir):
            os.makedirs(d, exist_ok=True)
        self.docker = FakeEngine()
        self.docker.add_image(OLD, LATEST)
        self.clock = Clock()
        cfg = Config.load(environ=dict(env), paths=self.paths)
        self.ctx = HostContext(cfg=cfg, docker_factory=lambda: self.docker)
        self.sup = Supervisor(self.ctx, clock=self.clock)

    def tarball(self, name: str, image: str) -> str:
        path = os.path.join(self.paths.cache_dir, name)
        with open(path, "w") as fh:
            fh.write(tarball_text(image))
        return path

    def desire(self, name: str, image: str | None = None) -> None:
        if image is not None:
            self.tarball(name, image)
        with open(self.paths.desired_image, "w") as fh:
            fh.write(name + "\n")

    def events(self) -> list[dict[str, Any]]:
        try:
            with open(events_path(self.ctx)) as fh:
                found: list[dict[str, Any]] = json.load(fh)
        except FileNotFoundError:
            return []
        return found

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events()]

    def upgraded(self) -> UpgradeWatch:
        """Upgrade OLD -> NEW at the current time; return the watch."""
        self.desire("ecs-agent-v1.106.0.tar", NEW)
        assert self.sup._upgrade() is True
        assert self.sup.watch is not None
        return self.sup.watch


@pytest.fixture
def rig(tmp_path) -> Callable[..., Rig]:  # type: ignore[no-untyped-def]
    def make(**env: str) -> Rig:
        return Rig(str(tmp_path / "root"), **env)

    return make


# ------------------------------------------------------------ UpgradeWatch


def test_watch_counts_failures_within_the_window_only() -> None:
    watch = UpgradeWatch(previous_image=OLD, new_image=NEW, started=0.0)
    assert watch.record_failure(10, 100) == 1
    assert watch.record_failure(50, 100) == 2
    assert watch.record_failure(110, 100) == 3  # 10 is exactly 100 s old: still inside
    assert watch.record_failure(111, 100) == 3  # now 10 has left the window
    assert watch.failures == [50, 110, 111]
    assert watch.record_failure(400, 100) == 1


@pytest.mark.parametrize(
    "failures, now, proven",
    [
        ([], 50, False),  # too early to tell
        ([], 100, False),  # exactly one window: not yet a whole one
        ([], 100.5, True),
        ([], 101, True),  # a whole window without a failure
        ([90], 150, False),  # last failure 60 s ago
        ([90], 191, True),  # last failure left the window
        ([10, 95], 150, False),
    ],
)
def test_watch_proven_after_a_clean_window(failures: list[float], now: float, proven: bool) -> None:
    watch = UpgradeWatch(previous_image=OLD, new_image=NEW, started=0.0, failures=list(failures))
    assert watch.proven(now, 100) is proven


# ------------------------------------------------------------ _upgrade


def test_upgrade_loads_desired_image_and_watches_it(rig: Callable[..., Rig]) -> None:
    r = rig()
    r.sup.backoff.next()
    r.sup.backoff.next()
    watch = r.upgraded()
    assert r.docker.tags[LATEST] == NEW
    assert (watch.previous_image, watch.new_image, watch.started) == (OLD, NEW, r.clock.now)
    assert r.sup.backoff.next() == pytest.approx(0.5, rel=0.11)  # backoff starts over
    (event,) = r.events()
    assert event["event"] == "upgrade"
    assert (event["previous"], event["new"], event["tarball"]) == (OLD, NEW, "ecs-agent-v1.106.0.tar")
    assert event["time"].endswith("Z")


def test_refused_locator_is_a_failed_upgrade(rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    r = rig()
    r.tarball("ecs-agent-v2.tar", NEW)
    with open(r.paths.desired_image, "w") as fh:
        fh.write("../cache/ecs-agent-v2.tar\n")
    with caplog.at_level(logging.ERROR):
        assert r.sup._upgrade() is False
    assert r.docker.tags[LATEST] == OLD
    assert r.sup.watch is None
    assert "agent upgrade failed: refusing desired image" in caplog.text
    (event,) = r.events()
    assert event["event"] == "upgrade-failed"
    assert "must be a file name inside" in event["reason"]


def test_failed_load_is_a_failed_upgrade(rig: Callable[..., Rig]) -> None:
    r = rig()
    path = r.tarball("ecs-agent-v2.tar", NEW)
    with open(path, "w") as fh:
        fh.write("truncated")
    r.desire("ecs-agent-v2.tar")
    assert r.sup._upgrade() is False
    assert r.docker.tags[LATEST] == OLD
    assert r.kinds() == ["upgrade-failed"]
    assert "Docker refused" in r.events()[0]["reason"]


@pytest.mark.parametrize(
    "error",
    [
        EngineError("boom", 500),
        EngineUnavailable("Docker at unix:///var/run/docker.sock closed the connection"),
    ],
)
def test_docker_trouble_during_upgrade_is_a_failed_upgrade_not_a_crash(
    rig: Callable[..., Rig], error: EngineError
) -> None:
    r = rig()
    r.desire("ecs-agent-v2.tar", NEW)
    r.docker.fail("image_id", error)
    assert r.sup._upgrade() is False
    assert r.kinds() == ["upgrade-failed"]


def test_upgrade_to_the_same_image_keeps_the_earlier_watch(rig: Callable[..., Rig]) -> None:
    r = rig()
    first = r.upgraded()
    r.clock.now += 5
    r.desire("again.tar", NEW)
    assert r.sup._upgrade() is True
    assert r.sup.watch is first


def test_rollback_can_be_switched_off(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="0")
    r.desire("ecs-agent-v2.tar", NEW)
    assert r.sup._upgrade() is True
    assert r.sup.watch is None
    for _ in range(5):
        r.sup._maybe_rollback(1)
    assert r.docker.tags[LATEST] == NEW


# ------------------------------------------------------------ _maybe_rollback / _rollback


def test_defaults() -> None:
    assert (DEFAULT_ROLLBACK_FAILURES, DEFAULT_ROLLBACK_WINDOW) == (3, 300.0)


def test_no_upgrade_no_rollback(rig: Callable[..., Rig]) -> None:
    r = rig()
    for _ in range(10):
        r.sup._maybe_rollback(1)
    assert r.docker.tag_calls == []
    assert r.events() == []


def test_rollback_after_n_failures_within_the_window(rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture) -> None:
    r = rig()
    r.upgraded()
    for _ in range(int(DEFAULT_ROLLBACK_FAILURES) - 1):
        r.clock.now += 10
        r.sup._maybe_rollback(1)
        assert r.docker.tags[LATEST] == NEW
    r.sup.backoff.next()
    r.clock.now += 10
    with caplog.at_level(logging.ERROR):
        r.sup._maybe_rollback(2)
    assert r.docker.tags[LATEST] == OLD
    assert r.docker.tag_calls == [(OLD, "amazon/amazon-ecs-agent", "latest")]
    assert r.sup.watch is None
    assert r.sup.backoff.next() == pytest.approx(0.5, rel=0.11)
    assert any(rec.levelno == logging.ERROR and "ROLLBACK:" in rec.getMessage() for rec in caplog.records)
    assert r.kinds() == ["upgrade", "rollback"]
    event = r.events()[-1]
    assert (event["failed_image"], event["restored_image"], event["last_exit_code"]) == (NEW, OLD, 2)
    # supervision goes on with the known-good image: further failures count for nothing
    r.sup._maybe_rollback(1)
    assert r.kinds() == ["upgrade", "rollback"]


def test_window_and_count_come_from_the_configuration(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="2", ECS_INIT_ROLLBACK_WINDOW="30")
    r.upgraded()
    r.clock.now += 1
    r.sup._maybe_rollback(1)
    r.clock.now += 29
    r.sup._maybe_rollback(1)
    assert r.docker.tags[LATEST] == OLD
    assert r.kinds() == ["upgrade", "rollback"]


def test_failures_spread_wider_than_the_window_do_not_roll_back(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="2", ECS_INIT_ROLLBACK_WINDOW="60")
    r.upgraded()
    r.clock.now += 10
    r.sup._maybe_rollback(1)
    r.clock.now += 61  # the first failure has left the window
    r.sup._maybe_rollback(1)
    assert r.docker.tags[LATEST] == NEW
    assert r.kinds() == ["upgrade"]


def test_an_upgrade_that_stayed_up_a_window_is_no_longer_watched(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="2", ECS_INIT_ROLLBACK_WINDOW="60")
    r.upgraded()
    r.clock.now += 10
    r.sup._maybe_rollback(1)  # one early failure ...
    r.clock.now += 3600  # ... then an hour up
    r.sup._maybe_rollback(1)
    assert r.sup.watch is None
    r.clock.now += 1
    r.sup._maybe_rollback(1)
    assert r.docker.tags[LATEST] == NEW
    assert r.docker.tag_calls == []


@pytest.mark.parametrize("code", [0, 5, EXIT_UPGRADE])
def test_exits_that_are_not_failures_do_not_count(rig: Callable[..., Rig], code: int) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="2")
    r.upgraded()
    for _ in range(5):
        r.clock.now += 1
        r.sup._maybe_rollback(code)
    assert r.docker.tags[LATEST] == NEW
    assert r.sup.watch is not None and r.sup.watch.failures == []


def test_rollback_reloads_the_cached_tarball_when_the_old_image_is_gone(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="1")
    r.tarball("ecs-agent.tar", OLD)
    r.upgraded()
    r.docker.images.discard(OLD)  # pruned meanwhile: re-tagging fails
    r.clock.now += 1
    r.sup._maybe_rollback(1)
    assert r.docker.tags[LATEST] == OLD
    event = r.events()[-1]
    assert event["event"] == "rollback"
    assert event["restored_image"] == OLD
    assert "cached tarball" in event["how"]


def test_rollback_survives_a_lost_docker_daemon_while_tagging(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="1")
    r.tarball("ecs-agent.tar", OLD)
    r.upgraded()
    r.docker.fail("tag_image", EngineUnavailable("cannot connect to Docker: connection refused"))
    r.clock.now += 1
    r.sup._maybe_rollback(1)
    assert r.docker.tags[LATEST] == OLD
    assert r.kinds() == ["upgrade", "rollback"]


def test_rollback_failure_is_recorded_and_supervision_goes_on(
    rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="1")
    r.upgraded()
    r.docker.images.discard(OLD)  # no old image and no cached tarball
    r.clock.now += 1
    with caplog.at_level(logging.ERROR):
        r.sup._maybe_rollback(1)
    assert "ROLLBACK FAILED" in caplog.text
    assert r.docker.tags[LATEST] == NEW
    assert r.sup.watch is None
    assert r.kinds() == ["upgrade", "rollback-failed"]


def test_cached_tarball_holding_the_failed_image_is_no_rollback(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="1")
    r.tarball("ecs-agent.tar", NEW)
    r.upgraded()
    r.docker.images.discard(OLD)
    r.clock.now += 1
    r.sup._maybe_rollback(1)
    assert r.kinds() == ["upgrade", "rollback-failed"]
    assert "failed image" in r.events()[-1]["reason"]


# ------------------------------------------------------------ the loop, end to end with fakes


class ZeroBackoff:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def next(self) -> float:
        self.calls.append("next")
        return 0.0

    def reset(self) -> None:
        self.calls.append("reset")


def test_supervision_loop_upgrades_without_backoff_then_rolls_back(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="2", ECS_INIT_ROLLBACK_WINDOW="60")
    r.desire("ecs-agent-v1.106.0.tar", NEW)
    backoff = ZeroBackoff()
    r.sup.backoff = backoff  # type: ignore[assignment]
    script = [EXIT_UPGRADE, 1, 1, 0]
    ran_with: list[str | None] = []

    def run_once() -> int:
        ran_with.append(r.docker.tags.get(LATEST))
        r.clock.now += 2
        return script.pop(0)

    r.sup._run_once = run_once  # type: ignore[method-assign]
    assert r.sup.run() == 0
    assert ran_with == [OLD, NEW, NEW, OLD]
    # 42: reset, no wait; failure 1: wait; failure 2: rollback resets, then wait
    assert backoff.calls == ["reset", "next", "reset", "next"]
    assert r.kinds() == ["upgrade", "rollback"]


def test_an_image_that_was_rolled_back_is_not_upgraded_to_again(rig: Callable[..., Rig]) -> None:
    r = rig(ECS_INIT_ROLLBACK_FAILURES="1")
    r.upgraded()
    r.clock.now += 1
    r.sup._maybe_rollback(1)
    assert r.docker.tags[LATEST] == OLD
    # the restored agent asks for the same bad image again (exit 42)
    r.desire("ecs-agent-v1.106.0.tar")
    assert r.sup._upgrade() is False
    assert r.docker.tags[LATEST] == OLD
    assert r.sup.watch is None
    assert r.kinds() == ["upgrade", "rollback", "upgrade-refused"]
    # a different (fixed) image is accepted
    r.desire("ecs-agent-v1.106.1.tar", "sha256:" + "c" * 64)
    assert r.sup._upgrade() is True
    assert r.docker.tags[LATEST] == "sha256:" + "c" * 64
