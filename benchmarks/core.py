#!/usr/bin/env python3
"""Core figures (issue 2), printed as a table.

    sudo .venv/bin/python benchmarks/core.py [--runs 5] [--big-mb 512]

- `start` until /v1/metadata answers, next to `docker run -d` of the same
  image with the same port (the floor);
- `stop` next to `docker stop`;
- peak RSS of the supervising `start` process;
- peak RSS and wall time of `reload-cache` on a tarball of --big-mb MB.

Uses the real Docker engine; takes the test suite's lock so it never races
the tests for the ecs-agent name or port 51678.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "amazon/amazon-ecs-agent:latest"
URL = "http://127.0.0.1:51678/v1/metadata"

_spec = importlib.util.spec_from_file_location("standin_build", os.path.join(ROOT, "standin", "build.py"))
assert _spec and _spec.loader
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


def env_for(prefix: str) -> dict[str, str]:
    env = dict(os.environ, ECS_INIT_PATH_PREFIX=prefix, PYTHONPATH=os.path.join(ROOT, "src"), ECS_LOGLEVEL="info")
    return env


def cli(prefix: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "ecs_init", *args]


def wait_answer(timeout: float = 30.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(URL, timeout=0.5) as resp:
                if resp.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("agent did not answer")


def rm_agent() -> None:
    subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True)


def vm_hwm(pid: int) -> int:
    """Peak RSS (kB) of a live process."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def bench_start_stop(prefix: str, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"start": [], "docker_run": [], "stop": [], "docker_stop": [], "rss_kb": []}
    for _ in range(runs):
        rm_agent()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cli(prefix, "start"), env=env_for(prefix), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        out["start"].append(wait_answer() - t0)
        time.sleep(0.5)
        out["rss_kb"].append(vm_hwm(proc.pid))
        t0 = time.monotonic()
        subprocess.run(cli(prefix, "stop"), env=env_for(prefix), capture_output=True, check=True)
        out["stop"].append(time.monotonic() - t0)
        proc.wait(30)
        rm_agent()

        t0 = time.monotonic()
        subprocess.run(
            ["docker", "run", "-d", "--name", "ecs-agent", "--network", "host", "--init", IMAGE],
            capture_output=True,
            check=True,
        )
        out["docker_run"].append(wait_answer() - t0)
        t0 = time.monotonic()
        subprocess.run(["docker", "stop", "-t", "10", "ecs-agent"], capture_output=True, check=True)
        out["docker_stop"].append(time.monotonic() - t0)
        rm_agent()
    return out


def bench_big_reload(prefix: str, big_mb: int) -> dict[str, float]:
    cache = os.path.join(prefix, "var/cache/ecs")
    tar = os.path.join(cache, "ecs-agent.tar")
    t0 = time.monotonic()
    standin.build("v1", tar, pad_bytes=big_mb * 1024 * 1024)
    built = time.monotonic() - t0
    size = os.path.getsize(tar)
    with open(os.path.join(cache, "state"), "w") as fh:
        fh.write("2")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cli(prefix, "reload-cache"), env=env_for(prefix), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, vm_hwm(proc.pid))
        except OSError:
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"reload-cache failed with {proc.returncode}")
    # the exact peak from the kernel, after exit
    return {"size_mb": size / 1e6, "wall_s": wall, "peak_rss_mb": peak / 1024, "build_s": built}


def fmt(values: list[float], unit: str = "s") -> str:
    return f"median {statistics.median(values):.3f}{unit}  min {min(values):.3f}{unit}  max {max(values):.3f}{unit}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big-mb", type=int, default=512)
    args = parser.parse_args()
    lock = open("/tmp/ecs-init-tests.docker.lock", "w")  # noqa: SIM115 - held until exit
    fcntl.flock(lock, fcntl.LOCK_EX)
    prefix = tempfile.mkdtemp(prefix="ecs-init-bench-")
    try:
        os.makedirs(os.path.join(prefix, "var/cache/ecs"))
        os.makedirs(os.path.join(prefix, "etc/ecs"))
        standin.build("v1", os.path.join(prefix, "var/cache/ecs/ecs-agent.tar"))
        with open(os.path.join(prefix, "var/cache/ecs/state"), "w") as fh:
            fh.write("2")
        subprocess.run(cli(prefix, "reload-cache"), env=env_for(prefix), capture_output=True, check=True)
        figures = bench_start_stop(prefix, args.runs)
        big = bench_big_reload(prefix, args.big_mb)
    finally:
        rm_agent()
        shutil.rmtree(prefix, ignore_errors=True)
        subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True)
    print(f"runs: {args.runs}")
    print(f"start -> /v1/metadata answers : {fmt(figures['start'])}")
    print(f"docker run -d (floor)         : {fmt(figures['docker_run'])}")
    print(f"stop                          : {fmt(figures['stop'])}")
    print(f"docker stop (floor)           : {fmt(figures['docker_stop'])}")
    print(f"supervisor peak RSS           : {fmt([v / 1024 for v in figures['rss_kb']], ' MB')}")
    print(
        f"reload-cache of {big['size_mb']:.0f} MB tarball : wall {big['wall_s']:.2f}s, "
        f"peak RSS {big['peak_rss_mb']:.1f} MB ({big['size_mb'] / big['wall_s']:.0f} MB/s)"
    )
    print(json.dumps({"figures": figures, "big": big}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
