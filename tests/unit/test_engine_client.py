"""The Engine API client against a stand-in daemon on a unix socket (tests/engine_stub.py).

Protocol-level behaviour the real dockerd cannot be made to show on demand:
API negotiation with old and new engines, HTTP framing, error mapping,
timeouts against a daemon that accepts connections but never answers, and
the bounded, chunked streaming of the image load. The same calls against
the real engine: tests/integration/test_engine_client_docker.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import time
from typing import Callable, Iterator, TypeVar

import pytest
from engine_stub import Reply, Request, StubEngine

from ecs_init.docker import answers, client, transport
from ecs_init.docker.api import LogLine, default_bridge
from ecs_init.docker.daemon import negotiate_api_version, wait_for_daemon
from ecs_init.docker.errors import Conflict, EngineError, EngineUnavailable, NotFound

T = TypeVar("T")


def bounded(func: Callable[[], T], timeout: float = 20.0) -> T:
    """Run ``func`` in a thread; fail (instead of hanging the suite) when it takes longer than ``timeout``."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(func())
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            error.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"still running after {timeout}s: a call that should be bounded hangs"
    if error:
        raise error[0]
    return result[0]


@pytest.fixture
def sockdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ecs-stub-", dir="/tmp")  # unix socket paths must stay short
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def stub(sockdir: str) -> Iterator[StubEngine]:
    with StubEngine(os.path.join(sockdir, "d.sock")) as engine:
        yield engine


def connect(stub: StubEngine) -> client.EngineClient:
    return client.connect(stub.host, 5)


# ------------------------------------------------------------ API negotiation (SPEC §5)


@pytest.mark.parametrize(
    "server,minimum,chosen",
    [
        ("1.41", "1.12", "1.41"),
        ("1.47", "1.24", "1.44"),  # newer engines: capped at 1.44
        ("1.44", "", "1.44"),
        ("1.25", "1.12", "1.25"),
        ("1.24", "1.12", "1.24"),  # older engines: the fallback range 1.21-1.24
        ("1.21", "", "1.21"),
        ("1.30", "1.28", "1.30"),
    ],
)
def test_negotiation_prefers_1_25_to_1_44_then_falls_back_to_1_21(server: str, minimum: str, chosen: str) -> None:
    assert negotiate_api_version(server, minimum) == chosen


@pytest.mark.parametrize("server,minimum", [("1.20", ""), ("", ""), ("garbage", ""), ("1.50", "1.45")])
def test_negotiation_refuses_what_it_cannot_speak_in_one_line(server: str, minimum: str) -> None:
    with pytest.raises(EngineError) as err:
        negotiate_api_version(server, minimum)
    assert "this program speaks 1.21-1.44" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("reported", ["1.24", "1.41"])
def test_every_call_uses_the_negotiated_version(sockdir: str, reported: str) -> None:
    with StubEngine(os.path.join(sockdir, "d.sock"), api_version=reported) as stub:
        stub.routes["GET", "/images/amazon/amazon-ecs-agent:latest/json"] = lambda r: Reply(200, {"Id": "sha256:1"})
        engine = connect(stub)
        assert engine.api_version == reported
        assert engine.server_version["ApiVersion"] == reported
        assert engine.image_id("amazon/amazon-ecs-agent:latest") == "sha256:1"
        assert engine.container_state("ecs-agent") is None
        versioned = [r for r in stub.requests if r.path not in ("/version", "/_ping")]
        assert versioned and {r.api_version for r in versioned} == {reported}
        asked = [r for r in stub.requests if r.path in ("/version", "/_ping")]
        assert asked and {r.api_version for r in asked} == {None}  # asked unversioned: any engine answers
        # an engine of 1.25 or later names its version in /_ping's headers (cheap); an older one is asked /version
        assert ("/version" in [r.path for r in asked]) is (reported == "1.24")


# ------------------------------------------------------------ framing and errors


def test_chunked_content_length_and_eof_bodies(stub: StubEngine) -> None:
    doc = [{"Name": "bridge", "Options": {"com.docker.network.bridge.default_bridge": "true",
                                         "com.docker.network.bridge.name": "docker0"}}]  # fmt: skip
    raw = json.dumps(doc).encode()
    stub.routes["GET", "/networks"] = lambda r: Reply(200, chunks=[raw[:7], raw[7:30], raw[30:]])
    stub.routes["GET", "/info"] = lambda r: Reply(200, {"DockerRootDir": "/srv/docker"})
    eof_body = b'{"Id": "sha256:eof"}'
    stub.routes["GET", "/images/x/json"] = lambda r: Reply(raw=b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n" + eof_body)
    engine = connect(stub)
    assert default_bridge(engine.networks()) == "docker0"
    assert engine.info()["DockerRootDir"] == "/srv/docker"
    assert engine.image_id("x") == "sha256:eof"


def test_interim_100_continue_is_skipped(stub: StubEngine) -> None:
    body = b'{"Id": "sha256:after"}'
    stub.routes["GET", "/images/x/json"] = lambda r: Reply(
        raw=b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert connect(stub).image_id("x") == "sha256:after"


@pytest.mark.parametrize(
    "raw,problem",
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "answered something that is not HTTP"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}", "closed the connection before answering in full"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "sent a malformed chunk"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n", "sent over-long headers"),
        (b"", "closed the connection before answering in full"),
    ],
)
def test_broken_answers_are_one_clear_line(stub: StubEngine, raw: bytes, problem: str) -> None:
    stub.routes["GET", "/info"] = lambda r: Reply(raw=raw)
    with pytest.raises(EngineUnavailable) as err:
        connect(stub).info()
    text = str(err.value)
    assert problem in text and f"Docker at {stub.host}" in text and "\n" not in text


def test_error_statuses_map_to_the_boundary_exceptions(stub: StubEngine) -> None:
    in_use = {"message": 'Conflict. The name "/ecs-agent" is in use'}
    stub.routes["POST", "/containers/create"] = lambda r: Reply(409, in_use)
    stub.routes["POST", "/containers/ecs-agent/start"] = lambda r: Reply(500, b"plain text failure\nsecond line")
    stub.routes["POST", "/containers/gone/start"] = lambda r: Reply(404, {"message": "No such container: gone"})
    engine = connect(stub)
    with pytest.raises(Conflict) as conflict:
        engine.create_container("ecs-agent", {"Image": "i"})
    assert conflict.value.status == 409 and "is in use" in conflict.value.message
    with pytest.raises(EngineError) as failed:
        engine.start_container("ecs-agent")
    assert type(failed.value) is EngineError and failed.value.status == 500
    assert str(failed.value) == "plain text failure"
    with pytest.raises(NotFound, match="No such container: gone"):
        engine.start_container("gone")
    assert isinstance(failed.value, Exception) and failed.value.exit_code == 255  # an InitError: one line, 255


def test_remove_and_stop_outcomes(stub: StubEngine) -> None:
    stub.routes["DELETE", "/containers/a"] = lambda r: Reply(204)
    in_progress = {"message": "removal of container b is already in progress"}
    stub.routes["DELETE", "/containers/b"] = lambda r: Reply(409, in_progress)
    stub.routes["DELETE", "/containers/c"] = lambda r: Reply(409, {"message": "container c is paused"})
    stub.routes["POST", "/containers/a/stop"] = lambda r: Reply(204)
    stub.routes["POST", "/containers/b/stop"] = lambda r: Reply(304)
    engine = connect(stub)
    assert engine.remove_container("a") is True
    assert engine.remove_container("b") is True
    assert engine.remove_container("missing") is False
    with pytest.raises(Conflict):
        engine.remove_container("c")
    assert engine.stop_container("a", 7) is True
    assert engine.stop_container("b") is False  # not running
    assert engine.stop_container("missing") is False
    stop = next(r for r in stub.requests if r.path == "/containers/a/stop")
    assert stop.query == {"t": "7"}
    remove = next(r for r in stub.requests if r.path == "/containers/a")
    assert remove.query == {"force": "1"}


def test_unix_only_and_missing_socket(sockdir: str) -> None:
    with pytest.raises(EngineUnavailable, match="only unix:// sockets"):
        client.connect_quick("tcp://127.0.0.1:2375", 1)
    missing = f"unix://{sockdir}/none.sock"
    with pytest.raises(EngineUnavailable) as err:
        client.connect_quick(missing, 1)
    assert str(err.value) == f"Docker at {missing} does not answer: no socket at that path"


# ------------------------------------------------------------ request bodies


def test_create_sends_exactly_the_body_given(stub: StubEngine, monkeypatch: pytest.MonkeyPatch, sockdir: str) -> None:
    """No proxy settings from ~/.docker/config.json (the SDK added them): the body as given."""
    home = os.path.join(sockdir, "home")
    os.makedirs(os.path.join(home, ".docker"))
    with open(os.path.join(home, ".docker", "config.json"), "w") as fh:
        json.dump({"proxies": {"default": {"httpProxy": "http://proxy:3128", "noProxy": "localhost"}}}, fh)
    monkeypatch.setenv("HOME", home)
    stub.routes["POST", "/containers/create"] = lambda r: Reply(201, {"Id": "c" * 64, "Warnings": []})
    body = {"Image": "amazon/amazon-ecs-agent:latest", "Env": ["A=1", "B=two words"], "Labels": {"x": "y"},
            "HostConfig": {"NetworkMode": "host", "Binds": ["/a:/b:ro"], "Init": True}}  # fmt: skip
    assert connect(stub).create_container("ecs-agent", body) == "c" * 64
    sent = next(r for r in stub.requests if r.path == "/containers/create")
    assert sent.query == {"name": "ecs-agent"}
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == body


class RecordingReader:
    """A file that records every read size (the load must read in bounded chunks)."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)
        self.sizes: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.sizes.append(size)
        return self.inner.read(size)


def test_load_streams_the_archive_chunked_in_bounded_reads(stub: StubEngine) -> None:
    data = os.urandom(3 * transport.SEND_CHUNK + 123)
    messages = [b'{"stream":"Loaded image: amazon/amazon-ecs-agent:latest\\n"}\r\n',
                b'{"stream":"Loaded image ID: sha256:abc\\n"}\r\n']  # fmt: skip
    stub.routes["POST", "/images/load"] = lambda r: Reply(200, chunks=messages)
    reader = RecordingReader(data)
    assert connect(stub).load_image(reader) == ["amazon/amazon-ecs-agent:latest", "sha256:abc"]
    sent = next(r for r in stub.requests if r.path == "/images/load")
    assert sent.headers["transfer-encoding"] == "chunked" and "content-length" not in sent.headers
    assert sent.headers["content-type"] == "application/x-tar" and sent.query == {"quiet": "1"}
    assert sent.body == data
    assert max(reader.sizes) == transport.SEND_CHUNK  # never "the whole file"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, chunks=[b'{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF\\nmore"}']),
        Reply(500, {"message": "unexpected EOF"}),
    ],
    ids=["error-in-stream", "error-status"],
)
def test_refused_archive_is_one_line(stub: StubEngine, reply: Reply) -> None:
    stub.routes["POST", "/images/load"] = lambda r: reply
    with pytest.raises(EngineError) as err:
        connect(stub).load_image(io.BytesIO(b"not a tar"))
    assert str(err.value) == "Docker refused the image archive: unexpected EOF"
    assert not isinstance(err.value, EngineUnavailable)


def test_daemon_dropping_the_load_is_engine_unavailable(stub: StubEngine) -> None:
    cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"
    stub.routes["POST", "/images/load"] = lambda r: Reply(raw=cut)
    with pytest.raises(EngineUnavailable, match="^lost the Docker daemon while loading the image: "):
        connect(stub).load_image(io.BytesIO(b"x" * 1000))


# ------------------------------------------------------------ a daemon that accepts and never answers


def test_hung_daemon_bounds_every_call(sockdir: str) -> None:
    with StubEngine(os.path.join(sockdir, "d.sock"), hang=True) as stub:
        started = time.monotonic()
        with pytest.raises(EngineUnavailable) as err:
            bounded(lambda: client.connect_quick(stub.host, 0.5))
        assert time.monotonic() - started < 2
        assert str(err.value) == f"Docker at {stub.host} does not answer: no answer within 0.5s (GET /version)"
        probe = client.EngineClient(stub.host, {"ApiVersion": "1.41"}, probe_timeout=0.3)
        started = time.monotonic()
        assert probe.probe() is False
        assert time.monotonic() - started < 2


def test_quick_client_stops_waiting_after_the_first_silence(stub: StubEngine) -> None:
    stub.hang_paths.add("/containers/ecs-agent/json")
    engine = client.connect_quick(stub.host, 0.5)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="does not answer"):
        engine.container_state("ecs-agent")
    with pytest.raises(EngineUnavailable, match="does not answer"):
        engine.image_id("amazon/amazon-ecs-agent:latest")  # at once: no second timeout
    assert time.monotonic() - started < 1.5
    assert "GET /images/amazon/amazon-ecs-agent:latest/json" not in stub.paths()


def test_wait_for_daemon_against_a_hung_daemon_does_not_spin(sockdir: str) -> None:
    with StubEngine(os.path.join(sockdir, "d.sock"), hang=True) as stub:
        started = time.monotonic()
        with pytest.raises(EngineUnavailable) as err:
            bounded(lambda: wait_for_daemon(stub.host, 3, attempt_timeout=1))
        elapsed = time.monotonic() - started
        assert 2.5 < elapsed < 5
        assert "did not answer within 3s" in str(err.value) and "no answer within" in str(err.value)
        assert stub.connections <= 3  # one attempt per timeout plus backoff, never a busy loop


def test_stop_is_bounded_by_its_timeout(stub: StubEngine) -> None:
    stub.hang_paths.add("/containers/ecs-agent/stop")
    engine = connect(stub)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="no answer within 1s"):
        bounded(lambda: engine.stop_container("ecs-agent", 10, timeout=1))
    assert time.monotonic() - started < 2


def test_wait_pings_the_daemon_while_silent_and_returns_the_code(stub: StubEngine) -> None:
    def slow_wait(_req: Request) -> Reply:
        time.sleep(1.2)
        return Reply(200, {"StatusCode": 3, "Error": None})

    stub.routes["POST", "/containers/ecs-agent/wait"] = slow_wait
    engine = client.EngineClient(stub.host, {"ApiVersion": "1.41"}, wait_probe_interval=0.3, probe_timeout=1)
    assert bounded(lambda: engine.wait_container("ecs-agent")) == 3
    assert stub.paths().count("GET /_ping") >= 2  # the daemon was asked while the wait was silent


def test_wait_calls_on_idle_after_each_ping_the_daemon_answered(stub: StubEngine) -> None:
    def slow_wait(_req: Request) -> Reply:
        time.sleep(1.2)
        return Reply(200, {"StatusCode": 0})

    stub.routes["POST", "/containers/ecs-agent/wait"] = slow_wait
    engine = client.EngineClient(stub.host, {"ApiVersion": "1.41"}, wait_probe_interval=0.3, probe_timeout=1)
    beats: list[float] = []
    assert bounded(lambda: engine.wait_container("ecs-agent", on_idle=lambda: beats.append(time.monotonic()))) == 0
    assert len(beats) >= 2 and len(beats) == stub.paths().count("GET /_ping")  # one beat per answered ping


def test_wait_does_not_call_on_idle_when_the_ping_is_not_answered(stub: StubEngine) -> None:
    stub.hang_paths.update({"/containers/ecs-agent/wait", "/_ping"})
    engine = client.EngineClient(stub.host, {"ApiVersion": "1.41"}, wait_probe_interval=0.3, probe_timeout=0.3)
    beats: list[float] = []
    with pytest.raises(EngineUnavailable):
        bounded(lambda: engine.wait_container("ecs-agent", on_idle=lambda: beats.append(time.monotonic())))
    assert beats == []


def test_wait_on_a_daemon_that_stopped_answering_raises(stub: StubEngine) -> None:
    stub.hang_paths.update({"/containers/ecs-agent/wait", "/_ping"})
    engine = client.EngineClient(stub.host, {"ApiVersion": "1.41"}, wait_probe_interval=0.3, probe_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="does not answer: no answer to a ping within 0.3s"):
        bounded(lambda: engine.wait_container("ecs-agent"))
    assert time.monotonic() - started < 3


def test_wait_has_no_deadline_of_its_own(stub: StubEngine) -> None:
    release = threading.Event()
    stub.routes["POST", "/containers/ecs-agent/wait"] = lambda r: (release.wait(10), Reply(200, {"StatusCode": 0}))[1]
    engine = client.EngineClient(stub.host, {"ApiVersion": "1.41"}, timeout=0.2, wait_probe_interval=0.2)
    threading.Timer(1.0, release.set).start()
    assert bounded(lambda: engine.wait_container("ecs-agent")) == 0  # lasted 5x the per-call timeout


# ------------------------------------------------------------ logs


def frame(stream: int, text: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(text).to_bytes(4, "big") + text


def test_demux_keeps_order_and_streams() -> None:
    data = (
        frame(1, b"2024-01-01T00:00:01.000000000Z out one\n")
        + frame(2, b"2024-01-01T00:00:02.000000000Z err one\n")
        + frame(1, b"2024-01-01T00:00:03.000000000Z out ")
        + frame(1, b"two\n")
        + frame(2, b"2024-01-01T00:00:04.000000000Z err two, no newline")
    )
    assert answers.demux(data) == [
        LogLine("stdout", "2024-01-01T00:00:01.000000000Z out one"),
        LogLine("stderr", "2024-01-01T00:00:02.000000000Z err one"),
        LogLine("stdout", "2024-01-01T00:00:03.000000000Z out two"),
        LogLine("stderr", "2024-01-01T00:00:04.000000000Z err two, no newline"),
    ]


def test_demux_of_a_tty_stream_is_raw_text() -> None:
    assert answers.demux(b"2024 a\r\n2024 b\n") == [LogLine("stdout", "2024 a"), LogLine("stdout", "2024 b")]


def test_logs_tail_asks_for_both_streams_with_timestamps(stub: StubEngine) -> None:
    frames = [frame(1, b"t1 a\n"), frame(2, b"t2 b\n")]
    stub.routes["GET", "/containers/ecs-agent/logs"] = lambda r: Reply(200, chunks=frames)
    engine = connect(stub)
    assert engine.logs_tail("ecs-agent", 200) == [LogLine("stdout", "t1 a"), LogLine("stderr", "t2 b")]
    assert engine.logs_tail("missing") == []
    sent = next(r for r in stub.requests if r.path == "/containers/ecs-agent/logs")
    assert sent.query == {"stdout": "1", "stderr": "1", "timestamps": "1", "tail": "200"}


def test_quote_encodes_names_and_keeps_image_references() -> None:
    assert client.quote("amazon/amazon-ecs-agent:latest", "/:@") == "amazon/amazon-ecs-agent:latest"
    assert client.quote("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9"
