"""The Debian package under the real systemd (issue 16).

Each test boots a fresh Debian 12 container with systemd as PID 1
(``tests/systemd_host.py``), installs the .deb built by ``make deb`` with
``dpkg -i``, seeds the cache with the stand-in agent tarball, and drives
``ecs.service`` with ``systemctl``. The agent container is created by the
host's engine and answers on the host's 127.0.0.1:51678; pre-start's rules
and sysctls live in the systemd container's network namespace, read there
with ``iptables-save``/``sysctl``. What the unit did is read from systemd
itself: ``systemctl show`` (ActiveState, Result, MainPID, NRestarts,
StatusText) and ``journalctl -u ecs``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from helpers import docker, inspect, metadata, tarball_image_id, wait_metadata, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import systemd_host as sh  # noqa: E402

pytestmark = [pytest.mark.docker, pytest.mark.slow]

UNIT = "ecs"
PROGRAM = "/usr/libexec/amazon-ecs-init"
PACKAGE = "amazon-ecs-init"
DROPIN = "/etc/systemd/system/ecs.service.d/10-test-path-prefix.conf"
STATE = "/var/cache/ecs/state"
CACHED_TARBALL = "/var/cache/ecs/ecs-agent.tar"
LOGFMT = re.compile(r'^level=(debug|info|warn|error|crit) time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ msg=(".*"|\S+)')
PROPS = ("ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ExecMainStatus", "StatusText")

# Rules pre-start creates (SPEC §7) as iptables-save prints them.
DNAT = "-A PREROUTING -d 169.254.170.2/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.0.0.1:51679"
REDIRECT = "-A OUTPUT -d 169.254.170.2/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 51679"
LOCALHOST_DROP = "-A INPUT ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
INTROSPECTION_DROP = "-A INPUT ! -i lo -p tcp -m tcp --dport 51678 -j DROP"
BRIDGE_ACCEPT = "-A INPUT -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT"
ECS_RULE_MARKERS = ("169.254.170.2", "51678", "51679", "127.0.0.0/8")


# ----------------------------------------------------------------- set-up


@pytest.fixture(scope="module")
def systemd_image() -> str:
    if not sh.image_exists(sh.image_tag()) and not sh.can_build():
        pytest.skip("mmdebstrap is missing (apt-get install mmdebstrap; ./scripts/test installs it)")
    return sh.ensure_image()


@dataclass(frozen=True)
class Packages:
    default: str  # `make deb`: no agent tarball (state 0)
    upgrade: str  # `make deb AGENT_TARBALL=<stand-in v2>`
    upgrade_image: str  # image ID the upgrade's tarball loads as
    docker_stub: str  # satisfies the package's Depends on Docker: the engine is the host's


def _make_deb(out: str, *make_vars: str) -> str:
    proc = subprocess.run(
        ["make", "-C", ROOT, "deb", f"OUT={out}", *make_vars], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"make deb {' '.join(make_vars)} failed:\n{proc.stderr[-3000:]}"
    (deb,) = [os.path.join(out, f) for f in os.listdir(out) if f.endswith(".deb")]
    return deb


def _docker_stub(out: str) -> str:
    """A package providing docker.io/docker-ce at the host engine's version (the socket is bound in)."""
    version = docker("version", "-f", "{{.Server.Version}}")
    tree = os.path.join(out, "stub")
    os.makedirs(os.path.join(tree, "DEBIAN"))
    with open(os.path.join(tree, "DEBIAN", "control"), "w") as fh:
        fh.write(
            "Package: ecs-init-test-host-docker\nVersion: 1.0\nArchitecture: all\n"
            "Maintainer: amazon-ecs-init tests <tests@example.invalid>\n"
            f"Provides: docker.io (= {version}), docker-ce (= 5:{version})\n"
            "Description: test stub: Docker is the host's engine, reached through its bound-in socket\n"
        )
    path = os.path.join(out, "ecs-init-test-host-docker.deb")
    subprocess.run(["dpkg-deb", "--build", tree, path], check=True, capture_output=True, timeout=60)
    return path


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory, standin_dir: str) -> Packages:
    missing = [t for t in ("dpkg-buildpackage", "dh", "fakeroot", "make") if not shutil.which(t)]
    if missing:
        pytest.skip(f"missing build tools: {' '.join(missing)} (apt-get install make dpkg-dev debhelper fakeroot)")
    base = tmp_path_factory.mktemp("systemd-debs")
    upgrade_tar = os.path.join(standin_dir, "ecs-agent-v2.tar")
    return Packages(
        default=_make_deb(str(base / "default")),
        upgrade=_make_deb(str(base / "upgrade"), f"AGENT_TARBALL={upgrade_tar}"),
        upgrade_image=tarball_image_id(upgrade_tar),
        docker_stub=_docker_stub(str(base)),
    )


def install(host: sh.SystemdHost, deb: str) -> str:
    """``dpkg -i``; its output (stdout and stderr)."""
    host.put(deb, "/tmp/package.deb")
    proc = host.exec("dpkg", "-i", "/tmp/package.deb", timeout=300)
    return proc.stdout + proc.stderr


def seed(host: sh.SystemdHost, tarball: str) -> None:
    """Put the stand-in agent in the cache as an operator's provisioning would (state 2: load it)."""
    host.exec("rm", "-f", CACHED_TARBALL)
    host.put(tarball, CACHED_TARBALL)
    host.write(STATE, "2\n")


@pytest.fixture
def host(
    systemd_image: str, packages: Packages, standin_dir: str, docker_lock: None, tmp_path: Any
) -> Iterator[sh.SystemdHost]:
    """A booted systemd host with the default package installed and the stand-in v1 seeded."""
    sh.remove_stale_hosts()
    machine = sh.SystemdHost(systemd_image, prefix_fallback=str(tmp_path / "prefix"))
    try:
        machine.wait_booted()
        machine.share_root_at_prefix()
        # written before the package is installed, so even a start by the install sees it
        machine.write(DROPIN, f"[Service]\nEnvironment=ECS_INIT_PATH_PREFIX={machine.prefix}\n")
        machine.systemctl("daemon-reload")
        install(machine, packages.docker_stub)
        install(machine, packages.default)
        seed(machine, os.path.join(standin_dir, "ecs-agent-v1.tar"))
        yield machine
    finally:
        try:
            print(f"--- journalctl -u ecs in {machine.name}:\n{machine.journal_text(UNIT)[-6000:]}")
            machine.systemctl("stop", UNIT, check=False, timeout=60)
        except (subprocess.TimeoutExpired, AssertionError) as err:
            print(f"teardown: {err}")
        subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True, timeout=120)
        machine.close()


def agent_data(host: sh.SystemdHost, name: str, text: str) -> None:
    """Write a file into the agent's /data (the unit's /var/lib/ecs/data), atomically."""
    if host.shares_files:
        host.write(f"/var/lib/ecs/data/{name}", text)
        return
    path = os.path.join(host.prefix, "var/lib/ecs/data", name)
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)  # the stand-in polls for it: never let it read a half-written file


def start(host: sh.SystemdHost) -> dict[str, str]:
    host.systemctl("start", UNIT)
    assert wait_metadata(timeout=60), "the agent never answered on the host's 127.0.0.1:51678"
    state = host.show(UNIT, *PROPS)
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    return state


def agent_id() -> str:
    container = inspect("ecs-agent")
    return str(container["Id"]) if container and container["State"]["Running"] else ""


def new_agent(host: sh.SystemdHost, old: str, timeout: float = 60) -> str:
    """The ID of the running agent container once it is not ``old`` (fails with the unit's journal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = agent_id()
        if current not in ("", old):
            return current
        time.sleep(0.2)
    containers = docker("ps", "-a", "--filter", "name=ecs-agent", "--format", "{{.ID}} {{.Status}}", check=False)
    raise AssertionError(
        f"no new agent container within {timeout}s (old {old[:12]}; now: {containers!r}); the unit:\n"
        f"{host.show(UNIT, *PROPS)}\n{host.journal_text(UNIT)[-4000:]}"
    )


def ours(host: sh.SystemdHost) -> list[dict[str, Any]]:
    """The unit's journal entries written by amazon-ecs-init (not by systemd)."""
    return [e for e in host.journal(UNIT) if e.get("SYSLOG_IDENTIFIER") == "amazon-ecs-init"]


def index_of(entries: list[dict[str, Any]], needle: str, start: int = 0) -> int:
    for i in range(start, len(entries)):
        if needle in entries[i]["MESSAGE"]:
            return i
    raise AssertionError(f"no journal line with {needle!r} after line {start}:\n" + messages(entries))


def messages(entries: list[dict[str, Any]]) -> str:
    return "\n".join(str(e["MESSAGE"]) for e in entries)


def ecs_rules(host: sh.SystemdHost) -> list[str]:
    lines = host.iptables_save().splitlines() + host.iptables_save(v6=True).splitlines()
    return [ln for ln in lines if ln.startswith("-A") and any(m in ln for m in ECS_RULE_MARKERS)]


def not_active(state: dict[str, str]) -> bool:
    return state["ActiveState"] in ("inactive", "failed")


# -------------------------------------------------- 1 + 3: start and stop


def test_start_runs_pre_start_then_start_and_stop_cleans_up(host: sh.SystemdHost, standin_dir: str) -> None:
    assert host.show(UNIT, "ActiveState")["ActiveState"] == "inactive"
    state = start(host)
    main_pid = state["MainPID"]
    assert state["NRestarts"] == "0"

    meta = metadata()
    assert meta and "v1.105.1" in meta["Version"]
    container = inspect("ecs-agent")
    assert container and container["Image"] == tarball_image_id(os.path.join(standin_dir, "ecs-agent-v1.tar"))
    assert (host.read(STATE) or "").strip() == "1"  # the seeded tarball (state 2) was loaded
    if host.shares_files:
        # the agent's /log is the unit's /var/log/ecs: both sides see the same files
        assert wait_until(lambda: "starting stand-in agent" in (host.read("/var/log/ecs/ecs-agent.log") or ""))

    # pre-start's host preparation, in the unit's network namespace
    v4 = host.iptables_save()
    for rule in (DNAT, REDIRECT, LOCALHOST_DROP, INTROSPECTION_DROP, BRIDGE_ACCEPT):
        assert v4.count(rule) == 1, f"{rule!r} not exactly once in:\n{v4}"
    v6 = host.iptables_save(v6=True)
    assert v6.count("-A INPUT ! -i lo -p tcp -m tcp --dport 51678 -j DROP") == 1, v6
    assert v6.count("-A INPUT -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT") == 1, v6
    assert host.sysctl("net.ipv4.conf.all.route_localnet") == "1"

    # the journal: logfmt lines only, pre-start's (its own process) before start's (the main process)
    entries = ours(host)
    bad = [e["MESSAGE"] for e in entries if not LOGFMT.match(e["MESSAGE"])]
    assert entries and bad == [], bad
    pre = index_of(entries, 'msg="pre-start (amazon-ecs-init')
    done = index_of(entries, 'msg="pre-start: done"', pre)
    main = index_of(entries, 'msg="start (amazon-ecs-init', done)
    index_of(entries, "agent container ecs-agent started", main)
    assert entries[main]["_PID"] == main_pid
    assert entries[pre]["_PID"] != main_pid
    everything = messages(host.journal(UNIT))
    assert everything.index("pre-start: done") < everything.index("Started ecs.service")

    # 3: `systemctl stop ecs` stops the agent and cleans up, well within the stop timeout
    began = time.monotonic()
    host.systemctl("stop", UNIT)
    took = time.monotonic() - began
    state = host.show(UNIT, *PROPS)
    assert (state["ActiveState"], state["Result"]) == ("inactive", "success"), state
    assert took < 20, f"systemctl stop took {took:.1f}s"
    assert agent_id() == "" and metadata() is None
    assert ecs_rules(host) == []
    assert host.sysctl("net.ipv4.conf.all.route_localnet") == host.sysctl("net.ipv4.conf.default.route_localnet")
    entries = ours(host)
    stop = index_of(entries, 'msg="stop (amazon-ecs-init', main)
    index_of(entries, 'msg="post-stop (amazon-ecs-init', stop)
    assert not [e["MESSAGE"] for e in entries if e["MESSAGE"].startswith(("level=error", "level=crit"))]


# ---------------------------------------------------- 2: agent exit codes


def test_agent_exit_0_leaves_the_unit_stopped_and_clean(host: sh.SystemdHost) -> None:
    start(host)
    docker("stop", "ecs-agent")  # the agent exits 0 on SIGTERM
    state = host.wait_unit(UNIT, not_active, 60)
    assert (state["ActiveState"], state["SubState"], state["Result"]) == ("inactive", "dead", "success"), state
    assert state["ExecMainStatus"] == "0" and state["NRestarts"] == "0"
    assert ecs_rules(host) == []  # post-stop ran
    entries = ours(host)
    exited = index_of(entries, "agent exited with code 0")
    stop = index_of(entries, 'msg="stop (amazon-ecs-init', exited)  # a clean exit: systemd runs ExecStop
    index_of(entries, 'msg="post-stop (amazon-ecs-init', stop)
    time.sleep(1)
    assert host.show(UNIT, "ActiveState")["ActiveState"] == "inactive"  # nothing restarted it


def test_agent_exit_5_is_terminal_and_never_restarted(host: sh.SystemdHost) -> None:
    start(host)
    agent_data(host, "standin-exit-once", "5")
    state = host.wait_unit(UNIT, not_active, 60)
    assert (state["ActiveState"], state["SubState"], state["Result"]) == ("failed", "failed", "exit-code"), state
    assert state["ExecMainStatus"] == "5"
    assert state["NRestarts"] == "0"  # RestartPreventExitStatus=5: no restart is even scheduled
    assert ecs_rules(host) == []
    entries = ours(host)
    terminal = index_of(entries, "agent exited with code 5")
    index_of(entries, 'msg="post-stop (amazon-ecs-init', terminal)
    assert not any('msg="stop (' in e["MESSAGE"] for e in entries)  # a failure: no ExecStop
    assert agent_id() == ""


def test_agent_exit_1_is_restarted_in_place_by_the_supervisor(host: sh.SystemdHost) -> None:
    state = start(host)
    first = agent_id()
    agent_data(host, "standin-exit-once", "1")
    second = new_agent(host, first)
    assert wait_metadata(timeout=30)
    after = host.show(UNIT, *PROPS)
    assert after["MainPID"] == state["MainPID"]  # the same `start` process: restarted in place
    assert (after["ActiveState"], after["NRestarts"]) == ("active", "0"), after
    entries = ours(host)
    exited = index_of(entries, "agent exited with code 1")
    index_of(entries, "restarting the agent in", exited)
    index_of(entries, f"agent container ecs-agent started ({second[:12]})", exited)
    assert INTROSPECTION_DROP in host.iptables_save()  # no post-stop ran: the host preparation stays


def test_killed_supervisor_is_restarted_by_systemd(host: sh.SystemdHost) -> None:
    state = start(host)
    first = agent_id()
    host.exec("kill", "-KILL", state["MainPID"])
    # A failed main process: systemd skips ExecStop (it runs only after a clean exit or an
    # operator's stop), runs ExecStopPost, and schedules a restart (Restart=on-failure).
    waiting = host.wait_unit(UNIT, lambda s: s["SubState"] == "auto-restart", 30)
    assert (waiting["ActiveState"], waiting["Result"]) == ("activating", "signal"), waiting
    assert ecs_rules(host) == []  # post-stop ran
    # the agent container is the host engine's, outside the unit's cgroup: it outlives the
    # killed supervisor (unsupervised) until the restarted `start` replaces it
    assert agent_id() == first
    after = host.wait_unit(UNIT, lambda s: s["NRestarts"] == "1" and s["SubState"] == "running", 30)
    assert (after["ActiveState"], after["NRestarts"]) == ("active", "1"), after
    assert after["MainPID"] != state["MainPID"]
    second = new_agent(host, first)
    assert wait_metadata(timeout=30)
    assert INTROSPECTION_DROP in host.iptables_save()  # pre-start ran again
    entries = ours(host)
    assert not any('msg="stop (' in e["MESSAGE"] for e in entries)
    post = index_of(entries, 'msg="post-stop (amazon-ecs-init')
    again = index_of(entries, 'msg="pre-start (amazon-ecs-init', post)
    index_of(entries, f"agent container ecs-agent started ({second[:12]})", again)
    text = messages(host.journal(UNIT))
    assert "Main process exited, code=killed, status=9/KILL" in text
    assert "Scheduled restart job, restart counter is at 1" in text


def test_failing_pre_start_fails_the_start_and_systemd_retries(host: sh.SystemdHost, standin_dir: str) -> None:
    seed(host, os.path.join(standin_dir, "ecs-agent-corrupt.tar"))  # not an image Docker can load
    proc = host.systemctl("start", UNIT, check=False)
    assert proc.returncode != 0
    state = host.show(UNIT, *PROPS)
    assert (state["ActiveState"], state["SubState"], state["Result"]) == ("activating", "auto-restart", "exit-code")
    entries = ours(host)
    errors = [e["MESSAGE"] for e in entries if e["MESSAGE"].startswith("level=error")]
    assert len(errors) == 1 and "pre-start: agent image failed" in errors[0], errors
    assert not any('msg="start (' in e["MESSAGE"] for e in entries)  # ExecStart never ran
    assert not any('msg="stop (' in e["MESSAGE"] for e in entries)  # nor ExecStop
    index_of(entries, 'msg="post-stop (amazon-ecs-init')  # ExecStopPost always runs
    assert agent_id() == "" and ecs_rules(host) == []
    assert (host.read(STATE) or "").strip() == "2"  # a failed load leaves the state as it was
    # the operator puts a good tarball in place; systemd's own retry (RestartSec=10s) succeeds
    seed(host, os.path.join(standin_dir, "ecs-agent-v1.tar"))
    after = host.wait_unit(UNIT, lambda s: s["SubState"] == "running", 30)
    assert (after["ActiveState"], after["NRestarts"]) == ("active", "1"), after
    assert wait_metadata(timeout=30)


# ------------------------------------------------ 4: the Type=notify unit


def test_notify_unit_is_ready_only_once_the_agent_answers(host: sh.SystemdHost) -> None:
    host.exec("cp", "/usr/share/amazon-ecs-init/ecs-notify.service", "/etc/systemd/system/ecs.service")
    host.systemctl("daemon-reload")
    assert host.show(UNIT, "Type")["Type"] == "notify"
    starting = subprocess.Popen(
        ["docker", "exec", host.id, "systemctl", "start", UNIT],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    forwarder: sh.LoopbackForwarder | None = None
    try:
        # The agent answers on the host, but not yet where the unit probes it (the
        # container's loopback): systemd must keep the start job waiting.
        assert wait_metadata(timeout=60)
        time.sleep(2)
        state = host.show(UNIT, *PROPS)
        assert starting.poll() is None, "systemctl start returned before the agent answered the unit"
        assert (state["ActiveState"], state["SubState"]) == ("activating", "start"), state
        assert state["StatusText"].startswith("ECS agent running (container "), state
        # now the unit's 127.0.0.1:51678 reaches the agent: READY=1 follows and start returns
        forwarder = sh.LoopbackForwarder(host.pid)
        began = time.monotonic()
        out, _ = starting.communicate(timeout=30)
        assert starting.returncode == 0, out
        assert time.monotonic() - began < 5
        assert forwarder.connections >= 1
        state = host.show(UNIT, *PROPS)
        assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
        assert state["StatusText"] == "ECS agent running; http://127.0.0.1:51678/v1/metadata answers"
        assert "notified systemd: ready" in messages(ours(host))
        # the supervisor keeps the status current: an agent restart shows up in StatusText
        agent_data(host, "standin-exit-once", "1")
        state = host.wait_unit(UNIT, lambda s: s["StatusText"].startswith("ECS agent running (container"), 30)
        assert re.fullmatch(r"ECS agent running \(container [0-9a-f]{12}, restarts 1\)", state["StatusText"]), state
        host.systemctl("stop", UNIT)
        state = host.show(UNIT, *PROPS)
        assert (state["ActiveState"], state["Result"]) == ("inactive", "success"), state
    finally:
        if starting.poll() is None:
            starting.kill()
            starting.wait()
        if forwarder is not None:
            forwarder.close()


# ------------------------------------------ 5: settings from ecs.config


def test_settings_from_ecs_config_reach_the_unit_through_environment_files(host: sh.SystemdHost) -> None:
    host.write("/var/lib/ecs/ecs.config", 'ECS_CLUSTER=from-instance\nECS_AGENT_LABELS={"team":"instance"}\n')
    host.write(
        "/etc/ecs/ecs.config",
        "ECS_CLUSTER=from-operator\n"
        'ECS_AGENT_LABELS={"team":"blue","tier":"test"}\n'
        "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER=true\n"
        "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS=true\n",
        mode="0600",
    )
    state = start(host)
    files = [value.split()[0] for value in host.show_all(UNIT, "EnvironmentFiles")]
    assert files == ["/var/lib/ecs/ecs.config", "/etc/ecs/ecs.config"]
    # systemd read the files (the later one wins) into the main process's environment
    environ = dict(
        item.split("=", 1) for item in (host.read(f"/proc/{state['MainPID']}/environ") or "").split("\0") if "=" in item
    )
    assert environ["ECS_CLUSTER"] == "from-operator"
    assert environ["ECS_AGENT_LABELS"] == '{"team":"blue","tier":"test"}'
    assert environ["ECS_SKIP_LOCALHOST_TRAFFIC_FILTER"] == "true"
    assert environ["ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS"] == "true"
    # ... and they took effect: labels on the container, cluster in the agent, rules left out
    container = inspect("ecs-agent")
    assert container
    labels = container["Config"]["Labels"] or {}
    assert labels.get("team") == "blue" and labels.get("tier") == "test", labels
    meta = metadata()
    assert meta and meta["Cluster"] == "from-operator"
    v4 = host.iptables_save()
    assert DNAT in v4 and REDIRECT in v4
    assert LOCALHOST_DROP not in v4
    assert "51678" not in v4 + host.iptables_save(v6=True)
    host.systemctl("stop", UNIT)
    assert ecs_rules(host) == []


# ------------------------------------------------ 6: upgrade and purge

PLUGIN_SOCKET = "/run/docker/plugins/amazon-ecs-volume-plugin.sock"
ACTIVATE = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "s.settimeout(20)\n"
    f"s.connect({PLUGIN_SOCKET!r})\n"
    "s.sendall(b'POST /Plugin.Activate HTTP/1.0\\r\\nContent-Length: 2\\r\\n\\r\\n{}')\n"
    "data = b''\n"
    "while True:\n"
    "    chunk = s.recv(65536)\n"
    "    if not chunk:\n"
    "        break\n"
    "    data += chunk\n"
    "sys.stdout.write(data.decode())\n"
)
# What the package and the program create on a host that ran the agent.
CREATED = (
    "/etc/ecs/ecs.config",
    "/etc/ecs/ecs.config.json",
    "/var/cache/ecs/state",
    "/var/log/ecs/ecs-init.log",
    "/var/log/ecs/ecs-agent.log",
    "/var/lib/ecs/data",
    "/var/run/ecs-init",
    "/mnt/ecs/ebs",
)
GONE_AFTER_PURGE = ("/etc/ecs", "/var/cache/ecs", "/var/log/ecs", "/var/lib/ecs", "/var/run/ecs-init", "/mnt/ecs")


def activate_volume_plugin(host: sh.SystemdHost) -> str:
    """Plugin.Activate through the socket systemd listens on; the plugin service's MainPID."""
    answer = host.exec("python3", "-c", ACTIVATE).stdout
    assert '"VolumeDriver"' in answer, answer
    state = host.show("amazon-ecs-volume-plugin.service", "ActiveState", "MainPID")
    assert state["ActiveState"] == "active", state
    return state["MainPID"]


def test_upgrade_under_a_running_service_then_remove_and_purge(
    host: sh.SystemdHost, packages: Packages, tmp_path: Any
) -> None:
    # first install: ecs enabled (starts at boot) but not started; the volume plugin's socket listens
    assert host.systemctl("is-enabled", UNIT, check=False).stdout.strip() == "enabled"
    assert host.show(UNIT, "ActiveState")["ActiveState"] == "inactive"
    assert host.systemctl("is-active", "amazon-ecs-volume-plugin.socket", check=False).stdout.strip() == "active"
    plugin_pid = activate_volume_plugin(host)  # socket activation starts the plugin
    host.write("/etc/ecs/ecs.config", "ECS_CLUSTER=upgrade-test\n", mode="0600")
    state = start(host)
    running = agent_id()

    # install the package again, over the running service, with another agent tarball
    out = install(host, packages.upgrade)
    assert "warning" not in out.lower(), out
    after = host.show(UNIT, *PROPS)
    assert (after["ActiveState"], after["MainPID"], after["NRestarts"]) == ("active", state["MainPID"], "0")
    assert agent_id() == running and metadata()  # the agent kept running through the upgrade
    assert (host.read(STATE) or "").strip() == "2"
    copy = str(tmp_path / "cached.tar")
    subprocess.run(["docker", "cp", "-L", f"{host.id}:{CACHED_TARBALL}", copy], check=True, timeout=120)
    assert tarball_image_id(copy) == packages.upgrade_image
    assert host.read("/etc/ecs/ecs.config") == "ECS_CLUSTER=upgrade-test\n"
    # the volume plugin was restarted on the new version
    plugin = host.show("amazon-ecs-volume-plugin.service", "ActiveState", "MainPID")
    assert plugin["ActiveState"] == "active" and plugin["MainPID"] not in ("0", plugin_pid), plugin
    # the supervisor started from the old package still works after its files were replaced
    agent_data(host, "standin-exit-once", "1")
    new_agent(host, running)
    assert wait_metadata(timeout=30)
    assert host.show(UNIT, "MainPID")["MainPID"] == state["MainPID"]

    # the next start loads the new tarball
    host.systemctl("restart", UNIT)
    assert wait_until(lambda: (inspect("ecs-agent") or {}).get("Image") == packages.upgrade_image, timeout=60)
    meta = wait_metadata(timeout=60)
    assert meta and "v1.106.0" in meta["Version"] and meta["Cluster"] == "upgrade-test"
    assert (host.read(STATE) or "").strip() == "1"
    assert [path for path in CREATED if not host.exists(path)] == []

    # remove: the service is stopped and cleaned up; configuration and the agent's state stay
    host.write("/var/lib/ecs/data/agent.db", "the agent's state\n")
    proc = host.exec("dpkg", "-r", PACKAGE, timeout=300)
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    for unit in (UNIT, "amazon-ecs-volume-plugin.socket", "amazon-ecs-volume-plugin.service"):
        assert host.show(unit, "LoadState")["LoadState"] == "not-found", unit
    assert agent_id() == "" and metadata() is None
    assert ecs_rules(host) == []
    assert not host.exists(PROGRAM)
    assert host.read("/etc/ecs/ecs.config") == "ECS_CLUSTER=upgrade-test\n"
    assert host.read("/var/lib/ecs/data/agent.db") == "the agent's state\n"

    # purge: the operator's configuration goes too (Debian policy 10.7.3), with logs, cache and state
    proc = host.exec("dpkg", "--purge", PACKAGE, timeout=300)
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    assert host.exec("dpkg", "-s", PACKAGE, check=False).returncode != 0
    assert [path for path in GONE_AFTER_PURGE if host.exists(path)] == []
    assert ecs_rules(host) == []


def test_forwarder_relays_only_while_open(host: sh.SystemdHost) -> None:
    """The test rig's loopback bridge is faithful: it answers exactly when the agent does."""
    probe = (
        "import sys, urllib.request\n"
        "try:\n"
        "    print(urllib.request.urlopen('http://127.0.0.1:51678/v1/metadata', timeout=2).read().decode())\n"
        "except OSError as err:\n"
        "    print('no answer', err); sys.exit(1)\n"
    )
    assert host.exec("python3", "-c", probe, check=False).returncode == 1
    with sh.LoopbackForwarder(host.pid):
        assert host.exec("python3", "-c", probe, check=False).returncode == 1  # no agent yet
        start(host)
        answer = host.exec("python3", "-c", probe).stdout
        assert json.loads(answer) == metadata()
    assert host.exec("python3", "-c", probe, check=False).returncode == 1
