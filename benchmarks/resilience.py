#!/usr/bin/env python3
"""Resilience figures (issue 7), printed as a table.

    sudo .venv/bin/python benchmarks/resilience.py [--runs 5]

- agent crash -> agent answering /v1/metadata again, under `start` (the
  stand-in exits 1 via <data>/standin-exit-once; the backoff is reset before
  each crash, so the restart waits the first 0.5 s ±10 % step): measured
  from the container's `die` event and from the moment the crash was asked for;
- Docker daemon back -> agent supervised again (supervisor.json says
  "running" with a newer timestamp) and answering, for a test dockerd
  (tests/dockerd.py) restarted with and without --live-restore.

Takes the test suite's Docker lock (the ecs-agent name, port 51678).
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
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from dockerd import TestDockerd  # noqa: E402

URL = "http://127.0.0.1:51678/v1/metadata"
LOCK_PATH = "/tmp/ecs-init-tests.docker.lock"

_spec = importlib.util.spec_from_file_location("standin_build", os.path.join(ROOT, "standin", "build.py"))
assert _spec and _spec.loader
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


def answers() -> bool:
    try:
        with urllib.request.urlopen(URL, timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def wait(predicate, timeout: float = 60.0, interval: float = 0.01) -> float:  # type: ignore[no-untyped-def]
    """Wall-clock time (time.time) when ``predicate`` first holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        time.sleep(interval)
    raise RuntimeError("timed out")


def make_prefix(base: str, name: str, tarball: str) -> str:
    prefix = os.path.join(base, name)
    for d in ("etc/ecs", "var/lib/ecs/data", "var/log/ecs", "var/cache/ecs"):
        os.makedirs(os.path.join(prefix, d), exist_ok=True)
    shutil.copyfile(tarball, os.path.join(prefix, "var/cache/ecs/ecs-agent.tar"))
    with open(os.path.join(prefix, "var/cache/ecs/state"), "w") as fh:
        fh.write("2")
    return prefix


def env_for(prefix: str, **extra: str) -> dict[str, str]:
    return dict(
        os.environ, ECS_INIT_PATH_PREFIX=prefix, PYTHONPATH=os.path.join(ROOT, "src"), ECS_LOGLEVEL="info", **extra
    )


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ecs_init", *args]


class Start:
    """`start` in the background, output drained to a file."""

    def __init__(self, prefix: str, **extra: str):
        self.prefix = prefix
        self.out = open(os.path.join(prefix, "start.out"), "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cli("start"), env=env_for(prefix, **extra), stdout=self.out, stderr=subprocess.STDOUT
        )

    def status(self) -> dict:  # type: ignore[type-arg]
        try:
            with open(os.path.join(self.prefix, "var/run/ecs-init/supervisor.json")) as fh:
                return json.load(fh)  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.out.close()


class DieEvents:
    def __init__(self, docker_host: str = "") -> None:
        argv = ["docker"] + (["-H", docker_host] if docker_host else [])
        argv += ["events", "--filter", "container=ecs-agent", "--filter", "event=die", "--format", "{{.TimeNano}}"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.times: list[float] = []
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.5)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.times.append(int(line.strip()) / 1e9)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def crash_to_answer(base: str, tarball: str, runs: int) -> tuple[list[float], list[float]]:
    prefix = make_prefix(base, "crash", tarball)
    subprocess.run(cli("reload-cache"), env=env_for(prefix), check=True, capture_output=True)
    events = DieEvents()
    start = Start(prefix, ECS_INIT_BACKOFF_RESET_SECONDS="1")
    from_die: list[float] = []
    from_request: list[float] = []
    try:
        wait(answers)
        for _ in range(runs):
            time.sleep(1.5)  # longer than the reset window: the next delay is 0.5 s
            seen = len(events.times)
            asked = time.time()
            with open(os.path.join(prefix, "var/lib/ecs/data/standin-exit-once"), "w") as fh:
                fh.write("1")
            wait(lambda: not answers())
            back = wait(answers)
            wait(lambda seen=seen: len(events.times) > seen, 10)  # type: ignore[misc]
            from_die.append(back - events.times[seen])
            from_request.append(back - asked)
    finally:
        start.stop()
        events.close()
    return from_die, from_request


def docker_back_to_supervised(base: str, tarball: str, runs: int, live: bool) -> tuple[list[float], list[float]]:
    prefix = make_prefix(base, f"dockerd-{'live' if live else 'nolive'}", tarball)
    supervised: list[float] = []
    answering: list[float] = []
    daemon = TestDockerd(live_restore=live)
    try:
        daemon.start()
        subprocess.run(
            cli("reload-cache"), env=env_for(prefix, DOCKER_HOST=daemon.host), check=True, capture_output=True
        )
        start = Start(prefix, DOCKER_HOST=daemon.host)
        try:
            wait(answers)
            for _ in range(runs):
                daemon.stop()
                wait(lambda: start.status().get("state") == "docker-lost", 30)
                daemon.start()
                back = time.time()  # the daemon answers from here on
                running = wait(
                    lambda back=back: (
                        start.status().get("state") == "running"  # type: ignore[misc]
                        and start.status().get("updated_at", 0) >= back
                    ),
                    60,
                )
                answered = wait(answers, 60)
                supervised.append(running - back)
                answering.append(max(answered, running) - back)
                if start.proc.poll() is not None:
                    raise RuntimeError("start exited during a Docker restart")
                time.sleep(1.0)
        finally:
            start.stop()
    finally:
        daemon.cleanup()
    return supervised, answering


def fmt(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.3f} s  min {min(values):6.3f}  max {max(values):6.3f}  (n={len(values)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="ecs-init-bench-res-")
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True)
        try:
            tarball = os.path.join(base, "ecs-agent-v1.tar")
            standin.build("v1", tarball)
            die, asked = crash_to_answer(base, tarball, args.runs)
            live_sup, live_ans = docker_back_to_supervised(base, tarball, args.runs, live=True)
            cold_sup, cold_ans = docker_back_to_supervised(base, tarball, args.runs, live=False)
        finally:
            subprocess.run(["docker", "rm", "-f", "ecs-agent"], capture_output=True)
            shutil.rmtree(base, ignore_errors=True)
    print("agent crash (exit 1) -> /v1/metadata answers again (backoff step 0.5 s ±10 %)")
    print(f"  from the container's die event      {fmt(die)}")
    print(f"  from writing standin-exit-once      {fmt(asked)}")
    print("dockerd back -> agent supervised again (supervisor.json 'running')")
    print(f"  --live-restore (re-attach)          {fmt(live_sup)}")
    print(f"  no live-restore (restart the agent) {fmt(cold_sup)}")
    print("dockerd back -> agent supervised and /v1/metadata answering")
    print(f"  --live-restore (never stopped)      {fmt(live_ans)}")
    print(f"  no live-restore                     {fmt(cold_ans)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
