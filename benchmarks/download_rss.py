#!/usr/bin/env python3
"""Peak memory and throughput of downloading a large agent tarball (SPEC §10).

Builds a real `docker save` stand-in tarball padded to --size-mb (default
512 MiB), serves it on 127.0.0.1 as ``<endpoint>/amazon-ecs-agent/<key>``
plus its ``.md5``, and runs ``download_agent`` in a child process (external
mode, ECS_INIT_S3_ENDPOINT pointing at the server). Prints the child's
peak RSS (VmHWM), its RSS before the download started, the duration and
the throughput. (VmHWM is read in the child after exec: RUSAGE_CHILDREN's
ru_maxrss would also count the parent's pages at fork time.)

    python3 benchmarks/download_rss.py [--size-mb 512] [--server simple|moto]

--server simple (default): a small stdlib HTTP server that streams the file
from disk with a Content-Length. --server moto: moto in server mode (the
object is uploaded through the S3 API; moto buffers objects in its own
process, which does not affect the figure measured here: the downloader's
memory, in a separate process).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1024 * 1024

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from ecs_init.core.config import Config
from ecs_init.host.context import HostContext
from ecs_init.agent.download import download_agent

def status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1

ctx = HostContext(cfg=Config.load())
before = status("VmRSS")
started = time.monotonic()
download_agent(ctx)
elapsed = time.monotonic() - started
print(json.dumps({"seconds": elapsed, "rss_before_kib": before, "vmhwm_kib": status("VmHWM")}))
"""


def agent_key() -> str:
    arch = "arm64-" if platform.machine().lower() in ("aarch64", "arm64") else ""
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from ecs_init import AGENT_VERSION

    return f"ecs-agent-{arch}{AGENT_VERSION}.tar"


def build_tarball(path: str, size_mb: int) -> None:
    spec = importlib.util.spec_from_file_location("standin_build", os.path.join(ROOT, "standin", "build.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build("v1", path, pad_bytes=size_mb * MiB)


def md5_of(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileServer:
    """GET /amazon-ecs-agent/<name> -> a file of ``directory``, streamed from disk."""

    def __init__(self, directory: str) -> None:
        root = directory

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                bucket, _, name = self.path.lstrip("/").partition("/")
                path = os.path.join(root, os.path.basename(name))
                if bucket != "amazon-ecs-agent" or not os.path.isfile(path):
                    self.send_error(404)
                    return
                size = os.path.getsize(path)
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                with open(path, "rb") as fh:
                    self.wfile.flush()
                    self.connection.sendfile(fh)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class MotoServer:
    def __init__(self, directory: str, key: str) -> None:
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from s3_stub import S3Stub

        self.s3 = S3Stub().start()
        self.s3.bucket("amazon-ecs-agent")
        self.s3.put_agent("amazon-ecs-agent", os.path.join(directory, key), key=key)
        self.endpoint = self.s3.endpoint

    def stop(self) -> None:
        self.s3.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--server", choices=("simple", "moto"), default="simple")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="ecs-init-download-bench-")
    server: FileServer | MotoServer | None = None
    try:
        served = os.path.join(work, "served")
        prefix = os.path.join(work, "root")
        os.makedirs(served)
        os.makedirs(os.path.join(prefix, "var/cache/ecs"))
        key = agent_key()
        tarball = os.path.join(served, key)
        t0 = time.monotonic()
        build_tarball(tarball, args.size_mb)
        expected = md5_of(tarball)
        with open(tarball + ".md5", "w") as fh:
            fh.write(expected + "\n")
        size = os.path.getsize(tarball)
        print(f"built {key}: {size} bytes ({size / MiB:.1f} MiB) in {time.monotonic() - t0:.1f} s")

        server = FileServer(served) if args.server == "simple" else MotoServer(served, key)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(
            ECS_INIT_PATH_PREFIX=prefix,
            ECS_EXTERNAL="true",
            AWS_DEFAULT_REGION="us-east-1",
            ECS_INIT_S3_ENDPOINT=server.endpoint,
            ECS_LOGLEVEL="info",
        )
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, os.path.join(ROOT, "src")],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        got = os.path.join(prefix, "var/cache/ecs/ecs-agent.tar")
        ok = os.path.getsize(got) == size and md5_of(got) == expected
        seconds = result["seconds"]
        print(f"server:               {args.server}")
        print(f"downloaded:           {size / MiB:.1f} MiB, verified={ok}")
        print(f"duration:             {seconds:.2f} s")
        print(f"throughput:           {size / MiB / seconds:.1f} MiB/s")
        print(f"child RSS before:     {result['rss_before_kib'] / 1024:.1f} MiB")
        print(f"child peak RSS:       {result['vmhwm_kib'] / 1024:.1f} MiB (VmHWM)")
        print(f"peak - before:        {(result['vmhwm_kib'] - result['rss_before_kib']) / 1024:.1f} MiB")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
