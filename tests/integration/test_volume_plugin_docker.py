"""amazon-ecs-volume-plugin against the real Docker engine and the real kernel.

The plugin runs as a subprocess on Docker's discovery socket
(/run/docker/plugins/amazon-ecs-volume-plugin.sock). A test mount helper,
/sbin/mount.efs, makes ``mount -t efs`` real: mount(8) execs it and it
mounts a tmpfs whose source is the volume's device, so the whole path
Docker -> plugin -> mount(8) -> helper -> kernel runs and /proc shows it.

Host-wide things (the socket, the helper) are guarded by a flock of their
own; this module never touches the ecs-agent container, its tag or port
51678, so it does not take ``docker_lock``. The image is a stand-in built
under its own tag.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from typing import Any, Iterator

import pytest
from volplugin_helpers import call, validate_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOCKET = "/run/docker/plugins/amazon-ecs-volume-plugin.sock"
DRIVER = "amazon-ecs-volume-plugin"
HELPER = "/sbin/mount.efs"
HELPER_MARK = "# ecs-init volume plugin test helper"
IMAGE = "ecs-volplugin-test:latest"
LOCK = "/tmp/ecs-init-tests.volplugin.lock"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def read_lines(path: str) -> list[str]:
    with open(path) as fh:
        return fh.read().splitlines()


def mounts_at(path: str) -> list[str]:
    """Lines of /proc/self/mountinfo whose mount point is ``path``."""
    with open("/proc/self/mountinfo") as fh:
        return [line for line in fh if line.split(" ")[4] == path]


class Plugin:
    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.prefix = os.path.join(tmp, "root")
        self.state = os.path.join(tmp, "state", "ecs_volume_plugin.json")
        self.log = os.path.join(tmp, "plugin.out")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def volumes_dir(self) -> str:
        return os.path.join(self.prefix, "var/lib/ecs/volumes")

    def start(self) -> float:
        env = dict(os.environ)
        env.update(ECS_INIT_PATH_PREFIX=self.prefix, PYTHONPATH=os.path.join(ROOT, "src"), ECS_LOGLEVEL="debug")
        argv = [sys.executable, "-m", "ecs_init.volume_plugin.server", "--socket", SOCKET, "--state", self.state]
        started = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if call(SOCKET, "/Plugin.Activate")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                time.sleep(0.05)
        raise AssertionError("plugin did not answer:\n" + self.output())

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def output(self) -> str:
        try:
            with open(self.log, errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def saved(self) -> dict[str, Any]:
        """The state file's volumes (Go format), each checked against the schema."""
        with open(self.state) as fh:
            doc = json.load(fh)
        validate_state(doc)
        return dict(doc.get("volumes", {}))


@pytest.fixture(scope="module")
def host_lock() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts, Docker's plugin directory)")
    with open(LOCK, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def image(host_lock: None, docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    spec = importlib.util.spec_from_file_location("standin_build_volplugin", os.path.join(ROOT, "standin", "build.py"))
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    tarball = str(tmp_path_factory.mktemp("volplugin-image") / "image.tar")
    build.build("v1", tarball, tag=IMAGE)
    docker("load", "-i", tarball)
    try:
        yield IMAGE
    finally:
        docker("rmi", IMAGE, check=False)


@pytest.fixture
def mount_helper(host_lock: None, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Install /sbin/mount.efs; returns the file where it logs its argv."""
    calls = str(tmp_path / "helper-calls")
    if os.path.lexists(HELPER):
        with open(HELPER, errors="replace") as fh:
            if HELPER_MARK not in fh.read():
                pytest.skip(f"{HELPER} exists and is not ours (a real efs-utils?); not replacing it")
    script = f"""#!/bin/sh
{HELPER_MARK}: mount.efs DEVICE DIR [-o OPTS]; mounts a tmpfs named DEVICE.
echo "$@" >> '{calls}'
dev="$1"; dir="$2"
exec mount -t tmpfs -o size=16m,mode=0755 "$dev" "$dir"
"""
    with open(HELPER, "w") as fh:
        fh.write(script)
    os.chmod(HELPER, 0o755)
    try:
        yield calls
    finally:
        os.unlink(HELPER)


@pytest.fixture
def plugin(host_lock: None, docker_engine: None, tmp_path) -> Iterator[Plugin]:  # type: ignore[no-untyped-def]
    p = Plugin(str(tmp_path))
    yield p
    if p.proc is not None:
        p.stop()
    for line in read_lines("/proc/self/mountinfo"):
        point = line.split(" ")[4]
        if point.startswith(str(tmp_path)):
            subprocess.run(["umount", "-l", point], capture_output=True)


def test_docker_volume_lifecycle_with_restart(image: str, mount_helper: str, plugin: Plugin) -> None:
    uniq = uuid.uuid4().hex[:10]
    name = f"ecsvp-{uniq}"
    device = f"fs-{uniq}:/"
    containers = [f"ecsvp-a-{uniq}", f"ecsvp-b-{uniq}"]
    path = os.path.join(plugin.volumes_dir, name)
    timings: dict[str, float] = {}
    timings["plugin start (s)"] = plugin.start()
    try:
        # Errors from the plugin reach the Docker CLI.
        bad = docker(
            "volume", "create", "-d", DRIVER, "--opt", "type=nfs", "--opt", "device=x", f"{name}-bad", check=False
        )
        assert bad.returncode != 0 and "unknown volume type 'nfs'" in bad.stderr

        started = time.monotonic()
        docker("volume", "create", "-d", DRIVER, "--opt", "type=efs", "--opt", f"device={device}",
               "--opt", "o=tls,iam", name)  # fmt: skip
        timings["docker volume create (s)"] = time.monotonic() - started
        info = json.loads(docker("volume", "inspect", name).stdout)[0]
        assert info["Driver"] == DRIVER and info["Mountpoint"] == path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
        saved = plugin.saved()[name]
        assert saved["options"] == {"type": "efs", "device": device, "o": "tls,iam"} and "mounts" not in saved
        assert name in docker("volume", "ls", "-q", "--filter", f"driver={DRIVER}").stdout.split()
        assert mounts_at(path) == []

        # Container A mounts it and writes; the helper really ran with our options.
        started = time.monotonic()
        run_args = ["run", "-d", "--network", "none", "--entrypoint", "/bin/sh", "-v", f"{name}:/data"]
        docker(*run_args, "--name", containers[0], image, "-c", "echo hello-from-a > /data/f; exec sleep 300")
        timings["docker run -d with the volume (s)"] = time.monotonic() - started
        # Docker may mount once more at create time to copy the image's /data
        # into an empty volume (Mount + Unmount under another ID): 1 or 2 calls.
        helper_calls = read_lines(mount_helper)
        assert len(helper_calls) in (1, 2), helper_calls
        for args in helper_calls:
            assert args.startswith(f"{device} {path} ") and "tls,iam" in args
        [line] = mounts_at(path)
        assert f" - tmpfs {device} " in line
        deadline = time.monotonic() + 20
        while not os.path.exists(os.path.join(path, "f")) and time.monotonic() < deadline:
            time.sleep(0.1)
        with open(os.path.join(path, "f")) as fh:
            assert fh.read() == "hello-from-a\n"

        # Container B shares the same mount: refcount 2, still one kernel mount.
        docker(*run_args, "--name", containers[1], image, "-c", "exec sleep 300")
        assert docker("exec", containers[1], "cat", "/data/f").stdout == "hello-from-a\n"
        docker("exec", containers[1], "sh", "-c", "echo hello-from-b > /data/g")
        assert docker("exec", containers[0], "cat", "/data/g").stdout == "hello-from-b\n"
        assert len(plugin.saved()[name]["mounts"]) == 2
        assert len(mounts_at(path)) == 1
        assert len(read_lines(mount_helper)) == len(helper_calls)  # B reused A's mount
        busy = docker("volume", "rm", name, check=False)  # Docker itself guards volumes in use
        assert busy.returncode != 0 and "in use" in busy.stderr

        # The plugin crashes and comes back: state, mounts and Docker's view survive.
        assert plugin.stop(signal.SIGKILL) == -signal.SIGKILL
        timings["plugin restart to first answer (s)"] = plugin.start()
        assert len(plugin.saved()[name]["mounts"]) == 2
        info = json.loads(docker("volume", "inspect", name).stdout)[0]
        assert info["Driver"] == DRIVER and info["Mountpoint"] == path
        assert name in docker("volume", "ls", "-q").stdout.split()
        status, out = call(SOCKET, "/VolumeDriver.Get", {"Name": name})
        assert status == 200 and out["Err"] == "" and out["Volume"]["Mountpoint"] == path
        assert docker("exec", containers[0], "cat", "/data/g").stdout == "hello-from-b\n"
        assert len(mounts_at(path)) == 1

        # The last user going unmounts it.
        docker("rm", "-f", containers[0])
        assert len(plugin.saved()[name]["mounts"]) == 1 and len(mounts_at(path)) == 1
        docker("rm", "-f", containers[1])
        assert "mounts" not in plugin.saved()[name]
        assert mounts_at(path) == []
        with open("/proc/mounts") as fh:
            assert device not in fh.read()

        started = time.monotonic()
        docker("volume", "rm", name)
        timings["docker volume rm (s)"] = time.monotonic() - started
        assert name not in plugin.saved()
        assert not os.path.exists(path)
        assert name not in docker("volume", "ls", "-q").stdout.split()
        assert len(read_lines(mount_helper)) == len(helper_calls)  # one mount served both containers
    finally:
        for c in containers:
            docker("rm", "-f", c, check=False)
        if plugin.proc is not None and plugin.proc.poll() is None:
            docker("volume", "rm", "-f", name, check=False)
        print("\nvolume plugin timings: " + json.dumps({k: round(v, 3) for k, v in timings.items()}))
    assert plugin.stop() == 0, plugin.output()
    assert not os.path.exists(SOCKET)


def test_bad_requests_over_the_socket(plugin: Plugin) -> None:
    plugin.start()
    name = f"ecsvp-{uuid.uuid4().hex[:10]}"
    try:
        assert call(SOCKET, "/VolumeDriver.Create", {"Name": name, "Opts": {"device": "fs-x:/"}}) == (200, {"Err": ""})
        cases: list[tuple[str, Any, bytes | None, int, str]] = [
            ("/VolumeDriver.Get", {"Name": f"{name}-nope"}, None, 200, "not found"),
            ("/VolumeDriver.Mount", {"Name": f"{name}-nope", "ID": "x"}, None, 200, "not found"),
            ("/VolumeDriver.Mount", {"Name": name}, None, 200, "missing mount ID"),
            ("/VolumeDriver.Create", {"Name": f"{name}-b", "Opts": {"device": "/etc", "o": "bind"}}, None, 200,
             "bind not allowed"),
            ("/VolumeDriver.Create", None, b'{"Name": "x", "Opts": {', 400, "malformed JSON"),
            ("/VolumeDriver.Create", {"Name": f"{name}-t", "Opts": {"type": "cifs", "device": "d"}}, None, 200,
             "unknown volume type"),
            ("/VolumeDriver.Create", {"Name": "../../etc", "Opts": {"device": "d"}}, None, 200, "invalid volume name"),
            ("/VolumeDriver.Create", {"Name": name, "Opts": {"device": "d"}}, None, 200, "already exists"),
            ("/VolumeDriver.Create", {"Opts": {"device": "d"}}, None, 200, "missing volume Name"),
            ("/VolumeDriver.Nope", {}, None, 404, "unknown endpoint"),
        ]  # fmt: skip
        for endpoint, body, raw, want_status, needle in cases:
            status, out = call(SOCKET, endpoint, body, raw=raw)
            assert status == want_status and needle in out["Err"], (endpoint, body, raw, status, out)
        # Unmount of an ID that holds no mount: success, no change (Go).
        assert call(SOCKET, "/VolumeDriver.Unmount", {"Name": name, "ID": "never-mounted"}) == (200, {"Err": ""})
        # Still alive and unchanged.
        assert call(SOCKET, "/Plugin.Activate") == (200, {"Implements": ["VolumeDriver"]})
        assert list(plugin.saved()) == [name]
        assert plugin.proc is not None and plugin.proc.poll() is None
    finally:
        call(SOCKET, "/VolumeDriver.Remove", {"Name": name})
    assert plugin.stop() == 0
    assert "Traceback" not in plugin.output()


def go_state(volumes: dict[str, dict[str, Any]]) -> str:
    """A state file as the Go plugin writes it: json.MarshalIndent(v, "", "\\t")."""
    return json.dumps({"volumes": volumes}, indent="\t")


def test_upgrade_from_go_plugin_state(image: str, mount_helper: str, plugin: Plugin) -> None:
    """Volumes Docker created while the Go plugin served them, recorded in the
    Go plugin's state format (one mounted twice for one ID, one with a stale
    count, one never mounted), are listed, usable and removable after our
    plugin starts on that file; Unmount of the last ID takes the host mount
    away."""
    uniq = uuid.uuid4().hex[:10]
    names = {k: f"ecsvp-{k}-{uniq}" for k in ("busy", "stale", "idle")}
    paths = {k: os.path.join(plugin.volumes_dir, n) for k, n in names.items()}
    devices = {k: f"fs-{k}{uniq}:/" for k in names}
    created = {
        "busy": "2024-05-06T07:08:09.123456789Z",
        "stale": "2024-05-06T07:08:10.5Z",
        "idle": "2024-05-06T07:08:11Z",
    }
    container = f"ecsvp-up-{uniq}"
    timings: dict[str, float] = {}
    plugin.start()
    try:
        # Docker's own records of the volumes (its volume store) are made as
        # they were under the Go plugin: through this driver name.
        for k in names:
            docker("volume", "create", "-d", DRIVER, "--opt", "type=efs", "--opt", f"device={devices[k]}", names[k])
        assert plugin.stop() == 0
        # The host as the Go plugin left it: "busy" mounted, its state in the Go format.
        for path in paths.values():
            os.makedirs(path, mode=0o700, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", devices["busy"], paths["busy"]], check=True)
        with open(os.path.join(paths["busy"], "kept"), "w") as fh:
            fh.write("written under the Go plugin\n")
        entries: dict[str, dict[str, Any]] = {}
        for k in names:
            entry: dict[str, Any] = {
                "type": "efs",
                "path": paths[k],
                "options": {"device": devices[k], "type": "efs"},
                "createdAt": created[k],
            }
            if k == "busy":
                entry["mounts"] = {"task-a": 2}
            elif k == "stale":
                entry["mounts"] = {"gone-task": 0}  # a count of 0 read back is 1
            entries[names[k]] = entry
        with open(plugin.state, "w") as fh:
            fh.write(go_state(entries))

        timings["plugin start on the Go state (s)"] = plugin.start()
        saved = plugin.saved()  # rewritten by reconcile (stale count cleared), still the Go format
        assert saved[names["busy"]]["mounts"] == {"task-a": 2}
        assert "mounts" not in saved[names["stale"]]  # not mounted on the host: count cleared
        assert {saved[n]["createdAt"] for n in names.values()} == set(created.values())
        listed = docker("volume", "ls", "-q", "--filter", f"driver={DRIVER}").stdout.split()
        assert set(names.values()) <= set(listed)
        for k, name in names.items():
            status, out = call(SOCKET, "/VolumeDriver.Get", {"Name": name})
            assert out == {"Volume": {"Name": name, "Mountpoint": paths[k], "Status": {}, "CreatedAt": created[k]},
                           "Err": ""}  # fmt: skip
        info = json.loads(docker("volume", "inspect", names["busy"]).stdout)[0]
        assert info["Mountpoint"] == paths["busy"] and info["CreatedAt"].startswith("2024-05-06T07:08:09")

        # The same mount ID twice needs two unmounts; then the host mount goes away.
        assert call(SOCKET, "/VolumeDriver.Unmount", {"Name": names["busy"], "ID": "task-a"}) == (200, {"Err": ""})
        assert len(mounts_at(paths["busy"])) == 1 and plugin.saved()[names["busy"]]["mounts"] == {"task-a": 1}
        assert call(SOCKET, "/VolumeDriver.Unmount", {"Name": names["busy"], "ID": "task-a"}) == (200, {"Err": ""})
        assert mounts_at(paths["busy"]) == [] and "mounts" not in plugin.saved()[names["busy"]]

        # A volume from the Go state is usable by a new task.
        run_args = ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", "-v", f"{names['idle']}:/data"]
        docker(*run_args, "--name", container, image, "-c", "echo after-upgrade > /data/f")
        assert any(line.startswith(f"{devices['idle']} {paths['idle']} ") for line in read_lines(mount_helper))
        assert mounts_at(paths["idle"]) == [] and "mounts" not in plugin.saved()[names["idle"]]

        # Every volume is removable through Docker.
        started = time.monotonic()
        for name in names.values():
            docker("volume", "rm", name)
        timings["docker volume rm x3 (s)"] = time.monotonic() - started
        assert plugin.saved() == {}
        with open(plugin.state) as fh:
            assert fh.read() == "{}"
        assert not any(os.path.exists(p) for p in paths.values())
        listed = docker("volume", "ls", "-q").stdout.split()
        assert not set(names.values()) & set(listed)
    finally:
        docker("rm", "-f", container, check=False)
        for path in paths.values():
            if mounts_at(path):
                subprocess.run(["umount", "-l", path], capture_output=True)
        if plugin.proc is not None and plugin.proc.poll() is None:
            for name in names.values():
                docker("volume", "rm", "-f", name, check=False)
        print("\nvolume plugin upgrade timings: " + json.dumps({k: round(v, 3) for k, v in timings.items()}))
    assert plugin.stop() == 0, plugin.output()
    assert "Traceback" not in plugin.output()
