"""``collect`` end to end: the real CLI, the real Docker engine, the stand-in agent, planted secrets.

The secrets test plants a distinct secret in every source a bundle reads —
ecs.config (ECS_ENGINE_AUTH_DATA, a *_TOKEN, a *_PASSWORD), the agent's
labels and log options (the splunk driver's token), the agent JSON config,
the agent container's Env alone (removed from ecs.config after the agent
started), log lines of ecs-init.log and ecs-agent.log (the stand-in also
echoes its ECS_* environment into its log and to Docker's log) — then
unpacks the bundle and searches every byte of it for each one.
"""

from __future__ import annotations

import json
import os
import pty
import socket
import stat
import subprocess
import sys
import tarfile
import threading
import time
from typing import Any, Iterator

import jsonschema
import pytest
from helpers import cli_env, install_tarball, run_cli, spawn_cli, wait_metadata, write_config
from s3_stub import file_md5

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "src", "ecs_init", "schemas", "collect.schema.json")
NO_DOCKER = "unix:///tmp/nonexistent-collect.sock"

AUTH = "QUtJQXBsYW50ZWRBdXRoMTIz"  # the credential inside ECS_ENGINE_AUTH_DATA
SECRETS = {
    "auth data": AUTH,
    "token": "tok-7f3a9c2e-planted",
    "password": "pw-91be44-planted",
    "label": "lbl-5d2c81-planted",
    "log option": "spl-0a1b2c-planted",
    "agent JSON config": "jsonauth-6e7f-planted",
    "agent Env only": "env-only-c4d5-planted",
}
CONFIG = (
    "ECS_CLUSTER=collect-cluster\n"
    "ECS_ENGINE_AUTH_TYPE=docker\n"
    f'ECS_ENGINE_AUTH_DATA={{"https://index.docker.io/v1/":{{"auth":"{AUTH}","email":"ops@example.com"}}}}\n'
    f"ECS_PLANTED_API_TOKEN={SECRETS['token']}\n"
    f"ECS_DB_PASSWORD={SECRETS['password']}\n"
    f'ECS_AGENT_LABELS={{"team":"infra","deploy-token":"{SECRETS["label"]}"}}\n'
    "ECS_LOG_DRIVER=splunk\n"
    f'ECS_LOG_OPTS={{"splunk-url":"https://127.0.0.1:9","splunk-token":"{SECRETS["log option"]}",'
    '"splunk-verify-connection":"false"}\n'
)


def manifest_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        doc: dict[str, Any] = json.loads(proc.stdout)
    except ValueError as err:
        raise AssertionError(f"collect --json printed no JSON: {proc.stdout!r} {proc.stderr!r}") from err
    with open(SCHEMA) as fh:
        jsonschema.validate(doc, json.load(fh))
    return doc


def unpack(path: str, into: str) -> dict[str, bytes]:
    """Every member of the bundle by its name below the top directory."""
    out = {}
    with tarfile.open(path) as tar:
        tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
        assert len(tops) == 1, tops
        for member in tar.getmembers():
            assert member.isfile() and ".." not in member.name, member.name
            fh = tar.extractfile(member)
            assert fh is not None
            out[member.name.split("/", 1)[1]] = fh.read()
    return out


def names(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in entries}


@pytest.fixture
def agent_with_secrets(prefix: str, standin_dir: str, docker_lock: None) -> Iterator[subprocess.Popen[str]]:
    write_config(prefix, CONFIG + f"ECS_ONLY_IN_ENV_TOKEN={SECRETS['agent Env only']}\n")
    with open(os.path.join(prefix, "etc/ecs/ecs.config.json"), "w") as fh:
        agent_json = {
            "Cluster": "collect-cluster",
            "EngineAuthData": {"https://x": {"auth": SECRETS["agent JSON config"]}},
        }
        json.dump(agent_json, fh)
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    loaded = run_cli(prefix, "reload-cache")
    assert loaded.returncode == 0, loaded.stderr
    proc = spawn_cli(prefix, "start")
    try:
        assert wait_metadata(timeout=30) is not None, "the stand-in agent never answered"
        write_config(prefix, CONFIG)  # from now on only the container's Env holds the last secret
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.docker
@pytest.mark.slow
def test_bundle_holds_everything_and_never_a_secret(
    prefix: str, tmp_path: Any, agent_with_secrets: subprocess.Popen[str]
) -> None:
    log_dir = os.path.join(prefix, "var/log/ecs")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 86400))
    with open(os.path.join(log_dir, "ecs-init.log"), "a") as fh:
        fh.write(f'level=info time={old} msg="a record from three days ago"\n')
        fh.write(f'level=warn time={now} msg="leaked: {" ".join(SECRETS.values())}"\n')
    with open(os.path.join(log_dir, "ecs-agent.log"), "a") as fh:
        fh.write(f"{now} [INFO] connecting with {SECRETS['agent Env only']} and {SECRETS['log option']}\n")
    rotation = os.path.join(log_dir, "ecs-init.log.2020-01-01-00")
    with open(rotation, "w") as fh:
        fh.write(f"level=info time={old} msg=old\n")
    os.utime(rotation, (time.time() - 3 * 86400,) * 2)
    outside = tmp_path / "not-for-the-bundle"
    outside.write_text("SHOULD-NOT-LEAK\n")
    os.symlink(outside, os.path.join(log_dir, "ecs-agent.log.evil"))

    proc = run_cli(prefix, "collect", "--json", timeout=120)
    manifest = manifest_of(proc)
    path = manifest["bundle"]
    assert os.path.dirname(path) == log_dir and os.path.basename(path).startswith("ecs-support-")
    assert path.endswith(".tar.gz") and os.path.getsize(path) == manifest["bytes"] <= 50_000_000
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    members = unpack(path, str(tmp_path))
    assert json.loads(members["manifest.json"])["collected"] == manifest["collected"]

    everything = b"\n".join(members.values())
    for what, secret in SECRETS.items():
        assert secret.encode() not in everything, f"the {what} secret is in the bundle"
    assert b"SHOULD-NOT-LEAK" not in everything
    assert all(s not in proc.stdout + proc.stderr for s in SECRETS.values())

    for name in ("status.json", "check.json", "render.json", "config/etc-ecs-ecs.config",
                 "config/ecs.config.json", "state/cache.json", "docker/version.json", "docker/info.json",
                 "docker/inspect-ecs-agent.json", "docker/ecs-agent.log", "host/sysctl.txt", "host/kernel.txt",
                 "host/os-release", "host/cgroup.txt", "host/disk.json", "logs/ecs-init.log",
                 "logs/ecs-agent.log"):  # fmt: skip
        assert name in members, f"{name} is missing; manifest: {json.dumps(manifest, indent=1)}"
    assert json.loads(members["status.json"])["agent"]["running"] is True
    render = json.loads(members["render.json"])
    assert "ECS_PLANTED_API_TOKEN=<redacted>" in render["body"]["Env"]
    inspect = json.loads(members["docker/inspect-ecs-agent.json"])
    assert "ECS_ONLY_IN_ENV_TOKEN=<redacted>" in inspect["Config"]["Env"]
    labels = inspect["Config"]["Labels"]
    assert (labels["team"], labels["deploy-token"]) == ("infra", "<redacted>")
    assert inspect["HostConfig"]["LogConfig"]["Config"]["splunk-token"] == "<redacted>"
    assert b"ECS_CLUSTER=collect-cluster" in members["config/etc-ecs-ecs.config"]
    assert b"ECS_ENGINE_AUTH_DATA=<redacted>" in members["config/etc-ecs-ecs.config"]
    assert b"ECS_ENGINE_AUTH_TYPE=docker" in members["config/etc-ecs-ecs.config"]  # not a secret: kept
    cache = json.loads(members["state/cache.json"])
    tarball = os.path.join(prefix, "var/cache/ecs/ecs-agent.tar")
    assert cache["state"] == 1 and cache["tarball_facts"]["md5"] == file_md5(tarball)
    assert cache["tarball_facts"]["bytes"] == os.path.getsize(tarball)
    assert not any(name.endswith(".tar") and len(data) > 100_000 for name, data in members.items())
    container_log = members["docker/ecs-agent.log"].decode()
    assert "[standin] starting stand-in agent" in container_log and len(container_log.splitlines()) <= 2000
    init_log = members["logs/ecs-init.log"].decode()
    assert "leaked: <redacted>" in init_log and "three days ago" not in init_log
    assert "connecting with <redacted> and <redacted>" in members["logs/ecs-agent.log"].decode()

    failed, skipped = names(manifest["failed"]), names(manifest["skipped"])
    assert failed["logs/ecs-agent.log.evil"]["reason"] == "is a symlink (not followed)"
    assert skipped["logs/ecs-init.log.2020-01-01-00"]["reason"].startswith("no records since ")
    collected = names(manifest["collected"])
    assert collected["logs/ecs-init.log"]["source"] == os.path.join(log_dir, "ecs-init.log")


def test_without_docker_the_bundle_is_still_written(prefix: str) -> None:
    write_config(prefix, "ECS_CLUSTER=c\n")
    proc = run_cli(prefix, "collect", "--json", DOCKER_HOST=NO_DOCKER, PATH="/usr/bin:/bin")
    manifest = manifest_of(proc)
    failed = names(manifest["failed"])
    assert "does not answer" in failed["docker/"]["reason"]
    assert any(e["reason"].endswith("command not found") for e in manifest["failed"]), manifest["failed"]
    assert names(manifest["skipped"])["config/var-lib-ecs-ecs.config"]["reason"] == "does not exist"
    assert os.path.exists(manifest["bundle"])


def test_hung_docker_does_not_hang_collect(prefix: str, tmp_path: Any) -> None:
    """A daemon that accepts connections and never answers: collect still ends, with one line about it."""
    sock_path = str(tmp_path / "hung.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        proc = run_cli(prefix, "collect", "--json", DOCKER_HOST=f"unix://{sock_path}", timeout=90)
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()
    manifest = manifest_of(proc)
    assert took < 30, took
    assert "does not answer" in names(manifest["failed"])["docker/"]["reason"]


def test_output_since_and_usage(prefix: str, tmp_path: Any) -> None:
    bogus = run_cli(prefix, "collect", "--since", "yesterday", DOCKER_HOST=NO_DOCKER)
    assert bogus.returncode == 1 and "argument --since: 'yesterday' is not a duration" in bogus.stderr
    assert bogus.stderr.startswith("amazon-ecs-init collect: ") and "level=" not in bogus.stderr
    missing = run_cli(prefix, "collect", "--output", str(tmp_path / "no/such/dir/b.tar.gz"), DOCKER_HOST=NO_DOCKER)
    assert missing.returncode == 0  # the parent is created
    into_dir = run_cli(prefix, "collect", "--output", str(tmp_path), "--since", "90m", DOCKER_HOST=NO_DOCKER)
    assert into_dir.returncode == 0, into_dir.stderr
    last = into_dir.stdout.strip().splitlines()[-1]
    assert os.path.dirname(last) == str(tmp_path) and os.path.basename(last).startswith("ecs-support-")
    assert "(mode 0600)" in into_dir.stdout
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    refused = run_cli(prefix, "collect", "--output", str(blocked / "b.tar.gz"), DOCKER_HOST=NO_DOCKER)
    assert refused.returncode == 255 and "cannot write the support bundle" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_each_log_file_is_capped_to_its_newest_lines(prefix: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = os.path.join(prefix, "var/log/ecs/ecs-init.log")
    with open(path, "w") as fh:
        for i in range(120_000):
            fh.write(f'level=info time={now} msg="line {i:06d} {"x" * 60}"\n')
    assert os.path.getsize(path) > 11 * 1024 * 1024
    manifest = manifest_of(run_cli(prefix, "collect", "--json", DOCKER_HOST=NO_DOCKER))
    entry = names(manifest["collected"])["logs/ecs-init.log"]
    assert entry["bytes"] <= 10 * 1024 * 1024 and "only the newest 10 MiB" in entry["note"]
    with tarfile.open(manifest["bundle"]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/logs/ecs-init.log"))
        fh = tar.extractfile(member)
        assert fh is not None
        data = fh.read()
    assert data.endswith(b"line 119999 " + b"x" * 60 + b'"\n') and data.startswith(b"level=info")


def test_progress_on_a_terminal_only(prefix: str) -> None:
    env = cli_env(prefix, DOCKER_HOST=NO_DOCKER)
    plain = run_cli(prefix, "collect", DOCKER_HOST=NO_DOCKER)
    assert "[ 1/" not in plain.stderr
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ecs_init", "collect"], env=env, stdout=subprocess.PIPE, stderr=slave,
            text=True, timeout=60,
        )  # fmt: skip
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert b"[ 1/" in seen and b"manifest" in seen
    assert proc.stdout.strip().splitlines()[-1].endswith(".tar.gz")


@pytest.mark.slow
def test_the_bundle_stays_under_50_mb_with_logs_that_do_not_compress(prefix: str) -> None:
    """Seven 10 MiB logs of random text (about 55 MB even compressed): the newest files go in whole,
    the last ones are cut or left out, and the bundle stays under 50 MB."""
    import base64

    log_dir = os.path.join(prefix, "var/log/ecs")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    names_by_age = ["ecs-init.log"] + [f"ecs-init.log.2026-01-01-{h:02d}" for h in range(6)]
    for age, name in enumerate(names_by_age):
        with open(os.path.join(log_dir, name), "wb") as fh:
            for _ in range(10 * 1024 // 4):
                block = base64.b64encode(os.urandom(3000)).decode()
                fh.write("".join(f"{now} {block[i : i + 100]}\n" for i in range(0, 4000, 100)).encode())
        os.utime(os.path.join(log_dir, name), (time.time() - age * 60,) * 2)
    manifest = manifest_of(run_cli(prefix, "collect", "--json", DOCKER_HOST=NO_DOCKER, timeout=300))
    assert manifest["bytes"] <= 50_000_000 < 7 * 10 * 1024 * 1024
    assert os.path.getsize(manifest["bundle"]) == manifest["bytes"]
    collected, skipped = names(manifest["collected"]), names(manifest["skipped"])
    newest = collected["logs/ecs-init.log"]
    assert newest["bytes"] > 9 * 1024 * 1024 and "cut to" not in newest.get("note", "")
    oldest = f"logs/{names_by_age[-1]}"
    assert oldest in skipped or "cut to" in collected[oldest].get("note", ""), manifest
    print("collect took", manifest["duration_seconds"], "s for", manifest["bytes"], "bytes")
