"""The platform table of SPEC §3, detected from ``/etc/os-release`` (pure, but for the one read)."""

from __future__ import annotations

from ecs_init.core.envfile import MAX_CONFIG_BYTES
from ecs_init.core.fsutil import read_regular
from ecs_init.core.paths import Paths
from ecs_init.core.record import dataclass

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Mapping


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
        # root-owned and normally a symlink (to /usr/lib/os-release): followed, but never a FIFO's open
        raw = read_regular(paths.os_release, MAX_CONFIG_BYTES)
        release = parse_os_release(raw.decode("utf-8", errors="replace"))
    except OSError:
        release = {}
    return detect_platform(release)
