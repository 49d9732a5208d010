"""The pure rules of healing (health.py) and the introspection probe (probe.py), issue 22 item 1.

The tracker and the heartbeat take a fake clock; the probe runs against
real sockets on loopback: a server that answers, one that accepts and never
answers (a hung agent), one that trickles, and a closed port.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from typing import Iterator

import pytest

from ecs_init.agent import health, probe
from ecs_init.agent.health import HealthPolicy, HealthTracker, Heartbeat, Verdict, stall_reason
from ecs_init.core.config import Config, Paths


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def policy(interval: float = 30, timeout: float = 300, ready: float = 120) -> HealthPolicy:
    return HealthPolicy(interval=interval, timeout=timeout, ready_timeout=ready)


# ------------------------------------------------------------ settings


def cfg(tmp_path: object, **environ: str) -> Config:
    return Config.load(environ=environ, paths=Paths(prefix=str(tmp_path)))


def test_policy_defaults_and_settings(tmp_path: object) -> None:
    default = HealthPolicy.from_config(cfg(tmp_path))
    assert (default.interval, default.timeout, default.ready_timeout, default.enabled) == (30, 300, 120, True)
    assert default.probe_timeout == health.HEALTH_PROBE_TIMEOUT == 5
    set_ = HealthPolicy.from_config(
        cfg(tmp_path, ECS_INIT_HEALTH_INTERVAL="2", ECS_INIT_HEALTH_TIMEOUT="10", ECS_INIT_READY_TIMEOUT="7")
    )
    assert (set_.interval, set_.timeout, set_.ready_timeout, set_.probe_timeout) == (2, 10, 7, 2)
    assert not HealthPolicy.from_config(cfg(tmp_path, ECS_INIT_HEALTH_TIMEOUT="0")).enabled


def test_policy_bad_values_fall_back_to_the_default(tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    """The settings table's rule: out of range (0.1-3600 s) or not a number -> one warning, the default."""
    assert HealthPolicy.from_config(cfg(tmp_path, ECS_INIT_HEALTH_INTERVAL="0")).interval == 30
    assert "ECS_INIT_HEALTH_INTERVAL='0' is out of range [0.1, 3600]; using 30" in caplog.text
    assert HealthPolicy.from_config(cfg(tmp_path, ECS_INIT_HEALTH_INTERVAL="junk")).interval == 30
    assert HealthPolicy.from_config(cfg(tmp_path, ECS_INIT_HEALTH_INTERVAL="1e9")).interval == 30
    assert HealthPolicy.from_config(cfg(tmp_path, ECS_INIT_HEALTH_TIMEOUT="-1")).timeout == 300


# ------------------------------------------------------------ the tracker


def test_an_agent_that_answered_is_healed_timeout_seconds_after_its_last_answer() -> None:
    t = HealthTracker(policy(), started=0.0)
    assert t.observe(True, 10.0) is Verdict.HEALTHY
    assert t.observe(False, 40.0) is Verdict.FAILING
    assert t.counting(40.0) and t.failing_for(40.0) == 30.0 and t.deadline() == 310.0
    assert t.observe(False, 309.9) is Verdict.FAILING
    assert t.observe(False, 310.0) is Verdict.HEAL
    assert t.observe(False, 340.0) is Verdict.HEAL  # still due (the monitor decides about retries)


def test_one_answer_resets_the_count() -> None:
    t = HealthTracker(policy(), started=0.0)
    t.observe(True, 10.0)
    t.observe(False, 200.0)
    assert t.observe(True, 290.0) is Verdict.HEALTHY
    assert t.deadline() is None and t.failing_for(300.0) == 0.0
    assert t.observe(False, 320.0) is Verdict.FAILING
    assert t.observe(False, 589.0) is Verdict.FAILING  # 299 s after the last answer
    assert t.observe(False, 590.0) is Verdict.HEAL


def test_an_agent_that_never_answered_first_gets_the_readiness_timeout() -> None:
    t = HealthTracker(policy(timeout=300, ready=120), started=0.0)
    assert t.observe(False, 1.0) is Verdict.FAILING
    assert not t.counting(1.0) and t.failing_for(1.0) == 0.0
    assert t.observe(False, 119.0) is Verdict.FAILING and not t.counting(119.0)
    assert t.counting(120.0) and t.failing_for(150.0) == 30.0
    assert t.observe(False, 419.0) is Verdict.FAILING
    assert t.observe(False, 420.0) is Verdict.HEAL  # ready timeout + health timeout


def test_a_late_first_answer_counts_from_that_answer() -> None:
    t = HealthTracker(policy(timeout=300, ready=120), started=0.0)
    t.observe(False, 50.0)
    t.observe(True, 200.0)
    assert t.observe(False, 230.0) is Verdict.FAILING
    assert t.deadline() == 500.0


def test_a_reattach_observes_afresh() -> None:
    t = HealthTracker(policy(), started=0.0)
    t.observe(True, 10.0)
    t.observe(False, 100.0)
    t.resume(400.0)  # Docker was away: its silence does not count
    assert not t.failing and t.last_ok == 400.0
    assert t.observe(False, 430.0) is Verdict.FAILING and t.deadline() == 700.0
    never = HealthTracker(policy(), started=0.0)
    never.resume(50.0)
    assert never.last_ok is None  # it never answered: its readiness grace still runs from its start


def test_next_probe_is_the_interval_sooner_at_a_deadline_or_before_the_first_answer() -> None:
    t = HealthTracker(policy(interval=30, timeout=45), started=0.0)
    assert t.next_probe_in(0.0) == health.FIRST_ANSWER_POLL  # until it answered once
    t.observe(True, 1.0)
    assert t.next_probe_in(1.0) == 30.0
    t.observe(False, 31.0)  # deadline 1 + 45 = 46
    assert t.next_probe_in(31.0) == 15.0  # probe at the deadline, not one interval later
    assert t.next_probe_in(46.0) == 30.0  # past it: back to the interval (the monitor retries each interval)
    assert HealthTracker(policy(interval=0.01), started=0.0).next_probe_in(0.0) == health.MIN_INTERVAL / 2


def test_an_infinite_timeout_never_heals() -> None:
    t = HealthTracker(policy(timeout=float("inf")), started=0.0)
    t.observe(True, 1.0)
    assert t.observe(False, 1e12) is Verdict.FAILING
    assert t.next_probe_in(1e12) == 30.0


# ------------------------------------------------------------ the heartbeat


def test_heartbeat_lease_and_extra() -> None:
    clock = Clock(0.0)
    beat = Heartbeat(lease=10.0, clock=clock)
    assert beat.fresh()  # created beating
    clock.now = 10.0
    assert beat.fresh()
    clock.now = 10.1
    assert not beat.fresh() and beat.silent_for() == pytest.approx(10.1)
    beat.beat(extra=100.0)  # at 10.1, a long step announced: due at 120.1
    clock.now = 120.0
    assert beat.fresh()
    clock.now = 120.2
    assert not beat.fresh()


class _Monitor:
    def __init__(self, reason: str | None) -> None:
        self.reason = reason

    def healing_failed(self) -> str | None:
        return self.reason


def test_stall_reason() -> None:
    clock = Clock(0.0)
    beat = Heartbeat(lease=5.0, clock=clock)
    assert stall_reason(beat, None) is None
    assert stall_reason(beat, _Monitor(None)) is None  # type: ignore[arg-type]
    assert stall_reason(beat, _Monitor("the agent is unhealthy and stopping it failed: x")) == (  # type: ignore[arg-type]
        "the agent is unhealthy and stopping it failed: x"
    )
    clock.now = 7.0
    assert stall_reason(beat, None) == "the supervision loop made no progress for 7s"


# ------------------------------------------------------------ the probe


def test_parse_url() -> None:
    assert probe.parse_url("http://127.0.0.1:51678/v1/metadata") == probe.Target("127.0.0.1", 51678, "/v1/metadata")
    assert probe.parse_url("http://localhost/") == probe.Target("localhost", 80, "/")
    assert probe.parse_url("http://localhost") == probe.Target("localhost", 80, "/")
    assert probe.parse_url("http://[::1]:8080/x?y=1") == probe.Target("::1", 8080, "/x?y=1")
    for bad in (
        "https://127.0.0.1/", "ftp://x/", "http://", "http://:80/", "http://h:0/", "http://h:99999/",
        "http://h:x/", "http://u:p@h/", "http://[::1/", "http://[::1]x/", "http://h/a b", "",
    ):  # fmt: skip
        assert probe.parse_url(bad) is None, bad


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(200 if self.path == "/v1/metadata" else 503)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def silent() -> Iterator[tuple[socket.socket, int]]:
    """A port that accepts connections (the kernel's backlog) and never answers: a hung agent."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock, sock.getsockname()[1]
    sock.close()


def test_probe_answers_2xx_only(server: str) -> None:
    assert probe.probe_url(server + "/v1/metadata")
    assert not probe.probe_url(server + "/other")  # 503


def test_probe_of_a_hung_endpoint_is_bounded(silent: tuple[socket.socket, int]) -> None:
    started = time.monotonic()
    assert not probe.probe_url(f"http://127.0.0.1:{silent[1]}/v1/metadata", timeout=0.5)
    assert 0.4 <= time.monotonic() - started < 2


def test_probe_of_a_trickling_endpoint_is_bounded_in_all(silent: tuple[socket.socket, int]) -> None:
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = silent[0].accept()
        with conn:
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"H")  # never a whole status line
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        assert not probe.probe_url(f"http://127.0.0.1:{silent[1]}/v1/metadata", timeout=0.6)
        assert time.monotonic() - started < 2
    finally:
        stop.set()
        thread.join(5)


def test_probe_of_a_closed_port_or_a_bad_url_is_false() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    assert not probe.probe_url(f"http://127.0.0.1:{port}/v1/metadata")
    assert not probe.probe_url("https://127.0.0.1/v1/metadata")
    assert not probe.probe_url("not a url")
