"""The actions of SPEC §1, each ``action(ctx, args) -> exit code``; pre-start and post-stop as step tables.

A step is ``"module:function"`` taking the context: the host steps are the
modules of ``ecs_init.host`` (each with ``setup``, and ``teardown`` when
there is something to undo), and pre-start ends with the agent image.
Modules are imported when their step runs, so each action loads only what
it runs: ``stop`` never loads the supervisor, the host steps or the
download code, and ``start`` loads the systemd notifier only when
NOTIFY_SOCKET is set (tests/unit/test_import_budget.py holds each action to
its list).
"""

from __future__ import annotations

import importlib
import logging
import os

from ecs_init.core.errors import InitError, first_line
from ecs_init.core.exitcodes import Exit
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Callable, Sequence

    Step = Callable[[HostContext], object]

log = logging.getLogger(__name__)

# SPEC §1: pre-start's steps, in this order, each logged.
PRE_START: tuple[tuple[str, str], ...] = (
    ("GPU setup", "ecs_init.host.gpu:setup"),
    ("AppArmor", "ecs_init.host.apparmor:setup"),
    ("loopback routing and IPv6 router advertisements", "ecs_init.host.loopback:setup"),
    ("IPv6-only route", "ecs_init.host.ipv6_route:setup"),
    ("netfilter rules", "ecs_init.host.netfilter:setup"),
    ("EBS mount directory", "ecs_init.host.ebs:setup"),
    ("agent image", "ecs_init.agent.cache:ensure_image"),
)

# post-stop undoes them, last first; every step runs even when one fails.
POST_STOP: tuple[tuple[str, str], ...] = (
    ("netfilter rules", "ecs_init.host.netfilter:teardown"),
    ("IPv6-only route", "ecs_init.host.ipv6_route:teardown"),
    ("loopback routing", "ecs_init.host.loopback:teardown"),
)


def step_function(target: str) -> Step:
    """``"module:function"`` -> the function (its module imported now)."""
    module_name, _, name = target.partition(":")
    func: Step = getattr(importlib.import_module(module_name), name)
    return func


def check_config(ctx: HostContext, action: str) -> None:
    """pre-start and start: refuse an ecs.config that is not KEY=VALUE text (one error line, exit 255),
    else log each class of configuration problems once (``agent.config_problems``, as ``check`` and
    ``render`` report them)."""
    refusals = ctx.cfg.refusals()
    if refusals:
        raise InitError(
            f"{action}: refusing to run: {'; '.join(refusals)}; the agent would start without the settings it "
            "should hold (its cluster): fix or remove the file (`amazon-ecs-init check` shows the problems)"
        )
    from ecs_init.agent import config_problems

    config_problems.find(ctx.cfg).log_summary(log, ctx.cfg)


def pre_start(ctx: HostContext, args: Sequence[str] = ()) -> int:
    from ecs_init.core import lock

    check_config(ctx, "pre-start")
    with lock.action_lock(ctx.cfg, "pre-start"):
        return run_pre_start(ctx)


def run_pre_start(ctx: HostContext) -> int:
    """The steps in order; the first failure ends pre-start (exit 255) with one line naming the step."""
    for name, target in PRE_START:
        log.info("pre-start: %s", name)
        try:
            step_function(target)(ctx)
        except InitError as err:
            raise InitError(f"pre-start: {name} failed: {err}") from err
    log.info("pre-start: done")
    return Exit.OK


def post_stop(ctx: HostContext, args: Sequence[str] = ()) -> int:
    """Undo the host preparation; every step runs even when one fails."""
    from ecs_init.core import lock

    with lock.action_lock(ctx.cfg, "post-stop"):
        return run_post_stop(ctx)


def run_post_stop(ctx: HostContext) -> int:
    """Every step is attempted; each failure is logged as an error; the exit is 0.

    SPEC §5 "Beyond": a failing ExecStopPost would mark the unit failed after
    an otherwise clean stop, so post-stop reports and carries on.
    """
    failures = []
    for name, target in POST_STOP:
        log.info("post-stop: %s", name)
        try:
            step_function(target)(ctx)
        except Exception as err:  # noqa: BLE001 - every step runs; each failure is one error line
            log.error("post-stop: %s failed: %s", name, err if isinstance(err, InitError) else first_line(err))
            failures.append(name)
    if failures:
        log.error("post-stop: done with %d failed step(s): %s", len(failures), ", ".join(failures))
    else:
        log.info("post-stop: done")
    return Exit.OK


def start(ctx: HostContext, args: Sequence[str] = ()) -> int:
    """Supervise the agent. Locks (see core/lock.py): the supervisor lock for the
    whole life (one supervisor at a time); the action lock only until the agent
    container has been started, so pre-start/post-stop never interleave with
    the set-up but are not blocked by a long-running supervisor."""
    from ecs_init.agent.supervisor import Supervisor
    from ecs_init.core import lock

    check_config(ctx, "start")
    with lock.supervisor_lock(ctx.cfg):
        setup = lock.action_lock(ctx.cfg, "start").acquire()
        supervisor = Supervisor(ctx, on_setup_done=setup.release)
        notifier = None
        if os.environ.get("NOTIFY_SOCKET"):  # systemd readiness/watchdog (its probe imports urllib)
            from ecs_init.agent import notify

            notifier = notify.attach(ctx, supervisor)
        supervisor.install_signal_handlers()
        try:
            return supervisor.run()
        finally:
            setup.release()
            if notifier is not None:
                notifier.close()


def stop(ctx: HostContext, args: Sequence[str] = ()) -> int:
    from ecs_init.agent import stop as agent_stop

    return agent_stop.stop(ctx)


def reload_cache(ctx: HostContext, args: Sequence[str] = ()) -> int:
    from ecs_init.agent import cache
    from ecs_init.core import lock

    with lock.action_lock(ctx.cfg, "reload-cache"):
        cache.reload_cache(ctx)
    return Exit.OK
