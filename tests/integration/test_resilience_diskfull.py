"""Disk full during a cache or state write leaves the old files intact (issue 7, item 6).

The cache dir of the prefix is a small tmpfs mounted by the test.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import os
import subprocess
import threading
from typing import Iterator

import pytest
from s3_stub import AGENT_BUCKET, agent_key

from ecs_init.agent import cache, download
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.fsutil import atomic_write
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext

pytestmark = [pytest.mark.slow]


@pytest.fixture
def small_cache(prefix: str) -> Iterator[Paths]:
    paths = Paths(prefix=prefix)
    os.makedirs(paths.cache_dir, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", paths.cache_dir], check=True)
    try:
        yield paths
    finally:
        if subprocess.run(["umount", paths.cache_dir], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", paths.cache_dir], capture_output=True)


def _fill(directory: str) -> str:
    """Fill the file system until ENOSPC; return the filler's path."""
    filler = os.path.join(directory, "filler")
    block = b"\xa5" * 4096
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as err:
            assert err.errno == errno.ENOSPC
    return filler


def _entries(directory: str) -> set[str]:
    return set(os.listdir(directory))


def test_state_write_on_a_full_disk_keeps_the_old_state(small_cache: Paths) -> None:
    cache.write_state(small_cache, cache.STATE_RELOAD)
    with open(small_cache.cache_tarball, "wb") as fh:
        fh.write(b"tarball")
    _fill(small_cache.cache_dir)
    before = _entries(small_cache.cache_dir)

    with pytest.raises(OSError) as info:
        atomic_write(small_cache.cache_state, "1\n" * 4096)
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        cache.write_state(small_cache, cache.STATE_CACHED)

    with open(small_cache.cache_state) as fh:
        assert fh.read() == "2\n"
    assert cache.read_state(small_cache) == cache.STATE_RELOAD
    assert _entries(small_cache.cache_dir) == before  # no temp file left behind


class _Artifacts(http.server.BaseHTTPRequestHandler):
    files: dict[str, str] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = self.files.get(self.path)
        if path is None:
            self.send_error(404)
            return
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as fh:
            while chunk := fh.read(65536):
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return

    def log_message(self, *_args: object) -> None:
        pass


def test_download_on_a_full_disk_keeps_the_old_tarball(small_cache: Paths, tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = os.urandom(1024 * 1024)
    with open(small_cache.cache_tarball, "wb") as fh:
        fh.write(old)
    cache.write_state(small_cache, cache.STATE_UNCACHED)

    big = str(tmp_path / "big.tar")
    with open(big, "wb") as fh:
        for _ in range(8):
            fh.write(os.urandom(1024 * 1024))  # 8 MiB: more than the free ~3 MiB
    digest = hashlib.md5()
    with open(big, "rb") as fh:
        digest.update(fh.read())
    md5_path = str(tmp_path / "big.tar.md5")
    with open(md5_path, "w") as fh:
        fh.write(digest.hexdigest() + "\n")
    key = agent_key()
    handler = type(
        "Handler", (_Artifacts,), {"files": {f"/{AGENT_BUCKET}/{key}": big, f"/{AGENT_BUCKET}/{key}.md5": md5_path}}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        environ = {
            "ECS_INIT_PATH_PREFIX": small_cache.prefix,
            "ECS_INIT_S3_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        }
        ctx = HostContext(cfg=Config.load(environ=environ, paths=small_cache))
        before = _entries(small_cache.cache_dir)
        with pytest.raises(InitError) as info:
            download.download_agent(ctx, imds_lookup=lambda _endpoint: None, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert "No space left on device" in str(info.value)
    assert "\n" not in str(info.value)
    with open(small_cache.cache_tarball, "rb") as fh:
        assert fh.read() == old
    with open(small_cache.cache_state) as fh:
        assert fh.read() == "0\n"
    assert _entries(small_cache.cache_dir) == before  # the partial download is gone
    # and the space it took is free again
    stats = os.statvfs(small_cache.cache_dir)
    assert stats.f_bavail * stats.f_frsize > 2 * 1024 * 1024
