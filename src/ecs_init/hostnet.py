"""Loopback routing, IPv6 router advertisements, IPv6-only route (SPEC §6).

STUB: filled in by the host-network work (issue 3).
"""

from __future__ import annotations

from ecs_init.context import HostContext


def setup_sysctl(ctx: HostContext) -> None:
    """route_localnet=1, docker0 accept_ra=0."""


def setup_ipv6_route(ctx: HostContext) -> None:
    """IPv6-only host: add 169.254.170.2/32 dev lo scope link."""


def teardown_sysctl(ctx: HostContext) -> None:
    """route_localnet back to the default value."""


def teardown_ipv6_route(ctx: HostContext) -> None:
    """Remove the IPv6-only route."""
