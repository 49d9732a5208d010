"""The protocol layer: dispatch, the HTTP server on a real Unix socket (with a
fake mounter), stale/live socket handling, socket activation, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest
from volplugin_helpers import FakeMounter, FakeSaver, UnixHTTPConnection, call

from ecs_init.volume_plugin.registry import Registry
from ecs_init.volume_plugin.server import PluginServer, activated_socket, bind_socket, dispatch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOLS = "/vols"


def registry() -> tuple[Registry, FakeMounter, FakeSaver]:
    mounter, saver = FakeMounter(), FakeSaver()
    return Registry(VOLS, mounter, saver, clock=lambda: "2026-01-01T00:00:00Z"), mounter, saver


def test_dispatch_full_lifecycle() -> None:
    reg, mounter, _ = registry()
    assert dispatch(reg, "/Plugin.Activate", b"") == (200, {"Implements": ["VolumeDriver"]})
    assert dispatch(reg, "/VolumeDriver.Capabilities", b"null") == (200, {"Capabilities": {"Scope": "local"}})
    assert dispatch(reg, "/VolumeDriver.List", b"{}") == (200, {"Volumes": [], "Err": ""})
    body = json.dumps({"Name": "v", "Opts": {"type": "efs", "device": "fs-1:/", "o": "tls"}}).encode()
    assert dispatch(reg, "/VolumeDriver.Create", body) == (200, {"Err": ""})
    assert dispatch(reg, "/VolumeDriver.Get", b'{"Name": "v"}') == (
        200,
        {
            "Volume": {"Name": "v", "Mountpoint": "/vols/v", "Status": {}, "CreatedAt": "2026-01-01T00:00:00Z"},
            "Err": "",
        },
    )
    assert dispatch(reg, "/VolumeDriver.Path", b'{"Name": "v"}') == (200, {"Mountpoint": "/vols/v", "Err": ""})
    assert dispatch(reg, "/VolumeDriver.Mount", b'{"Name": "v", "ID": "c1"}') == (
        200,
        {"Mountpoint": "/vols/v", "Err": ""},
    )
    assert mounter.calls == [["mount", "-t", "efs", "-o", "tls", "fs-1:/", "/vols/v"]]
    assert dispatch(reg, "/VolumeDriver.List", b"") == (
        200,
        {"Volumes": [{"Name": "v", "Mountpoint": "/vols/v"}], "Err": ""},
    )
    assert dispatch(reg, "/VolumeDriver.Unmount", b'{"Name": "v", "ID": "other"}') == (200, {"Err": ""})  # no-op
    assert len(mounter.calls) == 1
    assert dispatch(reg, "/VolumeDriver.Unmount", b'{"Name": "v", "ID": "c1"}') == (200, {"Err": ""})
    assert mounter.calls[-1] == ["umount", "-l", "/vols/v"]
    assert dispatch(reg, "/VolumeDriver.Remove", b'{"Name": "v"}') == (200, {"Err": ""})
    assert dispatch(reg, "/VolumeDriver.List", b"") == (200, {"Volumes": [], "Err": ""})


@pytest.mark.parametrize(
    "path,raw,status,needle",
    [
        ("/VolumeDriver.Get", b'{"Name": "nope"}', 200, "volume nope not found"),
        ("/VolumeDriver.Mount", b'{"Name": "nope", "ID": "x"}', 200, "not found"),
        ("/VolumeDriver.Mount", b'{"Name": "v"}', 200, "missing mount ID"),
        ("/VolumeDriver.Unmount", b'{"Name": "v"}', 200, "missing mount ID"),
        ("/VolumeDriver.Unmount", b'{"Name": "nope", "ID": "x"}', 200, "volume nope not found"),
        ("/VolumeDriver.Create", b'{"Name": "w", "Opts": {"device": "/", "o": "bind"}}', 200, "bind not allowed"),
        ("/VolumeDriver.Path", b"{}", 200, "missing volume Name"),
        ("/VolumeDriver.Create", b'{"Name": "w", "Opts": {"type": "zfs", "device": "d"}}', 200, "unknown volume type"),
        ("/VolumeDriver.Create", b'{"Name": "v", "Opts": {"device": "d"}}', 200, "already exists"),
        ("/VolumeDriver.Create", b"{not json", 400, "malformed JSON"),
        ("/VolumeDriver.Create", b"\xff\xfe", 400, "malformed JSON"),
        ("/VolumeDriver.Create", b"[1]", 400, "must be a JSON object"),
        ("/VolumeDriver.Frobnicate", b"{}", 404, "unknown endpoint"),
        ("/", b"", 404, "unknown endpoint"),
    ],
)
def test_dispatch_errors(path: str, raw: bytes, status: int, needle: str) -> None:
    reg, _, _ = registry()
    reg.create("v", {"device": "d"})
    got_status, out = dispatch(reg, path, raw)
    assert got_status == status and needle in out["Err"]


def test_dispatch_survives_unexpected_exceptions() -> None:
    reg, mounter, _ = registry()
    reg.create("v", {"device": "d"})

    def boom(path: str) -> bool:
        raise RuntimeError("kaboom")

    mounter.is_mounted = boom  # type: ignore[method-assign]
    reg.mount("v", "c1")
    status, out = dispatch(reg, "/VolumeDriver.Mount", b'{"Name": "v", "ID": "c2"}')
    assert status == 500 and "kaboom" in out["Err"]


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[str, FakeMounter]]:  # type: ignore[no-untyped-def]
    reg, mounter, _ = registry()
    path = str(tmp_path / "plugins" / "p.sock")
    server = PluginServer(bind_socket(path), reg)
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    try:
        yield path, mounter
    finally:
        server.shutdown()
        server.server_close()
        worker.join(5)


def test_http_over_unix_socket(served: tuple[str, FakeMounter]) -> None:
    path, mounter = served
    assert oct(os.stat(path).st_mode & 0o777) == "0o660"
    assert call(path, "/Plugin.Activate") == (200, {"Implements": ["VolumeDriver"]})
    assert call(path, "/VolumeDriver.Create", {"Name": "v", "Opts": {"device": "d"}}) == (200, {"Err": ""})
    assert call(path, "/VolumeDriver.Mount", {"Name": "v", "ID": "a"}) == (200, {"Mountpoint": "/vols/v", "Err": ""})
    assert call(path, "/VolumeDriver.Create", raw=b'{"Name": ')[0] == 400
    status, out = call(path, "/VolumeDriver.Get", method="GET")
    assert status == 405 and "POST" in out["Err"]
    # Keep-alive: several requests on one connection, one of them chunked.
    conn = UnixHTTPConnection(path)
    try:
        for _ in range(3):
            conn.request("POST", "/VolumeDriver.List", body=b"{}")
            resp = conn.getresponse()
            assert json.loads(resp.read())["Volumes"] == [{"Name": "v", "Mountpoint": "/vols/v"}]
        conn.request("POST", "/VolumeDriver.Path", body=iter([b'{"Name"', b': "v"}']), encode_chunked=True)
        resp = conn.getresponse()
        assert json.loads(resp.read()) == {"Mountpoint": "/vols/v", "Err": ""}
    finally:
        conn.close()
    # Oversized body refused, garbage request line tolerated; the server lives on.
    conn = UnixHTTPConnection(path)
    conn.putrequest("POST", "/VolumeDriver.Create")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "refused" in json.loads(resp.read())["Err"]
    conn.close()
    for garbage in (b"\x00\x01garbage\r\n\r\n", b"POST /VolumeDriver.List HTTP/7.1\r\n\r\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.connect(path)
            raw.sendall(garbage)
            raw.settimeout(5)
            answer = b""
            while chunk := raw.recv(4096):
                answer += chunk
            assert b'{"Err": "' in answer
    assert call(path, "/VolumeDriver.Unmount", {"Name": "v", "ID": "a"}) == (200, {"Err": ""})
    assert mounter.calls[-1][0] == "umount"


def test_bind_socket_replaces_stale_and_refuses_live(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "p.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    live = bind_socket(path)
    try:
        with pytest.raises(OSError, match="already listens"):
            bind_socket(path)
    finally:
        live.close()
    regular = str(tmp_path / "file")
    with open(regular, "w") as fh:
        fh.write("x")
    with pytest.raises(OSError, match="not a socket"):
        bind_socket(regular)


def test_activated_socket_ignores_other_pids() -> None:
    assert activated_socket({}, os.getpid()) is None
    assert activated_socket({"LISTEN_FDS": "1", "LISTEN_PID": "1"}, os.getpid()) is None
    assert activated_socket({"LISTEN_FDS": "x", "LISTEN_PID": str(os.getpid())}, os.getpid()) is None


def _env(tmp_path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    env.update(
        ECS_INIT_PATH_PREFIX=str(tmp_path / "root"),
        PYTHONPATH=os.path.join(ROOT, "src"),
        ECS_LOGLEVEL="debug",
    )
    for key in ("LISTEN_FDS", "LISTEN_PID", "ECS_VOLUME_PLUGIN_SOCKET"):
        env.pop(key, None)
    return env


def _wait_answer(path: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if call(path, "/Plugin.Activate")[0] == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"plugin did not answer on {path}")


def test_systemd_socket_activation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A socket bound by "systemd" (us) arrives as fd 3 with LISTEN_PID set."""
    path = str(tmp_path / "activated.sock")
    listener = bind_socket(path)
    fd = listener.fileno()

    def to_fd3() -> None:
        os.dup2(fd, 3)

    server = f'"{sys.executable}" -m ecs_init.volume_plugin.server --socket /nonexistent/x.sock'
    script = f"LISTEN_FDS=1 LISTEN_PID=$$ exec {server}"
    proc = subprocess.Popen(
        ["sh", "-c", script],
        env=_env(tmp_path),
        preexec_fn=to_fd3,
        close_fds=False,  # keep the fd 3 that preexec_fn placed
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    listener.close()  # only the child holds it now
    try:
        _wait_answer(path)
        assert call(path, "/VolumeDriver.Create", {"Name": "act", "Opts": {"device": "d"}}) == (200, {"Err": ""})
        state = tmp_path / "root" / "var/lib/ecs/data/ecs_volume_plugin.json"
        assert list(json.loads(state.read_text())["volumes"]) == ["act"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
        assert b"socket activation" in out
        assert os.path.exists(path)  # systemd's socket is not ours to delete
        assert (tmp_path / "root" / "var/log/ecs/ecs-volume-plugin.log").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_own_socket_restart_keeps_state_and_sigterm_removes_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "run" / "p.sock")
    state = str(tmp_path / "state.json")
    argv = [sys.executable, "-m", "ecs_init.volume_plugin.server", "--socket", path, "--state", state]
    for round_no in range(2):
        proc = subprocess.Popen(argv, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_answer(path)
            if round_no == 0:
                assert call(path, "/VolumeDriver.Create", {"Name": "keep", "Opts": {"device": "d"}})[1] == {"Err": ""}
            else:
                assert call(path, "/VolumeDriver.List")[1]["Volumes"][0]["Name"] == "keep"
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
            assert proc.returncode == 0, out
            assert not os.path.exists(path)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_second_instance_refuses_live_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "p.sock")
    live = bind_socket(path)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "ecs_init.volume_plugin.server", "--socket", path],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        live.close()
    assert proc.returncode == 1
    assert "already listens" in proc.stderr
