"""Each action imports only what it runs (issue 12, item 4).

Every action runs in a fresh interpreter (the real CLI, against a stand-in
daemon on a unix socket where it needs Docker) and the modules it loaded are
checked against a deny list: ``version`` loads no logging, HTTP or Docker
code (a source checkout may run git for its revision: ``subprocess``);
``stop`` none of download, notify, status, check, render, the volume
plugin, the supervisor or the host preparation, nor ``urllib.request``,
``http.server``, ``http.client`` (and its ``ssl``/``email``) or JSON-schema
code, nor ``typing`` (annotations only) or ``logging.handlers``; ``start``
the systemd notifier only when NOTIFY_SOCKET is set, and no HTTP client
library even then (the readiness and health probe is a socket,
``agent/probe.py``), nor ``tempfile``, ``typing``, ``dataclasses`` or the
idna codec. No action loads the Docker SDK.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Iterator, Optional

import pytest
from engine_stub import Reply, StubEngine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HARNESS = """
import sys
from ecs_init import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
loaded = sorted(sys.modules)
import json
sys.stdout.write("\\nMODULES=" + json.dumps(loaded) + "\\n")
sys.exit(code)
"""

# Never, for any action: the Docker SDK and its HTTP stack, the volume plugin's server.
EVERYWHERE = {"docker", "requests", "urllib3", "http.server", "ecs_init.volume_plugin", "ecs_init.volume_plugin.server"}
HTTP_CLIENTS = {"http.client", "ssl", "email", "email.parser", "urllib.request"}
REPORTS = {"ecs_init.ops.status", "ecs_init.ops.check", "ecs_init.ops.render", "jsonschema"}
HOST_PREP = {
    "ecs_init.host.apparmor", "ecs_init.host.gpu", "ecs_init.host.nvml", "ecs_init.host.loopback",
    "ecs_init.host.ipv6_route", "ecs_init.host.netfilter", "ecs_init.host.netrules", "ecs_init.host.ebs",
    "ecs_init.agent.hostfacts",
}  # fmt: skip
AGENT = {
    "ecs_init.agent.supervisor", "ecs_init.agent.upgrade", "ecs_init.agent.cache", "ecs_init.agent.progress",
    "ecs_init.agent.download", "ecs_init.agent.imds", "ecs_init.agent.proxy",
}  # fmt: skip
# The operator's support tools (issue 17): only `collect` and `check --network` load them.
SUPPORT = {
    "ecs_init.ops.collect", "ecs_init.ops.collect_sources", "ecs_init.ops.collect_host", "ecs_init.ops.collect_redact",
    "ecs_init.ops.bundle", "ecs_init.ops.logsel", "ecs_init.ops.netcheck", "ecs_init.ops.netcheck_local",
    "ecs_init.ops.netprobe",
}  # fmt: skip

# Not on the start path: temp files are made by fsutil.temp_beside (tempfile loads shutil, random, bz2 and
# lzma), the backoff's random generator only at the first delay, and the probe connects to an address
# without a name lookup (the idna codec); its value classes are core.record's, not dataclasses (inspect, ast);
# typing is for annotations only, as on the stop path.
START_LEAN = {
    "tempfile", "shutil", "random", "bz2", "lzma", "encodings.idna", "unicodedata", "dataclasses", "inspect",
    "typing",
}  # fmt: skip

DENY: dict[str, set[str]] = {
    "version": EVERYWHERE | HTTP_CLIENTS | REPORTS | HOST_PREP | AGENT | {
        "logging", "socket", "json", "ecs_init.docker", "ecs_init.docker.client",
        "ecs_init.docker.transport", "ecs_init.actions", "ecs_init.core.config", "ecs_init.agent.notify",
    },  # fmt: skip
    "stop": EVERYWHERE | HTTP_CLIENTS | REPORTS | HOST_PREP | AGENT | {
        "ecs_init.agent.spec", "ecs_init.host.apparmor_profile", "ecs_init.agent.notify", "ecs_init.core.lock",
        "subprocess", "shutil", "tempfile", "random",  # stop runs no command, writes no file, never backs off
        # annotations only (TYPE_CHECKING = False, then `if TYPE_CHECKING: from typing import ...`);
        # the log file's own hourly rotation, not logging.handlers (pickle, queue, copy)
        "typing", "logging.handlers", "pickle", "queue", "copy",
    },  # fmt: skip
    "start": EVERYWHERE | HTTP_CLIENTS | REPORTS | START_LEAN | {
        "ecs_init.agent.notify", "ecs_init.agent.download", "ecs_init.agent.imds",
        "ecs_init.host.netfilter", "ecs_init.host.loopback", "ecs_init.host.ipv6_route",
    },  # fmt: skip
    # the readiness and health probe is a plain socket: no HTTP client library here either
    "start+notify": EVERYWHERE | HTTP_CLIENTS | REPORTS | START_LEAN | {
        "ecs_init.agent.download", "ecs_init.agent.imds",
    },  # fmt: skip
    "reload-cache": EVERYWHERE | REPORTS | {
        "ecs_init.agent.notify", "ecs_init.agent.supervisor", "ecs_init.agent.hostfacts",
    },  # fmt: skip
    "post-stop": EVERYWHERE | HTTP_CLIENTS | REPORTS | AGENT | {"ecs_init.agent.notify", "ecs_init.docker.client"},
    "status": EVERYWHERE | {"ecs_init.agent.notify", "ecs_init.agent.supervisor", "ecs_init.agent.download"},
    "check": EVERYWHERE | SUPPORT | {"ecs_init.agent.notify", "ecs_init.agent.supervisor", "ecs_init.agent.download"},
}
for _action, _denied in DENY.items():
    if _action != "check":
        _denied |= SUPPORT


@pytest.fixture
def stub() -> Iterator[StubEngine]:
    tmp = tempfile.mkdtemp(prefix="ecs-ib-", dir="/tmp")
    engine = StubEngine(os.path.join(tmp, "d.sock"))
    engine.routes["POST", "/containers/ecs-agent/stop"] = lambda r: Reply(304)
    engine.routes["DELETE", "/containers/ecs-agent"] = lambda r: Reply(404, {"message": "No such container"})
    engine.routes["POST", "/containers/create"] = lambda r: Reply(404, {"message": "No such image"})
    engine.routes["GET", "/containers/ecs-agent/json"] = lambda r: Reply(404, {"message": "No such container"})
    try:
        yield engine.start()
    finally:
        engine.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def loaded_by(action: str, prefix: str, stub: StubEngine, notify: Optional[str] = None) -> tuple[int, set[str], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "DOCKER_HOST")}
    env.update(ECS_INIT_PATH_PREFIX=prefix, PYTHONPATH=os.path.join(ROOT, "src"), DOCKER_HOST=stub.host)
    env["PATH"] = "/nonexistent"  # post-stop: no iptables/sysctl to run (each failure is logged, exit 0)
    if notify:
        env["NOTIFY_SOCKET"] = notify
    proc = subprocess.run(
        [sys.executable, "-c", HARNESS, *action.split()], env=env, capture_output=True, text=True, timeout=60
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("MODULES=")]
    assert marker, proc.stdout + proc.stderr
    return proc.returncode, set(json.loads(marker[0][len("MODULES=") :])), proc.stderr


def prefix_dir(tmp_path: object) -> str:
    root = str(tmp_path)
    for d in ("etc/ecs", "var/lib/ecs/data", "var/log/ecs", "var/cache/ecs", "var/run"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    return root


@pytest.mark.parametrize(
    "action,expected_code",
    [("version", 0), ("stop", 0), ("start", 255), ("reload-cache", 255), ("post-stop", 0), ("status", 3), ("check", 1)],
)
def test_each_action_loads_only_what_it_runs(
    tmp_path: object, stub: StubEngine, action: str, expected_code: int
) -> None:
    code, modules, stderr = loaded_by(action, prefix_dir(tmp_path), stub)
    assert code == expected_code, stderr
    assert "Traceback" not in stderr
    assert sorted(modules & DENY[action]) == []


def test_start_loads_the_readiness_probe_only_under_notify_socket(tmp_path: object, stub: StubEngine) -> None:
    prefix = prefix_dir(tmp_path)
    _, plain, _ = loaded_by("start", prefix, stub)
    code, notified, stderr = loaded_by("start", prefix, stub, notify=os.path.join(str(tmp_path), "notify.sock"))
    assert code == 255, stderr
    assert "ecs_init.agent.notify" not in plain and "urllib.request" not in plain
    assert "ecs_init.agent.notify" in notified
    assert sorted(notified & DENY["start+notify"]) == []


def test_the_stop_path_is_the_engine_client_and_little_else(tmp_path: object, stub: StubEngine) -> None:
    _, modules, _ = loaded_by("stop", prefix_dir(tmp_path), stub)
    ours = sorted(m for m in modules if m.startswith("ecs_init"))
    assert ours == [
        "ecs_init",
        "ecs_init.actions",
        "ecs_init.agent",
        "ecs_init.agent.identity",
        "ecs_init.agent.stop",
        "ecs_init.cli",
        "ecs_init.core",
        "ecs_init.core.backoff",
        "ecs_init.core.cmd",
        "ecs_init.core.config",
        "ecs_init.core.envfile",
        "ecs_init.core.errors",
        "ecs_init.core.exitcodes",
        "ecs_init.core.fsutil",
        "ecs_init.core.logsetup",
        "ecs_init.core.paths",
        "ecs_init.core.printable",
        "ecs_init.core.redact",
        "ecs_init.core.settings",
        "ecs_init.docker",
        "ecs_init.docker.answers",
        "ecs_init.docker.api",
        "ecs_init.docker.client",
        "ecs_init.docker.daemon",
        "ecs_init.docker.errors",
        "ecs_init.docker.transport",
        "ecs_init.host",
        "ecs_init.host.context",
    ]
    assert stub.paths() == ["GET /_ping", "POST /containers/ecs-agent/stop"]  # the cheapest way in, then the stop
