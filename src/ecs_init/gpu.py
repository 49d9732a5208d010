"""NVIDIA GPU facts for the agent (SPEC §9).

STUB: filled in by the host-preparation work (issue 9).
"""

from __future__ import annotations

from ecs_init.context import HostContext


def devices_present() -> bool:
    """True when any /dev/nvidia* device exists."""
    return False


def setup(ctx: HostContext) -> None:
    """When ECS_ENABLE_GPU_SUPPORT is true: EULA notice, NVML facts to the JSON file."""
