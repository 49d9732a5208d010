"""Crash-loop behaviour measured on the real engine (issue 7, item 4).

The stand-in exits 1 at once on every run while <data>/standin-exit holds
"1". The restart delays are read two ways: the supervisor's own log line
("restarting the agent in X s") and the Docker events (die -> next start).
Expected: 0.5, 1, 2, 4 s (±10 % jitter), then, once the agent has stayed up
for ECS_INIT_BACKOFF_RESET_SECONDS, back to 0.5 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time

import pytest
from helpers import Supervised, install_tarball, run_cli, wait_metadata

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NOMINAL = [0.5, 1.0, 2.0, 4.0]
# die -> next start also covers remove + create + start of the container
# on a loaded 2-core machine.
OVERHEAD = 3.0


class Events:
    """`docker events` for the agent container (start/die), timestamped by the daemon."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [
                "docker", "events",
                "--filter", "container=ecs-agent",
                "--filter", "event=start",
                "--filter", "event=die",
                "--format", "{{.Action}} {{.TimeNano}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.items: list[tuple[str, float]] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            action, _, nanos = line.strip().partition(" ")
            with self.changed:
                self.items.append((action, int(nanos) / 1e9))
                self.changed.notify_all()

    def wait_count(self, action: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while sum(1 for a, _ in self.items if a == action) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def times(self, action: str) -> list[float]:
        with self.changed:
            return [t for a, t in self.items if a == action]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


def _delays(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"restarting the agent in ([0-9.]+)s", text)]


def test_crash_loop_backoff_and_reset(prefix: str, standin_dir: str, docker_lock: None) -> None:
    install_tarball(prefix, os.path.join(standin_dir, "ecs-agent-v1.tar"), state="2")
    assert run_cli(prefix, "reload-cache").returncode == 0
    data = os.path.join(prefix, "var/lib/ecs/data")
    crash = os.path.join(data, "standin-exit")
    with open(crash, "w") as fh:
        fh.write("1")

    events = Events()
    time.sleep(0.5)  # let `docker events` subscribe
    try:
        with Supervised(prefix, ECS_INIT_BACKOFF_RESET_SECONDS="3") as sup:
            assert events.wait_count("die", 4, 60), sup.text()
            os.unlink(crash)  # the 5th run stays up
            assert events.wait_count("start", 5, 30), sup.text()
            assert wait_metadata(30), sup.text()

            dies, starts = events.times("die"), events.times("start")
            gaps = [starts[i + 1] - dies[i] for i in range(4)]
            logged = _delays(sup.text())[:4]
            assert len(logged) == 4, sup.text()
            for nominal, delay, gap in zip(NOMINAL, logged, gaps):
                assert nominal * 0.9 - 0.006 <= delay <= nominal * 1.1 + 0.006, (logged, gaps)  # logged as %.2f
                assert delay - 0.05 <= gap <= delay + OVERHEAD, (logged, gaps)
            assert logged == sorted(logged)

            # The agent has now been up longer than the reset window: the next
            # crash is restarted after 0.5 s again, not 8 s.
            time.sleep(3.5)
            with open(os.path.join(data, "standin-exit-once"), "w") as fh:
                fh.write("1")
            assert events.wait_count("start", 6, 30), sup.text()
            assert wait_metadata(30), sup.text()
            after_reset = _delays(sup.text())[4]
            assert 0.444 <= after_reset <= 0.556, sup.text()
            gap = events.times("start")[5] - events.times("die")[4]
            assert after_reset - 0.05 <= gap <= after_reset + OVERHEAD
            print(f"logged delays {logged} + {after_reset}; measured die->start gaps {[round(g, 2) for g in gaps]}")
            assert sup.terminate() == 0
    finally:
        events.close()
