"""Supervision of the agent container (SPEC §5).

The policy is pure (``policy.py``: ``decide``, backoff, rollback watch); the
loop here applies it and talks to Docker through the ``Engine`` protocol. Upgrade on 42 and the
automatic rollback live in ``upgrade.py`` (mixed into ``Supervisor``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from ecs_init.agent import hostfacts, state
from ecs_init.agent import stop as agent_stop
from ecs_init.agent.healer import HealthMonitor
from ecs_init.agent.health import IMAGE_LOAD, Heartbeat, stall_reason
from ecs_init.agent.identity import AGENT_IMAGE, AGENT_NAME
from ecs_init.agent.policy import (
    BACKOFF_CAP,
    BACKOFF_JITTER,
    BACKOFF_START,
    EXIT_CONTAINER_GONE,
    EXIT_DOCKER_LOST,
    EXIT_HEALED,
    EXIT_START_FAILED,
    LOG_TAIL_LINES,
    MAX_START_FAILURES,
    RECONNECT_POLL,
    Next,
    UpgradeWatch,
    counts_against_upgrade,
    decide,
    describe_exit,
    resets_backoff,
)
from ecs_init.agent.spec import build_spec
from ecs_init.agent.state import SupervisorState
from ecs_init.agent.upgrade import Upgrades
from ecs_init.core import settings
from ecs_init.core.backoff import Backoff
from ecs_init.core.errors import InitError, TerminalExit, first_line
from ecs_init.core.exitcodes import AgentExit, Exit
from ecs_init.docker.api import STOP_GRACE
from ecs_init.docker.errors import EngineError, EngineUnavailable, NotFound
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

log = logging.getLogger(__name__)


class Supervisor(Upgrades):
    def __init__(
        self,
        ctx: HostContext,
        clock: Callable[[], float] = time.monotonic,
        pause: Optional[Callable[[float], bool]] = None,
        on_setup_done: Optional[Callable[[], None]] = None,
    ):
        """``clock`` times the agent's uptime and the rollback window; ``pause(delay)``
        waits between restarts and says whether supervision was told to stop
        meanwhile (default: wait on ``stopping``). Tests pass fakes of both.
        ``on_setup_done`` is called once, when the first start of the agent has been attempted
        (it runs, or it failed and the supervisor backs off or waits for Docker): ``start``
        releases the action lock there."""
        self.ctx = ctx
        self._on_setup_done = on_setup_done
        cfg = ctx.cfg
        self.clock = clock
        self.stopping = threading.Event()
        self.pause = pause or self.stopping.wait
        self.backoff = Backoff(BACKOFF_START, BACKOFF_CAP, BACKOFF_JITTER)
        self.backoff_reset = cfg.seconds(settings.BACKOFF_RESET_SECONDS)
        self.rollback_failures = cfg.count(settings.ROLLBACK_FAILURES)
        self.rollback_window = cfg.seconds(settings.ROLLBACK_WINDOW)
        self.docker_wait = ctx.docker_wait_timeout()
        self.start_failures = 0
        self.image_reloaded = False  # the missing agent image was reloaded since the last good start
        self.watch: Optional[UpgradeWatch] = None
        self.restarts = 0
        self.started_at = time.time()
        self.container_id = ""
        self.last_exit: Optional[int] = None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._stop_thread: threading.Thread | None = None
        # health.py: the loop's proof of progress (the systemd watchdog), and healing a hung agent
        self.heartbeat = Heartbeat()
        self.health = HealthMonitor.configured(ctx, self.stopping, self.report)
        if self.health is not None:
            self.listeners.append(self.health.listener)

    def stalled(self) -> Optional[str]:
        """Why the systemd watchdog must not be fed now (None: supervision makes progress)."""
        return stall_reason(self.heartbeat, self.health)

    # ------------------------------------------------------------ reporting

    def _setup_done(self) -> None:
        callback, self._on_setup_done = self._on_setup_done, None
        if callback is not None:
            callback()
            log.debug("start: set-up done")

    def report(self, now: SupervisorState, **info: Any) -> None:
        """Persist the supervisor's state for `status`; tell listeners (sd_notify)."""
        if now is not SupervisorState.STARTING:
            self._setup_done()
        doc = {
            "pid": os.getpid(),
            "state": now.value,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "container_id": self.container_id,
            "last_exit_code": self.last_exit,
            "updated_at": time.time(),
            "upgrade": self._upgrade_doc(),
            **info,
        }
        state.write(self.ctx.paths.supervisor_state, doc)
        for listener in self.listeners:
            try:
                listener(now.value, doc)
            except Exception as err:  # noqa: BLE001 - a listener must never stop supervision
                log.debug("state listener failed: %s", err)

    # ------------------------------------------------------------ signals

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            if self.stopping.is_set():
                return
            log.info(
                "start (pid %d) received %s: stopping the agent container %s",
                os.getpid(),
                signal.Signals(signum).name,
                self._which(),
            )
            self.stopping.set()
            self._stop_thread = threading.Thread(target=self._stop_agent, name="stop-agent", daemon=True)
            self._stop_thread.start()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _stop_agent(self) -> None:
        try:
            agent_stop.stop_agent(
                self.ctx.docker, STOP_GRACE, timeout=agent_stop.GIVE_UP - agent_stop.SLACK, which=self._which()
            )
        except Exception as err:  # noqa: BLE001 - logged, the main loop exits anyway
            log.error("stopping the agent failed: %s", err)

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        """Supervise until the agent stops for good; return the exit code."""
        self.heartbeat.beat()
        self.report(SupervisorState.STARTING)
        if self.health is not None:
            self.health.start()
        try:
            while not self.stopping.is_set():
                started = self.clock()
                code = self._run_once()
                if self.stopping.is_set():
                    break
                self.heartbeat.beat()
                if self.health is not None and self.health.take_heal(self.container_id):
                    log.info("the agent exited with code %d after the health monitor stopped it", code)
                    code = EXIT_HEALED
                self.last_exit = code
                uptime = self.clock() - started
                if resets_backoff(code, uptime, self.backoff_reset):
                    self.backoff.reset()
                next_step = decide(code)
                log.info("%s after %.1fs: %s", describe_exit(code), uptime, next_step.value)
                if next_step is Next.STOP:
                    self.report(SupervisorState.STOPPED, exit_code=code)
                    return Exit.OK
                if next_step is Next.TERMINAL:
                    self.report(SupervisorState.TERMINAL, exit_code=code)
                    raise TerminalExit("the agent exited with code 5 (terminal): not restarting it")
                self.heartbeat.beat(IMAGE_LOAD)  # an upgrade or a rollback may load an image
                if next_step is Next.UPGRADE and self._upgrade():
                    self.restarts += 1
                    continue
                if code == AgentExit.DEBUG:
                    self._log_tail()
                if counts_against_upgrade(code):
                    self._maybe_rollback(code)
                self.restarts += 1
                delay = self.backoff.next()
                log.info("restarting the agent in %.2fs", delay)
                self.report(SupervisorState.BACKOFF, delay=delay, exit_code=code)
                self.heartbeat.beat(delay)
                if self.pause(delay):
                    break
        finally:
            if self.stopping.is_set():
                # Let the graceful stop finish before the process exits.
                if self._stop_thread is not None:
                    self.heartbeat.beat(agent_stop.GIVE_UP)
                    self._stop_thread.join(agent_stop.GIVE_UP)
                self.report(SupervisorState.STOPPED, exit_code=0)
            if self.health is not None:
                self.health.close()
        return Exit.OK

    def _run_once(self) -> int:
        """Create and start the agent; wait for it (surviving Docker restarts)."""
        self.heartbeat.beat(self.docker_wait)  # the first connect may wait that long for a late daemon
        _ = self.ctx.docker  # the first connect: a daemon that never answers ends `start` (255)
        try:
            return self._start_and_wait()
        except EngineUnavailable as err:
            if self.stopping.is_set():
                return 0
            log.warning("lost the Docker daemon while starting the agent (%s)", first_line(err))
            return EXIT_DOCKER_LOST if self._reconnect() else 0

    def _start_and_wait(self) -> int:
        ctx = self.ctx
        engine = ctx.docker
        try:
            engine.remove_container(AGENT_NAME)
            facts = hostfacts.gather(ctx)
            # spec.warnings are the configuration's: `start` logged them once (agent.config_problems)
            spec = build_spec(ctx.cfg, facts, hostfacts.gpu_devices_appeared(ctx, facts))
            self.heartbeat.beat()
            self.container_id = self._create(spec.engine_body())
            if self.stopping.is_set():
                return 0
            self.heartbeat.beat()
            engine.start_container(AGENT_NAME)
        except EngineUnavailable:
            raise
        except EngineError as err:
            return self._start_failed(err)
        self.start_failures = 0
        self.image_reloaded = False
        log.info("agent container %s started (%s)", AGENT_NAME, self.container_id[:12])
        self.heartbeat.beat()
        self.report(SupervisorState.RUNNING)
        return self._wait()

    def _create(self, body: dict[str, Any]) -> str:
        """Create the agent container; a missing agent image is reloaded from the cache once.

        An image prune (or anything else that removed the image) heals here,
        in-process. When the reload fails, or the image is still missing
        after it, `start` exits 255 so that systemd runs pre-start again.
        """
        engine = self.ctx.docker
        try:
            return engine.create_container(AGENT_NAME, body)
        except NotFound as err:
            missing = first_line(err)
        self._reload_missing_image(missing)
        try:
            return engine.create_container(AGENT_NAME, body)
        except NotFound as err:
            raise InitError(
                f"the agent image {AGENT_IMAGE} is still missing after reloading {self.ctx.paths.cache_tarball} "
                f"({first_line(err)}): run `amazon-ecs-init reload-cache`"
            )

    def _start_failed(self, err: EngineError) -> int:
        """A create/start error: back off and retry, but never loop forever in-process."""
        self.start_failures += 1
        reason = first_line(err)
        if self.start_failures >= MAX_START_FAILURES:
            raise InitError(
                f"cannot start the agent container ({self.start_failures} failures in a row, last: {reason}); "
                "exiting so that the service manager runs pre-start again"
            )
        log.error(
            "cannot start the agent container (failure %d of %d): %s", self.start_failures, MAX_START_FAILURES, reason
        )
        return EXIT_START_FAILED

    def _wait(self) -> int:
        """Wait for the agent to exit, surviving the Docker daemon going away.

        With live-restore the container outlives the daemon: once it is back,
        re-attach (same container). Without it the daemon's shutdown stops the
        agent; that exit is not the agent's decision, so it is restarted by
        the normal policy (EXIT_DOCKER_LOST) even when its code was 0.
        """
        ctx = self.ctx
        while True:
            try:
                code = ctx.docker.wait_container(AGENT_NAME, on_idle=self.heartbeat.beat)
            except NotFound:
                log.warning("the agent container %s disappeared while it ran: restarting it", self._which())
                return EXIT_CONTAINER_GONE
            except EngineError as err:  # gone, hung, or failing while it goes away
                if self.stopping.is_set():
                    return 0
                log.warning(
                    "lost the Docker daemon while waiting for the agent (%s); waiting for it to return",
                    first_line(err),
                )
            else:
                if self.stopping.is_set():
                    return code
                if ctx.docker.probe():
                    return self._exit_or_gone(code)
                log.warning("the agent exited (code %d) as the Docker daemon went away; waiting for it to return", code)
            if not self._reconnect():
                return 0
            try:
                state = ctx.docker.container_state(AGENT_NAME)
            except EngineError:
                continue  # gone again: the next wait fails and reconnects
            if state is None:
                log.warning("Docker is back; the agent container is gone: restarting it")
                return EXIT_DOCKER_LOST
            if state.get("State", {}).get("Running"):
                log.info("Docker is back; the agent container %s is still running: re-attached", str(state["Id"])[:12])
                self.report(SupervisorState.RUNNING, reattached=True)
                continue
            code = int(state.get("State", {}).get("ExitCode", -1))
            if code == AgentExit.CLEAN:
                log.info("Docker is back; the agent was stopped with the daemon: restarting it")
                return EXIT_DOCKER_LOST
            log.info("Docker is back; the agent had exited with code %d", code)
            return code

    def _which(self) -> str:
        """The agent container as the log lines name it: its name and the ID this supervisor created."""
        return f"{AGENT_NAME} ({self.container_id[:12]})" if self.container_id else AGENT_NAME

    def _exit_or_gone(self, code: int) -> int:
        """The agent's exit code, or EXIT_CONTAINER_GONE when its container was removed behind the
        supervisor's back (``docker rm -f`` kills it: the wait answers 137) or replaced."""
        try:
            state = self.ctx.docker.container_state(AGENT_NAME)
        except EngineError:
            return code
        removed = state is None or str(state.get("State", {}).get("Status", "")) in ("removing", "dead")
        if not removed and str((state or {}).get("Id", "")) in ("", self.container_id):
            return code
        what = "was removed" if removed else "was replaced by another container"
        log.warning("the agent container %s %s while it ran (its wait ended with %d)", self._which(), what, code)
        return EXIT_CONTAINER_GONE

    def _reconnect(self) -> bool:
        """Wait for the Docker daemon, as long as it takes; False when told to stop."""
        self.report(SupervisorState.DOCKER_LOST)

        def pause(delay: float) -> None:
            self.heartbeat.beat()
            if self.stopping.wait(min(delay, RECONNECT_POLL)):
                raise _Stopping()

        while not self.stopping.is_set():
            try:
                self.ctx.docker.reconnect(self.docker_wait, sleep=pause)
            except _Stopping:
                return False
            except EngineError as err:
                log.error("%s; still waiting for it", err)
                self.heartbeat.beat()
                continue
            log.info("the Docker daemon is back")
            return True
        return False

    def _log_tail(self) -> None:
        try:
            lines = self.ctx.docker.logs_tail(AGENT_NAME, LOG_TAIL_LINES)
        except EngineError as err:
            log.warning("cannot read the agent's log: %s", first_line(err))
            return
        log.info("agent exited with code 2; its last %d log lines follow", len(lines))
        for line in lines:
            log.info("agent%s: %s", "" if line.stream == "stdout" else f" ({line.stream})", line.text)


class _Stopping(Exception):
    """Raised inside a reconnect wait to abandon it (the supervisor is stopping)."""
