"""The invocation locks (lock.py): waiting, timeouts, stale locks, the start scope."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ecs_init.core import lock
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.exitcodes import Exit
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_ctx(prefix: str, **env: str) -> HostContext:
    environ = {"ECS_INIT_PATH_PREFIX": prefix, **env}
    return HostContext(cfg=Config.load(environ=environ, paths=Paths(prefix=prefix)))


def test_lock_paths_are_in_the_run_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(str(tmp_path))
    assert lock.action_lock_path(ctx.paths) == str(tmp_path) + "/var/run/ecs-init/ecs-init.lock"
    assert lock.supervisor_lock_path(ctx.paths) == str(tmp_path) + "/var/run/ecs-init/ecs-init-supervisor.lock"
    assert lock.lock_timeout(ctx.cfg) == lock.DEFAULT_LOCK_TIMEOUT
    assert lock.lock_timeout(make_ctx(str(tmp_path), ECS_INIT_LOCK_TIMEOUT="2.5").cfg) == 2.5


def test_acquire_creates_the_run_dir_and_records_the_holder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(str(tmp_path))
    held = lock.action_lock(ctx.cfg, "pre-start")
    with held:
        assert held.held
        assert held.holder() == f"pid={os.getpid()} action=pre-start"
    assert not held.held
    held.release()  # idempotent


def test_second_holder_times_out_with_a_clear_error(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "run" / "x.lock")
    first = lock.FileLock(path, "post-stop").acquire()
    try:
        second = lock.FileLock(path, "pre-start", timeout=0.3)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="ecs_init.core.lock"), pytest.raises(lock.LockTimeout) as info:
            second.acquire()
        waited = time.monotonic() - started
        assert 0.25 <= waited < 3
        assert info.value.exit_code == Exit.FAILURE
        assert isinstance(info.value, InitError)
        assert "action=post-stop" in str(info.value) and "ECS_INIT_LOCK_TIMEOUT" in str(info.value)
        assert any("waiting up to" in r.getMessage() and "action=post-stop" in r.getMessage() for r in caplog.records)
        assert not second.held
    finally:
        first.release()


def test_waiter_gets_the_lock_when_the_holder_releases(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "x.lock")
    first = lock.FileLock(path, "pre-start").acquire()
    timer = threading.Timer(0.5, first.release)
    timer.start()
    try:
        with caplog.at_level(logging.INFO, logger="ecs_init.core.lock"):
            started = time.monotonic()
            with lock.FileLock(path, "post-stop", timeout=10) as second:
                waited = time.monotonic() - started
                assert second.holder() == f"pid={os.getpid()} action=post-stop"
        assert 0.4 <= waited < 5
        messages = [r.getMessage() for r in caplog.records]
        assert any("waiting up to" in m for m in messages)
        assert any("got the lock" in m for m in messages)
    finally:
        timer.cancel()


def test_two_holders_never_overlap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "x.lock")
    inside = 0
    overlaps = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, overlaps
        for _ in range(5):
            with lock.FileLock(path, "worker", timeout=30):
                with guard:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.01)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert overlaps == 0


def test_a_lock_of_a_killed_process_never_blocks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "run" / "ecs-init.lock")
    code = (
        "import sys, time\n"
        "from ecs_init.core.lock import FileLock\n"
        f"FileLock({path!r}, 'pre-start').acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    holder = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(lock.LockTimeout):
            lock.FileLock(path, "post-stop", timeout=0.2).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        # The file (and its holder record) is left behind, but the lock died with the process.
        assert os.path.exists(path)
        started = time.monotonic()
        with lock.FileLock(path, "post-stop", timeout=5):
            assert time.monotonic() - started < 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout:
            holder.stdout.close()


def test_a_symlinked_lock_file_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "elsewhere"
    outside.write_text("precious\n")
    os.makedirs(tmp_path / "run")
    os.symlink(outside, tmp_path / "run" / "ecs-init.lock")
    with pytest.raises(InitError, match="refusing the lock file .* a symlink"):
        lock.FileLock(str(tmp_path / "run" / "ecs-init.lock"), "pre-start", timeout=0.1).acquire()
    assert outside.read_text() == "precious\n"


