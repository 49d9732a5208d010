"""Two-"host" network topology in namespaces, for tests of SPEC §6/§7.

``Topology`` creates an *instance* namespace and a *peer* namespace joined
by a veth pair (IPv4 and IPv6 addresses), optionally a Docker-like bridge
with one "container" namespace behind it, and removes all of it (namespaces,
processes started in them) on exit, even when a test fails. Nothing here
touches the root namespace's rules, routes or sysctls.

Run as a script inside a namespace, this file performs the host-network half
of ``pre-start`` or ``post-stop`` with the real modules::

    ip netns exec NS python3 tests/netns.py pre-start|post-stop

``ECS_TEST_BRIDGE`` stands in for Docker's answer about its default bridge:
unset or empty means "no default bridge", ``!unreachable`` means Docker
cannot be reached. Errors end the script like the CLI does: one line on
stderr, exit 255.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from typing import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")

_counter = itertools.count()

INSTANCE_V4 = "10.213.0.1"
PEER_V4 = "10.213.0.2"
INSTANCE_V6 = "fd00:213::1"
PEER_V6 = "fd00:213::2"
BRIDGE_V4 = "172.31.213.1"
CONTAINER_V4 = "172.31.213.2"

# A TCP server: accepts forever, answers "ok <port>\n" to every connection.
SERVER = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(16)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"ok %d\n" % port)
    finally:
        c.close()
"""

# A TCP client: prints the server's answer; exit 1 when it cannot connect.
CLIENT = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(timeout)
try:
    s.connect((host, port)); print(s.recv(100).decode().strip())
except OSError as e:
    print("fail: %s" % e); sys.exit(1)
"""


def sh(argv: Sequence[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


class Topology:
    """instance ns <-veth-> peer ns; optional bridge + container ns on the instance."""

    def __init__(self, *, ipv4_default_route: bool = True, bridge: str | None = None, path: str | None = None):
        n = f"{os.getpid() % 100000}{next(_counter)}"
        self.instance = f"e3i{n}"
        self.peer = f"e3p{n}"
        self.container = f"e3c{n}"
        self.ipv4_default_route = ipv4_default_route
        self.bridge = bridge
        self.path = path  # PATH for every command in the namespaces (picks the iptables backend)
        self._procs: list[subprocess.Popen[str]] = []
        self._namespaces: list[str] = []

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Topology:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_ns(self, name: str) -> None:
        sh(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def _create(self) -> None:
        i, p = self.instance, self.peer
        self._add_ns(i)
        self._add_ns(p)
        veth_i, veth_p = f"vi{i[3:]}", f"vp{i[3:]}"
        sh(["ip", "link", "add", veth_i, "netns", i, "type", "veth", "peer", "name", veth_p, "netns", p])
        self.veth_instance, self.veth_peer = veth_i, veth_p
        self.ex(i, ["ip", "link", "set", "lo", "up"])
        for ns, dev, v4, v6 in ((i, veth_i, INSTANCE_V4, INSTANCE_V6), (p, veth_p, PEER_V4, PEER_V6)):
            if self.ipv4_default_route or ns == p:
                self.ex(ns, ["ip", "addr", "add", f"{v4}/24", "dev", dev])
            self.ex(ns, ["ip", "addr", "add", f"{v6}/64", "dev", dev, "nodad"])
            self.ex(ns, ["ip", "link", "set", dev, "up"])
        if self.ipv4_default_route:
            self.ex(i, ["ip", "route", "add", "default", "via", PEER_V4])
        else:
            self.ex(i, ["ip", "-6", "route", "add", "default", "via", PEER_V6])
        # The peer reaches the instance's loopback-only services through the veth.
        # The peer's own lo stays down, so it has no 127.0.0.0/8 of its own, and
        # it accepts the answers (source 127.0.0.1) that come back over the veth.
        self.ex(p, ["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"])
        self.ex(p, ["ip", "route", "add", "127.0.0.1/32", "via", INSTANCE_V4])
        self.ex(p, ["ip", "route", "add", "169.254.170.2/32", "via", INSTANCE_V4])
        if self.bridge:
            c = self.container
            self._add_ns(c)
            self.ex(i, ["ip", "link", "add", self.bridge, "type", "bridge"])
            self.ex(i, ["ip", "addr", "add", f"{BRIDGE_V4}/24", "dev", self.bridge])
            self.ex(i, ["ip", "link", "set", self.bridge, "up"])
            vb, vc = f"vb{i[3:]}", f"vc{i[3:]}"
            self.ex(i, ["ip", "link", "add", vb, "type", "veth", "peer", "name", vc, "netns", c])
            self.ex(i, ["ip", "link", "set", vb, "master", self.bridge, "up"])
            self.ex(c, ["ip", "addr", "add", f"{CONTAINER_V4}/24", "dev", vc])
            self.ex(c, ["ip", "link", "set", vc, "up"])
            self.ex(c, ["ip", "route", "add", "default", "via", BRIDGE_V4])

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        self._procs.clear()
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)
        self._namespaces.clear()

    # ------------------------------------------------------------ commands

    def ex(self, ns: str, argv: Sequence[str], check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
        if self.path is not None and "env" not in kw:
            kw["env"] = {**os.environ, "PATH": self.path}
        return sh(["ip", "netns", "exec", ns, *argv], check=check, **kw)

    def sysctl(self, ns: str, key: str) -> str:
        return self.ex(ns, ["sysctl", "-n", key]).stdout.strip()

    def serve(self, ns: str, host: str, port: int) -> None:
        """Start a TCP server in ``ns`` and wait until it listens."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, host, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "listening":
            proc.kill()
            raise AssertionError(
                f"server {host}:{port} in {ns} did not start: {proc.stderr.read() if proc.stderr else ''}"
            )

    def connect(self, ns: str, host: str, port: int, timeout: float = 1.0) -> str | None:
        """The server's answer, or None when the connection fails (dropped/refused)."""
        proc = self.ex(ns, [sys.executable, "-c", CLIENT, host, str(port), str(timeout)], check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def steps(
        self,
        action: str,
        env: dict[str, str] | None = None,
        path: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run the host-network steps of pre-start/post-stop in the instance ns.

        ``pre-start``/``post-stop`` run this file's script mode (the network
        steps alone); ``cli:ACTION`` runs the real program, ``python3 -m
        ecs_init ACTION``.
        """
        full = dict(os.environ)
        full.update(env or {})
        full["PYTHONPATH"] = SRC
        if path is not None or self.path is not None:
            full["PATH"] = path if path is not None else str(self.path)
        script = [os.path.abspath(__file__)] if action in ("pre-start", "post-stop") else ["-m", "ecs_init"]
        argv = [sys.executable, *script, action.replace("cli:", "")]
        proc = sh(["ip", "netns", "exec", self.instance, *argv], check=False, env=full)
        if check and proc.returncode != 0:
            raise AssertionError(f"{action} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def rules(self, tool: str = "iptables") -> str:
        """Every table's rules in the instance ns (``iptables-save`` format)."""
        return self.ex(self.instance, [f"{tool}-save"]).stdout


def ours(save_output: str) -> list[str]:
    """Rule lines from ``iptables-save`` that this program could have created."""
    markers = ("51678", "169.254.170.2", "127.0.0.0/8")
    return [ln for ln in save_output.splitlines() if ln.startswith("-A") and any(m in ln for m in markers)]


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# ---------------------------------------------------------------- script mode


def _main(argv: list[str]) -> int:
    import logging

    sys.path.insert(0, SRC)
    from fakes import FakeEngine  # tests/ is this script's directory

    from ecs_init.core.config import Config
    from ecs_init.core.errors import InitError
    from ecs_init.docker.errors import EngineUnavailable
    from ecs_init.host import ipv6_route, loopback, netfilter
    from ecs_init.host.context import HostContext

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="level=%(levelname)s msg=%(message)s")
    answer = os.environ.get("ECS_TEST_BRIDGE")  # the default bridge's name, "" for none, "!unreachable"
    engine = FakeEngine(bridge=answer or None)
    if answer == "!unreachable":
        engine.fail("networks", EngineUnavailable("Cannot connect to the Docker daemon (test stand-in)"))
    ctx = HostContext(cfg=Config.load(), docker_factory=lambda: engine)
    action = argv[1] if len(argv) > 1 else ""
    try:
        if action == "pre-start":
            loopback.setup(ctx)
            ipv6_route.setup(ctx)
            netfilter.setup(ctx)
        elif action == "post-stop":
            netfilter.teardown(ctx)
            ipv6_route.teardown(ctx)
            loopback.teardown(ctx)
        else:
            print("usage: netns.py pre-start|post-stop", file=sys.stderr)
            return 1
    except InitError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv))
