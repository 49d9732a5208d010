#!/usr/bin/env python3
"""Per-action figures of this program next to the raw ``docker`` equivalent.

    sudo .venv/bin/python benchmarks/core.py [--runs 5] [--big-mb 1024] [--src DIR]

For each action: process wall time and peak RSS (medians of ``--runs``
alternated rounds: ours then docker's, docker's first on odd rounds), and
the import time of the action (``python -X importtime``: the sum of every
module's own time, and the same less a bare interpreter's start-up).

| action | ours | raw docker equivalent |
|---|---|---|
| version | ``amazon-ecs-init version`` | ``docker --version`` |
| start | spawn -> /v1/metadata answers; supervisor peak RSS | ``docker run -d --network host --init`` -> answers |
| stop | ``amazon-ecs-init stop`` of the supervised agent | ``docker stop -t 10`` |
| status | ``amazon-ecs-init status`` (agent running) | ``docker inspect ecs-agent`` |
| reload-cache | the stand-in tarball (a few MB) | ``docker load -i`` of it |
| reload-cache big | a tarball of ``--big-mb`` MiB (pseudo-random layer) | ``docker load -i`` of it |

Uses the real Docker engine; takes the test suite's lock so it never races
the tests for the ecs-agent name, the image tag or port 51678. ``--src``
runs another checkout's ``src`` (e.g. an older commit, for before/after);
it runs from a copy with its bytecode compiled, as the packaged program is.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import fcntl
import importlib.util
import json
import os
import py_compile
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "amazon/amazon-ecs-agent:latest"
URL = "http://127.0.0.1:51678/v1/metadata"
LOCK = "/tmp/ecs-init-tests.docker.lock"
TIME = "/usr/bin/time"  # GNU time (Debian package "time")

_spec = importlib.util.spec_from_file_location("standin_build", os.path.join(ROOT, "standin", "build.py"))
assert _spec and _spec.loader
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


class Bench:
    def __init__(self, prefix: str, src: str, python: str) -> None:
        self.prefix = prefix
        self.src = src
        self.python = python
        self.docker_run: list[str] = []  # set once the agent image is loaded (run_argv)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "DOCKER_HOST", "PYTHONPATH")}
        env.update(ECS_INIT_PATH_PREFIX=self.prefix, PYTHONPATH=self.src, ECS_LOGLEVEL="info")
        return env

    def argv(self, *args: str, importtime: bool = False) -> list[str]:
        return [self.python, *(["-X", "importtime"] if importtime else []), "-m", "ecs_init", *args]

    def run(self, argv: list[str], env: Optional[dict[str, str]] = None) -> tuple[float, float]:
        """Run to completion: (wall seconds, peak RSS MiB).

        The peak comes from GNU time (``%M``): a child forked from this
        (big) Python process would report this process's RSS as its own
        ru_maxrss, a child of the small ``time`` process does not.
        """
        with tempfile.NamedTemporaryFile("r") as rss:
            t0 = time.monotonic()
            proc = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *argv], env=env, capture_output=True)
            wall = time.monotonic() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]!r}")
            return wall, int(rss.read().split()[-1]) / 1024

    def ours(self, *args: str) -> tuple[float, float]:
        return self.run(self.argv(*args), self.env())


def wait_answer(timeout: float = 30.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(URL, timeout=0.5) as resp:
                if resp.status == 200:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("the agent did not answer")


def docker_api() -> str:
    return subprocess.run(["docker", "version", "--format", "{{.Server.APIVersion}}"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def rm_agent() -> None:
    subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True)


def vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def log_tail(b: Bench, size: int = 3000) -> str:
    try:
        with open(os.path.join(b.prefix, "var/log/ecs/ecs-init.log"), errors="replace") as fh:
            return fh.read()[-size:]
    except OSError as err:
        return f"(no log: {err})"


def start_ours(b: Bench) -> tuple[subprocess.Popen[bytes], float, float]:
    t0 = time.monotonic()
    proc = subprocess.Popen(b.argv("start"), env=b.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = wait_answer() - t0
        time.sleep(0.5)
        return proc, ready, vm_hwm_mib(proc.pid)
    except BaseException:
        proc.kill()  # never leave a supervisor behind: it would fight the next round over the agent
        proc.wait()
        raise


def round_ours(b: Bench, out: dict[str, list[float]]) -> None:
    rm_agent()
    proc, ready, rss = start_ours(b)
    try:
        out["start"].append(ready)
        out["start_rss"].append(rss)
        wall, rss = b.ours("status")
        out["status"].append(wall)
        out["status_rss"].append(rss)
        wall, rss = b.ours("stop")
        out["stop"].append(wall)
        out["stop_rss"].append(rss)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the supervisor did not exit within 30 s of stop; its log ends:\n{log_tail(b)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rm_agent()
    wall, rss = b.ours("version")
    out["version"].append(wall)
    out["version_rss"].append(rss)
    write_state(b.prefix, "2")
    wall, rss = b.ours("reload-cache")
    out["reload"].append(wall)
    out["reload_rss"].append(rss)


def run_argv(body: dict[str, Any]) -> list[str]:
    """``docker run -d`` of exactly the container ``start`` creates (its create body, from ``render``)."""
    host = body["HostConfig"]
    argv = ["docker", "run", "-d", "--name", "ecs-agent", "--network", host["NetworkMode"], "--userns", "host"]
    argv += ["--init"] if host.get("Init") else []
    argv += ["--privileged"] if host.get("Privileged") else []
    argv += ["--pid", host["PidMode"]] if host.get("PidMode") else []
    for flag, values in (("-v", host.get("Binds")), ("--cap-add", host.get("CapAdd")),
                         ("--security-opt", host.get("SecurityOpt")), ("-e", body.get("Env"))):  # fmt: skip
        for value in values or []:
            argv += [flag, value]
    for key, value in (body.get("Labels") or {}).items():
        argv += ["--label", f"{key}={value}"]
    log_config = host.get("LogConfig") or {}
    if log_config.get("Type"):
        argv += ["--log-driver", log_config["Type"]]
        for key, value in (log_config.get("Config") or {}).items():
            argv += ["--log-opt", f"{key}={value}"]
    return [*argv, body["Image"]]


def round_raw(b: Bench, tarball: str, out: dict[str, list[float]]) -> None:
    rm_agent()
    t0 = time.monotonic()
    b.run(["docker", "run", "-d", "--name", "ecs-agent", "--network", "host", "--init", IMAGE])
    out["docker_run_plain"].append(wait_answer() - t0)
    rm_agent()
    t0 = time.monotonic()
    _, rss = b.run(b.docker_run)
    out["docker_run"].append(wait_answer() - t0)
    out["docker_run_rss"].append(rss)
    wall, rss = b.run(["docker", "inspect", "ecs-agent"])
    out["docker_inspect"].append(wall)
    out["docker_inspect_rss"].append(rss)
    wall, rss = b.run(["docker", "stop", "-t", "10", "ecs-agent"])
    out["docker_stop"].append(wall)
    out["docker_stop_rss"].append(rss)
    rm_agent()
    wall, rss = b.run(["docker", "--version"])
    out["docker_version"].append(wall)
    out["docker_version_rss"].append(rss)
    wall, rss = b.run(["docker", "load", "-q", "-i", tarball])
    out["docker_load"].append(wall)
    out["docker_load_rss"].append(rss)


def compiled_copy(src: str, prefix: str) -> str:
    """A copy of ``src`` with its bytecode compiled beside it, as the packaged zipapp ships it.

    Without this, an environment with PYTHONDONTWRITEBYTECODE=1 would compile
    every module from source at every start (several times the import cost).
    """
    dest = os.path.join(prefix, "src")
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    compileall.compile_dir(dest, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return dest


def write_state(prefix: str, value: str) -> None:
    with open(os.path.join(prefix, "var/cache/ecs/state"), "w") as fh:
        fh.write(value)


def importtime_total(stderr: str) -> tuple[float, int]:
    """(sum of every module's own import time in ms, number of modules) from -X importtime output."""
    total = 0
    count = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        try:
            total += int(line.split(":", 1)[1].split("|")[0])
            count += 1
        except ValueError:
            continue
    return total / 1000, count


def import_times(b: Bench, runs: int) -> dict[str, tuple[float, int]]:
    """Median import time per action (the action really runs; start until the agent answers)."""
    found: dict[str, list[tuple[float, int]]] = {}

    def record(name: str, stderr: str) -> None:
        found.setdefault(name, []).append(importtime_total(stderr))

    for _ in range(runs):
        record("bare interpreter", subprocess.run([b.python, "-X", "importtime", "-c", "pass"],
                                                  capture_output=True, text=True).stderr)  # fmt: skip
        for action in ("version", "stop", "status"):
            proc = subprocess.run(b.argv(action, importtime=True), env=b.env(), capture_output=True, text=True)
            record(action, proc.stderr)
        write_state(b.prefix, "2")
        proc = subprocess.run(b.argv("reload-cache", importtime=True), env=b.env(), capture_output=True, text=True)
        record("reload-cache", proc.stderr)
        rm_agent()
        with tempfile.TemporaryFile("w+") as err:
            sup = subprocess.Popen(b.argv("start", importtime=True), env=b.env(), stdout=subprocess.DEVNULL, stderr=err)
            wait_answer()
            sup.send_signal(signal.SIGTERM)
            sup.wait(30)
            err.seek(0)
            record("start", err.read())
        rm_agent()
    return {name: (statistics.median(v[0] for v in vals), int(statistics.median(v[1] for v in vals)))
            for name, vals in found.items()}  # fmt: skip


def big_reload(b: Bench, big_mb: int, runs: int) -> dict[str, Any]:
    cache = os.path.join(b.prefix, "var/cache/ecs")
    tar = os.path.join(cache, "ecs-agent.tar")
    small = os.path.join(cache, "small.tar")
    os.replace(tar, small)
    try:
        t0 = time.monotonic()
        big_id = standin.build("v1", tar, pad_bytes=big_mb * 1024 * 1024)
        built = time.monotonic() - t0
        size = os.path.getsize(tar)
        out: dict[str, list[float]] = {"ours": [], "ours_rss": [], "docker": [], "docker_rss": []}
        for i in range(runs):
            order = ("ours", "docker") if i % 2 == 0 else ("docker", "ours")
            for who in order:
                # by ID: untagging alone would leave the layers, and the next load would skip them
                subprocess.run(["docker", "rmi", "-f", IMAGE, big_id], capture_output=True)
                if who == "ours":
                    write_state(b.prefix, "2")
                    wall, rss = b.ours("reload-cache")
                else:
                    wall, rss = b.run(["docker", "load", "-q", "-i", tar])
                out[who].append(wall)
                out[f"{who}_rss"].append(rss)
    finally:
        subprocess.run(["docker", "rmi", "-f", big_id], capture_output=True)
        os.replace(small, tar)
    return {"size_mb": size / 2**20, "build_s": built, "runs": out}


def med(values: list[float]) -> float:
    return statistics.median(values)


def wall(values: list[float], digits: int = 3) -> str:
    """Median and best: on a shared machine the best round is the least disturbed one."""
    return f"{med(values):.{digits}f} s ({min(values):.{digits}f})"


def table(figures: dict[str, list[float]], imports: dict[str, tuple[float, int]], big: Optional[dict[str, Any]]) -> str:
    rows = [
        ("version", "version", "docker_version", "docker --version", "version"),
        ("start -> /v1/metadata answers", "start", "docker_run", "docker run -d (same container)", "start"),
        ("stop", "stop", "docker_stop", "docker stop", "stop"),
        ("status", "status", "docker_inspect", "docker inspect", "status"),
        ("reload-cache (stand-in)", "reload", "docker_load", "docker load -i", "reload-cache"),
    ]
    bare = imports.get("bare interpreter", (0.0, 0))[0]
    lines = [
        "| action | ours: wall | ours: peak RSS | raw docker | docker: wall | docker: peak RSS "
        "| imports (total / over bare) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, ours, raw, raw_label, imp in rows:
        rss_key = "start_rss" if ours == "start" else f"{ours}_rss"
        raw_rss = figures.get(f"{raw}_rss")
        ms, count = imports.get(imp, (0.0, 0))
        lines.append(
            f"| {label} | {wall(figures[ours])} | {med(figures[rss_key]):.1f} MiB | {raw_label} | "
            f"{wall(figures[raw])} | {(f'{med(raw_rss):.1f} MiB' if raw_rss else '-')} | "
            f"{ms:.1f} ms / {ms - bare:.1f} ms ({count} modules) |"
        )
    if big:
        r = big["runs"]
        lines.append(
            f"| reload-cache {big['size_mb']:.0f} MiB | {wall(r['ours'], 2)} | {med(r['ours_rss']):.1f} MiB | "
            f"docker load -i | {wall(r['docker'], 2)} | {med(r['docker_rss']):.1f} MiB | - |"
        )
    if figures.get("docker_run_plain"):
        lines.append(f"\nplain `docker run -d --network host --init` (no binds, env or caps) -> answers: "
                     f"{wall(figures['docker_run_plain'])}")  # fmt: skip
    lines.append(
        f"wall: median (best) of the rounds; bare interpreter start-up imports: {bare:.1f} ms; "
        "supervisor (start) peak RSS is VmHWM."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the big tarball (0: skip)")
    parser.add_argument("--src", default=os.path.join(ROOT, "src"), help="the src directory to run")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args()
    if not os.access(TIME, os.X_OK):
        parser.error(f"{TIME} (GNU time) is needed for peak RSS: apt-get install time")
    lock = open(LOCK, "w")  # noqa: SIM115 - held until exit
    fcntl.flock(lock, fcntl.LOCK_EX)
    prefix = tempfile.mkdtemp(prefix="ecs-init-bench-")
    b = Bench(prefix, compiled_copy(os.path.abspath(args.src), prefix), args.python)
    figures: dict[str, list[float]] = collections.defaultdict(list)
    big = None
    try:
        for d in ("var/cache/ecs", "etc/ecs", "var/lib/ecs/data", "var/log/ecs"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        tarball = os.path.join(prefix, "var/cache/ecs/ecs-agent.tar")
        standin.build("v1", tarball)
        write_state(prefix, "2")
        b.ours("reload-cache")
        rendered = subprocess.run(b.argv("render", "--json", "--show-secrets", "--api-version", docker_api()),
                                  env=b.env(), capture_output=True, text=True, check=True)  # fmt: skip
        b.docker_run = run_argv(json.loads(rendered.stdout)["body"])
        for i in range(args.runs):
            if i % 2 == 0:
                round_ours(b, figures)
                round_raw(b, tarball, figures)
            else:
                round_raw(b, tarball, figures)
                round_ours(b, figures)
        imports = import_times(b, args.runs)
        if args.big_mb > 0:
            big = big_reload(b, args.big_mb, args.runs)
    finally:
        rm_agent()
        shutil.rmtree(prefix, ignore_errors=True)
    print(f"runs: {args.runs} (medians), src: {args.src}")
    print(table(figures, imports, big))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"figures": figures, "imports": imports, "big": big}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
