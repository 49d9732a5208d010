"""Gather the host facts the agent spec depends on (side effects: stat, realm, Docker)."""

from __future__ import annotations

import logging
import os

from ecs_init.agent.spec import HostFacts, candidate_paths
from ecs_init.core import settings
from ecs_init.core.errors import CommandError
from ecs_init.core.platform import read_platform
from ecs_init.host import apparmor, gpu
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Optional

log = logging.getLogger(__name__)


def realm_output(ctx: HostContext) -> str:
    """``realm list`` output when gMSA support is on; "" otherwise or on failure."""
    if not ctx.cfg.flag(settings.GMSA_SUPPORTED):
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
        if path == ctx.paths.ebs_dir and os.path.islink(path):
            existing.add(path)  # pre-start refuses a symlink there: not the EBS directory
        elif os.path.isdir(path):
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
    if not ctx.cfg.instance_flag(settings.ENABLE_GPU_SUPPORT):
        return None
    if facts.gpu_devices:
        return True
    return gpu.wait_for_devices()
