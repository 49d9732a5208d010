"""Supervision of the agent container (SPEC §5), upgrade on 42, automatic rollback.

The exit-code policy is a pure function (``decide``); the loop around it
talks to Docker through the adapter.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from docker import errors as docker_errors

from ecs_init import cache, hostfacts
from ecs_init.agent_spec import AGENT_IMAGE, AGENT_NAME, AGENT_REPOSITORY, AGENT_TAG, build_spec
from ecs_init.context import HostContext
from ecs_init.docker_client import CONNECTION_ERRORS, DEFAULT_WAIT_TIMEOUT, Backoff
from ecs_init.errors import EXIT_OK, DockerUnavailable, InitError, TerminalExit
from ecs_init.fsutil import atomic_write

log = logging.getLogger(__name__)

EXIT_CLEAN = 0
EXIT_DEBUG = 2
EXIT_TERMINAL = 5
EXIT_UPGRADE = 42
LOG_TAIL_LINES = 200
STOP_GRACE = 10

BACKOFF_START = 0.5
BACKOFF_CAP = 15.0
BACKOFF_JITTER = 0.1
# An agent that stayed up this long is healthy again: the next crash restarts
# the backoff at 0.5 s.
DEFAULT_BACKOFF_RESET = 60.0
# Rollback: an upgraded agent that fails this many times within the window
# is replaced by the image it upgraded from.
DEFAULT_ROLLBACK_FAILURES = 3
DEFAULT_ROLLBACK_WINDOW = 300.0


class Next(enum.Enum):
    STOP = "stop supervising"
    TERMINAL = "terminal"
    UPGRADE = "upgrade"
    RESTART = "restart after backoff"


def decide(exit_code: int) -> Next:
    """The exit-code table of SPEC §5."""
    if exit_code == EXIT_CLEAN:
        return Next.STOP
    if exit_code == EXIT_TERMINAL:
        return Next.TERMINAL
    if exit_code == EXIT_UPGRADE:
        return Next.UPGRADE
    return Next.RESTART


@dataclass
class UpgradeWatch:
    """Tracks an upgraded agent until it proves itself or fails too often."""

    previous_image: str
    new_image: str
    started: float
    failures: list[float] = field(default_factory=list)

    def record_failure(self, now: float, window: float) -> int:
        self.failures = [t for t in self.failures if now - t <= window] + [now]
        return len(self.failures)


def events_path(ctx: HostContext) -> str:
    return os.path.join(ctx.paths.instance_config_dir, "ecs-init-events.json")


def status_path(ctx: HostContext) -> str:
    return os.path.join(ctx.paths.run_dir, "supervisor.json")


def record_event(ctx: HostContext, kind: str, **details: Any) -> None:
    """Append an upgrade/rollback event (the last 50 are kept) for `status`."""
    path = events_path(ctx)
    try:
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)
        if not isinstance(events, list):
            events = []
    except (OSError, ValueError):
        events = []
    events.append({"event": kind, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **details})
    try:
        atomic_write(path, json.dumps(events[-50:], indent=1))
    except OSError as err:
        log.warning("cannot record %s event in %s: %s", kind, path, err)


class Supervisor:
    def __init__(
        self,
        ctx: HostContext,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ctx = ctx
        cfg = ctx.cfg
        self.clock = clock
        self.stopping = threading.Event()
        self.backoff = Backoff(BACKOFF_START, BACKOFF_CAP, BACKOFF_JITTER)
        self.backoff_reset = cfg.number("ECS_INIT_BACKOFF_RESET_SECONDS", DEFAULT_BACKOFF_RESET)
        self.rollback_failures = int(cfg.number("ECS_INIT_ROLLBACK_FAILURES", DEFAULT_ROLLBACK_FAILURES))
        self.rollback_window = cfg.number("ECS_INIT_ROLLBACK_WINDOW", DEFAULT_ROLLBACK_WINDOW)
        self.docker_wait = cfg.number("ECS_INIT_DOCKER_WAIT_TIMEOUT", DEFAULT_WAIT_TIMEOUT)
        self.watch: Optional[UpgradeWatch] = None
        self.restarts = 0
        self.started_at = time.time()
        self.container_id = ""
        self.last_exit: Optional[int] = None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []

    # ------------------------------------------------------------ reporting

    def report(self, state: str, **info: Any) -> None:
        """Persist the supervisor's state for `status`; tell listeners (sd_notify)."""
        doc = {
            "pid": os.getpid(),
            "state": state,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "container_id": self.container_id,
            "last_exit_code": self.last_exit,
            "updated_at": time.time(),
            "upgrade": asdict(self.watch) if self.watch else None,
            **info,
        }
        try:
            atomic_write(status_path(self.ctx), json.dumps(doc))
        except OSError as err:
            log.debug("cannot write supervisor status: %s", err)
        for listener in self.listeners:
            try:
                listener(state, doc)
            except Exception as err:  # noqa: BLE001 - a listener must never stop supervision
                log.debug("state listener failed: %s", err)

    # ------------------------------------------------------------ signals

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            if self.stopping.is_set():
                return
            log.info("received %s: stopping the agent", signal.Signals(signum).name)
            self.stopping.set()
            threading.Thread(target=self._stop_agent, name="stop-agent", daemon=True).start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _stop_agent(self) -> None:
        try:
            stop_agent(self.ctx)
        except Exception as err:  # noqa: BLE001 - logged, the main loop exits anyway
            log.error("stopping the agent failed: %s", err)

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        """Supervise until the agent stops for good; return the exit code."""
        self.report("starting")
        try:
            while not self.stopping.is_set():
                started = self.clock()
                code = self._run_once()
                if self.stopping.is_set():
                    break
                self.last_exit = code
                uptime = self.clock() - started
                if uptime >= self.backoff_reset:
                    self.backoff.reset()
                next_step = decide(code)
                log.info("agent exited with code %d after %.1fs: %s", code, uptime, next_step.value)
                if next_step is Next.STOP:
                    self.report("stopped", exit_code=code)
                    return EXIT_OK
                if next_step is Next.TERMINAL:
                    self.report("terminal", exit_code=code)
                    raise TerminalExit("the agent exited with code 5 (terminal): not restarting it")
                if next_step is Next.UPGRADE and self._upgrade():
                    self.restarts += 1
                    continue
                if code == EXIT_DEBUG:
                    self._log_tail()
                self._maybe_rollback(code)
                self.restarts += 1
                delay = self.backoff.next()
                log.info("restarting the agent in %.2fs", delay)
                self.report("backoff", delay=delay, exit_code=code)
                if self.stopping.wait(delay):
                    break
        finally:
            if self.stopping.is_set():
                self.report("stopped", exit_code=0)
        return EXIT_OK

    def _run_once(self) -> int:
        """Create and start the agent; wait for it (surviving Docker restarts)."""
        ctx = self.ctx
        engine = ctx.docker
        engine.remove_container(AGENT_NAME)
        facts = hostfacts.gather(ctx)
        spec = build_spec(ctx.cfg, facts, hostfacts.gpu_devices_appeared(ctx, facts))
        for warning in spec.warnings:
            log.warning("%s", warning)
        try:
            self.container_id = engine.create_container(AGENT_NAME, spec.engine_body())
            if self.stopping.is_set():
                return 0
            engine.start_container(AGENT_NAME)
        except docker_errors.ImageNotFound:
            raise InitError(f"the agent image {AGENT_IMAGE} is not loaded: run `amazon-ecs-init reload-cache`")
        except docker_errors.APIError as err:
            log.error("cannot start the agent container: %s", err.explanation or err)
            return -1
        log.info("agent container %s started (%s)", AGENT_NAME, self.container_id[:12])
        self.report("running")
        return self._wait()

    def _wait(self) -> int:
        ctx = self.ctx
        while True:
            try:
                return ctx.docker.wait_container(AGENT_NAME)
            except docker_errors.NotFound:
                log.warning("the agent container disappeared")
                return -1
            except CONNECTION_ERRORS + (docker_errors.APIError,) as err:
                if self.stopping.is_set():
                    return 0
                log.warning("lost the Docker daemon while waiting for the agent (%s); waiting for it to return", err)
                self.report("docker-lost")
                try:
                    ctx.docker.reconnect(self.docker_wait)
                except DockerUnavailable as gone:
                    raise InitError(str(gone))
                state = ctx.docker.container_state(AGENT_NAME)
                if state is None:
                    log.warning("Docker is back; the agent container is gone")
                    return -1
                if state.get("State", {}).get("Running"):
                    log.info("Docker is back; the agent container %s is still running: re-attached", state["Id"][:12])
                    self.report("running", reattached=True)
                    continue
                code = int(state.get("State", {}).get("ExitCode", -1))
                log.info("Docker is back; the agent had exited with code %d", code)
                return code

    def _log_tail(self) -> None:
        lines = self.ctx.docker.logs_tail(AGENT_NAME, LOG_TAIL_LINES)
        log.info("agent exited with code 2; its last %d log lines follow", len(lines))
        for line in lines:
            log.info("agent: %s", line)

    # ------------------------------------------------------------ upgrade/rollback

    def _upgrade(self) -> bool:
        """Load the desired image; False (fall through to backoff) when that fails."""
        ctx = self.ctx
        try:
            path = cache.resolve_desired_image(ctx.paths)
            previous = cache.previous_image(ctx)
            new_id = cache.load_tarball(ctx, path)
        except InitError as err:
            log.error("agent upgrade failed: %s", err)
            record_event(ctx, "upgrade-failed", reason=str(err))
            return False
        log.info("agent upgraded: %s -> %s", (previous or "none")[:19], new_id[:19])
        record_event(ctx, "upgrade", previous=previous, new=new_id, tarball=os.path.basename(path))
        if previous and previous != new_id:
            self.watch = UpgradeWatch(previous_image=previous, new_image=new_id, started=self.clock())
        self.backoff.reset()
        return True

    def _maybe_rollback(self, code: int) -> None:
        watch = self.watch
        if watch is None:
            return
        now = self.clock()
        if now - watch.started > self.rollback_window and not watch.failures:
            self.watch = None  # the upgrade proved itself
            return
        count = watch.record_failure(now, self.rollback_window)
        log.warning(
            "upgraded agent %s failed (exit %d): %d of %d failures allowed within %.0fs",
            watch.new_image[:19],
            code,
            count,
            self.rollback_failures,
            self.rollback_window,
        )
        if count < self.rollback_failures:
            return
        self._rollback(watch, code)

    def _rollback(self, watch: UpgradeWatch, code: int) -> None:
        ctx = self.ctx
        try:
            ctx.docker.tag_image(watch.previous_image, AGENT_REPOSITORY, AGENT_TAG)
            how = f"re-tagged {watch.previous_image[:19]}"
        except docker_errors.APIError as err:
            log.error("cannot re-tag the previous agent image (%s); reloading the cached tarball", err)
            try:
                cache.load_tarball(ctx, ctx.paths.cache_tarball)
                how = "reloaded the cached tarball"
            except InitError as load_err:
                log.error("ROLLBACK FAILED: %s", load_err)
                record_event(ctx, "rollback-failed", reason=str(load_err), failed_image=watch.new_image)
                self.watch = None
                return
        log.error(
            "ROLLBACK: upgraded agent %s failed %d times within %.0fs (last exit %d); %s as %s",
            watch.new_image[:19],
            len(watch.failures),
            self.rollback_window,
            code,
            how,
            AGENT_IMAGE,
        )
        record_event(
            ctx, "rollback", failed_image=watch.new_image, restored_image=watch.previous_image, last_exit_code=code
        )
        self.watch = None
        self.backoff.reset()



def stop_agent(ctx: HostContext, grace: int = STOP_GRACE) -> bool:
    """Stop the agent container gracefully; False when there was none."""
    stopped = ctx.docker.stop_container(AGENT_NAME, grace)
    log.info("agent container %s", "stopped" if stopped else "was not running")
    return stopped
