"""The real CLI downloads the agent when the cache is empty (SPEC §4, §10).

``reload-cache`` runs in the root network namespace against moto on
127.0.0.1 with an IMDSv2 stand-in for the region. ``pre-start`` also
prepares host networking, so it runs inside a fresh network namespace
(``ip netns exec``) with its own moto server on that namespace's loopback;
the namespace, and every rule pre-start made in it, is deleted afterwards.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from typing import Iterator

import pytest
from helpers import ROOT, cli_env, image_id, init_log, remove_agent_image, run_cli, tarball_image_id
from imds_stub import ImdsStub
from s3_stub import S3Stub, agent_key, file_md5

pytestmark = [pytest.mark.docker, pytest.mark.slow]

_counter = itertools.count()


def read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def cache_files(prefix: str) -> list[str]:
    return sorted(os.listdir(os.path.join(prefix, "var/cache/ecs")))


@pytest.fixture
def no_agent_image(docker_lock: None) -> Iterator[None]:
    remove_agent_image()
    yield
    remove_agent_image()


@pytest.fixture
def agent_tar(standin_dir: str) -> str:
    return os.path.join(standin_dir, "ecs-agent-v1.tar")


def test_reload_cache_on_an_empty_cache_downloads_and_loads(prefix: str, agent_tar: str, no_agent_image: None) -> None:
    assert image_id() is None
    assert cache_files(prefix) == []  # state 0: no state file, no tarball
    with S3Stub() as s3, ImdsStub("us-west-2") as imds:
        # only the regional bucket has it: the region must come from IMDS
        s3.bucket("amazon-ecs-agent")
        s3.bucket("amazon-ecs-agent-us-west-2", "us-west-2")
        s3.put_agent("amazon-ecs-agent-us-west-2", agent_tar)
        proc = run_cli(
            prefix,
            "reload-cache",
            ECS_INIT_S3_ENDPOINT=s3.endpoint,
            ECS_INIT_IMDS_ENDPOINT=imds.endpoint,
            no_proxy="127.0.0.1",
            NO_PROXY="127.0.0.1",
        )
        assert imds.requests, "the region was not asked for"
    assert proc.returncode == 0, proc.stderr
    assert image_id() == tarball_image_id(agent_tar)
    assert read(os.path.join(prefix, "var/cache/ecs/ecs-agent.tar")) == read(agent_tar)
    assert read(os.path.join(prefix, "var/cache/ecs/state")).strip() == b"1"
    assert cache_files(prefix) == ["ecs-agent.tar", "state"]
    log = init_log(prefix)
    assert "amazon-ecs-agent-us-west-2" in log
    assert "done," in log  # the progress end line, with size and duration


def test_reload_cache_download_failure_changes_nothing(prefix: str, agent_tar: str, no_agent_image: None) -> None:
    with S3Stub() as s3:
        s3.bucket("amazon-ecs-agent")
        s3.put_agent("amazon-ecs-agent", agent_tar, md5="f" * 32)
        proc = run_cli(
            prefix,
            "reload-cache",
            ECS_EXTERNAL="true",
            AWS_DEFAULT_REGION="us-east-1",
            ECS_INIT_S3_ENDPOINT=s3.endpoint,
            no_proxy="127.0.0.1",
            NO_PROXY="127.0.0.1",
        )
    assert proc.returncode == 255
    assert "MD5 mismatch" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cache_files(prefix) == []
    assert image_id() is None


# A moto server for inside a network namespace: fills its buckets through
# the S3 API, prints its port, and serves until stdin closes.
NETNS_S3 = r"""
import sys
sys.path.insert(0, sys.argv[1])
from s3_stub import S3Stub
s3 = S3Stub().start()
s3.bucket("amazon-ecs-agent")
s3.put_agent("amazon-ecs-agent", sys.argv[2])
print(s3.endpoint, flush=True)
sys.stdin.read()
s3.stop()
"""


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root for ip netns")
    name = f"ecsdl{os.getpid()}x{next(_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.netns
def test_pre_start_on_an_empty_cache_downloads_and_loads(
    prefix: str, agent_tar: str, no_agent_image: None, netns: str
) -> None:
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", NETNS_S3, os.path.join(ROOT, "tests"), agent_tar],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")},
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:"), server.stderr.read() if server.stderr else ""
        env = cli_env(
            prefix,
            ECS_INIT_S3_ENDPOINT=endpoint,
            # nothing listens there in the fresh namespace: the non-EC2 fallback
            ECS_INIT_IMDS_ENDPOINT="http://127.0.0.1:9",
            no_proxy="127.0.0.1",
            NO_PROXY="127.0.0.1",
        )
        proc = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "ecs_init", "pre-start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        if server.stdin:
            server.stdin.close()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert image_id() == tarball_image_id(agent_tar)
    assert read(os.path.join(prefix, "var/cache/ecs/ecs-agent.tar")) == read(agent_tar)
    assert read(os.path.join(prefix, "var/cache/ecs/state")).strip() == b"1"
    assert cache_files(prefix) == ["ecs-agent.tar", "state"]
    assert os.path.isdir(os.path.join(prefix, "mnt/ecs/ebs"))
    assert file_md5(os.path.join(prefix, "var/cache/ecs/ecs-agent.tar")) == file_md5(agent_tar)
    assert agent_key() in init_log(prefix)
