"""systemd readiness and watchdog (``sd_notify``) for ``start`` under ``Type=notify``.

Only active when ``NOTIFY_SOCKET`` is set (a path, or ``@name`` for an
abstract socket). It sends:

* ``READY=1`` once: after the agent container runs *and* its introspection
  endpoint (``http://127.0.0.1:51678/v1/metadata``) answers, or, so that
  systemd does not kill a start whose agent is slow to register, after
  ``ECS_INIT_READY_TIMEOUT`` seconds (default 120) of the agent running
  with a STATUS saying it never answered. The wait runs in a thread: it
  never blocks supervision.
* ``STATUS=...`` whenever the supervisor's state changes.
* ``WATCHDOG=1`` every ``WATCHDOG_USEC``/2 (when ``WATCHDOG_USEC`` is set
  and ``WATCHDOG_PID``, if set, is this process) while supervision makes
  progress: only while the supervision loop's heartbeat is fresh and the
  agent is not unhealthy with its healing failed (``Supervisor.stalled``,
  see ``health.py``). Starved, systemd's ``WatchdogSec=`` restarts the unit.
* ``STOPPING=1`` when supervision ends.

Sending never raises and never blocks (non-blocking datagrams; a full queue
drops the message).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from ecs_init.agent.probe import DEFAULT_READY_TIMEOUT, DEFAULT_READY_URL, PROBE_TIMEOUT, probe_url
from ecs_init.core import settings

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional

    from ecs_init.agent.supervisor import Supervisor
    from ecs_init.host.context import HostContext

log = logging.getLogger(__name__)

__all__ = [  # the probe and its settings live in probe.py (shared with the health monitor)
    "DEFAULT_READY_TIMEOUT", "DEFAULT_READY_URL", "PROBE_TIMEOUT", "Notifier", "SupervisorNotifier", "attach",
    "describe", "probe_url", "socket_address", "watchdog_interval",
]  # fmt: skip

READY_POLL = 0.25


def socket_address(value: str) -> str | None:
    """NOTIFY_SOCKET as an AF_UNIX address: ``@x`` is the abstract ``\\0x``."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when off."""
    raw = environ.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


class Notifier:
    """An sd_notify client; every method is a no-op without NOTIFY_SOCKET."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = socket_address(raw)
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%r is neither an absolute path nor @abstract; not notifying systemd", raw)
        self.sock: socket.socket | None = None
        self._lock = threading.Lock()
        if self.address is not None:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self.sock.setblocking(False)
            except OSError as err:
                log.warning("cannot create the systemd notification socket: %s", err)
                self.sock = None

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; False when it could not be sent."""
        sock, address = self.sock, self.address
        if sock is None or address is None:
            return False
        payload = "\n".join(field.replace("\n", " ") for field in fields).encode("utf-8", errors="replace")
        try:
            with self._lock:
                sock.sendto(payload, address)
            return True
        except OSError as err:
            log.debug("sd_notify %r failed: %s", fields, err)
            return False

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def describe(state: str, doc: Mapping[str, Any]) -> str:
    """The STATUS= text for a supervisor state."""
    cid = str(doc.get("container_id") or "")[:12]
    restarts = doc.get("restarts", 0)
    if state == "starting":
        return "starting the ECS agent"
    if state == "running":
        how = "re-attached after a Docker restart" if doc.get("reattached") else "running"
        return f"ECS agent {how} (container {cid}, restarts {restarts})"
    if state == "backoff":
        delay = float(doc.get("delay", 0.0) or 0.0)
        return f"ECS agent exited with code {doc.get('exit_code')}; restarting in {delay:.1f}s (restarts {restarts})"
    if state == "docker-lost":
        return "lost the Docker daemon; waiting for it to return"
    if state == "healing":
        return f"ECS agent unhealthy ({doc.get('reason')}): restarting it (restarts {restarts})"
    if state == "stopped":
        return f"ECS agent stopped (exit code {doc.get('exit_code')})"
    if state == "terminal":
        return "ECS agent exited with code 5 (terminal): not restarting it"
    return f"ECS agent: {state}"


class SupervisorNotifier:
    """Hooks a Notifier to Supervisor.report (add ``listener`` to ``supervisor.listeners``)."""

    def __init__(
        self,
        notifier: Notifier,
        ready_url: str = DEFAULT_READY_URL,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        watchdog: float | None = None,
        probe: Callable[[str], bool] = probe_url,
        stalled: Callable[[], Optional[str]] = lambda: None,
    ):
        self.notifier = notifier
        self.ready_url = ready_url
        self.ready_timeout = ready_timeout
        self.watchdog = watchdog
        self.probe = probe
        self.stalled = stalled  # why not to feed the watchdog now (None: feed it)
        self.ready = threading.Event()
        self.closed = threading.Event()
        self.last_status = ""
        self._ready_thread: threading.Thread | None = None
        self._watchdog_thread: threading.Thread | None = None
        if watchdog and notifier.enabled:
            self._watchdog_thread = threading.Thread(target=self._watchdog_loop, name="sd-watchdog", daemon=True)
            self._watchdog_thread.start()

    def listener(self, state: str, doc: dict[str, Any]) -> None:
        if not self.notifier.enabled or self.closed.is_set():
            return
        status = describe(state, doc)
        if status != self.last_status:
            self.last_status = status
            self.notifier.send(f"STATUS={status}")
        if state == "running" and not self.ready.is_set() and self._ready_thread is None:
            self._ready_thread = threading.Thread(target=self._await_ready, name="sd-ready", daemon=True)
            self._ready_thread.start()
        if state in ("stopped", "terminal"):
            self.notifier.send("STOPPING=1")

    def _await_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self.closed.is_set():
            if self.probe(self.ready_url):
                self._send_ready(f"ECS agent running; {self.ready_url} answers")
                return
            if time.monotonic() >= deadline:
                log.warning(
                    "the agent's introspection endpoint %s did not answer within %.0fs; telling systemd it is ready",
                    self.ready_url,
                    self.ready_timeout,
                )
                self._send_ready(f"ECS agent running; {self.ready_url} did not answer within {self.ready_timeout:.0f}s")
                return
            self.closed.wait(READY_POLL)

    def _send_ready(self, status: str) -> None:
        self.ready.set()
        self.last_status = status
        self.notifier.send("READY=1", f"STATUS={status}")
        log.info("notified systemd: ready")

    def _watchdog_loop(self) -> None:
        interval = self.watchdog or 1.0
        starved = ""
        while not self.closed.is_set():
            try:
                reason = self.stalled()
            except Exception as err:  # noqa: BLE001 - a broken check must starve the watchdog, not kill it
                reason = f"cannot tell whether supervision makes progress: {err!r}"
            if reason is None:
                if starved:
                    log.warning("supervision makes progress again: feeding the systemd watchdog again")
                    starved = ""
                self.notifier.send("WATCHDOG=1")
            elif not starved:
                starved = reason
                log.error("not feeding the systemd watchdog: %s", reason)
            self.closed.wait(interval)

    def close(self) -> None:
        self.closed.set()
        self.notifier.close()


def attach(
    ctx: HostContext, supervisor: Supervisor, environ: Mapping[str, str] | None = None
) -> SupervisorNotifier | None:
    """Hook systemd notification into ``supervisor`` when NOTIFY_SOCKET is set; else None."""
    env = os.environ if environ is None else environ
    if not env.get("NOTIFY_SOCKET"):
        return None
    notifier = Notifier(env)
    if not notifier.enabled:
        return None
    cfg = ctx.cfg
    hooked = SupervisorNotifier(
        notifier,
        ready_url=cfg.text(settings.READY_URL) or DEFAULT_READY_URL,
        ready_timeout=cfg.seconds(settings.READY_TIMEOUT),
        watchdog=watchdog_interval(env),
        stalled=supervisor.stalled,
    )
    supervisor.listeners.append(hooked.listener)
    return hooked
