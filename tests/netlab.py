"""A network namespace furnished for ``check --network`` tests.

``NetLab`` creates a namespace (loopback up, no other interface), gives it
its own ``/etc/hosts`` and ``/etc/resolv.conf`` through ``ip netns exec``'s
``/etc/netns/<name>/`` convention (so real endpoint names such as
``ecs.eu-west-1.amazonaws.com`` resolve to the namespace's loopback, and an
unknown name fails fast at a resolver that is not there), starts the
stand-ins of ``tests/netns_servers.py`` inside it, runs the real CLI inside
it, and removes all of it (servers, namespace, its ``/etc/netns`` entry) on
close. Nothing here touches the root namespace's rules, routes or sysctls.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from typing import Any, Optional

from helpers import cli_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
NETNS_ETC = "/etc/netns"

_counter = itertools.count()


class NetLab:
    def __init__(self) -> None:
        self.name = f"ecsnc{os.getpid() % 100000}x{next(_counter)}"
        self.etc = os.path.join(NETNS_ETC, self.name)
        self.server: Optional[subprocess.Popen[str]] = None
        self.endpoints: dict[str, Any] = {}
        self._made_netns_etc = False

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> NetLab:
        try:
            subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True)
            self._made_netns_etc = not os.path.isdir(NETNS_ETC)
            os.makedirs(self.etc, exist_ok=True)
            self.hosts({})
            self.resolver("127.0.0.1")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_servers()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)
        if self._made_netns_etc:
            try:
                os.rmdir(NETNS_ETC)  # only when empty: another run may be using it
            except OSError:
                pass

    # ------------------------------------------------------------ name resolution

    def hosts(self, names: dict[str, str]) -> None:
        """The namespace's /etc/hosts: localhost plus ``names`` (name -> address)."""
        lines = ["127.0.0.1 localhost", "::1 localhost"] + [f"{ip} {name}" for name, ip in names.items()]
        self._write("hosts", "\n".join(lines) + "\n")

    def resolver(self, address: str, timeout: int = 1, attempts: int = 1) -> None:
        """The namespace's /etc/resolv.conf: one nameserver (by default: one try, one-second timeout)."""
        self._write("resolv.conf", f"nameserver {address}\noptions timeout:{timeout} attempts:{attempts}\n")

    def _write(self, name: str, text: str) -> None:
        with open(os.path.join(self.etc, name), "w") as fh:
            fh.write(text)

    # ------------------------------------------------------------ stand-ins

    def start_servers(self, config: dict[str, Any]) -> dict[str, Any]:
        env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.name, sys.executable, os.path.join(TESTS, "netns_servers.py"),
             json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        assert self.server.stdout is not None
        line = self.server.stdout.readline()
        if not line:
            err = self.server.stderr.read() if self.server.stderr else ""
            raise AssertionError(f"the stand-ins did not start in {self.name}: {err[-3000:]}")
        self.endpoints = json.loads(line)
        return self.endpoints

    def command(self, **command: Any) -> dict[str, Any]:
        assert self.server is not None and self.server.stdin is not None and self.server.stdout is not None
        self.server.stdin.write(json.dumps(command) + "\n")
        self.server.stdin.flush()
        answer: dict[str, Any] = json.loads(self.server.stdout.readline())
        return answer

    def stop_servers(self) -> None:
        if self.server is None:
            return
        if self.server.stdin:
            self.server.stdin.close()
        try:
            self.server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None

    # ------------------------------------------------------------ inside the namespace

    def run(self, argv: list[str], env: Optional[dict[str, str]] = None, timeout: float = 60) -> Any:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], env=env, capture_output=True, text=True, timeout=timeout
        )

    def cli(self, prefix: str, *args: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
        env = cli_env(prefix, **extra)
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
            if var not in extra:
                env.pop(var, None)
        proc: subprocess.CompletedProcess[str] = self.run(
            [sys.executable, "-m", "ecs_init", *args], env=env, timeout=timeout
        )
        return proc

    def host_network(self, action: str) -> None:
        """The host-network half of pre-start/post-stop (tests/netns.py) in this namespace."""
        env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src"), "ECS_TEST_BRIDGE": ""}
        proc = self.run([sys.executable, os.path.join(TESTS, "netns.py"), action], env=env)
        assert proc.returncode == 0, proc.stderr
