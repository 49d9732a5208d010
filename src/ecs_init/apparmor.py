"""AppArmor profile for the agent (SPEC §8).

pre-start writes the profile to ``/etc/apparmor.d/<name>`` and loads it with
``apparmor_parser -Kr`` when the host supports AppArmor: the kernel module is
enabled and ``apparmor_parser`` is installed. The agent container then runs
with ``SecurityOpt apparmor:<name>`` (the container spec asks
``host_supports`` and ``profile_name``).
"""

from __future__ import annotations

import logging
import os

from ecs_init import apparmor_profile
from ecs_init.context import HostContext
from ecs_init.errors import CommandError, InitError
from ecs_init.fsutil import atomic_write

log = logging.getLogger(__name__)

DEFAULT_PROFILE = "ecs-agent-default"
PROFILE_ENV = "ECS_AGENT_APPARMOR_PROFILE"
PARSER = "apparmor_parser"
REAL_APPARMOR_DIR = "/etc/apparmor.d"
LOAD_TIMEOUT = 120.0


def module_enabled(sysfs_root: str = "/sys") -> bool:
    """The kernel's AppArmor module reports itself enabled ("Y")."""
    path = os.path.join(sysfs_root, "module", "apparmor", "parameters", "enabled")
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read(16).strip().startswith("Y")
    except OSError:
        return False


def host_supports(ctx: HostContext, sysfs_root: str = "/sys") -> bool:
    """Module enabled and apparmor_parser present."""
    return module_enabled(sysfs_root) and ctx.runner.which(PARSER) is not None


def profile_name(ctx: HostContext) -> str:
    return ctx.cfg.setting(PROFILE_ENV).strip() or DEFAULT_PROFILE


def profile_path(ctx: HostContext) -> str:
    return os.path.join(ctx.paths.apparmor_dir, profile_name(ctx))


def render_for_host(ctx: HostContext) -> str:
    """The profile text with the includes that exist under the AppArmor dir."""
    name = profile_name(ctx)
    if not apparmor_profile.valid_name(name):
        raise InitError(
            f"{PROFILE_ENV}={name!r} is not a valid AppArmor profile name (letters, digits, '.', '_', '+', '-'; no '/')"
        )
    base = ctx.paths.apparmor_dir
    return apparmor_profile.render(
        name,
        include_tunables=os.path.isfile(os.path.join(base, apparmor_profile.TUNABLES_INCLUDE)),
        include_abstractions=os.path.isfile(os.path.join(base, apparmor_profile.ABSTRACTIONS_INCLUDE)),
    )


def load_argv(ctx: HostContext, path: str) -> list[str]:
    """``apparmor_parser -Kr <file>``; under a path prefix the parser also
    searches the prefixed AppArmor dir first, so it reads the includes whose
    presence decided the profile text."""
    argv = [PARSER, "-Kr"]
    if ctx.paths.apparmor_dir != REAL_APPARMOR_DIR:
        argv += ["-I", ctx.paths.apparmor_dir]
    return argv + [path]


def setup(ctx: HostContext, sysfs_root: str = "/sys") -> None:
    """Write and load the profile when the host supports AppArmor."""
    if not module_enabled(sysfs_root):
        log.info("AppArmor is not enabled on this host; no agent profile")
        return
    if ctx.runner.which(PARSER) is None:
        log.info("AppArmor is enabled but %s is not installed; no agent profile", PARSER)
        return
    name = profile_name(ctx)
    text = render_for_host(ctx)
    path = profile_path(ctx)
    try:
        atomic_write(path, text, mode=0o644)
    except OSError as err:
        raise InitError(f"cannot write AppArmor profile {path}: {err.strerror or err}") from err
    try:
        ctx.runner.run(load_argv(ctx, path), timeout=LOAD_TIMEOUT)
    except CommandError as err:
        raise InitError(f"cannot load AppArmor profile {name}: {err}") from err
    log.info("AppArmor profile %s written to %s and loaded", name, path)
