"""pre-start/post-stop step: loopback routing and IPv6 router advertisements (SPEC §6, sysctl).

``setup`` sets ``route_localnet=1`` and docker0's ``accept_ra=0``;
``teardown`` sets ``route_localnet`` back to the kernel's default.

Every change goes through ``ctx.runner`` (the ``sysctl`` and ``ip``
binaries), never through this process's own ``/proc``, so a runner with an
``ip netns exec NS`` prefix acts on that namespace only.
"""

from __future__ import annotations

import logging

from ecs_init.core.errors import CommandError
from ecs_init.host.context import HostContext
from ecs_init.host.netrules import parse_loopback

log = logging.getLogger(__name__)

ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"
ROUTE_LOCALNET_DEFAULT = "net.ipv4.conf.default.route_localnet"
DOCKER0_ACCEPT_RA = "net.ipv6.conf.docker0.accept_ra"

_MISSING_KEY_HINTS = ("cannot stat", "unknown key")


def output(proc_stdout: str | None, proc_stderr: str | None) -> str:
    """A command's error text (stderr, else stdout) on one line."""
    return ((proc_stderr or "").strip() or (proc_stdout or "").strip()).replace("\n", " | ")


def failed(argv: list[str], returncode: int, out: str) -> CommandError:
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


def route_localnet(ctx: HostContext, timeout: float = 30) -> str:
    """The current ``net.ipv4.conf.all.route_localnet`` (CommandError when sysctl cannot tell)."""
    return ctx.runner.run(["sysctl", "-n", ROUTE_LOCALNET], check=True, timeout=timeout).stdout.strip()


def _sysctl_write(ctx: HostContext, key: str, value: str) -> None:
    ctx.runner.run(["sysctl", "-w", f"{key}={value}"], check=True, timeout=30)


def setup(ctx: HostContext) -> None:
    """route_localnet=1, docker0 accept_ra=0 (a missing docker0 key is fine)."""
    _sysctl_write(ctx, ROUTE_LOCALNET, "1")
    log.info("loopback routing enabled (%s=1)", ROUTE_LOCALNET)
    argv = ["sysctl", "-w", f"{DOCKER0_ACCEPT_RA}=0"]
    proc = ctx.runner.run(argv, check=False, timeout=30)
    out = output(proc.stdout, proc.stderr)
    if proc.returncode == 0:
        log.info("IPv6 router advertisements disabled on docker0")
    elif any(hint in out for hint in _MISSING_KEY_HINTS):
        log.info("no %s on this host (no docker0 or no IPv6); nothing to disable", DOCKER0_ACCEPT_RA)
    else:
        raise failed(argv, proc.returncode, out)


def teardown(ctx: HostContext) -> None:
    """route_localnet back to the value of net.ipv4.conf.default.route_localnet."""
    argv = ["sysctl", "-n", ROUTE_LOCALNET_DEFAULT]
    proc = ctx.runner.run(argv, check=True, timeout=30)
    value = proc.stdout.strip()
    if not value.isdigit():
        raise CommandError(f"{' '.join(argv)}: unexpected output {value!r}")
    _sysctl_write(ctx, ROUTE_LOCALNET, value)
    log.info("loopback routing restored (%s=%s)", ROUTE_LOCALNET, value)
