"""Netfilter rules for the credentials endpoint and introspection port (SPEC §7).

STUB: filled in by the host-network work (issue 3).
"""

from __future__ import annotations

from ecs_init.context import HostContext


def setup(ctx: HostContext) -> None:
    """Create every rule once (idempotent)."""


def teardown(ctx: HostContext) -> None:
    """Remove every rule this program may have created."""
