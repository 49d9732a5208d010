"""Mutual exclusion between concurrent invocations (pre-start, start, post-stop).

Two locks, both ``flock(2)`` on files in the run directory, so a lock dies
with its process: a holder that was SIGKILLed never blocks anyone.

* ``ecs-init.lock`` (the action lock) is held by ``pre-start`` and
  ``post-stop`` for their whole run and by ``start`` only while it sets up,
  until the agent container has been started (or the first start failed and
  the supervisor backs off). Host preparation, teardown and the creation of
  the agent container therefore never interleave.
* ``ecs-init-supervisor.lock`` is held by ``start`` for its whole life, and
  by nothing else: a second ``start`` cannot fight the first over the
  ``ecs-agent`` container, while ``stop``/``post-stop`` (which systemd and
  upstart run while, or after, ``start`` exits) are never blocked by it.

A waiter logs who holds the lock and waits up to ``ECS_INIT_LOCK_TIMEOUT``
seconds (default 60), then fails with an InitError (exit 255).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from types import TracebackType

from ecs_init.core import settings
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.fsutil import kind_name, path_kind, read_regular
from ecs_init.core.paths import Paths

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Callable

log = logging.getLogger(__name__)

ACTION_LOCK = "ecs-init.lock"
SUPERVISOR_LOCK = "ecs-init-supervisor.lock"
DEFAULT_LOCK_TIMEOUT = settings.LOCK_TIMEOUT.default_number
POLL_INTERVAL = 0.1
MAX_HOLDER_BYTES = 256


class LockTimeout(InitError):
    """Another invocation held the lock for longer than the timeout."""


def action_lock_path(paths: Paths) -> str:
    return os.path.join(paths.run_dir, ACTION_LOCK)


def supervisor_lock_path(paths: Paths) -> str:
    return os.path.join(paths.run_dir, SUPERVISOR_LOCK)


def lock_timeout(cfg: Config) -> float:
    return cfg.seconds(settings.LOCK_TIMEOUT)


class FileLock:
    """An exclusive ``flock`` on ``path``; the file records the holder (pid, action)."""

    def __init__(
        self,
        path: str,
        action: str,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.path = path
        self.action = action
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def holder(self) -> str:
        """Who holds the lock, as recorded in the file ("" when unknown)."""
        try:
            raw = read_regular(self.path, MAX_HOLDER_BYTES, follow_symlinks=False)
        except OSError:
            return ""
        return raw.decode("utf-8", errors="replace").strip().replace("\n", " ")

    def acquire(self) -> FileLock:
        """Take the lock, waiting up to ``timeout`` seconds; raise LockTimeout after that."""
        if self.fd is not None:
            return self
        fd = self._open()
        try:
            self._wait_for(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid={os.getpid()} action={self.action}\n".encode())
        except OSError:
            pass  # the record is informational only
        return self

    def _open(self) -> int:
        """The lock file's fd: a regular file, never reached through a symlink, never blocking on a FIFO
        and never a device (the agent container can write the run directory). InitError otherwise."""
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            kind = path_kind(self.path)
            if kind in (None, "a regular file"):
                flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                fd = os.open(self.path, flags, 0o644)
                try:
                    kind = kind_name(os.fstat(fd).st_mode)
                except OSError:
                    os.close(fd)
                    raise
                if kind == "a regular file":
                    return fd
                os.close(fd)
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise InitError(f"cannot open the lock file {self.path}: {err.strerror or err}") from err
            kind = "a symlink"
        raise InitError(f"refusing the lock file {self.path}: it is {kind}, not a regular file (remove it)")

    def _wait_for(self, fd: int) -> None:
        deadline = self.clock() + self.timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if announced:
                    log.info("%s: got the lock %s", self.action, self.path)
                return
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise InitError(f"cannot lock {self.path}: {err.strerror or err}") from err
            remaining = deadline - self.clock()
            holder = self.holder() or "another amazon-ecs-init"
            if remaining <= 0:
                raise LockTimeout(
                    f"{self.action}: {self.path} is still held by {holder} after {self.timeout:.0f}s"
                    " (ECS_INIT_LOCK_TIMEOUT); another amazon-ecs-init is running"
                )
            if not announced:
                log.warning(
                    "%s: waiting up to %.0fs for %s, held by %s",
                    self.action,
                    remaining,
                    self.path,
                    holder,
                )
                announced = True
            self.sleep(min(POLL_INTERVAL, remaining))

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays: unlinking it would race a waiter."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def action_lock(cfg: Config, action: str) -> FileLock:
    """The lock serialising pre-start, post-stop and start's setup (not yet taken)."""
    return FileLock(action_lock_path(cfg.paths), action, lock_timeout(cfg))


def supervisor_lock(cfg: Config) -> FileLock:
    """The lock a supervising ``start`` holds for its whole life (not yet taken)."""
    return FileLock(supervisor_lock_path(cfg.paths), "start", lock_timeout(cfg))
