"""AppArmor profile text, host detection and setup (SPEC §8) with a fake runner."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from typing import Sequence

import pytest

from ecs_init import apparmor, apparmor_profile
from ecs_init.config import Config, Paths
from ecs_init.context import HostContext
from ecs_init.errors import CommandError, InitError


class FakeRunner:
    """Records argv; ``which`` answers from a fixed table."""

    def __init__(self, tools: dict[str, str] | None = None, fail: bool = False) -> None:
        self.tools = {"apparmor_parser": "/sbin/apparmor_parser"} if tools is None else tools
        self.fail = fail
        self.calls: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return self.tools.get(name)

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


def fake_sysfs(root: str, value: str | None) -> str:
    sysfs = os.path.join(root, "sys")
    params = os.path.join(sysfs, "module", "apparmor", "parameters")
    os.makedirs(params, exist_ok=True)
    if value is not None:
        with open(os.path.join(params, "enabled"), "w") as fh:
            fh.write(value)
    return sysfs


# ------------------------------------------------------------ profile text

RULES = [
    "network inet,",
    "network inet6,",
    "network netlink,",
    "network unix,",
    "capability,",
    "file,",
    "umount,",
    "signal (receive) peer=unconfined,",
    "signal (send, receive) peer=ecs-agent-default,",
    "dbus (send, receive) bus=system,",
    "ptrace (trace, read, tracedby, readby) peer=ecs-agent-default,",
    "ptrace (trace, read, tracedby, readby) peer=docker-default,",
    "deny mount,",
    "deny /proc/sysrq-trigger mrwklx,",
    "deny /proc/kcore mrwklx,",
    "deny /sys/firmware/** mrwklx,",
    "deny /sys/kernel/security/** mrwklx,",
]


def _body_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_profile_with_both_includes() -> None:
    text = apparmor_profile.render("ecs-agent-default", True, True)
    lines = _body_lines(text)
    header = lines.index("profile ecs-agent-default flags=(attach_disconnected,mediate_deleted) {")
    assert lines.index("#include <tunables/global>") < header  # tunables outside the profile
    assert lines.index("#include <abstractions/base>") > header  # abstractions inside it
    assert lines[-1] == "}"
    for rule in RULES:
        assert rule in lines, rule
        assert lines.index(rule) > header


def test_profile_without_includes() -> None:
    text = apparmor_profile.render("ecs-agent-default", False, False)
    assert "#include" not in text
    assert "@{" not in text  # no tunables variables that would need the include
    lines = _body_lines(text)
    for rule in RULES:
        assert rule in lines, rule


@pytest.mark.parametrize(("tunables", "abstractions"), [(True, False), (False, True)])
def test_profile_one_include(tunables: bool, abstractions: bool) -> None:
    text = apparmor_profile.render("ecs-agent-default", tunables, abstractions)
    assert ("#include <tunables/global>" in text) is tunables
    assert ("#include <abstractions/base>" in text) is abstractions


def test_profile_uses_configured_name_for_self_peers() -> None:
    text = apparmor_profile.render("my-agent.v2", False, False)
    assert "profile my-agent.v2 flags=(attach_disconnected,mediate_deleted) {" in text
    assert "signal (send, receive) peer=my-agent.v2," in text
    assert "ptrace (trace, read, tracedby, readby) peer=my-agent.v2," in text
    assert "peer=docker-default," in text
    assert "ecs-agent-default" not in text


@pytest.mark.parametrize("bad", ["", "../evil", "a/b", "has space", "x{y}", "-flag", "..", "a\nb", "x" * 300])
def test_profile_rejects_unsafe_names(bad: str) -> None:
    assert not apparmor_profile.valid_name(bad)
    with pytest.raises(ValueError):
        apparmor_profile.render(bad, False, False)


# A small model of AppArmor file globbing, to check that the deny rules
# cover what SPEC §8 says and nothing it allows: '**' crosses '/', '*' and
# '?' do not, '{a,b}' alternates, '[...]' is a character class.
def _glob_to_regex(glob: str) -> re.Pattern[str]:
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
            # AppArmor classes never match the path separator
            out.append("[^/" + cls[1:] + "]" if cls.startswith("^") else "[" + cls + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _denied(text: str, path: str, perm: str) -> bool:
    for line in _body_lines(text):
        m = re.match(r"^deny (/\S+) ([a-z]+),$", line)
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
    "/proc/sys/kernel/sem",
    "/proc/sys/kernel/sched_child_runs_first",
    "/proc/sysvipc/shm",
    "/proc/driver/rtc",
    "/proc/irq/1/smp_affinity",
    "/proc/acpi/wakeup",
    "/proc/fs/nfsd/threads",
    "/proc/bus/pci/devices",
    "/sys/class/net/eth0/mtu",
    "/sys/kernel/mm/transparent_hugepage/enabled",
    "/sys/module/apparmor/parameters/enabled",
    "/sys/fs/bpf/x",
    "/sys/fs/fuse/connections/1/abort",
    "/sys/fs/cgroupx/y",
    "/sys/firmware/efi/efivars/x",
    "/sys/kernel/security/apparmor/.load",
]
ALLOWED_WRITES = [
    "/proc/sys/kernel/shmmax",
    "/proc/sys/kernel/shmall",
    "/proc/sys/kernel/shm_rmid_forced",
    "/proc/1/oom_score_adj",
    "/proc/4242/task/4243/comm",
    "/sys/fs/cgroup/cgroup.procs",
    "/sys/fs/cgroup/system.slice/docker-abc.scope/memory.max",
    "/var/lib/ecs/data/agent.db",
    "/tmp/x",
]
DENIED_READS = ["/sys/firmware/dmi/tables/DMI", "/sys/kernel/security/lsm", "/proc/kcore", "/proc/sysrq-trigger"]
ALLOWED_READS = ["/proc/sys/net/ipv4/ip_forward", "/sys/class/net/eth0/mtu", "/proc/cpuinfo", "/proc/1/status"]


@pytest.mark.parametrize("path", DENIED_WRITES)
def test_profile_denies_writes(path: str) -> None:
    assert _denied(apparmor_profile.render("p", True, True), path, "w")


@pytest.mark.parametrize("path", ALLOWED_WRITES)
def test_profile_allows_writes(path: str) -> None:
    assert not _denied(apparmor_profile.render("p", True, True), path, "w")


@pytest.mark.parametrize("path", DENIED_READS)
def test_profile_denies_reads(path: str) -> None:
    assert _denied(apparmor_profile.render("p", False, False), path, "r")


@pytest.mark.parametrize("path", ALLOWED_READS)
def test_profile_allows_reads(path: str) -> None:
    assert not _denied(apparmor_profile.render("p", False, False), path, "r")


# ------------------------------------------------------------ host support


def test_host_supports_when_enabled_and_parser_present(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), "Y\n")
    assert apparmor.host_supports(make_ctx("", FakeRunner()), sysfs_root=sysfs)


@pytest.mark.parametrize("value", ["N\n", "", None])
def test_host_lacks_support_when_module_disabled_or_absent(tmp_path, value: str | None) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), value)
    assert not apparmor.host_supports(make_ctx("", FakeRunner()), sysfs_root=sysfs)


def test_host_lacks_support_without_parser(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), "Y")
    assert not apparmor.host_supports(make_ctx("", FakeRunner(tools={})), sysfs_root=sysfs)


def test_profile_name_default_and_configured(prefix: str) -> None:
    assert apparmor.profile_name(make_ctx(prefix, FakeRunner())) == "ecs-agent-default"
    assert apparmor.profile_name(make_ctx(prefix, FakeRunner(), {"ECS_AGENT_APPARMOR_PROFILE": ""})) == (
        "ecs-agent-default"
    )
    ctx = make_ctx(prefix, FakeRunner(), {"ECS_AGENT_APPARMOR_PROFILE": "custom"})
    assert apparmor.profile_name(ctx) == "custom"


def test_profile_name_from_ecs_config(prefix: str) -> None:
    cfg = Config(paths=Paths(prefix=prefix), environ={}, operator={"ECS_AGENT_APPARMOR_PROFILE": "from-file"})
    assert apparmor.profile_name(HostContext(cfg=cfg, runner=FakeRunner())) == "from-file"  # type: ignore[arg-type]


# ------------------------------------------------------------ setup


def test_setup_writes_and_loads(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), "Y")
    runner = FakeRunner()
    ctx = make_ctx(prefix, runner)
    apparmor.setup(ctx, sysfs_root=sysfs)
    aa_dir = os.path.join(prefix, "etc", "apparmor.d")
    path = os.path.join(aa_dir, "ecs-agent-default")
    assert runner.calls == [["apparmor_parser", "-Kr", "-I", aa_dir, path]]
    with open(path) as fh:
        text = fh.read()
    assert text == apparmor_profile.render("ecs-agent-default", False, False)  # no includes under the prefix
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert [n for n in os.listdir(aa_dir) if n != "ecs-agent-default"] == []  # no temp files left


def test_setup_includes_what_exists(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), "Y")
    aa_dir = os.path.join(prefix, "etc", "apparmor.d")
    os.makedirs(os.path.join(aa_dir, "tunables"))
    with open(os.path.join(aa_dir, "tunables", "global"), "w") as fh:
        fh.write("# tunables\n")
    runner = FakeRunner()
    apparmor.setup(make_ctx(prefix, runner, {"ECS_AGENT_APPARMOR_PROFILE": "custom-prof"}), sysfs_root=sysfs)
    with open(os.path.join(aa_dir, "custom-prof")) as fh:
        text = fh.read()
    assert "#include <tunables/global>" in text
    assert "#include <abstractions/base>" not in text
    assert "profile custom-prof " in text
    assert runner.calls[0][-1] == os.path.join(aa_dir, "custom-prof")

    os.makedirs(os.path.join(aa_dir, "abstractions"))
    with open(os.path.join(aa_dir, "abstractions", "base"), "w") as fh:
        fh.write("# base\n")
    apparmor.setup(make_ctx(prefix, runner, {"ECS_AGENT_APPARMOR_PROFILE": "custom-prof"}), sysfs_root=sysfs)
    with open(os.path.join(aa_dir, "custom-prof")) as fh:
        assert fh.read() == apparmor_profile.render("custom-prof", True, True)
    assert len(runner.calls) == 2


def test_load_argv_without_prefix_is_plain() -> None:
    ctx = make_ctx("", FakeRunner())
    assert apparmor.load_argv(ctx, "/etc/apparmor.d/ecs-agent-default") == [
        "apparmor_parser",
        "-Kr",
        "/etc/apparmor.d/ecs-agent-default",
    ]
    assert apparmor.profile_path(ctx) == "/etc/apparmor.d/ecs-agent-default"


@pytest.mark.parametrize(("value", "tools"), [("N", None), (None, None), ("Y", {})])
def test_setup_does_nothing_without_support(prefix: str, tmp_path, value, tools) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), value)
    runner = FakeRunner(tools=tools)
    apparmor.setup(make_ctx(prefix, runner), sysfs_root=sysfs)
    assert runner.calls == []
    assert not os.path.exists(os.path.join(prefix, "etc", "apparmor.d"))


def test_setup_load_failure_is_one_clear_error(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), "Y")
    with pytest.raises(InitError) as exc:
        apparmor.setup(make_ctx(prefix, FakeRunner(fail=True)), sysfs_root=sysfs)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("cannot load AppArmor profile ecs-agent-default: apparmor_parser -Kr")
    assert "boom" in msg


def test_setup_rejects_unsafe_configured_name(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), "Y")
    runner = FakeRunner()
    ctx = make_ctx(prefix, runner, {"ECS_AGENT_APPARMOR_PROFILE": "../../etc/passwd"})
    with pytest.raises(InitError, match="not a valid AppArmor profile name"):
        apparmor.setup(ctx, sysfs_root=sysfs)
    assert runner.calls == []
    assert not os.path.exists(os.path.join(prefix, "etc", "passwd"))


def test_setup_write_failure_is_init_error(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = fake_sysfs(str(tmp_path), "Y")
    # a regular file where the AppArmor directory should be
    os.makedirs(os.path.join(prefix, "etc"), exist_ok=True)
    with open(os.path.join(prefix, "etc", "apparmor.d"), "w") as fh:
        fh.write("not a directory")
    runner = FakeRunner()
    with pytest.raises(InitError, match="cannot write AppArmor profile"):
        apparmor.setup(make_ctx(prefix, runner), sysfs_root=sysfs)
    assert runner.calls == []
