"""pre-start/post-stop step: the IPv6-only route (SPEC §6).

On a host without an IPv4 default route, ``setup`` adds
``169.254.170.2/32 dev lo scope link`` so the credentials endpoint is
reachable; ``teardown`` removes it whatever the host is now.
"""

from __future__ import annotations

import logging

from ecs_init.host import loopback
from ecs_init.host.context import HostContext
from ecs_init.host.loopback import failed, output
from ecs_init.host.netrules import CREDENTIALS_IP

log = logging.getLogger(__name__)

CREDENTIALS_ROUTE = f"{CREDENTIALS_IP}/32"
_ROUTE_EXISTS_HINTS = ("File exists",)
_ROUTE_ABSENT_HINTS = ("No such process", "Cannot find device")


def has_ipv4_default_route(ctx: HostContext) -> bool:
    proc = ctx.runner.run(["ip", "-4", "route", "show", "default"], check=True, timeout=30)
    return bool(proc.stdout.strip())


def _route_argv(op: str, loopback: str) -> list[str]:
    return ["ip", "route", op, CREDENTIALS_ROUTE, "dev", loopback, "scope", "link"]


def setup(ctx: HostContext) -> None:
    """IPv6-only host: add 169.254.170.2/32 dev lo scope link."""
    if has_ipv4_default_route(ctx):
        log.info("host has an IPv4 default route; no credentials route on the loopback needed")
        return
    argv = _route_argv("add", loopback.loopback_name(ctx))
    proc = ctx.runner.run(argv, check=False, timeout=30)
    out = output(proc.stdout, proc.stderr)
    if proc.returncode == 0:
        log.info("IPv6-only host: added route %s", " ".join(argv[3:]))
    elif any(hint in out for hint in _ROUTE_EXISTS_HINTS):
        log.info("IPv6-only host: route %s already present", " ".join(argv[3:]))
    else:
        raise failed(argv, proc.returncode, out)


def teardown(ctx: HostContext) -> None:
    """Remove the IPv6-only route (whether or not the host is IPv6-only now)."""
    argv = _route_argv("del", loopback.loopback_name(ctx))
    proc = ctx.runner.run(argv, check=False, timeout=30)
    out = output(proc.stdout, proc.stderr)
    if proc.returncode == 0:
        log.info("removed route %s", " ".join(argv[3:]))
    elif any(hint in out for hint in _ROUTE_ABSENT_HINTS):
        log.debug("route %s not present", " ".join(argv[3:]))
    else:
        raise failed(argv, proc.returncode, out)
