"""status, check and render against the real Docker engine and the stand-in agent.

The supervisor (`start`) runs in the root network namespace but changes no
host network state: only `reload-cache` and `start` are used, never
`pre-start`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import Any

import jsonschema
import pytest
from fakes import FakeEngine
from helpers import (
    docker,
    init_log,
    inspect,
    install_tarball,
    run_cli,
    spawn_cli,
    wait_metadata,
    write_config,
)
from helpers import (
    image_id as agent_image_id,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = os.path.join(ROOT, "src", "ecs_init", "schemas")
NO_DOCKER = "unix:///tmp/nonexistent.sock"

GOOD_CONFIG = (
    "ECS_CLUSTER=ops-cluster\n"
    "ECS_LOGLEVEL=info\n"
    'ECS_AGENT_LABELS={"team":"infra","tier":"ops"}\n'
    "ECS_LOG_DRIVER=json-file\n"
    'ECS_LOG_OPTS={"max-size":"8m","max-file":"2"}\n'
    "ECS_ENABLE_TASK_IAM_ROLE=true\n"
    "ECS_AGENT_PID_NAMESPACE_HOST=false\n"
    "ECS_RESERVED_MEMORY=32\n"
)

BAD_CONFIG = (
    "ECS_CLUSTR=ops-cluster\n"
    "ECS_ENABLE_TASK_ENI=yes\n"
    'ECS_AGENT_LABELS={"team":"infra"\n'
    "ECS_LOG_OPTS={max-size:8m}\n"
    "ECS_LOG_DRIVER=loki\n"
    "ECS_RESERVED_MEMROY=32\n"
)


def _schema(name: str) -> dict[str, Any]:
    with open(os.path.join(SCHEMAS, f"{name}.schema.json")) as fh:
        return json.load(fh)  # type: ignore[no-any-return]


def _json(proc: subprocess.CompletedProcess[str], action: str) -> dict[str, Any]:
    try:
        doc = json.loads(proc.stdout)
    except ValueError as err:
        raise AssertionError(f"{action} --json printed no JSON: {proc.stdout!r} {proc.stderr!r}") from err
    jsonschema.validate(doc, _schema(action))
    return doc  # type: ignore[no-any-return]


def _findings(doc: dict[str, Any], ignore: tuple[str, ...] = ("introspection",)) -> list[tuple[Any, ...]]:
    """Every check that did not PASS, as (name, status, key or None)."""
    return [
        (c["name"], c["status"], c.get("key"))
        for c in doc["checks"]
        if c["status"] != "PASS" and c["name"] not in ignore
    ]


def _sigterm_and_wait(proc: subprocess.Popen[str]) -> bool:
    """SIGTERM the supervisor; True when it exited in time (else it is killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
            return False
    return True


def _stop(proc: subprocess.Popen[str]) -> None:
    _sigterm_and_wait(proc)
    subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True)


def _load_v1(prefix: str, standin_dir: str) -> None:
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    loaded = run_cli(prefix, "reload-cache")
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr


def _start(prefix: str) -> subprocess.Popen[str]:
    proc = spawn_cli(prefix, "start")
    if wait_metadata(timeout=30) is None:
        _stop(proc)
        output = proc.stdout.read() if proc.stdout else ""
        raise AssertionError(f"the stand-in agent never answered on 51678; start said:\n{output[-3000:]}")
    return proc


# ---------------------------------------------------------------- Docker down


@pytest.mark.docker
def test_docker_down(prefix: str) -> None:
    write_config(prefix, GOOD_CONFIG)
    started = time.monotonic()
    st = run_cli(prefix, "status", "--json", DOCKER_HOST=NO_DOCKER)
    assert time.monotonic() - started < 10
    assert st.returncode == 1, st.stdout + st.stderr
    doc = _json(st, "status")
    assert doc["docker"]["reachable"] is False
    assert doc["docker"]["error"] == f"Docker at {NO_DOCKER} does not answer: no socket at that path"
    assert doc["agent"]["state"] == "unknown" and doc["summary"] == "unknown: Docker does not answer"
    human = run_cli(prefix, "status", DOCKER_HOST=NO_DOCKER)
    assert human.returncode == 1 and "NOT REACHABLE" in human.stdout

    ck = run_cli(prefix, "check", "--json", DOCKER_HOST=NO_DOCKER)
    assert ck.returncode == 1
    checks = {c["name"]: c for c in _json(ck, "check")["checks"]}
    assert checks["docker"]["status"] == "FAIL" and "DOCKER_HOST" in checks["docker"]["hint"]
    assert checks["introspection"]["status"] == "SKIP"

    # render never needs Docker.
    rd = run_cli(prefix, "render", "--json", DOCKER_HOST=NO_DOCKER)
    assert rd.returncode == 0, rd.stderr
    assert _json(rd, "render")["body"]["Image"] == "amazon/amazon-ecs-agent:latest"
    assert _json(rd, "render")["api_version_source"] == "assumed"  # said so only when the engine is silent
    # Read-only actions never write ecs-init.log.
    assert init_log(prefix) == ""


# ---------------------------------------------------------------- status


@pytest.mark.docker
@pytest.mark.slow
def test_status_running_then_stopped(prefix: str, standin_dir: str, docker_lock: None) -> None:
    write_config(prefix, GOOD_CONFIG)
    before = run_cli(prefix, "status", "--json")
    assert before.returncode == 3, before.stdout + before.stderr
    assert _json(before, "status")["agent"]["state"] == "absent"

    _load_v1(prefix, standin_dir)
    supervisor = _start(prefix)
    try:
        st = run_cli(prefix, "status", "--json")
        assert st.returncode == 0, st.stdout + st.stderr
        doc = _json(st, "status")
        agent, intro, sup = doc["agent"], doc["introspection"], doc["supervisor"]
        assert (agent["state"], agent["running"], agent["image"]) == ("running", True, "amazon/amazon-ecs-agent:latest")
        assert agent["image_id"] == agent_image_id() == agent["latest_image_id"]
        assert agent["container_id"] == inspect("ecs-agent")["Id"]  # type: ignore[index]
        assert 0 <= agent["uptime_seconds"] < 120
        assert intro["answering"] is True
        assert intro["version"] == "Amazon ECS Agent - v1.105.1 (standin)"
        assert intro["cluster"] == "ops-cluster"
        assert intro["container_instance_arn"].endswith("container-instance/ops-cluster/standin")
        assert (sup["present"], sup["alive"], sup["pid"], sup["restarts"], sup["state"]) == (
            True,
            True,
            supervisor.pid,
            0,
            "running",
        )
        assert (doc["cache"]["state"], doc["cache"]["state_name"]) == (1, "cached")
        assert doc["cache"]["tarball_bytes"] == os.path.getsize(os.path.join(standin_dir, "ecs-agent-v1.tar"))
        server_api = docker("version", "--format", "{{.Server.APIVersion}}")
        assert doc["docker"]["server_api_version"] == server_api
        assert doc["docker"]["version"] == docker("version", "--format", "{{.Server.Version}}")
        # Every planned rule is reported with a definite answer (this test never runs pre-start).
        rules = doc["host_network"]["rules"]
        assert rules and all(r["present"] in (True, False) for r in rules)
        assert any("--dport 51678" in r["rule"] for r in rules)
        assert doc["host_network"]["route_localnet"] in ("0", "1")

        human = run_cli(prefix, "status")
        assert human.returncode == 0
        assert "ECS agent: running" in human.stdout
        assert "cluster:       ops-cluster" in human.stdout

        ck = run_cli(prefix, "check", "--json")
        ck_doc = _json(ck, "check")
        intro_check = next(c for c in ck_doc["checks"] if c["name"] == "introspection")
        assert intro_check["status"] == "PASS" and "v1.105.1" in intro_check["reason"]
    finally:
        _stop_supervisor_only(supervisor)

    log_size = len(init_log(prefix))
    after = run_cli(prefix, "status", "--json")
    assert after.returncode == 3, after.stdout + after.stderr
    doc = _json(after, "status")
    assert doc["agent"]["state"] == "exited" and doc["agent"]["running"] is False
    assert doc["introspection"]["answering"] is False and "does not answer" in doc["introspection"]["error"]
    assert (doc["supervisor"]["alive"], doc["supervisor"]["state"]) == (False, "stopped")
    human = run_cli(prefix, "status")
    assert human.returncode == 3 and "NOT ANSWERING" in human.stdout and "ECS agent: not running" in human.stdout
    assert len(init_log(prefix)) == log_size  # status never writes ecs-init.log
    subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True)


def _stop_supervisor_only(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the supervisor and wait; the agent container is left (exited) for `status`."""
    if not _sigterm_and_wait(proc):
        subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True)
        raise AssertionError("the supervisor did not stop on SIGTERM")
    state = inspect("ecs-agent")
    assert state is None or not state["State"]["Running"], "the agent survived the supervisor's stop"


# ---------------------------------------------------------------- check


@pytest.mark.docker
def test_check_good_config_passes_fast(prefix: str, standin_dir: str, docker_lock: None) -> None:
    write_config(prefix, GOOD_CONFIG)
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="1")
    run_cli(prefix, "check", "--json")  # warm the page cache: the timed run measures check, not the disk
    started = time.monotonic()
    proc = run_cli(prefix, "check", "--json")
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _json(proc, "check")
    assert _findings(doc, ignore=()) == [("introspection", "SKIP", None)]
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["cache.tarball"]["tags"] == ["amazon/amazon-ecs-agent:latest"]
    assert by_name["config.keys"]["reason"] == "all 8 key(s) are known"
    assert by_name["config.agent-labels"]["reason"] == "ECS_AGENT_LABELS: 2 label(s)"
    assert by_name["docker"]["server_api_version"] == docker("version", "--format", "{{.Server.APIVersion}}")
    assert doc["duration_seconds"] < 1.0
    print(f"check: {doc['duration_seconds']:.3f}s inside, {wall:.3f}s for the whole process")
    human = run_cli(prefix, "check")
    assert human.returncode == 0 and "PASS  docker" in human.stdout and "0 failed" in human.stdout
    assert init_log(prefix) == ""


@pytest.mark.docker
def test_check_typos_and_bad_json(prefix: str, standin_dir: str) -> None:
    write_config(prefix, BAD_CONFIG)
    write_config(prefix, "ECS_ENABLE_GPU_SUPORT=true\nECS_CHECKPOINT=maybe\n", instance=True)
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="1")
    proc = run_cli(prefix, "check", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = _json(proc, "check")
    assert _findings(doc) == [
        ("config.unknown-key", "WARN", "ECS_CLUSTR"),
        ("config.unknown-key", "WARN", "ECS_RESERVED_MEMROY"),
        ("config.unknown-key", "WARN", "ECS_ENABLE_GPU_SUPORT"),
        ("config.boolean", "FAIL", "ECS_ENABLE_TASK_ENI"),
        ("config.boolean", "FAIL", "ECS_CHECKPOINT"),
        ("config.agent-labels", "FAIL", None),
        ("config.log-driver", "FAIL", None),
        ("config.log-opts", "FAIL", None),
    ]
    checks = [c for c in doc["checks"] if c["status"] != "PASS"]
    operator = os.path.join(prefix, "etc/ecs/ecs.config")
    instance = os.path.join(prefix, "var/lib/ecs/ecs.config")
    assert [(c.get("suggestion"), c.get("file"), c.get("line")) for c in checks[:3]] == [
        ("ECS_CLUSTER", operator, 1),
        ("ECS_RESERVED_MEMORY", operator, 6),
        ("ECS_ENABLE_GPU_SUPPORT", instance, 1),
    ]
    assert checks[0]["reason"] == f"unknown key ECS_CLUSTR at {operator}:1"
    assert checks[0]["hint"] == "did you mean ECS_CLUSTER?"
    assert checks[3]["reason"].startswith(f"ECS_ENABLE_TASK_ENI='yes' at {operator}:2 is not a boolean")
    assert checks[5]["reason"].startswith("ECS_AGENT_LABELS is not valid JSON") and operator in checks[5]["reason"]
    assert checks[6]["reason"].startswith("ECS_LOG_DRIVER='loki'")
    assert checks[7]["reason"].startswith("ECS_LOG_OPTS is not a valid JSON object") and operator in checks[7]["reason"]
    human = run_cli(prefix, "check")
    assert human.returncode == 1
    assert "WARN  config.unknown-key" in human.stdout and "hint: did you mean ECS_CLUSTER?" in human.stdout


@pytest.mark.docker
@pytest.mark.parametrize(
    ("variant", "fragment"),
    [("corrupt", "is not a readable tar archive"), ("truncated", "truncated")],
)
def test_check_broken_tarball(prefix: str, standin_dir: str, variant: str, fragment: str) -> None:
    write_config(prefix, GOOD_CONFIG)
    install_tarball(prefix, os.path.join(standin_dir, f"ecs-agent-{variant}.tar"), state="1")
    proc = run_cli(prefix, "check", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = _json(proc, "check")
    assert _findings(doc) == [("cache.tarball", "FAIL", None)]
    tarball = next(c for c in doc["checks"] if c["name"] == "cache.tarball")
    assert fragment in tarball["reason"]
    assert tarball["hint"].startswith("remove ")


# ---------------------------------------------------------------- render == what start creates


RENDER_CONFIG = GOOD_CONFIG + (
    "ECS_ENGINE_AUTH_TYPE=dockercfg\n"
    'ECS_ENGINE_AUTH_DATA={"https://registry.example":{"auth":"c2VjcmV0OnNlY3JldA=="}}\n'
    # Later lines win: the agent shares the host's PID namespace (Privileged cannot run in this sandbox).
    "ECS_AGENT_PID_NAMESPACE_HOST=true\n"
)


@pytest.mark.docker
@pytest.mark.slow
def test_render_matches_what_start_creates(prefix: str, standin_dir: str, docker_lock: None) -> None:
    write_config(prefix, RENDER_CONFIG)
    shown = run_cli(prefix, "render", "--json", "--show-secrets")
    assert shown.returncode == 0, shown.stderr
    rendered = _json(shown, "render")
    body = rendered["body"]
    # the engine answered: its API version, as status and check tell it, not an assumed one
    status_doc = _json(run_cli(prefix, "status", "--json"), "status")
    assert (rendered["api_version"], rendered["api_version_source"]) == (status_doc["docker"]["api_version"], "engine")
    redacted = run_cli(prefix, "render", "--json")
    redacted_doc = _json(redacted, "render")
    assert "c2VjcmV0OnNlY3JldA==" not in redacted.stdout
    assert "ECS_ENGINE_AUTH_DATA=<redacted>" in redacted_doc["body"]["Env"]
    assert "ECS_ENGINE_AUTH_TYPE=dockercfg" in redacted_doc["body"]["Env"]  # not a secret (SPEC §11)
    human = run_cli(prefix, "render")
    assert human.returncode == 0 and "c2VjcmV0OnNlY3JldA==" not in human.stdout
    assert "Binds (" in human.stdout and "  PidMode: host" in human.stdout

    _load_v1(prefix, standin_dir)
    supervisor = _start(prefix)
    try:
        created = inspect("ecs-agent")
        assert created is not None
        image = json.loads(docker("image", "inspect", "amazon/amazon-ecs-agent:latest"))[0]
        image_env = set(image["Config"]["Env"] or [])
        image_labels = image["Config"]["Labels"] or {}
    finally:
        _stop(supervisor)

    assert created["Config"]["Image"] == body["Image"]
    # Env: exactly ours plus what the image itself sets.
    assert set(created["Config"]["Env"]) == set(body["Env"]) | image_env
    assert created["Config"]["Labels"] == {**image_labels, **body["Labels"]}
    assert body["Labels"] == {"team": "infra", "tier": "ops"}
    host, want = created["HostConfig"], body["HostConfig"]
    assert host["Binds"] == want["Binds"]
    assert host["NetworkMode"] == want["NetworkMode"]
    assert host["UsernsMode"] == want["UsernsMode"]
    assert bool(host.get("Init")) == bool(want.get("Init"))
    assert sorted(host["CapAdd"] or []) == sorted(want["CapAdd"])
    assert host["Privileged"] is want.get("Privileged", False)
    assert host["PidMode"] == want["PidMode"] == "host"
    # Docker itself adds label=disable (no SELinux labelling) to containers in the host PID namespace.
    assert [o for o in host["SecurityOpt"] or [] if o != "label=disable"] == want.get("SecurityOpt", [])
    assert (
        host["LogConfig"] == want["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "8m", "max-file": "2"}}
    )


# ---------------------------------------------------------------- status sees the host rules (in a namespace)


@pytest.mark.netns
def test_status_sees_rules_and_route_localnet_in_a_namespace(prefix: str) -> None:
    from ecs_init.core.cmd import Runner
    from ecs_init.core.config import Config
    from ecs_init.host import netfilter
    from ecs_init.host.context import HostContext
    from ecs_init.ops import status

    ns = f"ecsops{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        runner = Runner(prefix=["ip", "netns", "exec", ns])
        runner.run(["ip", "link", "set", "lo", "up"])
        cfg = Config.load(environ={"ECS_INIT_PATH_PREFIX": prefix, "PATH": os.environ.get("PATH", "")})
        engine = FakeEngine(bridge="docker0")
        ctx = HostContext(cfg=cfg, runner=runner, docker_factory=lambda: engine)

        fresh = status.host_network_part(ctx, engine)
        assert fresh["route_localnet"] == "0" and fresh["route_localnet_ok"] is False
        assert fresh["rules"] and all(r["present"] is False for r in fresh["rules"])

        netfilter.setup(ctx)
        runner.run(["sysctl", "-w", "net.ipv4.conf.all.route_localnet=1"])
        ready = status.host_network_part(ctx, engine)
        assert ready["route_localnet_ok"] is True
        assert [r["present"] for r in ready["rules"]] == [True] * len(ready["rules"])
        assert any("-i docker0 -j ACCEPT" in r["rule"] for r in ready["rules"])

        # One rule removed by hand: status names exactly that one.
        runner.run(["iptables", "-t", "nat", "-D", "OUTPUT", "-p", "tcp", "-d", "169.254.170.2", "--dport", "80",
                    "-j", "REDIRECT", "--to-ports", "51679"])  # fmt: skip
        missing = [r["rule"] for r in status.host_network_part(ctx, engine)["rules"] if not r["present"]]
        assert missing == ["iptables -t nat -A OUTPUT -p tcp -d 169.254.170.2 --dport 80 -j REDIRECT --to-ports 51679"]
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
