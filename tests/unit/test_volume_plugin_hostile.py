"""Hostile input to the volume plugin (issue 14 item 10): bad state files,
connection floods, idle and slow clients, truncated bodies. Every case that
could hang has a deadline in the test, so a regression fails instead of
hanging the run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from volplugin_helpers import GO_STATE, FakeMounter, FakeSaver, call, validate_state

from ecs_init.volume_plugin.connections import IDLE, READING, WORKING, ConnectionTable
from ecs_init.volume_plugin.drivers import VolumeError
from ecs_init.volume_plugin.host import JsonStateFile
from ecs_init.volume_plugin.registry import Registry
from ecs_init.volume_plugin.server import PluginServer, bind_socket, load_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOLS = "/vols"


# ---------------------------------------------------------------- the connection table (pure)


class FakeConn:
    def __init__(self) -> None:
        self.shut = False

    def shutdown(self, how: int) -> None:
        self.shut = True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_table_evicts_the_oldest_idle_connection_when_full() -> None:
    clock = Clock()
    table = ConnectionTable(max_connections=3, clock=clock)
    conns = [FakeConn() for _ in range(3)]
    for c in conns:
        clock.now += 1
        assert table.admit(c)
    table.phase(conns[0], WORKING)  # busy: never evicted
    clock.now += 1
    newcomer = FakeConn()
    assert table.admit(newcomer)
    assert [c.shut for c in conns] == [False, True, False]  # the oldest *idle* one went
    assert table.evicted == 1 and len(table) == 4  # the evicted slot is held until its thread ends
    table.discard(conns[1])
    assert len(table) == 3


def test_table_refuses_when_nothing_is_idle_and_bounds_evicted_slots() -> None:
    table = ConnectionTable(max_connections=2, clock=Clock())
    a, b = FakeConn(), FakeConn()
    assert table.admit(a) and table.admit(b)
    table.phase(a, WORKING)
    table.phase(b, READING)
    c = FakeConn()
    assert not table.admit(c) and not c.shut and table.refused == 1
    assert not a.shut and not b.shut
    # Evicted connections whose threads have not ended yet count up to hard_limit.
    table = ConnectionTable(max_connections=1, clock=Clock())
    admitted = 0
    for _ in range(100):
        admitted += table.admit(FakeConn())
    assert admitted == table.hard_limit == len(table)


def test_table_closes_idle_and_slow_connections_not_working_ones() -> None:
    clock = Clock()
    table = ConnectionTable(max_connections=10, idle_timeout=60, request_timeout=30, clock=clock)
    idle, reading, working = FakeConn(), FakeConn(), FakeConn()
    for c in (idle, reading, working):
        table.admit(c)
    table.phase(reading, READING)
    table.phase(working, WORKING)
    clock.now += 31
    assert table.close_expired() == 1 and reading.shut and not idle.shut
    clock.now += 30
    assert table.close_expired() == 1 and idle.shut
    clock.now += 10_000
    assert table.close_expired() == 0 and not working.shut  # a mount may take long
    table.phase(working, IDLE)
    clock.now += 61
    assert table.close_expired() == 1 and working.shut


# ---------------------------------------------------------------- the server in-process


class BlockingMounter(FakeMounter):
    """mount(8) that waits for ``release`` (keeps a request in WORKING)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release_event = threading.Event()

    def run(self, argv: list[str]) -> None:
        if argv[0] == "mount":
            self.entered.set()
            if not self.release_event.wait(20):
                raise VolumeError("test mount never released")
        super().run(argv)


@contextmanager
def serve(tmp_path: Any, table: ConnectionTable, mounter: FakeMounter | None = None) -> Iterator[tuple[str, Registry]]:
    reg = Registry(VOLS, mounter or FakeMounter(), FakeSaver(), clock=lambda: "2026-01-01T00:00:00Z")
    path = str(tmp_path / "p.sock")
    server = PluginServer(bind_socket(path), reg, table)
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    worker.start()
    try:
        yield path, reg
    finally:
        server.shutdown()
        server.server_close()
        table.close_all()
        worker.join(5)


def recv_all(sock: socket.socket, deadline_s: float = 10.0) -> bytes:
    """Everything until the server closes; fails (not hangs) after the deadline."""
    sock.settimeout(deadline_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except socket.timeout:
        raise AssertionError(f"server did not close within {deadline_s}s; got {data[:200]!r}") from None
    return data


def raw_connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    return sock


def test_idle_connection_is_closed_after_the_idle_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with serve(tmp_path, ConnectionTable(idle_timeout=0.5, request_timeout=0.5)) as (path, _):
        with raw_connect(path) as sock:
            started = time.monotonic()
            assert recv_all(sock) == b""
            assert time.monotonic() - started < 5
        # Keep-alive: idle after an answer counts from the answer.
        with raw_connect(path) as sock:
            sock.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            answer = recv_all(sock)
            assert answer.startswith(b"HTTP/1.1 200") and b"VolumeDriver" in answer


def test_slow_request_is_cut_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = ConnectionTable(idle_timeout=30, request_timeout=1.0)
    with serve(tmp_path, table) as (path, _), raw_connect(path) as sock:
        sock.sendall(b"POST /VolumeDriver.List HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        for _ in range(100):  # one header byte every 0.1 s: each read is quick, the request never ends
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        assert closed or recv_all(sock, 1) == b""
        assert time.monotonic() - started < 5


POST = b"POST /VolumeDriver.Create HTTP/1.1\r\n"
BODY = b'{"Name": "x", "Opts": {"device": "d"}}'


@pytest.mark.parametrize(
    "request_bytes,needle",
    [
        (POST + b"Content-Length: 100\r\n\r\n" + BODY, b"ended after 38 of 100 bytes"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n40\r\n" + BODY, b"ended inside a chunk"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n26\r\n" + BODY + b"\r\n", b"bad chunked encoding"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n26\r\n" + BODY + b"\r\n0\r\n", b"before its last chunk"),
        (POST + b"Content-Length: 3_8\r\n\r\n" + BODY, b"bad Content-Length"),
        (POST + b"Content-Type: application/json\r\n", b"headers ended before the blank line"),
    ],
)  # fmt: skip
def test_body_shorter_than_announced_then_half_close_is_rejected(  # type: ignore[no-untyped-def]
    tmp_path, request_bytes: bytes, needle: bytes
) -> None:
    with serve(tmp_path, ConnectionTable()) as (path, reg):
        with raw_connect(path) as sock:
            sock.sendall(request_bytes)
            sock.shutdown(socket.SHUT_WR)
            answer = recv_all(sock)
        assert answer.startswith(b"HTTP/1.1 400 ") and needle in answer, answer
        assert reg.volumes() == []  # not processed
        assert call(path, "/VolumeDriver.Create", {"Name": "x", "Opts": {"device": "d"}}) == (200, {"Err": ""})


def test_busy_server_refuses_with_503_and_serves_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mounter = BlockingMounter()
    with serve(tmp_path, ConnectionTable(max_connections=1), mounter) as (path, reg):
        reg.create("v", {"device": "d"})
        result: list[Any] = []
        body = {"Name": "v", "ID": "a"}
        mounting = threading.Thread(target=lambda: result.append(call(path, "/VolumeDriver.Mount", body)))
        mounting.start()
        assert mounter.entered.wait(10)
        with raw_connect(path) as sock:
            answer = recv_all(sock)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections" in answer
        mounter.release_event.set()
        mounting.join(10)
        assert result == [(200, {"Mountpoint": "/vols/v", "Err": ""})]
        assert call(path, "/Plugin.Activate")[0] == 200


# ---------------------------------------------------------------- the real plugin process


def _env(tmp_path: Any) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ECS_INIT_PATH_PREFIX=str(tmp_path / "root"), PYTHONPATH=os.path.join(ROOT, "src"), ECS_LOGLEVEL="info")
    for key in ("LISTEN_FDS", "LISTEN_PID", "ECS_VOLUME_PLUGIN_SOCKET"):
        env.pop(key, None)
    return env


class PluginProcess:
    def __init__(self, tmp_path: Any, state: str) -> None:
        self.sock = str(tmp_path / "p.sock")
        self.log = str(tmp_path / "plugin.out")
        argv = [sys.executable, "-m", "ecs_init.volume_plugin.server", "--socket", self.sock, "--state", state]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, env=_env(tmp_path), stdout=out, stderr=subprocess.STDOUT)

    def wait_answer(self, timeout: float = 15.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.proc.poll() is None, self.output()
            try:
                if call(self.sock, "/Plugin.Activate")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"plugin did not answer within {timeout}s:\n{self.output()}")

    def status(self, key: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(key)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        with open(self.log, errors="replace") as fh:
            return fh.read()


@pytest.mark.parametrize("kind", ["symlink-dev-zero", "fifo", "huge", "deep-json", "not-json", "wrong-shape"])
def test_bad_state_file_is_moved_aside_and_plugin_starts_empty(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    state_dir = tmp_path / "data"
    state_dir.mkdir()
    state = str(state_dir / "ecs_volume_plugin.json")
    if kind == "symlink-dev-zero":
        os.symlink("/dev/zero", state)
    elif kind == "fifo":
        os.mkfifo(state)
    elif kind == "huge":
        with open(state, "wb") as fh:
            fh.write(b'{"volumes": {"a": {"path": "/' + b"x" * (8 * 1024 * 1024) + b'"}}}')
    elif kind == "deep-json":
        with open(state, "w") as fh:
            fh.write('{"volumes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif kind == "not-json":
        with open(state, "w") as fh:
            fh.write('{"volumes": {"a": ')
    else:
        with open(state, "w") as fh:
            fh.write('{"volumes": "all of them"}')
    plugin = PluginProcess(tmp_path, state)
    try:
        assert plugin.wait_answer() < 15
        assert call(plugin.sock, "/VolumeDriver.List")[1] == {"Volumes": [], "Err": ""}
        assert plugin.status("VmHWM") < 200 * 1024, "peak memory (kB) not bounded"
        aside = [n for n in os.listdir(state_dir) if n.startswith("ecs_volume_plugin.json.corrupt-")]
        assert len(aside) == 1 and not os.path.lexists(state)
        if kind == "symlink-dev-zero":
            assert os.readlink(state_dir / aside[0]) == "/dev/zero"
        # A new volume starts a fresh state file; the evidence stays aside.
        assert call(plugin.sock, "/VolumeDriver.Create", {"Name": "n", "Opts": {"device": "d"}})[1] == {"Err": ""}
        assert os.path.isfile(state) and not os.path.islink(state)
    finally:
        plugin.stop()
    out = plugin.output()
    assert plugin.proc.returncode == 0, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if "moved it to" in line]
    assert len(lines) == 1 and "starting with no volumes" in lines[0] and "level=error" in lines[0], out


def test_state_file_load_never_follows_a_link_to_a_real_state(tmp_path) -> None:  # type: ignore[no-untyped-def]
    real = tmp_path / "elsewhere.json"
    real.write_text(GO_STATE)
    link = tmp_path / "ecs_volume_plugin.json"
    os.symlink(str(real), str(link))
    assert load_state(JsonStateFile(str(link)), VOLS).volumes == {}
    assert real.read_text() == GO_STATE  # the target is never touched


def test_legacy_state_is_rewritten_in_go_format_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "ecs_volume_plugin.json"
    legacy = {
        "version": 1,
        "volumes": [
            {"name": "old", "options": {"device": "fs-1:/", "type": "efs"}, "path": str(tmp_path / "vols" / "old"),
             "created_at": "2026-01-01T00:00:00Z", "mounts": []}
        ],
    }  # fmt: skip
    state.write_text(json.dumps(legacy))
    plugin = PluginProcess(tmp_path, str(state))
    try:
        plugin.wait_answer()
        doc = json.loads(state.read_text())
        validate_state(doc)
        assert doc == {
            "volumes": {
                "old": {
                    "type": "efs",
                    "path": str(tmp_path / "vols" / "old"),
                    "options": {"device": "fs-1:/", "type": "efs"},
                    "createdAt": "2026-01-01T00:00:00Z",
                }
            }
        }
        status, out = call(plugin.sock, "/VolumeDriver.Get", {"Name": "old"})
        assert out["Volume"]["CreatedAt"] == "2026-01-01T00:00:00Z"
    finally:
        plugin.stop()
    assert "rewrote" in plugin.output() and "Traceback" not in plugin.output()


def test_5000_idle_connections_do_not_make_5000_threads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plugin = PluginProcess(tmp_path, str(tmp_path / "state.json"))
    clients: list[socket.socket] = []
    peak = 0
    try:
        plugin.wait_answer()
        deadline = time.monotonic() + 120
        for i in range(5000):
            assert time.monotonic() < deadline, f"flood stalled after {i} connections"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            clients.append(sock)
            sock.settimeout(10)
            while True:
                try:
                    sock.connect(plugin.sock)
                    break
                except BlockingIOError:  # the listen backlog is full: the server is behind
                    assert time.monotonic() < deadline, f"flood stalled after {i} connections"
                    time.sleep(0.001)
            if i % 100 == 0:
                peak = max(peak, plugin.status("Threads"))
        time.sleep(0.5)
        peak = max(peak, plugin.status("Threads"))
        # Still answering while 5 000 sockets are open on the client side.
        assert call(plugin.sock, "/VolumeDriver.List")[0] == 200
    finally:
        for sock in clients:
            sock.close()
        plugin.stop()
    table = ConnectionTable()
    print(f"\nvolume plugin: peak threads with 5000 idle connections: {peak} (cap {table.hard_limit} + 3)")
    assert peak <= table.hard_limit + 3
    assert "Traceback" not in plugin.output()
