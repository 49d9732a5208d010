"""AppArmor for the agent (SPEC §8): host support, and pre-start's profile.

When the host supports AppArmor, pre-start writes ``ecs-agent-default`` to
``/etc/apparmor.d/ecs-agent-default`` and loads it with ``apparmor_parser
-Kr``. That is the only profile this program ever writes or loads:
``ECS_AGENT_APPARMOR_PROFILE`` chooses the profile the agent container runs
under (``SecurityOpt apparmor:<name>``, see ``agent_spec``), and a profile
an operator names there (``docker-default``, ``unconfined``, their own) is
theirs and stays untouched.

Support is the test the Go program uses (containerd's ``HostSupports``):
``/sys/kernel/security/apparmor`` exists, the ``container`` environment
variable is empty, ``/sbin/apparmor_parser`` exists, and
``/sys/module/apparmor/parameters/enabled`` starts with ``Y``. The host
paths resolve under ``ECS_INIT_PATH_PREFIX`` like every other path (tests).
"""

from __future__ import annotations

import logging
import os

from ecs_init.core import settings
from ecs_init.core.errors import CommandError, InitError
from ecs_init.core.fsutil import atomic_write, read_regular
from ecs_init.core.record import dataclass
from ecs_init.host import apparmor_profile
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Optional

log = logging.getLogger(__name__)

PROFILE_NAME = apparmor_profile.PROFILE_NAME
PARSER = "apparmor_parser"
REAL_APPARMOR_DIR = "/etc/apparmor.d"
LOAD_TIMEOUT = 120.0

SECURITYFS_DIR = "/sys/kernel/security/apparmor"
PARSER_PATH = "/sbin/apparmor_parser"
ENABLED_FLAG = "/sys/module/apparmor/parameters/enabled"
LOADED_PROFILES = "/sys/kernel/security/apparmor/profiles"
CONTAINER_ENV = "container"
MAX_FLAG_BYTES = 64
MAX_PROFILES_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Detection:
    """What decides AppArmor support, as read from the host."""

    securityfs: bool  # /sys/kernel/security/apparmor exists
    container_env: str  # the "container" environment variable
    parser: bool  # /sbin/apparmor_parser exists
    enabled_flag: Optional[bytes]  # /sys/module/apparmor/parameters/enabled, None when unreadable


def unsupported_reason(found: Detection) -> Optional[str]:
    """Why the host does not support AppArmor, or None when it does (pure)."""
    if not found.securityfs:
        return f"{SECURITYFS_DIR} does not exist"
    if found.container_env:
        return f"running in a container ({CONTAINER_ENV}={found.container_env[:40]!r})"
    if not found.parser:
        return f"{PARSER_PATH} does not exist"
    if found.enabled_flag is None:
        return f"{ENABLED_FLAG} cannot be read"
    if not found.enabled_flag.startswith(b"Y"):
        return f"the AppArmor module is not enabled ({ENABLED_FLAG} is not Y)"
    return None


def detect(ctx: HostContext) -> Detection:
    """Read the support facts (under the path prefix, if any)."""
    host = ctx.paths.host
    try:
        flag: Optional[bytes] = read_regular(host(ENABLED_FLAG), MAX_FLAG_BYTES)
    except OSError:
        flag = None
    return Detection(
        securityfs=os.path.exists(host(SECURITYFS_DIR)),
        container_env=ctx.cfg.environ.get(CONTAINER_ENV, ""),
        parser=os.path.exists(host(PARSER_PATH)),
        enabled_flag=flag,
    )


def host_supports(ctx: HostContext) -> bool:
    return unsupported_reason(detect(ctx)) is None


def container_profile(ctx: HostContext) -> str:
    """The profile the agent container runs under (never written by us unless it is ours)."""
    return apparmor_profile.container_profile(ctx.cfg.raw(settings.APPARMOR_PROFILE))


def profile_path(ctx: HostContext) -> str:
    """Where pre-start writes ``ecs-agent-default``; nothing else is ever written."""
    return os.path.join(ctx.paths.apparmor_dir, PROFILE_NAME)


def render_for_host(ctx: HostContext) -> str:
    """The profile text with the includes that exist under the AppArmor dir."""
    base = ctx.paths.apparmor_dir
    return apparmor_profile.render(
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


def loaded_profiles(ctx: HostContext) -> Optional[set[str]]:
    """Names of the profiles the kernel has loaded, or None when unknown."""
    try:
        raw = read_regular(ctx.paths.host(LOADED_PROFILES), MAX_PROFILES_BYTES)
    except OSError:
        return None
    names = set()
    for line in raw.decode("utf-8", errors="replace").splitlines():
        # "<name> (<mode>)"; a name may itself contain spaces
        name, sep, _ = line.rstrip().rpartition(" (")
        names.add(name if sep else line.strip())
    return names


def setup(ctx: HostContext) -> None:
    """pre-start: write and load ``ecs-agent-default`` when the host supports AppArmor."""
    reason = unsupported_reason(detect(ctx))
    if reason is not None:
        log.info("AppArmor is not supported on this host (%s); no agent profile", reason)
        return
    text = render_for_host(ctx)
    path = profile_path(ctx)
    try:
        atomic_write(path, text, mode=0o644)
    except OSError as err:
        raise InitError(f"cannot write AppArmor profile {path}: {err.strerror or err}") from err
    try:
        ctx.runner.run(load_argv(ctx, path), timeout=LOAD_TIMEOUT)
    except CommandError as err:
        raise InitError(f"cannot load AppArmor profile {PROFILE_NAME}: {err}") from err
    log.info("AppArmor profile %s written to %s and loaded", PROFILE_NAME, path)
    chosen = container_profile(ctx)
    if chosen != PROFILE_NAME:
        _note_operator_profile(ctx, chosen)


def _note_operator_profile(ctx: HostContext, chosen: str) -> None:
    """The agent will run under an operator's profile: say so, and warn when it is not loaded."""
    log.info(
        "the agent container runs under AppArmor profile %r (%s); pre-start does not write or load it",
        chosen,
        settings.APPARMOR_PROFILE.name,
    )
    if chosen == "unconfined":
        return
    loaded = loaded_profiles(ctx)
    if loaded is not None and chosen not in loaded:
        log.warning(
            "AppArmor profile %r (%s) is not loaded: Docker will refuse to start the agent container "
            "until it is (apparmor_parser -r /etc/apparmor.d/<file>)",
            chosen,
            settings.APPARMOR_PROFILE.name,
        )
