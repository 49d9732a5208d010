"""Helpers for integration tests: run the real CLI, inspect Docker, poll HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGENT_IMAGE = "amazon/amazon-ecs-agent:latest"


def cli_env(prefix: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ECS_INIT_PATH_PREFIX"] = prefix
    env["PYTHONPATH"] = os.path.join(ROOT, "src")
    env.setdefault("ECS_LOGLEVEL", "debug")
    env.update(extra)
    return env


def cli_argv(*args: str, netns: str | None = None) -> list[str]:
    wrapper = ["ip", "netns", "exec", netns] if netns else []
    return [*wrapper, sys.executable, "-m", "ecs_init", *args]


def run_cli(
    prefix: str, *args: str, timeout: float = 120, netns: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI; ``netns`` runs it inside that network namespace."""
    return subprocess.run(
        cli_argv(*args, netns=netns), env=cli_env(prefix, **extra), capture_output=True, text=True, timeout=timeout
    )


def spawn_cli(prefix: str, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv(*args), env=cli_env(prefix, **extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


def inspect(name: str) -> dict[str, Any] | None:
    # `docker container inspect`: a bare `docker inspect` of a missing name also asks every
    # volume plugin, which takes 15 s when a registered plugin no longer answers
    proc = subprocess.run(["docker", "container", "inspect", name], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]  # type: ignore[no-any-return]


def image_id(ref: str = AGENT_IMAGE) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def remove_agent_image() -> None:
    subprocess.run(["docker", "rmi", "-f", AGENT_IMAGE], capture_output=True)


def metadata(port: int = 51678, timeout: float = 1.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/metadata", timeout=timeout) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def wait_metadata(timeout: float = 30.0) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = metadata()
        if found:
            return found
        time.sleep(0.1)
    return None


def install_tarball(prefix: str, source: str, state: str | None = "2") -> None:
    cache = os.path.join(prefix, "var/cache/ecs")
    os.makedirs(cache, exist_ok=True)
    shutil.copyfile(source, os.path.join(cache, "ecs-agent.tar"))
    if state is not None:
        with open(os.path.join(cache, "state"), "w") as fh:
            fh.write(state)


def write_config(prefix: str, text: str, instance: bool = False) -> None:
    rel = "var/lib/ecs/ecs.config" if instance else "etc/ecs/ecs.config"
    path = os.path.join(prefix, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


def init_log(prefix: str) -> str:
    try:
        with open(os.path.join(prefix, "var/log/ecs/ecs-init.log")) as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


class Supervised:
    """`amazon-ecs-init start` in the background, its output drained (the pipe never fills)."""

    def __init__(self, prefix: str, *, netns: str | None = None, stop_timeout: float = 20.0, **extra: str):
        import threading

        self.stop_timeout = stop_timeout
        self.proc = subprocess.Popen(
            cli_argv("start", netns=netns),
            env=cli_env(prefix, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def text(self) -> str:
        return "".join(self.output)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code

    def terminate(self) -> int:
        """SIGTERM and wait; AssertionError when it does not exit in time."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"`start` did not exit within {self.stop_timeout}s of SIGTERM:\n{self.text()[-3000:]}")

    def __enter__(self) -> Supervised:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.terminate()


def tarball_image_id(path: str) -> str:
    """The image ID a `docker save` archive will load as (sha256 of its config)."""
    import tarfile

    with tarfile.open(path) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    return "sha256:" + manifest[0]["Config"].split(".")[0]


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
