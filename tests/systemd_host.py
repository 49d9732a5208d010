"""A Debian host with the real systemd as PID 1, in a container on the host's engine.

Used by ``tests/integration/test_systemd_real.py`` to install the .deb with
dpkg and drive ``ecs.service`` with ``systemctl``.

The image
    A Debian 12 ``minbase`` root file system built by ``mmdebstrap`` from the
    Debian archive and ``docker import``-ed with ``CMD ["/sbin/init"]``. It is
    tagged ``ecs-init-test-systemd:<hash of the recipe>`` and built only when
    that tag is absent, so it is reused across runs until the recipe changes.
    Concurrent builders serialise on a host-wide lock.

The container (``SystemdHost``)
    Boots systemd without ``--privileged`` (refused on these machines):
    ``SYS_ADMIN`` and ``NET_ADMIN``, no seccomp filter, writable
    ``/proc/sys`` (so pre-start's sysctls work), the cgroup tree, tmpfs
    ``/run``. It has its own network namespace, so pre-start's netfilter
    rules and sysctls stay inside it (``iptables-save`` there shows them).
    The host engine's socket is bound in: the agent container is created by
    the HOST's dockerd, runs in the host's network namespace and answers on
    the host's ``127.0.0.1:51678``.

Same files on both sides
    The agent's bind sources (``/etc/ecs``, ``/var/cache/ecs``,
    ``/var/lib/ecs``, ``/var/log/ecs``) are resolved by the host's dockerd,
    so with the real paths they would land in the HOST's ``/etc/ecs`` etc.
    Instead the unit gets ``ECS_INIT_PATH_PREFIX`` (a drop-in, written
    before the package is installed) set to the host path of this
    container's own root file system (overlay2's ``MergedDir``), and that
    path is a bind mount of ``/`` inside the container. So inside, the
    prefixed paths are the very files dpkg installed (``/etc/ecs`` stays a
    plain directory that purge can remove), and on the host the agent's binds
    resolve to the same files: the agent's ``/data`` is the container's
    ``/var/lib/ecs/data``, its log lands in the container's ``/var/log/ecs``,
    and nothing is created under the host's real paths (it all goes when the
    container is removed). With a storage driver that has no ``MergedDir``
    a temporary host directory is used instead: everything still works, but
    the agent then sees empty directories rather than the container's files.

The loopback
    The agent listens on the host's loopback; the unit's processes live in
    the container's. ``LoopbackForwarder`` listens on ``127.0.0.1:51678``
    inside the container and relays to the host's, so the Type=notify
    readiness probe and ``status`` reach the agent as they would on a real
    instance (and a test can hold readiness back by starting it late).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import itertools
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Sequence

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("systemd", "systemd-sysv", "iptables", "iproute2", "python3", "procps", "ca-certificates")
IMAGE_CMD = 'CMD ["/sbin/init"]'
# Bump when the recipe changes in a way the inputs above do not show.
RECIPE_VERSION = "1"
IMAGE_REPO = "ecs-init-test-systemd"
LABEL = "com.amazonaws.ecs-init.test"
LABEL_VALUE = "systemd-host"
BUILD_LOCK = "/tmp/ecs-init-tests.systemd-image.lock"
CLONE_NEWNET = 0x40000000


# ------------------------------------------------------------------ image


def image_inputs() -> dict[str, Any]:
    return {
        "suite": SUITE,
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "cmd": IMAGE_CMD,
        "arch": os.uname().machine,
        "recipe": RECIPE_VERSION,
    }


def image_tag() -> str:
    digest = hashlib.sha256(json.dumps(image_inputs(), sort_keys=True).encode()).hexdigest()
    return f"{IMAGE_REPO}:{digest[:16]}"


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def can_build() -> bool:
    return shutil.which("mmdebstrap") is not None


def ensure_image(timeout: float = 900) -> str:
    """The systemd image's tag; built (about a minute) when it is not there yet."""
    tag = image_tag()
    if image_exists(tag):
        return tag
    with open(BUILD_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building the same tag
        if image_exists(tag):
            return tag
        work = tempfile.mkdtemp(prefix="ecs-systemd-rootfs.", dir="/var/tmp")
        try:
            rootfs = os.path.join(work, "rootfs.tar")
            argv = [
                "mmdebstrap",
                f"--variant={VARIANT}",
                "--include=" + ",".join(PACKAGES),
                SUITE,
                rootfs,
            ]
            _checked(argv, timeout, "building the systemd root file system")
            _checked(
                ["docker", "import", "-c", IMAGE_CMD, "-c", f"LABEL {LABEL}={LABEL_VALUE}", rootfs, tag],
                timeout,
                "importing the systemd root file system",
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tag


def _checked(argv: Sequence[str], timeout: float, what: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(argv[:2])} exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


# -------------------------------------------------------------- container


def cgroup_v2() -> bool:
    out = subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/cgroup"], capture_output=True, text=True)
    return out.stdout.strip() == "cgroup2fs"


def remove_stale_hosts() -> None:
    """Remove systemd hosts a killed run left behind (call with the docker lock held)."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}={LABEL_VALUE}"], capture_output=True, text=True
    ).stdout.split()
    if out:
        subprocess.run(["docker", "rm", "-f", *out], capture_output=True, timeout=120)


_names = itertools.count()


class SystemdHost:
    """One booted systemd container; ``close()`` removes it."""

    def __init__(self, image: str, prefix_fallback: str) -> None:
        self.image = image
        self.name = f"ecs-init-systemd-{os.getpid()}-{next(_names)}"
        argv = [
            "docker", "run", "-d", "--name", self.name, "--hostname", "ecs-systemd-test",
            "--label", f"{LABEL}={LABEL_VALUE}",
            "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
            "--security-opt", "seccomp=unconfined", "--security-opt", "systempaths=unconfined",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
            "-v", "/var/run/docker.sock:/var/run/docker.sock",
        ]  # fmt: skip
        if cgroup_v2():
            argv += ["--cgroupns", "host"]  # systemd needs to see its own cgroup2 subtree (untested here: v1 host)
        argv.append(image)
        self.id = _checked(argv, 120, "starting the systemd container").strip()
        info = json.loads(_checked(["docker", "inspect", self.id], 60, "inspecting the systemd container"))[0]
        self.pid = int(info["State"]["Pid"])
        merged = (info.get("GraphDriver") or {}).get("Data", {}) or {}
        self.shares_files = bool(merged.get("MergedDir"))
        self.prefix: str = merged.get("MergedDir") or prefix_fallback

    # ---------------------------------------------------------- commands

    def exec(
        self,
        *argv: str,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["docker", "exec"]
        if input is not None:
            cmd.append("-i")
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        proc = subprocess.run([*cmd, self.id, *argv], capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            output = proc.stdout[-2000:] + proc.stderr[-2000:]
            raise AssertionError(f"in {self.name}: {' '.join(argv)} exited {proc.returncode}:\n{output}")
        return proc

    def sh(self, script: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.exec("sh", "-ec", script, check=check, timeout=timeout)

    def put(self, source: str, dest: str) -> None:
        _checked(["docker", "cp", source, f"{self.id}:{dest}"], 120, f"copying {source} in")

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        """Write ``path`` atomically (temp file, then rename): a reader never sees it half-written."""
        script = f'mkdir -p "$(dirname "$1")"; t="$1.tmp.$$"; cat > "$t"; chmod {mode} "$t"; mv -f "$t" "$1"'
        self.exec("sh", "-ec", script, "write", path, input=text)

    def read(self, path: str) -> str | None:
        proc = self.exec("cat", path, check=False)
        return proc.stdout if proc.returncode == 0 else None

    def exists(self, path: str) -> bool:
        return self.exec("test", "-e", path, check=False).returncode == 0 or self.is_link(path)

    def is_link(self, path: str) -> bool:
        return self.exec("test", "-L", path, check=False).returncode == 0

    # ----------------------------------------------------------- systemd

    def wait_booted(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.exec("systemctl", "is-system-running", check=False, timeout=30).stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.2)
        raise AssertionError(f"systemd in {self.name} did not finish booting in {timeout}s (state {state!r})")

    def share_root_at_prefix(self) -> None:
        """Make ``self.prefix`` inside the container the container's own root (see the module doc)."""
        self.sh(f'mkdir -p "{self.prefix}" && mount --bind / "{self.prefix}"')

    def systemctl(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.exec("systemctl", *args, check=check, timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        argv = ["systemctl", "show", unit]
        for prop in props:
            argv += ["-p", prop]
        out = self.exec(*argv).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def show_all(self, unit: str, prop: str) -> list[str]:
        """Every value of a property systemd prints once per item (e.g. EnvironmentFiles)."""
        out = self.exec("systemctl", "show", unit, "-p", prop).stdout
        return [line.split("=", 1)[1] for line in out.splitlines() if line.startswith(prop + "=")]

    def wait_unit(
        self, unit: str, predicate: Callable[[dict[str, str]], bool], timeout: float = 60, *props: str
    ) -> dict[str, str]:
        names = props or ("ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ExecMainStatus", "StatusText")
        deadline = time.monotonic() + timeout
        while True:
            state = self.show(unit, *names)
            if predicate(state) or time.monotonic() >= deadline:
                return state
            time.sleep(0.2)

    def journal(self, unit: str) -> list[dict[str, Any]]:
        """The unit's journal entries (``journalctl -u UNIT -o json``), MESSAGE as text."""
        out = self.exec("journalctl", "-u", unit, "-o", "json", "--no-pager").stdout
        entries = []
        for line in out.splitlines():
            entry = json.loads(line)
            message = entry.get("MESSAGE")
            if isinstance(message, list):  # journald's encoding of non-UTF-8 text
                entry["MESSAGE"] = bytes(message).decode("utf-8", "replace")
            entries.append(entry)
        return entries

    def journal_text(self, unit: str) -> str:
        return self.exec("journalctl", "-u", unit, "-o", "cat", "--no-pager", check=False).stdout

    def iptables_save(self, v6: bool = False) -> str:
        return self.exec("ip6tables-save" if v6 else "iptables-save").stdout

    def sysctl(self, key: str) -> str:
        return self.exec("sysctl", "-n", key).stdout.strip()

    # ---------------------------------------------------------- teardown

    def close(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True, timeout=120)


# -------------------------------------------------------------- loopback


def _setns(fd: int) -> None:
    setns = getattr(os, "setns", None)  # Python 3.12+
    if setns is not None:
        setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in_netns(pid: int, address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket in the network namespace of ``pid``.

    The namespace switch happens in a short-lived thread of its own, so no
    other thread of this process ever leaves the host's namespace.
    """
    result: dict[str, Any] = {}

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                _setns(target)
                try:
                    result["sock"] = socket.create_server(address)
                finally:
                    _setns(own)
            finally:
                os.close(target)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            result["error"] = err
        finally:
            os.close(own)

    thread = threading.Thread(target=work, name="netns-listen")
    thread.start()
    thread.join()
    if "error" in result:
        sock = result.get("sock")
        if sock is not None:
            sock.close()
        raise result["error"]
    return result["sock"]  # type: ignore[no-any-return]


class LoopbackForwarder:
    """127.0.0.1:PORT in the namespace of ``pid`` relays to this namespace's 127.0.0.1:PORT."""

    def __init__(self, pid: int, port: int = 51678) -> None:
        self.port = port
        self.listener = listen_in_netns(pid, ("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.closed = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, name="loopback-forwarder", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            conn.close()  # nothing answers on the host: the client sees the connection end
            return
        with conn, upstream:
            peers = {conn: upstream, upstream: conn}
            open_ends = 2
            while open_ends and not self.closed.is_set():
                readable, _, _ = select.select(list(peers), [], [], 10)
                if not readable:
                    return
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if data:
                        peers[sock].sendall(data)
                        continue
                    try:
                        peers[sock].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    del peers[sock]
                    open_ends -= 1

    def close(self) -> None:
        self.closed.set()
        self.listener.close()
        self.thread.join(timeout=5)

    def __enter__(self) -> LoopbackForwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
