"""The engine: orchestrates the actions of SPEC §1 out of the per-concern modules.

Each action imports what it runs, inside its function: ``stop`` never
loads the supervisor, the host-preparation steps or the download code, and
``start`` loads the systemd notifier only when NOTIFY_SOCKET is set
(tests/unit/test_import_budget.py holds each action to its list).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable, Optional

from ecs_init.context import HostContext
from ecs_init.errors import InitError

if TYPE_CHECKING:
    from ecs_init.notify import SupervisorNotifier
    from ecs_init.supervisor import Supervisor

log = logging.getLogger(__name__)

Step = Callable[[HostContext], object]


def setup_ebs_dir(ctx: HostContext) -> None:
    """Create the EBS task-attach mount directory (0755); a failure is logged, not fatal.

    The agent then gets ECS_EBSTA_SUPPORTED=false (agent_spec checks the directory).
    """
    path = ctx.paths.ebs_dir
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, 0o755)
    except OSError as err:
        log.error("cannot create the EBS mount directory %s: %s; EBS task attach will be off", path, err)


def pre_start_steps() -> tuple[tuple[str, Step], ...]:
    from ecs_init import apparmor, cache, gpu, hostnet, netfilter

    return (
        ("GPU setup", gpu.setup),
        ("AppArmor", apparmor.setup),
        ("loopback routing and IPv6 router advertisements", hostnet.setup_sysctl),
        ("IPv6-only route", hostnet.setup_ipv6_route),
        ("netfilter rules", netfilter.setup),
        ("EBS mount directory", setup_ebs_dir),
        ("agent image", cache.ensure_image),
    )


def post_stop_steps() -> tuple[tuple[str, Step], ...]:
    from ecs_init import hostnet, netfilter

    return (
        ("netfilter rules", netfilter.teardown),
        ("IPv6-only route", hostnet.teardown_ipv6_route),
        ("loopback routing", hostnet.teardown_sysctl),
    )


def pre_start(ctx: HostContext) -> int:
    from ecs_init import lock

    with lock.action_lock(ctx, "pre-start"):
        return _pre_start(ctx)


def _pre_start(ctx: HostContext) -> int:
    for name, step in pre_start_steps():
        log.info("pre-start: %s", name)
        try:
            step(ctx)
        except InitError as err:
            raise InitError(f"pre-start: {name} failed: {err}") from err
    log.info("pre-start: done")
    return 0


def post_stop(ctx: HostContext) -> int:
    """Undo the host preparation; every step runs even when one fails."""
    from ecs_init import lock

    with lock.action_lock(ctx, "post-stop"):
        return _post_stop(ctx)


def _post_stop(ctx: HostContext) -> int:
    """Every step is attempted; each failure is logged as an error; the exit is 0.

    SPEC §5 "Beyond": a failing ExecStopPost would mark the unit failed after
    an otherwise clean stop, so post-stop reports and carries on.
    """
    failures = []
    for name, step in post_stop_steps():
        log.info("post-stop: %s", name)
        try:
            step(ctx)
        except Exception as err:  # noqa: BLE001 - every step runs; each failure is one error line
            log.error("post-stop: %s failed: %s", name, err if isinstance(err, InitError) else repr(err))
            failures.append(name)
    if failures:
        log.error("post-stop: done with %d failed step(s): %s", len(failures), ", ".join(failures))
    else:
        log.info("post-stop: done")
    return 0


def start(ctx: HostContext) -> int:
    """Supervise the agent. Locks (see lock.py): the supervisor lock for the
    whole life (one supervisor at a time); the action lock only until the agent
    container has been started, so pre-start/post-stop never interleave with
    the set-up but are not blocked by a long-running supervisor."""
    from ecs_init import lock
    from ecs_init.supervisor import Supervisor

    with lock.supervisor_lock(ctx):
        setup = lock.action_lock(ctx, "start").acquire()
        supervisor = Supervisor(ctx)
        supervisor.listeners.append(lock.release_when_running(setup))
        notifier = _attach_notifier(ctx, supervisor)
        supervisor.install_signal_handlers()
        try:
            return supervisor.run()
        finally:
            setup.release()
            if notifier is not None:
                notifier.close()


def _attach_notifier(ctx: HostContext, supervisor: Supervisor) -> Optional[SupervisorNotifier]:
    """systemd readiness/watchdog: only under NOTIFY_SOCKET (its probe imports urllib)."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    from ecs_init import notify

    return notify.attach(ctx, supervisor)


def stop(ctx: HostContext) -> int:
    from ecs_init import agent_stop

    return agent_stop.stop(ctx)


def reload_cache(ctx: HostContext) -> int:
    from ecs_init import cache, lock

    with lock.action_lock(ctx, "reload-cache"):
        cache.reload_cache(ctx)
    return 0
