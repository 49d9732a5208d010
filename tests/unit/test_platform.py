"""The platform table (SPEC §3) from real os-release files.

Go reference: config_al2.go (Amazon Linux RPM), config_generic_rpm.go,
config_suse_ubuntu_debian_chainguard.go (the .deb), config_unspecified.go
(Amazon Linux 1); os_family.go for ECS_DETAILED_OS_FAMILY.
"""

from __future__ import annotations

import pytest

from ecs_init.agent.spec import HostFacts, build_spec, candidate_paths
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.core.platform import AL1, AL2, DEBIAN, GENERIC_RPM, detect_platform, parse_os_release, read_platform

AMAZON_LINUX_2 = """NAME="Amazon Linux"
VERSION="2"
ID="amzn"
ID_LIKE="centos rhel fedora"
VERSION_ID="2"
PRETTY_NAME="Amazon Linux 2"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2"
HOME_URL="https://amazonlinux.com/"
"""
AMAZON_LINUX_2023 = """NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023.6.20241212"
"""
AMAZON_LINUX_1 = """NAME="Amazon Linux AMI"
VERSION="2018.03"
ID="amzn"
ID_LIKE="rhel fedora"
VERSION_ID="2018.03"
PRETTY_NAME="Amazon Linux AMI 2018.03"
"""
RHEL_9 = """NAME="Red Hat Enterprise Linux"
VERSION="9.3 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
"""
FEDORA = 'NAME="Fedora Linux"\nVERSION="39 (Cloud Edition)"\nID=fedora\nVERSION_ID=39\n'
ROCKY = 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'
ALMA = (
    'NAME="AlmaLinux"\nVERSION="9.3 (Shamrock Pampas Cat)"\nID="almalinux"\n'
    'ID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n'
)
CENTOS_STREAM = 'NAME="CentOS Stream"\nVERSION="9"\nID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="9"\n'
ORACLE = 'NAME="Oracle Linux Server"\nVERSION="8.9"\nID="ol"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n'
DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n'
MINT = 'NAME="Linux Mint"\nVERSION="21.2 (Victoria)"\nID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.2"\n'
POP = 'NAME="Pop!_OS"\nVERSION="22.04 LTS"\nID=pop\nID_LIKE="ubuntu debian"\nVERSION_ID="22.04"\n'
RASPBIAN = 'PRETTY_NAME="Raspbian GNU/Linux 11 (bullseye)"\nVERSION_ID="11"\nID=raspbian\nID_LIKE=debian\n'
KALI = 'NAME="Kali GNU/Linux"\nID=kali\nVERSION_ID="2024.1"\nID_LIKE=debian\n'
SLES = 'NAME="SLES"\nVERSION="15-SP5"\nVERSION_ID="15.5"\nID="sles"\nID_LIKE="suse"\n'
LEAP = 'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\nVERSION_ID="15.5"\n'
CHAINGUARD = 'ID=chainguard\nNAME="Chainguard"\nPRETTY_NAME="Chainguard"\nVERSION_ID=20230214\n'
WOLFI = 'ID=wolfi\nNAME="Wolfi"\nPRETTY_NAME="Wolfi"\nVERSION_ID=20230201\n'
ARCH = 'NAME="Arch Linux"\nPRETTY_NAME="Arch Linux"\nID=arch\nBUILD_ID=rolling\n'
BLANK_LINE_FIRST = '\n\nNAME="Debian GNU/Linux"\n\n   \nID=debian\n\nVERSION_ID="12"\n'
DERIVATIVE_OF_SUSE = 'ID="mycorp-os"\nID_LIKE="sles suse"\nVERSION_ID="3"\n'

CASES = [
    ("Amazon Linux 2", AMAZON_LINUX_2, AL2, "amzn_2"),
    ("Amazon Linux 2023", AMAZON_LINUX_2023, AL2, "amzn_2023"),
    ("Amazon Linux 1", AMAZON_LINUX_1, AL1, "amzn_2018.03"),
    ("RHEL 9", RHEL_9, GENERIC_RPM, "rhel_9.3"),
    ("Fedora", FEDORA, GENERIC_RPM, "fedora_39"),
    ("Rocky", ROCKY, GENERIC_RPM, "rocky_9.3"),
    ("Alma", ALMA, GENERIC_RPM, "almalinux_9.3"),
    ("CentOS Stream", CENTOS_STREAM, GENERIC_RPM, "centos_9"),
    ("Oracle Linux", ORACLE, GENERIC_RPM, "ol_8.9"),
    ("Debian 12", DEBIAN_12, DEBIAN, "debian_12"),
    ("Ubuntu", UBUNTU, DEBIAN, "ubuntu_22.04"),
    ("Linux Mint (ID_LIKE ubuntu debian)", MINT, DEBIAN, "linuxmint_21.2"),
    ("Pop!_OS (ID_LIKE ubuntu debian)", POP, DEBIAN, "pop_22.04"),
    ("Raspbian (ID_LIKE debian)", RASPBIAN, DEBIAN, "raspbian_11"),
    ("Kali (ID_LIKE debian)", KALI, DEBIAN, "kali_2024.1"),
    ("SLES", SLES, DEBIAN, "sles_15.5"),
    ("openSUSE Leap", LEAP, DEBIAN, "opensuse-leap_15.5"),
    ("a SUSE derivative (ID_LIKE)", DERIVATIVE_OF_SUSE, DEBIAN, "mycorp-os_3"),
    ("Chainguard", CHAINGUARD, DEBIAN, "chainguard_20230214"),
    ("Wolfi", WOLFI, DEBIAN, "wolfi_20230201"),
    ("Arch (no VERSION_ID)", ARCH, GENERIC_RPM, "linux"),
    ("blank lines before ID=", BLANK_LINE_FIRST, DEBIAN, "debian_12"),
    ("no os-release", "", GENERIC_RPM, "linux"),
]

ROWS = {
    AL2: ("/sys/fs/cgroup", "/etc/pki/tls/certs", "/etc/pki"),
    AL1: ("/cgroup", "/etc/pki/tls/certs", "/etc/pki"),
    DEBIAN: ("/sys/fs/cgroup", "/etc/ssl/certs", "/etc/ssl"),
    GENERIC_RPM: ("/sys/fs/cgroup", "", ""),
}


@pytest.mark.parametrize(("what", "text", "family", "detailed"), CASES, ids=[c[0] for c in CASES])
def test_platform_row(what: str, text: str, family: str, detailed: str) -> None:
    platform = detect_platform(parse_os_release(text))
    assert platform.family == family, what
    assert (platform.cgroup_mountpoint, platform.certs_dir, platform.pki_dir) == ROWS[family]
    assert platform.detailed_os_family == detailed


# Every host directory exists, as on a RHEL host that has /etc/pki and /etc/ssl both.
ALL_DIRS = frozenset({"/etc/pki", "/etc/pki/tls/certs", "/etc/ssl", "/etc/ssl/certs", "/mnt/ecs/ebs"})


@pytest.mark.parametrize("text", [RHEL_9, FEDORA, ROCKY, ALMA, CENTOS_STREAM, ORACLE, ""])
def test_generic_rpm_gets_no_cert_dir_and_no_pki_bind(text: str) -> None:
    """Issue 13: RHEL-likes got the Amazon Linux row (SSL_CERT_DIR=/etc/pki/tls/certs, /etc/pki bound)."""
    platform = detect_platform(parse_os_release(text))
    spec = build_spec(Config(paths=Paths(), environ={}), HostFacts(platform=platform, directories=ALL_DIRS))
    assert "SSL_CERT_DIR" not in spec.env
    assert not any(b.startswith(("/etc/pki", "/etc/ssl")) for b in spec.binds)
    assert "" not in candidate_paths(Config(paths=Paths(), environ={}), platform)


@pytest.mark.parametrize(
    ("text", "certs", "pki"),
    [
        (AMAZON_LINUX_2023, "/etc/pki/tls/certs", "/etc/pki"),
        (UBUNTU, "/etc/ssl/certs", "/etc/ssl"),
        (MINT, "/etc/ssl/certs", "/etc/ssl"),
        (CHAINGUARD, "/etc/ssl/certs", "/etc/ssl"),
    ],
)
def test_cert_dir_and_pki_bind_where_the_row_has_them(text: str, certs: str, pki: str) -> None:
    platform = detect_platform(parse_os_release(text))
    spec = build_spec(Config(paths=Paths(), environ={}), HostFacts(platform=platform, directories=ALL_DIRS))
    assert spec.env["SSL_CERT_DIR"] == certs
    assert f"{pki}:{pki}:ro" in spec.binds
    assert not any(b.startswith("/etc/pki" if pki == "/etc/ssl" else "/etc/ssl") for b in spec.binds)


def test_values_are_trimmed_like_go(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Go's parseOSReleaseValue: TrimSpace, then every leading/trailing quote; ID is kept as written."""
    release = parse_os_release("ID= \"'Debian'\" \nVERSION_ID='12'\n")
    assert release["ID"] == "Debian" and release["VERSION_ID"] == "12"
    platform = detect_platform(release)
    assert platform.family == DEBIAN and platform.detailed_os_family == "Debian_12"


def test_read_platform_from_the_prefix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text(ROCKY)
    assert read_platform(Paths(prefix=str(tmp_path))).family == GENERIC_RPM


# ---------------------------------------------------------------- exact answers (issue 21)


def test_parse_os_release_exactly() -> None:
    text = (
        "# ID=ubuntu\n"  # a comment, even one with '='
        "  #ID_LIKE=debian\n"
        'PRETTY_NAME="Xen OS 1 (a=b)"\n'
        " NAME = XenOS \n"
        "ID=xenos\n"
        "VERSION_ID='X1'\n"
        "noequals\n"
        "ID=xenos2\n"  # the last one wins
    )
    assert parse_os_release(text) == {
        "PRETTY_NAME": "Xen OS 1 (a=b)",
        "NAME": "XenOS",
        "ID": "xenos2",
        "VERSION_ID": "X1",
    }


@pytest.mark.parametrize(
    ("release", "family", "detailed"),
    [
        ({"ID": "amzn"}, AL2, "linux"),  # Amazon Linux without VERSION_ID: not 1
        ({"ID": "AMZN", "VERSION_ID": "2018.03"}, AL1, "AMZN_2018.03"),
        ({"ID": "opensuse-slowroll", "VERSION_ID": "1"}, DEBIAN, "opensuse-slowroll_1"),
        ({"ID": "Ubuntu", "VERSION_ID": "24.04"}, DEBIAN, "Ubuntu_24.04"),
        ({"ID": "x", "ID_LIKE": "Fedora Debian"}, DEBIAN, "linux"),
        ({"ID_LIKE": "debian"}, DEBIAN, "linux"),  # no ID: ID_LIKE still counts
        ({"VERSION_ID": "12"}, GENERIC_RPM, "linux"),
        ({"ID": "", "VERSION_ID": "12"}, GENERIC_RPM, "linux"),
        ({"ID": "x", "ID_LIKE": "debianish suse-like"}, GENERIC_RPM, "linux"),
    ],
)
def test_platform_of_odd_os_releases(release: dict[str, str], family: str, detailed: str) -> None:
    platform = detect_platform(release)
    assert (platform.family, platform.detailed_os_family) == (family, detailed)


def test_read_platform_of_odd_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    etc = tmp_path / "etc"
    etc.mkdir()
    release = etc / "os-release"
    release.write_bytes(b"NAME=\xff\xfe\nID=debian\nVERSION_ID=12\n")  # not UTF-8
    assert read_platform(Paths(prefix=str(tmp_path))).detailed_os_family == "debian_12"
    release.write_bytes(b"#" * (1024 * 1024) + b"\nID=debian\n")  # past the first MiB: not read
    assert read_platform(Paths(prefix=str(tmp_path))).family == GENERIC_RPM
    release.unlink()
    release.mkdir()  # unreadable: the generic row
    assert read_platform(Paths(prefix=str(tmp_path))).family == GENERIC_RPM
