"""Paths (SPEC §2), env-file parsing and merge (SPEC §3), own settings, platform.

Everything here is pure or reads files only; nothing changes the host.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Mapping

from ecs_init.fsutil import NotRegularFile, read_regular

log = logging.getLogger(__name__)

PREFIX_ENV = "ECS_INIT_PATH_PREFIX"

# Files larger than this are refused rather than read (hostile input).
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Paths:
    """Every host path of SPEC §2, resolved under an optional root prefix."""

    prefix: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        prefix = env.get(PREFIX_ENV, "").rstrip("/")
        return cls(prefix=prefix)

    def host(self, path: str) -> str:
        """Map a real absolute path to its location under the prefix."""
        return self.prefix + path

    # /etc/ecs
    @property
    def config_dir(self) -> str:
        return self.host("/etc/ecs")

    @property
    def ecs_config(self) -> str:
        return self.host("/etc/ecs/ecs.config")

    @property
    def ecs_config_json(self) -> str:
        return self.host("/etc/ecs/ecs.config.json")

    # /var/lib/ecs
    @property
    def instance_config_dir(self) -> str:
        return self.host("/var/lib/ecs")

    @property
    def instance_config(self) -> str:
        return self.host("/var/lib/ecs/ecs.config")

    @property
    def data_dir(self) -> str:
        return self.host("/var/lib/ecs/data")

    @property
    def deps_dir(self) -> str:
        return self.host("/var/lib/ecs/deps")

    @property
    def gpu_dir(self) -> str:
        return self.host("/var/lib/ecs/gpu")

    @property
    def gpu_info(self) -> str:
        return self.host("/var/lib/ecs/gpu/nvidia-gpu-info.json")

    @property
    def volumes_dir(self) -> str:
        return self.host("/var/lib/ecs/volumes")

    @property
    def volume_plugin_state(self) -> str:
        return self.host("/var/lib/ecs/data/ecs_volume_plugin.json")

    # /var/log/ecs
    @property
    def log_dir(self) -> str:
        return self.host("/var/log/ecs")

    @property
    def init_log(self) -> str:
        return self.host("/var/log/ecs/ecs-init.log")

    # /var/cache/ecs
    @property
    def cache_dir(self) -> str:
        return self.host("/var/cache/ecs")

    @property
    def cache_tarball(self) -> str:
        return self.host("/var/cache/ecs/ecs-agent.tar")

    @property
    def cache_state(self) -> str:
        return self.host("/var/cache/ecs/state")

    @property
    def desired_image(self) -> str:
        return self.host("/var/cache/ecs/desired-image")

    # elsewhere
    @property
    def ebs_dir(self) -> str:
        return self.host("/mnt/ecs/ebs")

    @property
    def run_dir(self) -> str:
        """Runtime state of this program: lock, supervisor status, events."""
        return self.host("/var/run/ecs-init")

    @property
    def apparmor_dir(self) -> str:
        return self.host("/etc/apparmor.d")

    @property
    def os_release(self) -> str:
        """The prefix's os-release when it has one (tests), else the host's."""
        candidate = self.host("/etc/os-release")
        if self.prefix and os.path.exists(candidate):
            return candidate
        return "/etc/os-release"


# ---------------------------------------------------------------- env files


def parse_env_text(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines the way the agent's env files are read (SPEC §3).

    Trim the text, split on newlines, trim each line, split on the first
    ``=``; lines without ``=`` are skipped. Later lines win.
    """
    result: dict[str, str] = {}
    for raw in text.strip().split("\n"):
        line = raw.strip()
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if not key:
            continue
        result[key] = value.strip()
    return result


def read_env_file(path: str) -> dict[str, str]:
    """Read an env file; a missing file is empty. Unreadable files are logged.

    Huge, binary or non-UTF-8 files are handled: bytes that are not UTF-8 are
    replaced, NUL bytes end a line, and files over 1 MiB are refused.
    """
    try:
        data = read_regular(path, MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return {}
    except NotRegularFile as err:
        log.error("config file %s; ignoring it", err)
        return {}
    except OSError as err:
        log.error("cannot read config file %s: %s; ignoring it", path, err.strerror or err)
        return {}
    if len(data) > MAX_CONFIG_BYTES:
        log.error("config file %s is larger than %d bytes; ignoring it", path, MAX_CONFIG_BYTES)
        return {}
    text = data.decode("utf-8", errors="replace").replace("\x00", "\n")
    return parse_env_text(text)


# ---------------------------------------------------------------- booleans

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool: True/False, or None when unparsable."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


# The two rules the Go ecs-init uses for its switches (SPEC §3).
EXACT_TRUE = "exactly true"  # only the string "true" is true; anything else, "1" and "True" included, is false
PARSE_BOOL = "ParseBool"  # strconv.ParseBool; anything unparsable is logged and false

# Which rule each boolean this program reads follows (one table: the
# settings redesign absorbs it). A privileged agent or dropped capabilities
# must never follow from a value the Go program would not accept.
BOOLEAN_RULES: dict[str, str] = {
    "ECS_AGENT_RUN_PRIVILEGED": EXACT_TRUE,
    "ECS_EXTERNAL": EXACT_TRUE,
    "ECS_GMSA_SUPPORTED": EXACT_TRUE,
    "ECS_ENABLE_GPU_SUPPORT": EXACT_TRUE,
    "ECS_DOMAIN_JOINED_LINUX_INSTANCE": EXACT_TRUE,
    "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": PARSE_BOOL,
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS": PARSE_BOOL,
    "ECS_AGENT_PID_NAMESPACE_HOST": PARSE_BOOL,
}


def read_bool(key: str, raw: str) -> tuple[bool, str | None]:
    """``raw`` as ``key``'s rule reads it, and why it deserves a warning (or None).

    Raises KeyError for a key that is not in BOOLEAN_RULES.
    """
    rule = BOOLEAN_RULES[key]
    if rule == EXACT_TRUE:
        if raw == "true" or raw == "" or raw in _FALSE:
            return raw == "true", None
        if raw in _TRUE:
            return False, f"{key}={raw!r} is not exactly 'true', so it is off (only the word true turns it on)"
        return False, f"{key}={raw!r} is not 'true', so it is off"
    parsed = parse_bool(raw)
    if parsed is None:
        return False, (f"{key}={raw!r} is not a boolean; treating it as false" if raw else None)
    return parsed, None


def bool_setting(key: str, raw: str) -> bool:
    """``raw`` read by ``key``'s rule (no logging: for values that are not settings lookups)."""
    return read_bool(key, raw)[0]


def rules_disagree(key: str, raw: str) -> str | None:
    """For ``check``: a value only one of the two rules takes as true, with what it means here."""
    rule = BOOLEAN_RULES.get(key)
    if rule is None or raw == "true" or raw not in _TRUE:
        return None
    if rule == EXACT_TRUE:
        return (
            f"{key}={raw!r} is off for ecs-init, which turns this on only for the exact word true "
            "(as the Go ecs-init does); other readers of ParseBool take it as true"
        )
    return f"{key}={raw!r} is on (read like Go's ParseBool), but ecs-init's other switches accept only the word true"


def version_tuple(version: str) -> tuple[int, ...]:
    """ "1.41" -> (1, 41); anything unparsable sorts lowest."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


# ---------------------------------------------------------------- platform


@dataclass(frozen=True)
class Platform:
    """One row of SPEC §3's platform table (the Go program's per-package build values)."""

    family: str  # "al2", "al1", "debian" or "generic-rpm"
    cgroup_mountpoint: str
    certs_dir: str  # "" for none: no SSL_CERT_DIR
    pki_dir: str  # "" for none: no PKI bind
    detailed_os_family: str


AL2 = "al2"  # Amazon Linux 2 and 2023: the Go Amazon Linux RPM
AL1 = "al1"  # Amazon Linux 1 (upstart): the Go "unspecified" build
DEBIAN = "debian"  # Debian, Ubuntu, SUSE, Chainguard and their ID_LIKE derivatives: the Go .deb build
GENERIC_RPM = "generic-rpm"  # RHEL, Fedora, Rocky, Alma, CentOS, Oracle and any other system: the Go generic RPM

PLATFORM_ROWS: dict[str, tuple[str, str, str]] = {
    AL2: ("/sys/fs/cgroup", "/etc/pki/tls/certs", "/etc/pki"),
    AL1: ("/cgroup", "/etc/pki/tls/certs", "/etc/pki"),
    DEBIAN: ("/sys/fs/cgroup", "/etc/ssl/certs", "/etc/ssl"),
    GENERIC_RPM: ("/sys/fs/cgroup", "", ""),
}

# os-release IDs (and ID_LIKE words) of the Debian-package row.
_DEBIAN_IDS = frozenset(
    {
        "debian",
        "ubuntu",
        "suse",
        "sles",
        "sled",
        "sle-micro",
        "sl-micro",
        "opensuse",
        "opensuse-leap",
        "opensuse-tumbleweed",
        "opensuse-microos",
        "chainguard",
        "wolfi",
    }
)


def _os_release_value(raw: str) -> str:
    """A value as the Go program reads it: whitespace trimmed, then every leading/trailing quote."""
    return raw.strip().strip("\"'")


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=VALUE lines of os-release (blank lines and comments skipped; the last KEY wins)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.strip()] = _os_release_value(value)
    return out


def platform_family(os_release: Mapping[str, str]) -> str:
    """Which row of the platform table this os-release describes (pure).

    ``ID`` decides first (Amazon Linux lists ``ID_LIKE="centos rhel fedora"``
    and must stay Amazon Linux); then ``ID_LIKE`` makes derivatives of Debian,
    Ubuntu or SUSE use the Debian row. Everything else, an unreadable
    os-release included, is the generic RPM row: no host certificates are
    handed to the agent (its image has its own).
    """
    os_id = os_release.get("ID", "").lower()
    if os_id == "amzn":
        # Amazon Linux 1 is versioned by date (2011.09 ... 2018.03); 2 and 2023 are not
        return AL1 if os_release.get("VERSION_ID", "").startswith("201") else AL2
    if os_id in _DEBIAN_IDS or os_id.startswith("opensuse"):
        return DEBIAN
    like = os_release.get("ID_LIKE", "").lower().split()
    if any(word in _DEBIAN_IDS for word in like):
        return DEBIAN
    return GENERIC_RPM


def detailed_os_family(os_release: Mapping[str, str]) -> str:
    """``ECS_DETAILED_OS_FAMILY``: ``<ID>_<VERSION_ID>`` as written, or ``linux`` when either is missing."""
    os_id, version = os_release.get("ID"), os_release.get("VERSION_ID")
    return f"{os_id}_{version}" if os_id and version else "linux"


def detect_platform(os_release: Mapping[str, str]) -> Platform:
    family = platform_family(os_release)
    cgroup, certs, pki = PLATFORM_ROWS[family]
    return Platform(family, cgroup, certs, pki, detailed_os_family(os_release))


def read_platform(paths: Paths) -> Platform:
    try:
        with open(paths.os_release, encoding="utf-8", errors="replace") as fh:
            release = parse_os_release(fh.read(MAX_CONFIG_BYTES))
    except OSError:
        release = {}
    return detect_platform(release)


# ---------------------------------------------------------------- config


@dataclass
class Config:
    """The process environment plus the merged ecs.config files.

    ``merged`` is the instance file then the operator file (operator wins).
    Own settings (``setting``/``flag``) are read from the process
    environment first, then from ``merged`` (SPEC §3 "Beyond").
    """

    paths: Paths
    environ: dict[str, str]
    instance: dict[str, str] = field(default_factory=dict)
    operator: dict[str, str] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, paths: Paths | None = None) -> Config:
        env = dict(os.environ if environ is None else environ)
        p = paths or Paths.from_env(env)
        return cls(
            paths=p,
            environ=env,
            instance=read_env_file(p.instance_config),
            operator=read_env_file(p.ecs_config),
        )

    @property
    def merged(self) -> dict[str, str]:
        out = dict(self.instance)
        out.update(self.operator)
        return out

    def setting(self, key: str, default: str = "") -> str:
        if key in self.environ:
            return self.environ[key]
        return self.merged.get(key, default)

    def flag(self, key: str) -> bool:
        """A boolean setting, read by its rule in BOOLEAN_RULES (SPEC §3).

        A doubtful value is logged once per Config as a warning.
        """
        value, problem = read_bool(key, self.setting(key))
        if problem is not None and key not in self._warned:
            self._warned.add(key)
            log.warning("%s", problem)
        return value

    def number(self, key: str, default: float) -> float:
        raw = self.setting(key)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            log.warning("%s=%r is not a number; using %s", key, raw, default)
            return default
        if value != value or value < 0:  # NaN or negative
            log.warning("%s=%r is out of range; using %s", key, raw, default)
            return default
        return value

    def docker_host(self) -> str:
        """The Docker endpoint this program talks to (process env only)."""
        return self.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
