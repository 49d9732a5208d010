"""The service definitions, man page and package metadata of SPEC §12.

The systemd units are checked directive by directive and by the real
``systemd-analyze verify``. How systemd runs them (Exec* order,
EnvironmentFile=, restarts, Type=notify) is proved against the real systemd
in ``tests/integration/test_systemd_real.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import unit_file as uf  # noqa: E402

PKG = os.path.join(ROOT, "packaging")
UNIT = os.path.join(PKG, "systemd", "ecs.service")
NOTIFY_UNIT = os.path.join(PKG, "systemd", "ecs-notify.service")
UPSTART = os.path.join(PKG, "upstart", "ecs.conf")
MAN = os.path.join(PKG, "man", "amazon-ecs-init.1")
PROGRAM = "/usr/libexec/amazon-ecs-init"


def read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


# ------------------------------------------------------------ the directives


@pytest.mark.parametrize("path", [UNIT, NOTIFY_UNIT])
def test_unit_has_every_spec_directive(path: str) -> None:
    unit = uf.parse_unit(path)
    assert unit.values("Unit", "Wants") == ["docker.service"]
    assert unit.values("Unit", "PartOf") == ["docker.service"]
    assert "docker.service" in unit.words("Unit", "After")
    # the seed-era hard dependency hurt operators when Docker was updated
    assert unit.values("Unit", "Requires") == []
    assert unit.values("Unit", "BindsTo") == []
    assert unit.value("Service", "Restart") == "on-failure"
    assert unit.value("Service", "RestartPreventExitStatus") == "5"
    assert unit.value("Service", "RestartSec") == "10s"
    assert unit.values("Service", "EnvironmentFile") == ["-/var/lib/ecs/ecs.config", "-/etc/ecs/ecs.config"]
    assert unit.values("Service", "ExecStartPre") == [f"{PROGRAM} pre-start"]
    assert unit.values("Service", "ExecStart") == [f"{PROGRAM} start"]
    assert unit.values("Service", "ExecStop") == [f"{PROGRAM} stop"]
    assert unit.values("Service", "ExecStopPost") == [f"{PROGRAM} post-stop"]
    assert unit.values("Install", "WantedBy") == ["multi-user.target"]
    # pre-start may wait ECS_INIT_DOCKER_WAIT_TIMEOUT (300 s) for Docker: more than systemd's 90 s default
    timeout = unit.value("Service", "TimeoutStartSec")
    assert timeout is not None and re.fullmatch(r"(\d+)min", timeout) and int(timeout[:-3]) * 60 > 300
    # the generic unit does not name cloud-final (only the Amazon Linux RPM adds it)
    assert "cloud-final.service" not in unit.words("Unit", "After")


def test_unit_types() -> None:
    assert uf.parse_unit(UNIT).value("Service", "Type") == "simple"
    notify = uf.parse_unit(NOTIFY_UNIT)
    assert notify.value("Service", "Type") == "notify"
    assert notify.value("Service", "NotifyAccess") == "main"
    assert notify.value("Service", "WatchdogSec")
    assert uf.parse_unit(UNIT).value("Service", "WatchdogSec") is None


def test_notify_unit_differs_only_in_notify_directives() -> None:
    plain = uf.parse_unit(UNIT).sections
    notify = uf.parse_unit(NOTIFY_UNIT).sections
    for extra in ("NotifyAccess", "WatchdogSec"):
        notify["Service"].pop(extra)
    notify["Service"]["Type"] = ["simple"]
    assert notify == plain


def test_upstart_job() -> None:
    lines = [ln.strip() for ln in read(UPSTART).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert "start on stopped rc RUNLEVEL=[345]" in lines
    assert f"pre-start exec {PROGRAM} pre-start" in lines
    assert f"exec {PROGRAM} start" in lines
    assert f"pre-stop exec {PROGRAM} pre-stop" in lines
    assert f"post-stop exec {PROGRAM} post-stop" in lines
    # no respawn: the program supervises the agent itself, as with the Go job
    assert not any(ln.startswith("respawn") for ln in lines)


# ------------------------------------------------------------------ man page

SPEC_FILES = [
    "/etc/ecs/ecs.config",
    "/etc/ecs/ecs.config.json",
    "/var/lib/ecs/ecs.config",
    "/var/lib/ecs/data",
    "/var/log/ecs/ecs-init.log",
    "/var/log/ecs/",
    "/var/cache/ecs/ecs-agent.tar",
    "/var/cache/ecs/state",
    "/var/cache/ecs/desired-image",
    "/mnt/ecs/ebs",
    "/var/lib/ecs/gpu/nvidia-gpu-info.json",
]
ACTIONS = [
    "pre-start",
    "start",
    "stop",
    "pre-stop",
    "post-stop",
    "reload-cache",
    "version",
    "status",
    "check",
    "render",
]
ENV_VARS = [
    "ECS_INIT_PATH_PREFIX", "DOCKER_HOST", "ECS_LOGLEVEL", "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS", "ECS_LOG_DRIVER", "ECS_LOG_OPTS", "ECS_INIT_DOCKER_LOG_FILE_SIZE",
    "ECS_INIT_DOCKER_LOG_FILE_NUM", "ECS_AGENT_LABELS", "ECS_AGENT_RUN_PRIVILEGED", "ECS_AGENT_PID_NAMESPACE_HOST",
    "ECS_AGENT_APPARMOR_PROFILE", "ECS_ENABLE_GPU_SUPPORT", "ECS_GMSA_SUPPORTED", "CREDENTIALS_FETCHER_HOST",
    "ECS_EXTERNAL", "AWS_DEFAULT_REGION", "ECS_INIT_S3_ENDPOINT", "ECS_INIT_IMDS_ENDPOINT",
    "ECS_INIT_DOCKER_WAIT_TIMEOUT", "ECS_INIT_ROLLBACK_FAILURES", "ECS_INIT_ROLLBACK_WINDOW", "ECS_INIT_LOCK_TIMEOUT",
]  # fmt: skip


def man_text() -> str:
    """The man page as text with roff escapes of '-' undone."""
    return read(MAN).replace("\\-", "-").replace("\\(+-", "+-")


def man_section(name: str) -> str:
    text = man_text()
    match = re.search(rf"^\.SH {name}\n(.*?)(?=^\.SH |\Z)", text, re.S | re.M)
    assert match, f"man page has no {name} section"
    return match.group(1)


def test_man_page_lists_every_action() -> None:
    actions = man_section("ACTIONS")
    for action in ACTIONS:
        assert re.search(rf"^\.(B|BR) {re.escape(action)}\b", actions, re.M), action
    for flag in ("--json", "--show-secrets"):
        assert flag in actions
    assert "exits 1" in actions


def test_man_page_lists_every_file() -> None:
    files = man_section("FILES")
    for path in SPEC_FILES + [PROGRAM, "/usr/bin/amazon-ecs-init", "/etc/init/ecs.conf"]:
        assert re.search(rf"^\.IR? {re.escape(path)}( |$)", files, re.M), path


def test_man_page_lists_every_environment_variable() -> None:
    env = man_section("ENVIRONMENT")
    for name in ENV_VARS:
        assert f".B {name}\n" in env, name


def test_man_page_documents_every_own_setting_the_code_reads() -> None:
    """Every ECS_INIT_* name in the source is documented (guards against drift)."""
    env = man_section("ENVIRONMENT")
    names: set[str] = set()
    src = os.path.join(ROOT, "src", "ecs_init")
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            if name.endswith(".py"):
                names.update(re.findall(r"\"(ECS_INIT_[A-Z0-9_]+)\"", read(os.path.join(dirpath, name))))
    assert "ECS_INIT_PATH_PREFIX" in names
    missing = sorted(n for n in names if f".B {n}\n" not in env)
    assert missing == []


def test_man_page_exit_codes() -> None:
    codes = re.findall(r"^\.B (\d+)$", man_section("EXIT STATUS"), re.M)
    assert codes == ["0", "1", "3", "5", "255"]


def test_man_page_renders_without_warnings() -> None:
    if not shutil.which("groff"):
        pytest.skip("groff is not installed (apt-get install groff-base)")
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", MAN], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""


# ----------------------------------------------------------- package metadata


def _source_version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"$', read(os.path.join(ROOT, "src", "ecs_init", "__init__.py")), re.M)
    assert match
    return match.group(1)


def test_versions_agree() -> None:
    """One version string: pyproject reads ecs_init.__version__; the RPM spec and debian/changelog match it."""
    pyproject = read(os.path.join(ROOT, "pyproject.toml"))
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = {attr = "ecs_init.__version__"}' in pyproject
    project = re.search(r"^\[project\]\n(.*?)^\[", pyproject, re.M | re.S)
    assert project and not re.search(r"^version\s*=", project.group(1), re.M)  # no second copy
    version = _source_version()
    spec = re.search(r"^Version:\s+(\S+)", read(os.path.join(PKG, "rpm", "amazon-ecs-init.spec")), re.M)
    deb = re.match(r"amazon-ecs-init \(([^)]+)-(\d+)\)", read(os.path.join(ROOT, "debian", "changelog")))
    assert spec and deb
    assert spec.group(1) == deb.group(1) == version
    changelog = re.search(r"^%changelog\n\* .* - (\S+)$", read(os.path.join(PKG, "rpm", "amazon-ecs-init.spec")), re.M)
    assert changelog and changelog.group(1).startswith(version + "-")


def test_version_scheme_is_agent_version_dot_post() -> None:
    """<agent version>.post<N>: the README's "Versions and upgrades" rests on this shape."""
    from ecs_init import AGENT_VERSION

    version = _source_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+\.post\d+", version), version
    assert "v" + version.split(".post")[0] == AGENT_VERSION


def test_debian_control_depends() -> None:
    control = read(os.path.join(ROOT, "debian", "control"))
    depends = re.search(r"^Depends: (.*(?:\n .*)*)", control, re.M)
    assert depends
    items = [d.strip() for d in depends.group(1).replace("\n", " ").split(",")]
    assert items == [
        "docker.io (>= 20.10) | docker-ce (>= 5:20.10)",
        "iptables",
        "procps",
        "iproute2",
        "systemd",
        "python3 (>= 3.9)",
        "${misc:Depends}",
    ]
    assert re.search(r"^Architecture: amd64 arm64$", control, re.M)


def test_rpm_spec_flavour_macro() -> None:
    spec = read(os.path.join(PKG, "rpm", "amazon-ecs-init.spec"))
    assert "%bcond_with upstart" in spec and "%bcond_without upstart" in spec
    assert "%config(noreplace) %attr(0600,root,root) %{_sysconfdir}/ecs/ecs.config\n" in spec
    assert "echo %{agent_state} > %{_localstatedir}/cache/ecs/state" in spec
    assert "ExclusiveArch:  x86_64 aarch64\n" in spec


# ----------------------------------------------------- systemd-analyze verify


@pytest.mark.parametrize("name", ["ecs.service", "ecs-notify.service"])
def test_systemd_analyze_verify(tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    """The real systemd's verifier accepts the unit with no warning.

    It checks that ExecStart= programs exist and that the Documentation= man
    page resolves, so the program path points at an executable stand-in and
    MANPATH at the packaged man page.
    """
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is missing (apt-get install systemd)")
    fake = tmp_path / "amazon-ecs-init"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    man1 = tmp_path / "man" / "man1"
    man1.mkdir(parents=True)
    shutil.copy(MAN, man1)
    unit = tmp_path / "ecs.service"  # verify derives the unit name from the file name
    unit.write_text(read(os.path.join(PKG, "systemd", name)).replace(PROGRAM, str(fake)))
    env = dict(os.environ, MANPATH=str(tmp_path / "man"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    # and the verifier does catch a broken directive (the check is not vacuous)
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    bad = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, env=env)
    assert "restart specifier" in bad.stderr
