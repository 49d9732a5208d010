"""systemd notification (notify.py) against real AF_UNIX datagram listeners."""

from __future__ import annotations

import http.server
import os
import threading
import time
from typing import Iterator

import pytest
from notify_listener import Listener

from ecs_init.agent import notify
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext


@pytest.fixture(params=[False, True], ids=["path", "abstract"])
def listener(request) -> Iterator[Listener]:  # type: ignore[no-untyped-def]
    found = Listener(abstract=request.param)
    yield found
    found.close()


def test_socket_address() -> None:
    assert notify.socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify.socket_address("@abc") == "\0abc"
    assert notify.socket_address("") is None
    assert notify.socket_address("relative/path") is None


def test_watchdog_interval() -> None:
    assert notify.watchdog_interval({}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_notifier_sends_datagrams(listener: Listener) -> None:
    sender = notify.Notifier({"NOTIFY_SOCKET": listener.env_value})
    try:
        assert sender.enabled
        assert sender.send("READY=1", "STATUS=line one\nline two")
        assert listener.messages(until="READY") == ["READY=1\nSTATUS=line one line two"]
    finally:
        sender.close()
    assert not sender.send("READY=1")


def test_notifier_without_socket_is_a_no_op() -> None:
    assert not notify.Notifier({}).enabled
    assert not notify.Notifier({}).send("READY=1")
    assert not notify.Notifier({"NOTIFY_SOCKET": "not-absolute"}).enabled


def test_notifier_to_a_vanished_socket_does_not_raise(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sender = notify.Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert sender.enabled
    assert sender.send("READY=1") is False
    sender.close()


def test_a_full_receiver_never_blocks_the_sender(listener: Listener) -> None:
    sender = notify.Notifier({"NOTIFY_SOCKET": listener.env_value})
    started = time.monotonic()
    results = [sender.send("STATUS=" + "x" * 1000) for _ in range(5000)]
    assert time.monotonic() - started < 10
    assert results[0] is True
    assert False in results  # the queue filled up and messages were dropped, not waited on
    sender.close()


def test_status_lines_ready_and_stopping(listener: Listener) -> None:
    answers = threading.Event()
    hooked = notify.SupervisorNotifier(
        notify.Notifier({"NOTIFY_SOCKET": listener.env_value}),
        ready_url="http://example.invalid/",
        ready_timeout=30,
        probe=lambda _url: answers.is_set(),
    )
    try:
        hooked.listener("starting", {"restarts": 0})
        hooked.listener("starting", {"restarts": 0})  # unchanged: no second STATUS
        hooked.listener("running", {"container_id": "0123456789abcdef", "restarts": 0})
        first = listener.messages(0.6)
        assert first == [
            "STATUS=starting the ECS agent",
            "STATUS=ECS agent running (container 0123456789ab, restarts 0)",
        ]
        assert not hooked.ready.is_set()  # the agent runs but does not answer yet
        answers.set()
        ready = listener.messages(3, until="READY=1")
        assert ready and ready[-1].startswith("READY=1\nSTATUS=ECS agent running;")
        assert hooked.ready.is_set()
        hooked.listener("backoff", {"exit_code": 1, "delay": 0.52, "restarts": 1})
        hooked.listener("docker-lost", {"restarts": 1})
        hooked.listener("running", {"container_id": "abcdef0123456789", "restarts": 1, "reattached": True})
        hooked.listener("stopped", {"exit_code": 0, "restarts": 1})
        later = listener.messages(0.6)
        assert later == [
            "STATUS=ECS agent exited with code 1; restarting in 0.5s (restarts 1)",
            "STATUS=lost the Docker daemon; waiting for it to return",
            "STATUS=ECS agent re-attached after a Docker restart (container abcdef012345, restarts 1)",
            "STATUS=ECS agent stopped (exit code 0)",
            "STOPPING=1",
        ]
        assert not any("READY=1" in m for m in later)  # READY is sent once
    finally:
        hooked.close()


def test_ready_after_the_bounded_wait_when_the_agent_never_answers(listener: Listener) -> None:
    hooked = notify.SupervisorNotifier(
        notify.Notifier({"NOTIFY_SOCKET": listener.env_value}),
        ready_url="http://127.0.0.1:9/v1/metadata",
        ready_timeout=0.5,
        probe=lambda _url: False,
    )
    try:
        started = time.monotonic()
        hooked.listener("running", {"container_id": "c", "restarts": 0})
        got = listener.messages(5, until="READY=1")
        assert got[-1].startswith(
            "READY=1\nSTATUS=ECS agent running; http://127.0.0.1:9/v1/metadata did not answer within"
        )
        assert 0.4 <= time.monotonic() - started < 4
    finally:
        hooked.close()


def test_the_listener_never_blocks_on_a_slow_probe(listener: Listener) -> None:
    release = threading.Event()

    def slow_probe(_url: str) -> bool:
        release.wait(10)
        return True

    hooked = notify.SupervisorNotifier(
        notify.Notifier({"NOTIFY_SOCKET": listener.env_value}), ready_timeout=30, probe=slow_probe
    )
    try:
        started = time.monotonic()
        hooked.listener("running", {"container_id": "c", "restarts": 0})
        assert time.monotonic() - started < 0.5
        release.set()
        assert any("READY=1" in m for m in listener.messages(3, until="READY=1"))
    finally:
        release.set()
        hooked.close()


def test_watchdog_pings(listener: Listener) -> None:
    hooked = notify.SupervisorNotifier(notify.Notifier({"NOTIFY_SOCKET": listener.env_value}), watchdog=0.05)
    try:
        got = listener.messages(0.6)
    finally:
        hooked.close()
    assert got.count("WATCHDOG=1") >= 4
    after = listener.messages(0.3)
    assert after == []  # closed: no more pings


class _Metadata(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        body = b'{"Cluster":"default"}'
        self.send_response(200 if self.path == "/v1/metadata" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_attach_reads_settings_and_probes_a_real_endpoint(listener: Listener, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/metadata"
    try:
        assert notify.probe_url(url)
        assert not notify.probe_url(url.replace("/v1/metadata", "/nope"))
        prefix = str(tmp_path)
        environ = {"ECS_INIT_PATH_PREFIX": prefix, "ECS_INIT_READY_URL": url, "NOTIFY_SOCKET": listener.env_value}
        ctx = HostContext(cfg=Config.load(environ=environ, paths=Paths(prefix=prefix)))

        class FakeSupervisor:
            listeners: list = []  # type: ignore[type-arg]

            def stalled(self) -> None:
                return None

        supervisor = FakeSupervisor()
        assert notify.attach(ctx, supervisor, {}) is None  # type: ignore[arg-type]
        hooked = notify.attach(ctx, supervisor, environ)  # type: ignore[arg-type]
        assert hooked is not None and supervisor.listeners == [hooked.listener]
        try:
            hooked.listener("running", {"container_id": "c", "restarts": 0})
            got = listener.messages(3, until="READY=1")
            assert got[-1] == f"READY=1\nSTATUS=ECS agent running; {url} answers"
        finally:
            hooked.close()
    finally:
        server.shutdown()
        server.server_close()
