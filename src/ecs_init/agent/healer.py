"""The health monitor: probes the running agent from a thread and heals it when it hangs.

While the supervisor reports the agent container ``running``, the monitor
probes ``/v1/metadata`` (``probe.probe_url``, the readiness probe) every
``ECS_INIT_HEALTH_INTERVAL`` seconds from its own thread: it never blocks
supervision, and every probe is bounded (5 s at most). When the container
has a Docker health check of its own, Docker reporting it ``unhealthy``
counts as a failed probe too. When ``health.HealthTracker`` says heal, the
monitor logs one line, records a ``heal`` event, reports the ``healing``
state and stops the container gracefully (``STOP_GRACE``); the supervision
loop sees that exit as ``EXIT_HEALED`` and starts the agent again through
its normal path. When the stop fails (or the container is still running
``HEAL_LIMIT`` s later), ``healing_failed`` says so (the systemd watchdog
then starves), a ``heal-failed`` event is recorded once, and the stop is
tried again at each interval while the agent stays unhealthy.
"""

from __future__ import annotations

import logging
import threading
import time

from ecs_init.agent.events import record_event
from ecs_init.agent.health import HEAL_LIMIT, HEALTH_TIMEOUT_KEY, MIN_INTERVAL, HealthPolicy, HealthTracker, Verdict
from ecs_init.agent.identity import AGENT_NAME
from ecs_init.agent.probe import DEFAULT_READY_URL, probe_url
from ecs_init.agent.state import SupervisorState
from ecs_init.core import settings
from ecs_init.core.errors import first_line
from ecs_init.core.record import dataclass
from ecs_init.docker.api import STOP_GRACE
from ecs_init.docker.errors import EngineError
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    Reporter = Callable[..., None]  # Supervisor.report(state, **info)

log = logging.getLogger("ecs_init.agent.supervisor")

JOIN_TIMEOUT = 2.0  # close() waits this long for a probe in flight


@dataclass
class _Heal:
    container_id: str
    started: float  # the first attempt, or the last stop that worked
    error: Optional[str] = None  # the last attempt failed with this
    announced: bool = False  # logged, recorded and reported
    failure_recorded: bool = False


class HealthMonitor:
    """Probes the running agent from a thread and stops it when it stays unhealthy.

    Hook ``listener`` to ``Supervisor.listeners``: the monitor watches the
    container while the supervisor reports it ``running`` and pauses on any
    other state. The supervisor asks ``take_heal`` after the container exited
    whether the monitor stopped it.
    """

    def __init__(
        self,
        ctx: HostContext,
        policy: HealthPolicy,
        stopping: threading.Event,
        report: Reporter,
        url: str = DEFAULT_READY_URL,
        probe: Callable[[str, float], bool] = probe_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.stopping = stopping
        self.report = report
        self.url = url
        self.probe = probe
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._tracker: Optional[HealthTracker] = None
        self._cid = ""
        self._active = False
        self._warned = False  # the current run of failures was logged
        self._heal: Optional[_Heal] = None
        self._healed_cid: Optional[str] = None  # stopped by a heal, not yet taken by the supervisor

    @classmethod
    def configured(cls, ctx: HostContext, stopping: threading.Event, report: Reporter) -> Optional[HealthMonitor]:
        """The monitor the settings ask for; None when ECS_INIT_HEALTH_TIMEOUT is 0."""
        policy = HealthPolicy.from_config(ctx.cfg)
        if not policy.enabled:
            log.info("healing a hung agent is off (%s=0)", HEALTH_TIMEOUT_KEY)
            return None
        url = ctx.cfg.text(settings.READY_URL) or DEFAULT_READY_URL
        return cls(ctx, policy, stopping, report, url=url)

    # ------------------------------------------------------------ the supervisor's side

    def listener(self, state: str, doc: dict[str, Any]) -> None:
        if state == "healing":
            return
        with self._lock:
            if state != "running":
                self._active = False
                self._heal = None  # the container exited, or Docker went away: the heal is over
                return
            cid = str(doc.get("container_id") or "")
            now = self.clock()
            if self._tracker is None or cid != self._cid:
                self._tracker = HealthTracker(self.policy, started=now)
                self._cid = cid
            else:  # re-attached after a Docker outage
                self._tracker.resume(now)
            self._active = True
            self._warned = False
            self._heal = None
        self._wake.set()

    def take_heal(self, container_id: str) -> bool:
        """True (once) when the container ``container_id`` was stopped to heal it."""
        with self._lock:
            healed = self._healed_cid is not None and self._healed_cid == container_id
            self._healed_cid = None
            return healed

    def healing_failed(self) -> Optional[str]:
        """Why healing the unhealthy agent failed; None when it did not (or no heal is under way)."""
        with self._lock:
            heal = self._heal
            if heal is None:
                return None
            if heal.error is not None:
                return f"the agent is unhealthy and stopping it failed: {heal.error}"
            waited = self.clock() - heal.started
            if waited > HEAL_LIMIT:
                return f"the agent is unhealthy and its container still runs {waited:.0f}s after it was stopped"
            return None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="agent-health", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT)

    # ------------------------------------------------------------ the thread

    def _loop(self) -> None:
        delay = self.policy.interval
        while not self._closed.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._closed.is_set():
                return
            try:
                delay = self.tick()
            except Exception as err:  # noqa: BLE001 - the monitor must outlive any one failure
                log.error("the agent's health monitor failed: %r; probing again in %gs", err, self.policy.interval)
                delay = self.policy.interval

    def tick(self) -> float:
        """Probe once if watching; heal when due; return the seconds to the next tick."""
        with self._lock:
            tracker, cid, active = self._tracker, self._cid, self._active
        if tracker is None or not active or self.stopping.is_set():
            return self.policy.interval
        ok, why = self._probe(cid)
        now = self.clock()
        with self._lock:
            if self._tracker is not tracker or not self._active:
                return MIN_INTERVAL  # the watch changed meanwhile: this answer is stale
            was_failing = tracker.failing
            verdict = tracker.observe(ok, now)
            warn = False
            if verdict is Verdict.HEALTHY:
                self._warned = False
                self._heal = None
                self._healed_cid = None
            elif verdict is Verdict.FAILING and not self._warned and tracker.counting(now):
                warn = self._warned = True
            heal = self._heal
            act = verdict is Verdict.HEAL and (
                heal is None or heal.error is not None or now - heal.started > HEAL_LIMIT
            )
            deadline = tracker.deadline()
            failing_for = tracker.failing_for(now)
        if verdict is Verdict.HEALTHY and was_failing:
            log.info("the agent is healthy again: %s answers", self.url)
        elif warn and deadline is not None:
            log.warning(
                "the agent is unhealthy (%s; container %s): restarting it unless it recovers within %.0fs",
                why,
                cid[:12],
                max(0.0, deadline - now),
            )
        if act and not self.stopping.is_set():
            if heal is not None and heal.error is None:  # asked to stop HEAL_LIMIT ago, still running
                self._heal_failed(heal, f"the container still runs {now - heal.started:.0f}s after it was stopped")
            self._heal_now(cid, why, failing_for)
        return tracker.next_probe_in(self.clock())

    def _probe(self, cid: str) -> tuple[bool, str]:
        if not self.probe(self.url, self.policy.probe_timeout):
            return False, f"{self.url} does not answer within {self.policy.probe_timeout:g}s"
        if self._docker_health(cid) == "unhealthy":
            return False, "Docker's health check reports it unhealthy"
        return True, ""

    def _docker_health(self, cid: str) -> Optional[str]:
        """The container's Docker health status (None: no health check, or not known now)."""
        try:
            state = self.ctx.docker.container_state(AGENT_NAME)
        except EngineError:
            return None
        if not state or str(state.get("Id", "")) != cid:
            return None
        health = (state.get("State") or {}).get("Health") or {}
        status = health.get("Status") if isinstance(health, dict) else None
        return str(status) if status else None

    def _heal_now(self, cid: str, why: str, failing_for: float) -> None:
        """Stop the unhealthy container (graceful); the supervision loop restarts it."""
        with self._lock:
            if not self._active or self._cid != cid:
                return  # the supervisor moved on meanwhile
            heal = self._heal
            if heal is None or heal.container_id != cid:
                heal = self._heal = _Heal(cid, started=self.clock())
        engine = self.ctx.docker
        try:
            state = engine.container_state(AGENT_NAME)
        except EngineError as err:
            self._heal_failed(heal, first_line(err))
            return
        if not state or str(state.get("Id", "")) != cid or not (state.get("State") or {}).get("Running"):
            with self._lock:  # it exited meanwhile: the supervision loop takes it from here
                if self._heal is heal:
                    self._heal = None
            return
        if not heal.announced:
            heal.announced = True
            log.error(
                "the agent has been unhealthy for %.0fs (%s; container %s): stopping it to restart it (%s=%g)",
                failing_for,
                why,
                cid[:12],
                HEALTH_TIMEOUT_KEY,
                self.policy.timeout,
            )
            record_event(self.ctx, "heal", container_id=cid, reason=why, unhealthy_seconds=round(failing_for))
            self.report(SupervisorState.HEALING, reason=why)
        else:
            log.error("the agent is still unhealthy (%s): trying again to stop container %s", why, cid[:12])
        with self._lock:
            self._healed_cid = cid
        try:
            engine.stop_container(AGENT_NAME, STOP_GRACE)
        except EngineError as err:
            self._heal_failed(heal, first_line(err))
            return
        with self._lock:
            if self._heal is heal:  # stopped: the loop has HEAL_LIMIT to see the exit
                heal.error = None
                heal.started = self.clock()

    def _heal_failed(self, heal: _Heal, reason: str) -> None:
        with self._lock:
            if self._heal is not heal:
                return  # the container exited meanwhile and the supervisor moved on
            heal.error = reason
            record = not heal.failure_recorded
            heal.failure_recorded = True
        log.error(
            "cannot stop the unhealthy agent container %s: %s; retrying every %gs, and not feeding "
            "the systemd watchdog meanwhile",
            heal.container_id[:12],
            reason,
            self.policy.interval,
        )
        if record:
            record_event(self.ctx, "heal-failed", container_id=heal.container_id, reason=reason)
