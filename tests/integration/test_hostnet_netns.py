"""Host network setup and teardown (SPEC §6, §7) on the real kernel, with packets.

Every test builds its own two-"host" topology (tests/netns.py): an instance
namespace where pre-start/post-stop run, a peer namespace behind a veth pair,
and, where a Docker bridge matters, a container namespace behind a bridge in
the instance. The root namespace's rules, routes and sysctls are never
touched.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from typing import Iterator

import netns
import pytest
from netns import BRIDGE_V4, INSTANCE_V4, INSTANCE_V6, Topology, ours

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"),
]

ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"
ROUTE_LOCALNET_DEFAULT = "net.ipv4.conf.default.route_localnet"
SKIP = "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER"
ALLOW = "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS"
BRIDGE = "ecsbr0"

BACKENDS = [b for b in ("nft", "legacy") if os.path.exists(f"/usr/sbin/iptables-{b}")]


def _bin_dir(tmp_path, backend: str, tools: tuple[str, ...] = ("iptables", "ip6tables")) -> str:  # type: ignore[no-untyped-def]
    d = tmp_path / f"bin-{backend}"
    d.mkdir(exist_ok=True)
    for tool in tools:
        for suffix in ("", "-save"):
            os.symlink(f"/usr/sbin/{tool}-{backend}{suffix}", d / f"{tool}{suffix}")
    return str(d)


@pytest.fixture(params=BACKENDS)
def backend_path(request, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A PATH whose iptables/ip6tables are the nft or the legacy backend."""
    return _bin_dir(tmp_path, request.param) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture
def env(prefix: str) -> dict[str, str]:
    return {"ECS_INIT_PATH_PREFIX": prefix, "ECS_TEST_BRIDGE": BRIDGE}


@pytest.fixture
def topo(backend_path: str) -> Iterator[Topology]:
    with Topology(bridge=BRIDGE, path=backend_path) as t:
        yield t


def _assert_clean(t: Topology) -> None:
    assert ours(t.rules("iptables")) == []
    assert ours(t.rules("ip6tables")) == []
    assert t.sysctl(t.instance, ROUTE_LOCALNET) == t.sysctl(t.instance, ROUTE_LOCALNET_DEFAULT)


# ---------------------------------------------------------------- traffic


def test_introspection_port_blocked_offhost_open_on_loopback_and_bridge(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    t.serve(t.instance, "0.0.0.0", 51678)
    t.serve(t.instance, "::", 51677)  # a v6 listener on a neighbour port is not affected
    assert t.connect(t.peer, INSTANCE_V4, 51678) == "ok 51678"  # open before pre-start

    t.steps("pre-start", env)
    assert t.connect(t.peer, INSTANCE_V4, 51678) is None  # dropped
    assert t.connect(t.instance, "127.0.0.1", 51678) == "ok 51678"  # loopback always can
    assert t.connect(t.container, BRIDGE_V4, 51678) == "ok 51678"  # Docker bridge ACCEPT
    assert t.connect(t.peer, INSTANCE_V6, 51677) == "ok 51677"

    t.steps("post-stop", {"ECS_INIT_PATH_PREFIX": env["ECS_INIT_PATH_PREFIX"]})
    assert t.connect(t.peer, INSTANCE_V4, 51678) == "ok 51678"
    _assert_clean(t)


def test_introspection_port_blocked_over_ipv6(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    t.serve(t.instance, "::", 51678)
    assert t.connect(t.peer, INSTANCE_V6, 51678) == "ok 51678"
    t.steps("pre-start", env)
    assert t.connect(t.peer, INSTANCE_V6, 51678) is None
    assert t.connect(t.instance, "::1", 51678) == "ok 51678"
    t.steps("post-stop", env)
    assert t.connect(t.peer, INSTANCE_V6, 51678) == "ok 51678"


def test_allow_offhost_introspection_access(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    t.serve(t.instance, "0.0.0.0", 51678)
    t.steps("pre-start", {**env, ALLOW: "true"})
    assert t.connect(t.peer, INSTANCE_V4, 51678) == "ok 51678"
    assert not any("51678" in line for line in ours(t.rules()) + ours(t.rules("ip6tables")))
    t.steps("post-stop", env)
    _assert_clean(t)


def test_allow_setting_read_from_ecs_config(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    with open(os.path.join(env["ECS_INIT_PATH_PREFIX"], "etc/ecs/ecs.config"), "w") as fh:
        fh.write(f"{ALLOW}=true\n")
    t.serve(t.instance, "0.0.0.0", 51678)
    t.steps("pre-start", env)
    assert t.connect(t.peer, INSTANCE_V4, 51678) == "ok 51678"
    t.steps("post-stop", env)
    _assert_clean(t)


def test_localhost_filter_drops_offhost_packets_to_127(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    t.serve(t.instance, "127.0.0.1", 8080)
    t.steps("pre-start", env)
    assert t.sysctl(t.instance, ROUTE_LOCALNET) == "1"
    assert t.connect(t.peer, "127.0.0.1", 8080) is None
    assert t.connect(t.instance, "127.0.0.1", 8080) == "ok 8080"
    t.steps("post-stop", env)

    t.steps("pre-start", {**env, SKIP: "true"})
    assert t.connect(t.peer, "127.0.0.1", 8080) == "ok 8080"  # the filter, not routing, dropped it
    assert not any("127.0.0.0/8" in line for line in ours(t.rules()))
    t.steps("post-stop", env)
    _assert_clean(t)


def test_credentials_endpoint_reaches_agent_port(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    t.serve(t.instance, "127.0.0.1", 51679)
    assert t.connect(t.instance, "169.254.170.2", 80) is None
    t.steps("pre-start", env)
    assert t.connect(t.instance, "169.254.170.2", 80) == "ok 51679"  # OUTPUT REDIRECT
    assert t.connect(t.peer, "169.254.170.2", 80) == "ok 51679"  # PREROUTING DNAT through the filter
    assert t.connect(t.container, "169.254.170.2", 80) == "ok 51679"  # a container behind the bridge
    t.steps("post-stop", env)
    assert t.connect(t.instance, "169.254.170.2", 80) is None
    _assert_clean(t)


# ---------------------------------------------------------------- idempotence and cleanup


def test_pre_start_three_times_then_one_post_stop(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    for _ in range(3):
        t.steps("pre-start", env)
    v4, v6 = ours(t.rules()), ours(t.rules("ip6tables"))
    assert len(v4) == 5 and len(set(v4)) == 5, v4
    assert len(v6) == 2 and len(set(v6)) == 2, v6
    # Order in INPUT: bridge ACCEPT above the introspection DROP above the localhost filter.
    inputs = [line for line in v4 if line.startswith("-A INPUT")]
    assert "ACCEPT" in inputs[0] and "! -i lo" in inputs[1] and "127.0.0.0/8" in inputs[2]
    t.steps("post-stop", env)
    _assert_clean(t)
    t.steps("post-stop", env)  # nothing left to remove is not an error
    _assert_clean(t)


@pytest.mark.parametrize(
    ("setup_env", "teardown_env"),
    [
        ({}, {SKIP: "true", ALLOW: "true", "ECS_TEST_BRIDGE": "!unreachable"}),
        ({SKIP: "true", ALLOW: "true"}, {"ECS_TEST_BRIDGE": ""}),
        ({"ECS_TEST_BRIDGE": "oldbr"}, {"ECS_TEST_BRIDGE": BRIDGE}),
    ],
    ids=["flags-turned-on", "flags-turned-off", "bridge-renamed"],
)
def test_settings_changed_between_pre_start_and_post_stop(
    topo: Topology, env: dict[str, str], setup_env: dict[str, str], teardown_env: dict[str, str]
) -> None:
    t = topo
    t.steps("pre-start", {**env, **setup_env})
    assert ours(t.rules())
    t.steps("post-stop", {**env, **teardown_env})
    _assert_clean(t)


def test_duplicates_left_by_another_program_are_removed(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    for _ in range(3):  # what the Go ecs-init leaves after three pre-starts
        t.ex(t.instance, ["iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "169.254.170.2",
                          "--dport", "80", "-j", "REDIRECT", "--to-ports", "51679"])  # fmt: skip
        t.ex(t.instance, ["iptables", "-w", "-I", "INPUT", "-p", "tcp", "--dport", "51678", "-i", "docker0",
                          "-j", "ACCEPT"])  # fmt: skip
    t.steps("pre-start", env)
    t.steps("post-stop", env)
    _assert_clean(t)


# ---------------------------------------------------------------- IPv6-only


def test_ipv6_only_host_gets_credentials_route_on_loopback(tmp_path, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    with Topology(ipv4_default_route=False) as t:
        assert t.ex(t.instance, ["ip", "-4", "route", "show", "default"]).stdout.strip() == ""
        t.serve(t.instance, "127.0.0.1", 51679)
        t.steps("pre-start", env)
        route = t.ex(t.instance, ["ip", "route", "show", "169.254.170.2/32"]).stdout
        assert "dev lo" in route and "scope link" in route
        assert t.connect(t.instance, "169.254.170.2", 80) == "ok 51679"
        t.steps("pre-start", env)  # the route already there is not an error
        t.steps("post-stop", env)
        assert t.ex(t.instance, ["ip", "route", "show", "169.254.170.2/32"]).stdout.strip() == ""
        t.steps("post-stop", env)
        _assert_clean(t)


def test_ipv4_host_gets_no_loopback_route(env: dict[str, str]) -> None:
    with Topology() as t:
        t.steps("pre-start", env)
        assert t.ex(t.instance, ["ip", "route", "show", "169.254.170.2/32"]).stdout.strip() == ""
        t.steps("post-stop", env)


# ---------------------------------------------------------------- failures


def _path_with(tmp_path, name: str, tools: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    d = tmp_path / name
    d.mkdir()
    for link, target in tools.items():
        os.symlink(target, d / link)
    return str(d)


def test_missing_iptables_fails_pre_start_with_one_clear_line(tmp_path, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    path = _path_with(tmp_path, "noipt", {"ip": shutil.which("ip") or "", "sysctl": shutil.which("sysctl") or ""})
    with Topology() as t:
        proc = t.steps("pre-start", env, path=path, check=False)
        assert proc.returncode == 255
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and "iptables: command not found" in err, err
        assert "Traceback" not in proc.stdout + proc.stderr
        t.steps("post-stop", env)
        _assert_clean(t)


def test_missing_sysctl_fails_pre_start(tmp_path, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    path = _path_with(tmp_path, "nosysctl", {"ip": shutil.which("ip") or ""})
    with Topology() as t:
        proc = t.steps("pre-start", env, path=path, check=False)
        assert proc.returncode == 255
        assert "sysctl" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert ours(t.rules()) == []


def test_no_ip6tables_means_ipv4_rules_only(tmp_path, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    bindir = _bin_dir(tmp_path, "nft", ("iptables",))
    path = bindir + os.pathsep + _path_with(tmp_path, "base", {"ip": shutil.which("ip") or "",
                                                             "sysctl": shutil.which("sysctl") or ""})  # fmt: skip
    with Topology() as t:
        t.steps("pre-start", env, path=path)
        assert len(ours(t.rules())) == 5  # DNAT, localhost, block, bridge ACCEPT, REDIRECT
        assert ours(t.rules("ip6tables")) == []
        t.steps("post-stop", env, path=path)
        _assert_clean(t)


def test_failing_rule_command_leaves_nothing_post_stop_cannot_remove(tmp_path, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    real = shutil.which("iptables")
    wrapper = tmp_path / "wrap"
    wrapper.mkdir()
    (wrapper / "iptables").write_text(
        "#!/bin/sh\n"
        'case "$*" in *"-I INPUT -p tcp --dport 51678"*) echo "iptables: simulated failure" >&2; exit 4;; esac\n'
        f'exec {real} "$@"\n'
    )
    (wrapper / "iptables").chmod(0o755)
    path = str(wrapper) + os.pathsep + os.environ.get("PATH", "")
    with Topology(bridge=BRIDGE) as t:
        proc = t.steps("pre-start", env, path=path, check=False)
        assert proc.returncode == 255
        assert "--dport 51678" in proc.stderr and "simulated failure" in proc.stderr, proc.stderr
        assert ours(t.rules())  # half applied ...
        assert t.sysctl(t.instance, ROUTE_LOCALNET) == "1"
        t.steps("post-stop", env)  # ... and removed by post-stop
        _assert_clean(t)


@pytest.mark.skipif("legacy" not in BACKENDS, reason="no iptables-legacy")
def test_rule_changes_wait_for_the_xtables_lock(tmp_path, env: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    # iptables-legacy takes the xtables lock; XTABLES_LOCKFILE points it at a
    # private file, so holding it here never blocks the host's iptables users.
    lock = str(tmp_path / "xtables.lock")
    path = _bin_dir(tmp_path, "legacy") + os.pathsep + os.environ.get("PATH", "")
    with Topology(path=path) as t, open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", t.instance, sys.executable, netns.__file__, "pre-start"],
            env={**os.environ, **env, "PYTHONPATH": netns.SRC, "PATH": path, "XTABLES_LOCKFILE": lock},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(3)
            assert proc.poll() is None, proc.communicate()  # waiting for the lock, not failed
            assert ours(t.rules()) == []
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert len(ours(t.rules())) == 5
        t.steps("post-stop", env)
        _assert_clean(t)


# ---------------------------------------------------------------- the real program


def test_cli_post_stop_in_namespace_removes_everything(topo: Topology, env: dict[str, str]) -> None:
    t = topo
    t.steps("pre-start", env)
    t.steps("pre-start", {**env, "ECS_TEST_BRIDGE": "otherbr"})
    assert len(ours(t.rules())) == 6
    proc = t.steps("cli:post-stop", {**env, ALLOW: "true", "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 0
    _assert_clean(t)
    with open(os.path.join(env["ECS_INIT_PATH_PREFIX"], "var/log/ecs/ecs-init.log")) as fh:
        log = fh.read()
    assert "post-stop: done" in log and "removed" in log


@pytest.mark.docker
@pytest.mark.slow
def test_cli_pre_start_and_post_stop_in_namespace(env: dict[str, str], standin_dir: str, docker_lock: None) -> None:
    """The real program, with the real Docker engine naming its default bridge."""
    from helpers import install_tarball

    install_tarball(env["ECS_INIT_PATH_PREFIX"], os.path.join(standin_dir, "ecs-agent-v1.tar"))
    with Topology() as t:
        t.serve(t.instance, "0.0.0.0", 51678)
        for _ in range(2):
            proc = t.steps("cli:pre-start", {"ECS_INIT_PATH_PREFIX": env["ECS_INIT_PATH_PREFIX"]}, check=False)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        bridge = subprocess.run(
            ["docker", "network", "inspect", "bridge", "-f", '{{index .Options "com.docker.network.bridge.name"}}'],
            capture_output=True,
            text=True,
        ).stdout.strip()
        v4 = ours(t.rules())
        assert len(v4) == 5 and any(f"-i {bridge} " in line and "ACCEPT" in line for line in v4), v4
        assert len(ours(t.rules("ip6tables"))) == 2
        assert t.connect(t.peer, INSTANCE_V4, 51678) is None
        proc = t.steps("cli:post-stop", {"ECS_INIT_PATH_PREFIX": env["ECS_INIT_PATH_PREFIX"]}, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        _assert_clean(t)
        assert t.connect(t.peer, INSTANCE_V4, 51678) == "ok 51678"


# ---------------------------------------------------------------- locale


def test_pre_start_and_post_stop_under_a_german_locale(env: dict[str, str]) -> None:
    """A translated sysctl must not break the 'missing docker0 key' decision (commands run with LC_ALL=C).

    A fresh namespace has no docker0, so pre-start meets sysctl's 'cannot
    stat' error, which the German translation spells differently.
    """
    german = {**env, "LANG": "C.UTF-8", "LANGUAGE": "de"}
    with Topology() as t:
        probe = t.ex(
            t.instance,
            ["sysctl", "-w", "net.ipv6.conf.docker0.accept_ra=0"],
            check=False,
            env={k: v for k, v in {**os.environ, **german}.items() if k != "LC_ALL"},
        )
        if "cannot stat" in probe.stderr:
            pytest.skip("procps German messages are not installed")
        t.steps("pre-start", german)
        assert t.sysctl(t.instance, ROUTE_LOCALNET) == "1"
        t.steps("post-stop", german)
        _assert_clean(t)
