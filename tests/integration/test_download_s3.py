"""Downloading the agent from a real S3-compatible server on loopback (SPEC §10).

moto runs in server mode on 127.0.0.1 and is filled through the S3 REST API;
download_agent fetches with anonymous GETs. A tiny HTTP server that dies
mid-transfer and an IMDSv2 stand-in cover the failure and region paths.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from imds_stub import ImdsStub, SilentServer, closed_port_endpoint
from s3_stub import AGENT_BUCKET, S3Stub, agent_key, file_md5

from ecs_init.agent import imds
from ecs_init.agent.download import download_agent
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext

OLD = b"a previously cached, known-good tarball\n" * 64


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Stub]:
    with S3Stub() as s3:
        yield s3


@pytest.fixture
def s3(s3_server: S3Stub) -> Iterator[S3Stub]:
    s3_server.reset()
    yield s3_server
    s3_server.reset()


@pytest.fixture
def agent_tar(standin_dir: str) -> str:
    return os.path.join(standin_dir, "ecs-agent-v1.tar")


def context(prefix: str, **env: str) -> HostContext:
    return HostContext(cfg=Config.load(environ=env, paths=Paths(prefix=prefix)))


def external(prefix: str, endpoint: str, region: str = "us-east-1", **env: str) -> HostContext:
    """External mode: the region comes from AWS_DEFAULT_REGION, no metadata service."""
    return context(prefix, ECS_EXTERNAL="true", AWS_DEFAULT_REGION=region, ECS_INIT_S3_ENDPOINT=endpoint, **env)


def cache_listing(ctx: HostContext) -> list[str]:
    return sorted(os.listdir(ctx.paths.cache_dir))


def read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def seed_old_tarball(ctx: HostContext) -> float:
    with open(ctx.paths.cache_tarball, "wb") as fh:
        fh.write(OLD)
    return os.stat(ctx.paths.cache_tarball).st_mtime_ns


# ---------------------------------------------------------------- success paths


def test_empty_cache_downloads_and_verifies(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    ctx = external(prefix, s3.endpoint)
    shutil.rmtree(ctx.paths.cache_dir)  # not even the directory exists yet

    download_agent(ctx)

    assert read(ctx.paths.cache_tarball) == read(agent_tar)
    assert cache_listing(ctx) == ["ecs-agent.tar"]  # no temp file left, no state file written
    assert stat.S_IMODE(os.stat(ctx.paths.cache_dir).st_mode) == 0o700


def test_cache_dir_mode_is_tightened(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    ctx = external(prefix, s3.endpoint)
    os.chmod(ctx.paths.cache_dir, 0o755)
    download_agent(ctx)
    assert stat.S_IMODE(os.stat(ctx.paths.cache_dir).st_mode) == 0o700


def test_replaces_an_existing_tarball_only_with_a_verified_one(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    ctx = external(prefix, s3.endpoint)
    seed_old_tarball(ctx)
    download_agent(ctx)
    assert read(ctx.paths.cache_tarball) == read(agent_tar)


def test_upper_case_md5_is_accepted(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar, md5="  " + file_md5(agent_tar).upper() + "  ")
    ctx = external(prefix, s3.endpoint)
    download_agent(ctx)
    assert read(ctx.paths.cache_tarball) == read(agent_tar)


@pytest.mark.parametrize("machine", ["aarch64", "x86_64"])
def test_key_follows_the_architecture(s3: S3Stub, prefix: str, agent_tar: str, standin_dir: str, machine: str) -> None:
    other = os.path.join(standin_dir, "ecs-agent-v2.tar")
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar, key=agent_key(machine="x86_64"))
    s3.put_agent(AGENT_BUCKET, other, key=agent_key(machine="aarch64"))
    ctx = external(prefix, s3.endpoint)
    download_agent(ctx, machine=machine)
    assert read(ctx.paths.cache_tarball) == read(other if machine == "aarch64" else agent_tar)


def test_partition_bucket_missing_uses_the_regional_bucket(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket("amazon-ecs-agent-ap-southeast-2", "ap-southeast-2")
    s3.put_agent("amazon-ecs-agent-ap-southeast-2", agent_tar)
    ctx = external(prefix, s3.endpoint, region="ap-southeast-2")
    download_agent(ctx)
    assert read(ctx.paths.cache_tarball) == read(agent_tar)
    assert cache_listing(ctx) == ["ecs-agent.tar"]


def test_partition_bucket_is_preferred(s3: S3Stub, prefix: str, agent_tar: str, standin_dir: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    s3.bucket("amazon-ecs-agent-eu-north-1", "eu-north-1")
    s3.put_agent("amazon-ecs-agent-eu-north-1", os.path.join(standin_dir, "ecs-agent-v2.tar"))
    ctx = external(prefix, s3.endpoint, region="eu-north-1")
    download_agent(ctx)
    assert read(ctx.paths.cache_tarball) == read(agent_tar)


def test_partition_bucket_with_a_bad_object_falls_through(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar, md5="0" * 32)  # checksum does not match
    s3.bucket("amazon-ecs-agent-eu-west-3", "eu-west-3")
    s3.put_agent("amazon-ecs-agent-eu-west-3", agent_tar)
    ctx = external(prefix, s3.endpoint, region="eu-west-3")
    download_agent(ctx)
    assert read(ctx.paths.cache_tarball) == read(agent_tar)
    assert cache_listing(ctx) == ["ecs-agent.tar"]


def test_region_from_the_imds_stand_in(s3: S3Stub, prefix: str, agent_tar: str, standin_dir: str) -> None:
    s3.bucket(AGENT_BUCKET)  # the partition bucket exists but lacks the key
    s3.bucket("amazon-ecs-agent-eu-west-1", "eu-west-1")
    s3.put_agent("amazon-ecs-agent-eu-west-1", agent_tar)
    # a decoy where the us-east-1 fallback would look
    s3.bucket("amazon-ecs-agent-us-east-1")
    s3.put_agent("amazon-ecs-agent-us-east-1", os.path.join(standin_dir, "ecs-agent-v2.tar"))
    with ImdsStub("eu-west-1") as stub:
        ctx = context(prefix, ECS_INIT_S3_ENDPOINT=s3.endpoint, ECS_INIT_IMDS_ENDPOINT=stub.endpoint)
        download_agent(ctx)
        assert ("PUT", imds.TOKEN_PATH) in stub.requests
    assert read(ctx.paths.cache_tarball) == read(agent_tar)


def _timed_lookup(spent: list[float]) -> Any:
    def lookup(endpoint: str) -> str | None:
        started = time.monotonic()
        try:
            return imds.region(endpoint)
        finally:
            spent.append(time.monotonic() - started)

    return lookup


@pytest.mark.parametrize("kind", ["closed-port", "black-hole"])
def test_missing_imds_costs_at_most_about_a_second(s3: S3Stub, prefix: str, agent_tar: str, kind: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    spent: list[float] = []
    silent = SilentServer()
    with silent:
        endpoint = closed_port_endpoint() if kind == "closed-port" else silent.endpoint
        ctx = context(prefix, ECS_INIT_S3_ENDPOINT=s3.endpoint, ECS_INIT_IMDS_ENDPOINT=endpoint)
        started = time.monotonic()
        download_agent(ctx, imds_lookup=_timed_lookup(spent))
        total = time.monotonic() - started
    assert read(ctx.paths.cache_tarball) == read(agent_tar)  # fell back to us-east-1's partition bucket
    assert len(spent) == 1 and spent[0] <= 1.2, spent
    assert total < 1.2 + 3.0  # the rest is a small loopback download
    if kind == "black-hole":
        assert silent.accepted >= 1


def test_external_mode_never_asks_imds(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    with ImdsStub("eu-west-1") as stub:
        ctx = external(prefix, s3.endpoint, ECS_INIT_IMDS_ENDPOINT=stub.endpoint)
        download_agent(ctx)
        assert stub.requests == []
    assert read(ctx.paths.cache_tarball) == read(agent_tar)


# ---------------------------------------------------------------- failure paths


@pytest.mark.parametrize("seeded", [False, True], ids=["empty-cache", "existing-tarball"])
def test_md5_mismatch_everywhere_fails_cleanly(s3: S3Stub, prefix: str, agent_tar: str, seeded: bool) -> None:
    for bucket in (AGENT_BUCKET, "amazon-ecs-agent-us-east-1"):
        s3.bucket(bucket)
        s3.put_agent(bucket, agent_tar, md5="0123456789abcdef0123456789abcdef")
    ctx = external(prefix, s3.endpoint)
    mtime = seed_old_tarball(ctx) if seeded else None
    with open(ctx.paths.cache_state, "w") as fh:
        fh.write("0\n")

    with pytest.raises(InitError) as err:
        download_agent(ctx)

    msg = str(err.value)
    assert "\n" not in msg
    assert "MD5 mismatch" in msg
    assert "amazon-ecs-agent/" in msg and "amazon-ecs-agent-us-east-1/" in msg  # both sources named
    expected = ["ecs-agent.tar", "state"] if seeded else ["state"]
    assert cache_listing(ctx) == expected  # no temp file
    assert read(ctx.paths.cache_state) == b"0\n"  # state unchanged
    if seeded:
        assert read(ctx.paths.cache_tarball) == OLD
        assert os.stat(ctx.paths.cache_tarball).st_mtime_ns == mtime


def test_nothing_anywhere_names_the_sources(s3: S3Stub, prefix: str) -> None:
    ctx = external(prefix, s3.endpoint, region="cn-north-1")
    with pytest.raises(InitError) as err:
        download_agent(ctx)
    msg = str(err.value)
    assert "s3://amazon-ecs-agent/" in msg and "s3://amazon-ecs-agent-cn-north-1/" in msg
    assert "404" in msg
    assert cache_listing(ctx) == []


def test_garbage_md5_object_fails_cleanly(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar, md5="<html>oops</html>")
    ctx = external(prefix, s3.endpoint)
    with pytest.raises(InitError) as err:
        download_agent(ctx)
    assert "not an MD5 checksum" in str(err.value)
    assert cache_listing(ctx) == []


def test_unsupported_architecture(prefix: str) -> None:
    ctx = external(prefix, "http://127.0.0.1:9")
    with pytest.raises(InitError, match="architecture"):
        download_agent(ctx, machine="ppc64le")


class _DyingServer:
    """Serves ``<bucket>/<key>.md5`` properly and ``<bucket>/<key>`` with a full
    Content-Length, then closes the connection after half of the bytes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.md5 = __import__("hashlib").md5(payload).hexdigest()
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.hits.append(self.path)
                if self.path.endswith(".md5"):
                    body = outer.md5.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.payload)))
                self.end_headers()
                self.wfile.write(outer.payload[: len(outer.payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> _DyingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.mark.parametrize("seeded", [False, True], ids=["empty-cache", "existing-tarball"])
def test_server_dying_mid_transfer_fails_cleanly(prefix: str, agent_tar: str, seeded: bool) -> None:
    with _DyingServer(read(agent_tar)) as server:
        ctx = external(prefix, server.endpoint)
        mtime = seed_old_tarball(ctx) if seeded else None
        with pytest.raises(InitError) as err:
            download_agent(ctx)
        # both sources were tried, each md5 then the tarball
        assert len([h for h in server.hits if not h.endswith(".md5")]) == 2
    msg = str(err.value)
    assert "connection closed after" in msg and "\n" not in msg
    assert cache_listing(ctx) == (["ecs-agent.tar"] if seeded else [])
    if seeded:
        assert read(ctx.paths.cache_tarball) == OLD
        assert os.stat(ctx.paths.cache_tarball).st_mtime_ns == mtime


def test_disk_error_fails_cleanly(
    s3: S3Stub, prefix: str, agent_tar: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC while writing: the temp file goes, the old tarball stays, no other source is tried."""
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    ctx = external(prefix, s3.endpoint)
    seed_old_tarball(ctx)
    cache_dir = os.path.realpath(ctx.paths.cache_dir)
    real_write = os.write
    written = {"n": 0}

    def full_disk(fd: int, data: Any) -> int:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(cache_dir + "/"):
            if written["n"] > 4096:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written["n"] += 4096
            return real_write(fd, bytes(data)[:4096])
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    caplog.set_level(logging.INFO, logger="ecs_init.agent.download")
    with pytest.raises(InitError) as err:
        download_agent(ctx)
    monkeypatch.undo()
    assert "No space left on device" in str(err.value)
    tried = [r for r in caplog.records if r.getMessage().startswith("downloading the agent from")]
    assert len(tried) == 1  # a local failure is not retried against the next source
    assert cache_listing(ctx) == ["ecs-agent.tar"]
    assert read(ctx.paths.cache_tarball) == OLD


def test_stale_partial_downloads_are_swept(s3: S3Stub, prefix: str, agent_tar: str) -> None:
    s3.bucket(AGENT_BUCKET)
    s3.put_agent(AGENT_BUCKET, agent_tar)
    ctx = external(prefix, s3.endpoint)
    stale = os.path.join(ctx.paths.cache_dir, ".ecs-agent.tar.abc123.download")
    fresh = os.path.join(ctx.paths.cache_dir, ".ecs-agent.tar.def456.download")
    for path in (stale, fresh):
        with open(path, "wb") as fh:
            fh.write(b"partial")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    download_agent(ctx)
    # a fresh one may belong to a download running right now: left alone
    assert cache_listing(ctx) == [".ecs-agent.tar.def456.download", "ecs-agent.tar"]
