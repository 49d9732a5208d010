"""The engine: orchestrates the actions of SPEC §1 out of the per-concern modules."""

from __future__ import annotations

import logging
import os
from typing import Callable

from ecs_init import apparmor, cache, gpu, hostnet, lock, netfilter, notify
from ecs_init.context import HostContext
from ecs_init.errors import InitError
from ecs_init.supervisor import Supervisor, stop_agent

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


PRE_START_STEPS: tuple[tuple[str, Step], ...] = (
    ("GPU setup", gpu.setup),
    ("AppArmor", apparmor.setup),
    ("loopback routing and IPv6 router advertisements", hostnet.setup_sysctl),
    ("IPv6-only route", hostnet.setup_ipv6_route),
    ("netfilter rules", netfilter.setup),
    ("EBS mount directory", setup_ebs_dir),
    ("agent image", cache.ensure_image),
)

POST_STOP_STEPS: tuple[tuple[str, Step], ...] = (
    ("netfilter rules", netfilter.teardown),
    ("IPv6-only route", hostnet.teardown_ipv6_route),
    ("loopback routing", hostnet.teardown_sysctl),
)


def pre_start(ctx: HostContext) -> int:
    with lock.action_lock(ctx, "pre-start"):
        return _pre_start(ctx)


def _pre_start(ctx: HostContext) -> int:
    for name, step in PRE_START_STEPS:
        log.info("pre-start: %s", name)
        try:
            step(ctx)
        except InitError as err:
            raise InitError(f"pre-start: {name} failed: {err}") from err
    log.info("pre-start: done")
    return 0


def post_stop(ctx: HostContext) -> int:
    """Undo the host preparation; every step runs even when one fails."""
    with lock.action_lock(ctx, "post-stop"):
        return _post_stop(ctx)


def _post_stop(ctx: HostContext) -> int:
    failures = []
    for name, step in POST_STOP_STEPS:
        log.info("post-stop: %s", name)
        try:
            step(ctx)
        except InitError as err:
            log.error("post-stop: %s failed: %s", name, err)
            failures.append(name)
    if failures:
        raise InitError(f"post-stop: {len(failures)} step(s) failed: {', '.join(failures)}")
    log.info("post-stop: done")
    return 0


def start(ctx: HostContext) -> int:
    """Supervise the agent. Locks (see lock.py): the supervisor lock for the
    whole life (one supervisor at a time); the action lock only until the agent
    container has been started, so pre-start/post-stop never interleave with
    the set-up but are not blocked by a long-running supervisor."""
    with lock.supervisor_lock(ctx):
        setup = lock.action_lock(ctx, "start").acquire()
        supervisor = Supervisor(ctx)
        supervisor.listeners.append(lock.release_when_running(setup))
        notifier = notify.attach(ctx, supervisor)
        supervisor.install_signal_handlers()
        try:
            return supervisor.run()
        finally:
            setup.release()
            if notifier is not None:
                notifier.close()


def stop(ctx: HostContext) -> int:
    stop_agent(ctx)
    return 0


def reload_cache(ctx: HostContext) -> int:
    with lock.action_lock(ctx, "reload-cache"):
        cache.reload_cache(ctx)
    return 0
