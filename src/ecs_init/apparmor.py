"""AppArmor profile for the agent (SPEC §8).

STUB: filled in by the host-preparation work (issue 9).
"""

from __future__ import annotations

from ecs_init.context import HostContext

DEFAULT_PROFILE = "ecs-agent-default"


def host_supports(ctx: HostContext) -> bool:
    """Module enabled and apparmor_parser present."""
    return False


def profile_name(ctx: HostContext) -> str:
    return ctx.cfg.setting("ECS_AGENT_APPARMOR_PROFILE") or DEFAULT_PROFILE


def setup(ctx: HostContext) -> None:
    """Write and load the profile when the host supports AppArmor."""
