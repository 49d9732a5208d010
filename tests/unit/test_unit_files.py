"""The service definitions, man page and package metadata of SPEC §12.

The systemd unit is checked directive by directive, then run: its Exec*
lines are executed in systemd's order with systemd's EnvironmentFile=
semantics (tests/systemd_exec.py) against a fake program that records each
action and the environment it got, and systemd's restart decision is
applied to the fake agent's exit codes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import systemd_exec as sx  # noqa: E402

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
    unit = sx.parse_unit(path)
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
    assert sx.parse_unit(UNIT).value("Service", "Type") == "simple"
    notify = sx.parse_unit(NOTIFY_UNIT)
    assert notify.value("Service", "Type") == "notify"
    assert notify.value("Service", "NotifyAccess") == "main"
    assert notify.value("Service", "WatchdogSec")
    assert sx.parse_unit(UNIT).value("Service", "WatchdogSec") is None


def test_notify_unit_differs_only_in_notify_directives() -> None:
    plain = sx.parse_unit(UNIT).sections
    notify = sx.parse_unit(NOTIFY_UNIT).sections
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


# ----------------------------------------------- systemd's EnvironmentFile=


def test_environment_file_grammar() -> None:
    text = textwrap.dedent(
        """\
        # comment
        ; another comment
        ECS_CLUSTER=prod
          SPACED  =  value with spaces   \t
        DQ="a \\"quoted\\" $value \\n kept"
        SQ='single # not a comment'
        EMPTY=
        CONT=one \\
        two
        MULTI="line one
        line two"
        not a key line
        1BAD=ignored
        MIXED=pre"mid"'post'
        ECS_CLUSTER=later-wins
        """
    )
    env = sx.parse_env_file_text(text)
    assert env == {
        "ECS_CLUSTER": "later-wins",
        "SPACED": "value with spaces",
        "DQ": 'a "quoted" $value \\n kept',
        "SQ": "single # not a comment",
        "EMPTY": "",
        "CONT": "one two",
        "MULTI": "line one\nline two",
        "MIXED": "premidpost",
    }


def test_environment_files_later_wins_and_dash_is_optional(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.write_text("X=from-a\nY=only-a\n")
    b.write_text("X=from-b\n")
    got = sx.load_environment_files([f"-{a}", f"-{b}", f"-{tmp_path / 'missing'}"], lambda p: p)
    assert got == {"X": "from-b", "Y": "only-a"}
    with pytest.raises(sx.MissingEnvironmentFile):
        sx.load_environment_files([str(tmp_path / "missing")], lambda p: p)


# --------------------------------------------------------- restart decision


@pytest.mark.parametrize(
    ("status", "signum", "restart"),
    [
        (0, None, False),  # `docker stop ecs-agent`: agent exits 0, the service stays stopped
        (5, None, False),  # terminal
        (1, None, True),
        (255, None, True),
        (2, None, True),
        (None, signal.SIGKILL, True),
        (None, signal.SIGSEGV, True),
        (None, signal.SIGTERM, False),
    ],
)
def test_restart_decision(status: int | None, signum: int | None, restart: bool) -> None:
    unit = sx.parse_unit(UNIT)
    assert sx.should_restart(unit, status, signum) is restart


def test_exit_5_is_the_only_failure_code_not_restarted() -> None:
    unit = sx.parse_unit(UNIT)
    refused = [code for code in range(1, 256) if not sx.should_restart(unit, code)]
    assert refused == [5]
    # the same unit without RestartPreventExitStatus would restart on 5
    bare = sx.parse_unit_text(read(UNIT).replace("RestartPreventExitStatus=5\n", ""))
    assert sx.should_restart(bare, 5)


def test_operator_stop_never_restarts() -> None:
    unit = sx.parse_unit(UNIT)
    assert not sx.should_restart(unit, 255, stopped_by_operator=True)


# --------------------------------------------------------- running the unit

FAKE = """\
#!{python}
# Fake amazon-ecs-init: records its action and environment, behaves as told.
import json, os, signal, sys, time
state = {state!r}
action = sys.argv[1]
keys = ("ECS_CLUSTER", "ECS_LOGLEVEL", "FROM_PRE_START", "SERVICE_RESULT", "EXIT_CODE", "EXIT_STATUS", "MAINPID")
with open(os.path.join(state, "calls.jsonl"), "a") as fh:
    fh.write(json.dumps({{"action": action, "env": {{k: os.environ[k] for k in keys if k in os.environ}}}}) + "\\n")
def told(name, default):
    try:
        with open(os.path.join(state, name)) as fh:
            return fh.read().strip()
    except FileNotFoundError:
        return default
if action == "pre-start":
    instance = told("write-instance-config", "")
    if instance:
        with open(instance, "a") as fh:
            fh.write("FROM_PRE_START=yes\\n")
    sys.exit(int(told("pre-start-exit", "0")))
if action == "start":
    how = told("start", "run")
    if how == "run":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        open(os.path.join(state, "running"), "w").close()
        while True:
            time.sleep(0.05)
    sys.exit(int(how))
sys.exit(0)
"""


@pytest.fixture
def service(tmp_path):  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    (root / "etc/ecs").mkdir(parents=True)
    (root / "var/lib/ecs").mkdir(parents=True)
    state = tmp_path / "state"
    state.mkdir()
    fake = tmp_path / "amazon-ecs-init"
    fake.write_text(FAKE.format(python=sys.executable, state=str(state)))
    fake.chmod(0o755)
    runner = sx.ServiceRunner(sx.parse_unit(UNIT), path_map={PROGRAM: str(fake)}, root=str(root), timeout=20)
    return runner, root, state


def calls(state) -> list[dict]:  # type: ignore[no-untyped-def]
    with open(state / "calls.jsonl") as fh:
        return [json.loads(line) for line in fh]


def test_service_cycle_runs_actions_in_systemd_order_with_env_files(service) -> None:  # type: ignore[no-untyped-def]
    runner, root, state = service
    (root / "var/lib/ecs/ecs.config").write_text("ECS_CLUSTER=from-instance\nECS_LOGLEVEL=warn\n")
    (root / "etc/ecs/ecs.config").write_text('# operator\nECS_CLUSTER="from-operator"\n')
    # pre-start appends to the instance file: the next command must see it (files are read per command)
    (state / "write-instance-config").write_text(str(root / "var/lib/ecs/ecs.config"))
    running = []
    run = runner.cycle(stop_after=1.0, before_stop=lambda: running.append((state / "running").exists()))
    assert running == [True]
    assert run.phases() == ["ExecStartPre", "ExecStart", "ExecStop", "ExecStopPost"]
    got = calls(state)
    assert [c["action"] for c in got] == ["pre-start", "start", "stop", "post-stop"]
    for c in got:
        assert c["env"]["ECS_CLUSTER"] == "from-operator"  # /etc/ecs/ecs.config is read last and wins
        assert c["env"]["ECS_LOGLEVEL"] == "warn"
    assert "FROM_PRE_START" not in got[0]["env"]
    assert all(c["env"]["FROM_PRE_START"] == "yes" for c in got[1:])
    assert got[2]["env"]["MAINPID"].isdigit()
    assert got[3]["env"]["SERVICE_RESULT"] == "success"
    assert run.main_status == 0 and not run.restart


def test_service_without_config_files_still_starts(service) -> None:  # type: ignore[no-untyped-def]
    runner, _root, state = service
    (state / "start").write_text("0")
    run = runner.cycle()
    assert [c["action"] for c in calls(state)] == ["pre-start", "start", "stop", "post-stop"]
    assert all("ECS_CLUSTER" not in c["env"] for c in calls(state))
    # the agent exited 0 (`docker stop ecs-agent`): stopped, not restarted
    assert run.main_status == 0 and not run.restart


def test_terminal_exit_5_is_not_restarted(service) -> None:  # type: ignore[no-untyped-def]
    runner, _root, state = service
    (state / "start").write_text("5")
    run = runner.cycle()
    assert run.main_status == 5
    assert run.result == "exit-code"
    assert not run.restart
    post = calls(state)[-1]
    assert post["action"] == "post-stop"
    assert post["env"]["EXIT_CODE"] == "exited" and post["env"]["EXIT_STATUS"] == "5"


def test_failure_255_is_restarted(service) -> None:  # type: ignore[no-untyped-def]
    runner, _root, state = service
    (state / "start").write_text("255")
    run = runner.cycle()
    assert run.main_status == 255 and run.restart
    assert [c["action"] for c in calls(state)] == ["pre-start", "start", "stop", "post-stop"]


def test_failed_pre_start_skips_start_and_stop_but_runs_post_stop(service) -> None:  # type: ignore[no-untyped-def]
    runner, _root, state = service
    (state / "pre-start-exit").write_text("255")
    run = runner.cycle()
    assert [c["action"] for c in calls(state)] == ["pre-start", "post-stop"]
    assert run.result == "exit-code" and run.restart


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
