"""Gather the host facts the agent spec depends on (side effects: stat, realm, Docker)."""

from __future__ import annotations

import logging
import os
from typing import Optional

from ecs_init import apparmor, gpu
from ecs_init.agent_spec import HostFacts, candidate_paths
from ecs_init.config import bool_setting, read_platform
from ecs_init.context import HostContext
from ecs_init.errors import CommandError

log = logging.getLogger(__name__)


def realm_output(ctx: HostContext) -> str:
    """``realm list`` output when gMSA support is on; "" otherwise or on failure."""
    if not ctx.cfg.flag("ECS_GMSA_SUPPORTED"):
        return ""
    try:
        return ctx.runner.run(["realm", "list"], check=False, timeout=30).stdout or ""
    except CommandError as err:
        log.warning("gMSA: cannot list realms: %s", err)
        return ""


def gather(ctx: HostContext, docker_api_version: Optional[str] = None) -> HostFacts:
    platform = read_platform(ctx.paths)
    existing: set[str] = set()
    directories: set[str] = set()
    for path in candidate_paths(ctx.cfg, platform):
        if os.path.isdir(path):
            directories.add(path)
        elif os.path.exists(path):
            existing.add(path)
    api = docker_api_version if docker_api_version is not None else ctx.docker.api_version
    return HostFacts(
        platform=platform,
        docker_api_version=api,
        existing=frozenset(existing),
        directories=frozenset(directories),
        apparmor_enabled=apparmor.host_supports(ctx),
        gpu_devices=gpu.devices_present(),
        realm_output=realm_output(ctx),
    )


def gpu_devices_appeared(ctx: HostContext, facts: HostFacts) -> Optional[bool]:
    """SPEC §3: an instance-file GPU flag needs devices within 10 checks 3 s apart."""
    if not bool_setting("ECS_ENABLE_GPU_SUPPORT", ctx.cfg.instance.get("ECS_ENABLE_GPU_SUPPORT", "")):
        return None
    if facts.gpu_devices:
        return True
    return gpu.wait_for_devices()
