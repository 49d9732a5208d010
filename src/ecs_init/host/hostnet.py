"""Loopback routing, IPv6 router advertisements, IPv6-only route (SPEC §6).

Every change goes through ``ctx.runner`` (the ``sysctl`` and ``ip``
binaries), never through this process's own ``/proc``, so a runner with an
``ip netns exec NS`` prefix acts on that namespace only.
"""

from __future__ import annotations

import logging

from ecs_init.core.context import HostContext
from ecs_init.core.errors import CommandError
from ecs_init.host.netrules import CREDENTIALS_IP, parse_loopback

log = logging.getLogger(__name__)

ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"
ROUTE_LOCALNET_DEFAULT = "net.ipv4.conf.default.route_localnet"
DOCKER0_ACCEPT_RA = "net.ipv6.conf.docker0.accept_ra"
CREDENTIALS_ROUTE = f"{CREDENTIALS_IP}/32"

_MISSING_KEY_HINTS = ("cannot stat", "unknown key")
_ROUTE_EXISTS_HINTS = ("File exists",)
_ROUTE_ABSENT_HINTS = ("No such process", "Cannot find device")


def _output(proc_stdout: str | None, proc_stderr: str | None) -> str:
    return ((proc_stderr or "").strip() or (proc_stdout or "").strip()).replace("\n", " | ")


def _fail(argv: list[str], returncode: int, out: str) -> CommandError:
    return CommandError(f"{' '.join(argv)}: exit {returncode}: {out}")


def loopback_name(ctx: HostContext) -> str:
    """The interface with the LOOPBACK flag (``lo`` on every usual host)."""
    try:
        proc = ctx.runner.run(["ip", "-o", "link", "show"], check=True, timeout=30)
    except CommandError as err:
        log.warning("cannot list network interfaces (%s); assuming the loopback interface is lo", err)
        return "lo"
    name = parse_loopback(proc.stdout)
    if name is None:
        log.warning("no interface has the LOOPBACK flag; assuming lo")
        return "lo"
    return name


def _sysctl_write(ctx: HostContext, key: str, value: str) -> None:
    ctx.runner.run(["sysctl", "-w", f"{key}={value}"], check=True, timeout=30)


def setup_sysctl(ctx: HostContext) -> None:
    """route_localnet=1, docker0 accept_ra=0 (a missing docker0 key is fine)."""
    _sysctl_write(ctx, ROUTE_LOCALNET, "1")
    log.info("loopback routing enabled (%s=1)", ROUTE_LOCALNET)
    argv = ["sysctl", "-w", f"{DOCKER0_ACCEPT_RA}=0"]
    proc = ctx.runner.run(argv, check=False, timeout=30)
    out = _output(proc.stdout, proc.stderr)
    if proc.returncode == 0:
        log.info("IPv6 router advertisements disabled on docker0")
    elif any(hint in out for hint in _MISSING_KEY_HINTS):
        log.info("no %s on this host (no docker0 or no IPv6); nothing to disable", DOCKER0_ACCEPT_RA)
    else:
        raise _fail(argv, proc.returncode, out)


def teardown_sysctl(ctx: HostContext) -> None:
    """route_localnet back to the value of net.ipv4.conf.default.route_localnet."""
    argv = ["sysctl", "-n", ROUTE_LOCALNET_DEFAULT]
    proc = ctx.runner.run(argv, check=True, timeout=30)
    value = proc.stdout.strip()
    if not value.isdigit():
        raise CommandError(f"{' '.join(argv)}: unexpected output {value!r}")
    _sysctl_write(ctx, ROUTE_LOCALNET, value)
    log.info("loopback routing restored (%s=%s)", ROUTE_LOCALNET, value)


def has_ipv4_default_route(ctx: HostContext) -> bool:
    proc = ctx.runner.run(["ip", "-4", "route", "show", "default"], check=True, timeout=30)
    return bool(proc.stdout.strip())


def _route_argv(op: str, loopback: str) -> list[str]:
    return ["ip", "route", op, CREDENTIALS_ROUTE, "dev", loopback, "scope", "link"]


def setup_ipv6_route(ctx: HostContext) -> None:
    """IPv6-only host: add 169.254.170.2/32 dev lo scope link."""
    if has_ipv4_default_route(ctx):
        log.info("host has an IPv4 default route; no credentials route on the loopback needed")
        return
    argv = _route_argv("add", loopback_name(ctx))
    proc = ctx.runner.run(argv, check=False, timeout=30)
    out = _output(proc.stdout, proc.stderr)
    if proc.returncode == 0:
        log.info("IPv6-only host: added route %s", " ".join(argv[3:]))
    elif any(hint in out for hint in _ROUTE_EXISTS_HINTS):
        log.info("IPv6-only host: route %s already present", " ".join(argv[3:]))
    else:
        raise _fail(argv, proc.returncode, out)


def teardown_ipv6_route(ctx: HostContext) -> None:
    """Remove the IPv6-only route (whether or not the host is IPv6-only now)."""
    argv = _route_argv("del", loopback_name(ctx))
    proc = ctx.runner.run(argv, check=False, timeout=30)
    out = _output(proc.stdout, proc.stderr)
    if proc.returncode == 0:
        log.info("removed route %s", " ".join(argv[3:]))
    elif any(hint in out for hint in _ROUTE_ABSENT_HINTS):
        log.debug("route %s not present", " ".join(argv[3:]))
    else:
        raise _fail(argv, proc.returncode, out)
