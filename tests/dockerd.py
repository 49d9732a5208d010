"""A separate, throw-away Docker daemon for tests that restart "the" daemon.

The host's dockerd is shared by every developer's tests, so it must never be
restarted. ``TestDockerd`` starts a second dockerd (20.10) with its own
``--data-root``, ``--exec-root`` (its own containerd lives under it),
``--pidfile`` and unix socket, no bridge and no iptables/ip6tables rules, so
it changes nothing in the root network namespace. It can be stopped and
started again with the same arguments (optionally ``--live-restore``), and
``cleanup()`` removes every container, mount, process and file it made.

    with TestDockerd(live_restore=True) as daemon:
        daemon.docker("info")
        daemon.restart()
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"


class TestDockerd:
    __test__ = False  # not a pytest test class

    def __init__(self, live_restore: bool = False, parent: str = "/tmp"):
        # Keep paths short: unix socket paths are limited to 107 bytes.
        self.root = tempfile.mkdtemp(prefix="ecsd-", dir=parent)
        self.data_root = os.path.join(self.root, "data")
        self.exec_root = os.path.join(self.root, "x")
        self.pidfile = os.path.join(self.root, "dockerd.pid")
        self.socket = os.path.join(self.root, "d.sock")
        self.config_file = os.path.join(self.root, "daemon.json")
        self.log_path = os.path.join(self.root, "dockerd.log")
        self.live_restore = live_restore
        self.bridge = "ecsd" + os.path.basename(self.root)[-8:].replace("_", "")[:8]
        self.proc: subprocess.Popen[bytes] | None = None
        with open(self.config_file, "w") as fh:
            json.dump({}, fh)

    # ------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        """The DOCKER_HOST value for this daemon."""
        return "unix://" + self.socket

    def argv(self) -> list[str]:
        argv = [
            DOCKERD,
            "--config-file",
            self.config_file,
            "--data-root",
            self.data_root,
            "--exec-root",
            self.exec_root,
            "--pidfile",
            self.pidfile,
            "-H",
            self.host,
            # Never --bridge=none: dockerd then deletes the host's docker0 at
            # start-up. A bridge of the test's own keeps docker0 untouched.
            "--bridge",
            self.bridge,
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--ip-forward=false",
            "--userland-proxy=false",
            "--cgroup-parent",
            "/" + os.path.basename(self.root),
        ]
        if self.live_restore:
            argv.append("--live-restore")
        return argv

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("test dockerd is already running")
        if not os.path.exists(f"/sys/class/net/{self.bridge}"):
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"test dockerd exited with {self.proc.returncode}: {self.log_tail()}")
            if self.answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"test dockerd did not answer within {timeout:.0f}s: {self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the daemon and wait for it to exit (SIGKILL after ``timeout``)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, timeout: float = 60.0) -> None:
        self.stop()
        self.start(timeout)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def answers(self) -> bool:
        try:
            done = subprocess.run(
                ["docker", "-H", self.host, "version", "--format", "{{.Server.Version}}"],
                capture_output=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker -H {self.host} {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return "\n".join(fh.read().splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        """Remove every container, stop the daemon and its containerd, unmount, delete."""
        if self.running():
            ids = self.docker("ps", "-aq", check=False, timeout=30).split()
            if ids:
                self.docker("rm", "-f", *ids, check=False, timeout=60)
        self.stop()
        self._kill_leftovers()
        self._unmount_all()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """containerd/shims/containers started for this daemon that outlived it."""
        mine: list[int] = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read().decode("utf-8", errors="replace")
            except OSError:
                continue
            if self.root in cmdline and int(entry) != os.getpid():
                mine.append(int(entry))
        for pid in mine:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        # Processes of containers left by live-restore live in our cgroup.
        for controller in ("pids", "memory", "cpu", "freezer", "devices", "blkio", "cpuset", "cpuacct", "systemd"):
            base = f"/sys/fs/cgroup/{controller}/{os.path.basename(self.root)}"
            if not os.path.isdir(base):
                continue
            for dirpath, _dirs, files in os.walk(base):
                if "cgroup.procs" in files:
                    try:
                        with open(os.path.join(dirpath, "cgroup.procs")) as fh:
                            for line in fh:
                                try:
                                    os.kill(int(line), signal.SIGKILL)
                                except (OSError, ValueError):
                                    pass
                    except OSError:
                        pass
        time.sleep(0.2)
        for controller in os.listdir("/sys/fs/cgroup") if os.path.isdir("/sys/fs/cgroup") else []:
            base = f"/sys/fs/cgroup/{controller}/{os.path.basename(self.root)}"
            if os.path.isdir(base):
                for dirpath, _dirs, _files in sorted(os.walk(base), key=lambda t: -len(t[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass

    def _unmount_all(self) -> None:
        for _ in range(3):
            targets = []
            try:
                with open("/proc/self/mounts") as fh:
                    for line in fh:
                        target = line.split()[1].replace("\\040", " ")
                        if target == self.root or target.startswith(self.root + "/"):
                            targets.append(target)
            except OSError:
                return
            if not targets:
                return
            for target in sorted(targets, key=len, reverse=True):
                subprocess.run(["umount", "-l", target], capture_output=True)

    def __enter__(self) -> TestDockerd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
