"""AppArmor (SPEC §8): the profile text rule for rule, host detection as the Go
program does it, and pre-start writing and loading only ``ecs-agent-default``."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
from typing import Sequence

import pytest

from ecs_init.agent.spec import HostFacts, build_spec
from ecs_init.core.config import Config
from ecs_init.core.errors import CommandError, InitError
from ecs_init.core.paths import Paths
from ecs_init.core.platform import detect_platform
from ecs_init.host import apparmor, apparmor_profile
from ecs_init.host.context import HostContext


class FakeRunner:
    """Records argv (``which`` is never needed: detection looks at files)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return f"/usr/sbin/{name}"

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if self.fail:
            raise CommandError(f"{' '.join(argv)}: exit 1: AppArmor parser error: boom")
        return subprocess.CompletedProcess(list(argv), 0, "", "")


def make_ctx(prefix: str, runner: FakeRunner, env: dict[str, str] | None = None) -> HostContext:
    cfg = Config(paths=Paths(prefix=prefix), environ=dict(env or {}))
    return HostContext(cfg=cfg, runner=runner)  # type: ignore[arg-type]


def fake_apparmor_host(
    root: str, enabled: str | None = "Y\n", securityfs: bool = True, parser: bool = True, profiles: str | None = None
) -> None:
    """The files containerd's HostSupports looks at, under the prefix ``root``."""
    params = os.path.join(root, "sys", "module", "apparmor", "parameters")
    os.makedirs(params, exist_ok=True)
    if enabled is not None:
        with open(os.path.join(params, "enabled"), "w") as fh:
            fh.write(enabled)
    if securityfs:
        os.makedirs(os.path.join(root, "sys", "kernel", "security", "apparmor"), exist_ok=True)
        if profiles is not None:
            with open(os.path.join(root, "sys", "kernel", "security", "apparmor", "profiles"), "w") as fh:
                fh.write(profiles)
    if parser:
        os.makedirs(os.path.join(root, "sbin"), exist_ok=True)
        with open(os.path.join(root, "sbin", "apparmor_parser"), "w") as fh:
            fh.write("#!/bin/false\n")


# ------------------------------------------------------------ profile text

# SPEC §8's rules, copied from the SPEC (the Go ecs-init's ecsAgentDefaultProfile).
SPEC_RULES = """
network inet,
network inet6,
network netlink,
network unix,
capability,
file,
umount,
signal (receive) peer=unconfined,
signal (send,receive) peer=ecs-agent-default,
dbus (send,receive) bus=system,
deny @{PROC}/* w,
deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
deny @{PROC}/sys/[^k]** w,
deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,
deny @{PROC}/sysrq-trigger rwklx,
deny @{PROC}/kcore rwklx,
deny mount,
deny /sys/[^f]*/** wklx,
deny /sys/f[^s]*/** wklx,
deny /sys/fs/[^c]*/** wklx,
deny /sys/fs/c[^g]*/** wklx,
deny /sys/fs/cg[^r]*/** wklx,
deny /sys/firmware/** rwklx,
deny /sys/kernel/security/** rwklx,
ptrace (trace,read,tracedby,readby) peer=ecs-agent-default,
ptrace (trace,read,tracedby,readby) peer=docker-default,
""".strip().splitlines()

HEADER = "profile ecs-agent-default flags=(attach_disconnected,mediate_deleted) {"


def _significant(text: str) -> list[str]:
    """The profile's lines without comments and blank lines (``#include`` kept)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or (line.startswith("#") and not line.startswith("#include")):
            continue
        out.append(line)
    return out


@pytest.mark.parametrize("tunables", [True, False])
@pytest.mark.parametrize("abstractions", [True, False])
def test_profile_is_the_go_profile_rule_for_rule(tunables: bool, abstractions: bool) -> None:
    """Go reference (apparmor.go ecsAgentDefaultProfile): same rules, same order, same spelling."""
    lines = _significant(apparmor_profile.render(tunables, abstractions))
    preamble = ["#include <tunables/global>"] if tunables else ["@{PROC}=/proc/"]
    inside = (["#include <abstractions/base>"] if abstractions else []) + SPEC_RULES
    assert lines == preamble + [HEADER] + inside + ["}"]


def test_profile_text_has_no_other_profile_name() -> None:
    text = apparmor_profile.render(True, True)
    names = set(re.findall(r"peer=([\w.-]+)", text)) | set(re.findall(r"^profile (\S+)", text, re.M))
    assert names == {"unconfined", "ecs-agent-default", "docker-default"}


# A small model of AppArmor file globbing, to show what the rules mean: '**'
# crosses '/', '*' and '?' do not, '{a,b}' alternates, '[...]' is one
# character (never '/'); '@{PROC}' is /proc.
def _glob_to_regex(glob: str) -> re.Pattern[str]:
    glob = glob.replace("@{PROC}", "/proc")
    out = []
    depth = 0
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}":
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        elif c == "[":
            end = glob.index("]", i)
            cls = glob[i + 1 : end]
            out.append("[^/" + cls[1:] + "]" if cls.startswith("^") else "[" + cls + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _denied(text: str, path: str, perm: str) -> bool:
    for line in _significant(text):
        m = re.match(r"^deny (\S+) ([a-z]+),$", line)
        if m and perm in m.group(2) and _glob_to_regex(m.group(1)).match(path):
            return True
    return False


DENIED_WRITES = [
    "/proc/sysrq-trigger",
    "/proc/kcore",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/vm/overcommit_memory",
    "/proc/sys/fs/file-max",
    "/proc/sys/kernel/panic",
    "/proc/sys/kernel/core_pattern",
    "/proc/sysvipc/shm",
    "/proc/driver/rtc",
    "/proc/irq/1/smp_affinity",
    "/proc/acpi/wakeup",
    "/proc/fs/nfsd/threads",
    "/sys/class/net/eth0/mtu",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/module/apparmor/parameters/enabled",
    "/sys/fs/bpf/x",
    "/sys/fs/fuse/connections/1/abort",
    "/sys/firmware/efi/efivars/x",
    "/sys/kernel/security/apparmor/.load",
]
# Allowed by these rules, as in the Go profile (short or s-names slip through
# the /proc globs; /sys/fs/cg* is the cgroup hierarchy).
ALLOWED_WRITES = [
    "/proc/sys/kernel/shmmax",
    "/proc/sys/kernel/shm_rmid_forced",
    "/proc/sys/kernel/sem",
    "/proc/bus/pci/devices",
    "/proc/1/oom_score_adj",
    "/proc/4242/task/4243/comm",
    "/sys/fs/cgroup/cgroup.procs",
    "/sys/fs/cgroup/system.slice/docker-abc.scope/memory.max",
    "/var/lib/ecs/data/agent.db",
]
DENIED_READS = ["/sys/firmware/dmi/tables/DMI", "/sys/kernel/security/lsm", "/proc/kcore", "/proc/sysrq-trigger"]
ALLOWED_READS = ["/proc/sys/net/ipv4/ip_forward", "/sys/class/net/eth0/mtu", "/proc/cpuinfo", "/proc/1/status"]


@pytest.mark.parametrize("path", DENIED_WRITES)
def test_profile_denies_writes(path: str) -> None:
    assert _denied(apparmor_profile.render(True, True), path, "w")


@pytest.mark.parametrize("path", ALLOWED_WRITES)
def test_profile_allows_writes(path: str) -> None:
    assert not _denied(apparmor_profile.render(True, True), path, "w")


@pytest.mark.parametrize("path", DENIED_READS)
def test_profile_denies_reads(path: str) -> None:
    assert _denied(apparmor_profile.render(False, False), path, "r")


@pytest.mark.parametrize("path", ALLOWED_READS)
def test_profile_allows_reads(path: str) -> None:
    assert not _denied(apparmor_profile.render(False, False), path, "r")


# ------------------------------------------------------------ host support


def test_host_supports_with_every_condition(prefix: str) -> None:
    """Go reference (containerd HostSupports): all four conditions hold."""
    fake_apparmor_host(prefix)
    ctx = make_ctx(prefix, FakeRunner())
    assert apparmor.unsupported_reason(apparmor.detect(ctx)) is None
    assert apparmor.host_supports(ctx)


@pytest.mark.parametrize(
    ("kwargs", "env", "why"),
    [
        ({"securityfs": False}, {}, "/sys/kernel/security/apparmor does not exist"),
        ({}, {"container": "podman"}, "running in a container"),
        ({"parser": False}, {}, "/sbin/apparmor_parser does not exist"),
        ({"enabled": None}, {}, "cannot be read"),
        ({"enabled": "N\n"}, {}, "not enabled"),
        ({"enabled": ""}, {}, "not enabled"),
        ({"enabled": "y\n"}, {}, "not enabled"),
    ],
)
def test_host_lacks_support_when_any_condition_fails(prefix: str, kwargs, env, why: str) -> None:  # type: ignore[no-untyped-def]
    """Go reference (containerd HostSupports): each condition on its own turns support off."""
    fake_apparmor_host(prefix, **kwargs)
    ctx = make_ctx(prefix, FakeRunner(), env)
    reason = apparmor.unsupported_reason(apparmor.detect(ctx))
    assert reason is not None and why in reason
    assert not apparmor.host_supports(ctx)


def test_empty_container_variable_does_not_count(prefix: str) -> None:
    fake_apparmor_host(prefix)
    assert apparmor.host_supports(make_ctx(prefix, FakeRunner(), {"container": ""}))


def test_parser_on_path_is_not_enough(prefix: str) -> None:
    """Only /sbin/apparmor_parser counts (which() answers yes here)."""
    fake_apparmor_host(prefix, parser=False)
    runner = FakeRunner()
    assert runner.which("apparmor_parser")
    assert not apparmor.host_supports(make_ctx(prefix, runner))


# ------------------------------------------------------------ which profile the container runs under


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (None, "ecs-agent-default"),
        ("", "ecs-agent-default"),
        ("   ", "ecs-agent-default"),
        ("\t", "ecs-agent-default"),
        ("docker-default", "docker-default"),
        (" custom ", "custom"),
        ("unconfined", "unconfined"),
    ],
)
def test_pre_start_and_container_spec_agree_on_the_profile(prefix: str, configured, expected: str) -> None:  # type: ignore[no-untyped-def]
    """Go reference (config.ECSAgentAppArmorProfileName): blank or whitespace means ecs-agent-default."""
    env = {} if configured is None else {"ECS_AGENT_APPARMOR_PROFILE": configured}
    ctx = make_ctx(prefix, FakeRunner(), env)
    assert apparmor.container_profile(ctx) == expected
    facts = HostFacts(platform=detect_platform({"ID": "debian", "VERSION_ID": "12"}), apparmor_enabled=True)
    spec = build_spec(ctx.cfg, facts)
    assert spec.host_config["SecurityOpt"] == [f"apparmor:{expected}"]


def test_no_security_opt_without_apparmor(prefix: str) -> None:
    ctx = make_ctx(prefix, FakeRunner(), {"ECS_AGENT_APPARMOR_PROFILE": "custom"})
    facts = HostFacts(platform=detect_platform({"ID": "debian", "VERSION_ID": "12"}), apparmor_enabled=False)
    assert "SecurityOpt" not in build_spec(ctx.cfg, facts).host_config


# ------------------------------------------------------------ setup


def _aa_dir(prefix: str) -> str:
    return os.path.join(prefix, "etc", "apparmor.d")


def test_setup_writes_and_loads_ecs_agent_default(prefix: str) -> None:
    fake_apparmor_host(prefix)
    runner = FakeRunner()
    apparmor.setup(make_ctx(prefix, runner))
    aa_dir = _aa_dir(prefix)
    path = os.path.join(aa_dir, "ecs-agent-default")
    assert runner.calls == [["apparmor_parser", "-Kr", "-I", aa_dir, path]]
    with open(path) as fh:
        assert fh.read() == apparmor_profile.render(False, False)  # no includes under the prefix
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(aa_dir) == ["ecs-agent-default"]  # no temp files left


def _snapshot(directory: str) -> dict[str, tuple[bytes, int, float]]:
    out = {}
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            st = os.stat(path)
            with open(path, "rb") as fh:
                out[name] = (fh.read(), st.st_ino, st.st_mtime)
    return out


@pytest.mark.parametrize("chosen", ["docker-default", "my-profile", "unconfined"])
def test_setup_never_touches_the_profile_an_operator_names(prefix: str, chosen: str) -> None:
    """Issue 13: ECS_AGENT_APPARMOR_PROFILE=docker-default (or an operator's own) must not be overwritten."""
    fake_apparmor_host(prefix)
    aa_dir = _aa_dir(prefix)
    os.makedirs(aa_dir)
    for name, text in (("docker-default", "# docker's own\nprofile docker-default {}\n"), ("my-profile", "# mine\n")):
        with open(os.path.join(aa_dir, name), "w") as fh:
            fh.write(text)
    before = _snapshot(aa_dir)
    runner = FakeRunner()
    apparmor.setup(make_ctx(prefix, runner, {"ECS_AGENT_APPARMOR_PROFILE": chosen}))
    after = _snapshot(aa_dir)
    assert set(after) == set(before) | {"ecs-agent-default"}
    for name, value in before.items():
        assert after[name] == value, name  # byte for byte, same inode, same mtime
    assert runner.calls == [["apparmor_parser", "-Kr", "-I", aa_dir, os.path.join(aa_dir, "ecs-agent-default")]]


def test_setup_replaces_a_symlink_instead_of_writing_through_it(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake_apparmor_host(prefix)
    aa_dir = _aa_dir(prefix)
    os.makedirs(aa_dir)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(str(victim), os.path.join(aa_dir, "ecs-agent-default"))
    apparmor.setup(make_ctx(prefix, FakeRunner()))
    assert victim.read_text() == "precious\n"
    assert not os.path.islink(os.path.join(aa_dir, "ecs-agent-default"))


def test_setup_includes_what_exists(prefix: str) -> None:
    fake_apparmor_host(prefix)
    aa_dir = _aa_dir(prefix)
    os.makedirs(os.path.join(aa_dir, "tunables"))
    with open(os.path.join(aa_dir, "tunables", "global"), "w") as fh:
        fh.write("# tunables\n")
    runner = FakeRunner()
    apparmor.setup(make_ctx(prefix, runner))
    path = os.path.join(aa_dir, "ecs-agent-default")
    with open(path) as fh:
        assert fh.read() == apparmor_profile.render(True, False)
    os.makedirs(os.path.join(aa_dir, "abstractions"))
    with open(os.path.join(aa_dir, "abstractions", "base"), "w") as fh:
        fh.write("# base\n")
    apparmor.setup(make_ctx(prefix, runner))
    with open(path) as fh:
        assert fh.read() == apparmor_profile.render(True, True)
    assert len(runner.calls) == 2


def test_load_argv_without_prefix_is_plain() -> None:
    ctx = make_ctx("", FakeRunner())
    assert apparmor.load_argv(ctx, "/etc/apparmor.d/ecs-agent-default") == [
        "apparmor_parser",
        "-Kr",
        "/etc/apparmor.d/ecs-agent-default",
    ]
    assert apparmor.profile_path(ctx) == "/etc/apparmor.d/ecs-agent-default"


@pytest.mark.parametrize("kwargs", [{"enabled": "N\n"}, {"enabled": None}, {"parser": False}, {"securityfs": False}])
def test_setup_does_nothing_without_support(prefix: str, kwargs) -> None:  # type: ignore[no-untyped-def]
    fake_apparmor_host(prefix, **kwargs)
    runner = FakeRunner()
    apparmor.setup(make_ctx(prefix, runner))
    assert runner.calls == []
    assert not os.path.exists(_aa_dir(prefix))


def test_setup_does_nothing_in_a_container(prefix: str) -> None:
    fake_apparmor_host(prefix)
    runner = FakeRunner()
    apparmor.setup(make_ctx(prefix, runner, {"container": "docker"}))
    assert runner.calls == []


def test_setup_load_failure_is_one_clear_error(prefix: str) -> None:
    fake_apparmor_host(prefix)
    with pytest.raises(InitError) as exc:
        apparmor.setup(make_ctx(prefix, FakeRunner(fail=True)))
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("cannot load AppArmor profile ecs-agent-default: apparmor_parser -Kr")
    assert "boom" in msg


def test_setup_write_failure_is_init_error(prefix: str) -> None:
    fake_apparmor_host(prefix)
    os.makedirs(os.path.join(prefix, "etc"), exist_ok=True)
    with open(os.path.join(prefix, "etc", "apparmor.d"), "w") as fh:
        fh.write("not a directory")
    runner = FakeRunner()
    with pytest.raises(InitError, match="cannot write AppArmor profile"):
        apparmor.setup(make_ctx(prefix, runner))
    assert runner.calls == []


def test_operator_profile_not_loaded_is_a_warning(prefix: str, caplog) -> None:  # type: ignore[no-untyped-def]
    fake_apparmor_host(prefix, profiles="docker-default (enforce)\necs-agent-default (enforce)\n")
    with caplog.at_level(logging.INFO, logger="ecs_init.host.apparmor"):
        apparmor.setup(make_ctx(prefix, FakeRunner(), {"ECS_AGENT_APPARMOR_PROFILE": "mine"}))
    assert "'mine' (ECS_AGENT_APPARMOR_PROFILE) is not loaded" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ecs_init.host.apparmor"):
        apparmor.setup(make_ctx(prefix, FakeRunner(), {"ECS_AGENT_APPARMOR_PROFILE": "docker-default"}))
    assert "not loaded" not in caplog.text
    assert "does not write or load it" in caplog.text


def test_loaded_profiles_parses_names_with_spaces(prefix: str) -> None:
    fake_apparmor_host(prefix, profiles="a b (complain)\n/usr/bin/x (enforce)\n")
    assert apparmor.loaded_profiles(make_ctx(prefix, FakeRunner())) == {"a b", "/usr/bin/x"}
