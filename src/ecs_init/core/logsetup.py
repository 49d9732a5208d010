"""Logging per SPEC §11: logfmt lines to the console and an hourly-rotated file.

The log directory is writable by the agent container, so the file is opened
by ``fsutil.open_append``: never through a symlink, never blocking on a
FIFO, never a device. A log file that cannot be used is one warning on the
console; the program goes on logging to the console only, and tries the
file again at the next hourly rotation. Control characters in a record are
escaped (``core.printable``): a line never carries a raw ESC to whoever
reads the log on a terminal.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import sys
import time

from ecs_init.core.fsutil import is_refusal, open_append, refusal
from ecs_init.core.printable import escape_controls
from ecs_init.core.redact import RedactFilter, redact_text

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "crit": logging.CRITICAL,
    "critical": logging.CRITICAL,
}
_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "crit",
}


def _quote(value: str) -> str:
    escaped = escape_controls(value.replace("\\", "\\\\").replace('"', '\\"'), keep_newlines=False)
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    """``level=info time=2026-11-27T21:36:33Z msg="pre-start"``, then ``pid=1234`` when ``pid`` is set:
    pre-start, start, stop and post-stop are separate processes writing one log, and a quick
    restart interleaves their lines."""

    def __init__(self, pid: bool = False) -> None:
        super().__init__()
        self.pid = pid

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        level = _NAMES.get(record.levelno, record.levelname.lower())
        msg = record.getMessage()
        if record.exc_info and record.levelno <= logging.DEBUG:
            msg += " " + self.formatException(record.exc_info)
        line = f"level={level} time={stamp} msg={_quote(msg)}"
        if self.pid:
            line += f" pid={record.process}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line += f" {key}={_quote(str(value))}"
        # the whole line, tracebacks and fields included, never carries a secret
        return redact_text(line)


def parse_level(name: str) -> int | None:
    """Return a logging level, or None for ``none`` (logging off)."""
    lowered = (name or "info").strip().lower()
    if lowered == "none":
        return None
    return LEVELS.get(lowered, logging.INFO)


def setup(log_file: str | None, level_name: str = "info", console: bool = True) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    level = parse_level(level_name)
    if level is None:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 10)
        return
    root.setLevel(level)
    formatter = LogfmtFormatter(pid=True)
    redactor = RedactFilter()
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        stream.addFilter(redactor)
        root.addHandler(stream)
    if log_file:
        try:
            os.makedirs(os.path.dirname(log_file), exist_ok=True)
        except OSError:
            pass  # the open below says why
        handler = SafeFileHandler(log_file)
        handler.setFormatter(formatter)
        handler.addFilter(redactor)
        handler.open_now()
        root.addHandler(handler)


ROTATION_SUFFIX = "%Y-%m-%d-%H"  # ecs-init.log.2026-11-30-20: the Go program's hourly names, in UTC
ROTATIONS_KEPT = 24
# Rotations this program names (and, with "_", those of its first release): pruned beyond the newest 24.
_ROTATION_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})[-_](\d{2})\Z")
_HOUR = 3600


def hour_of(epoch: float) -> int:
    """The UTC clock hour an instant falls in (hours since the epoch)."""
    return int(epoch // _HOUR)


def rotation_name(path: str, epoch: float) -> str:
    """The name a log file whose last line was written at ``epoch`` is rotated to."""
    return f"{path}.{time.strftime(ROTATION_SUFFIX, time.gmtime(epoch))}"


class SafeFileHandler(logging.FileHandler):
    """The log file, rotated at each UTC clock hour (24 rotations kept), opened safely.

    Several processes write it (the supervisor, and pre-start, stop, post-stop
    beside it), so a rotation is decided from the file, not from one process's
    memory: before the first line of a new hour, whoever writes first renames
    the file to ``ecs-init.log.YYYY-MM-DD-HH`` (the hour of its last line, from
    its mtime) and starts a new one; a writer that finds the file already
    rotated by another just reopens it. An existing rotation is never
    overwritten.

    A file it cannot use turns it off until the next hour, with one warning on
    the console (not again until the file worked once more), never a
    ``--- Logging error ---`` traceback. At that next hour whatever sits at the
    path (a symlink, a FIFO) is rotated away and a new file is created.
    """

    def __init__(self, path: str):
        super().__init__(path, delay=True, encoding="utf-8")
        self.hour = hour_of(time.time())  # the hour the open file is written in
        self.failed = False  # off until the next hour
        self.warned = False  # said so since the file last worked

    def _open(self) -> io.TextIOWrapper:
        fd = open_append(self.baseFilename)
        return open(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)

    def open_now(self) -> None:
        """Open the file at once (rotating it first if its last line is from an earlier hour), so that a
        file that cannot be used is said before anything is logged."""
        try:
            self._rotate(stale_only=True)
            self.stream = self._open()
        except OSError as err:
            self._fail(err)

    def emit(self, record: logging.LogRecord) -> None:
        hour = hour_of(record.created)
        if hour != self.hour:  # a new hour (or the clock was set back): rotate, and try a failed file again
            self.hour = hour
            self.failed = False
            self._close_stream()
            try:
                self._rotate(stale_only=False)
            except OSError as err:
                self._fail(err)
        if self.failed:
            return
        if self.stream is None:
            try:
                self.stream = self._open()
            except OSError as err:
                self._fail(err)
                return
        logging.StreamHandler.emit(self, record)  # a write error comes back through handleError
        if not self.failed:
            self.warned = False

    def new_hour(self) -> None:
        """Take the next line as the first of a new hour: a stale file, or anything at the path that is
        not a regular file, is rotated away, and a file that failed is tried again."""
        self.hour = -1

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None  # type: ignore[assignment]
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass

    def _rotate(self, stale_only: bool) -> None:
        """Rename what is at the path to its rotation name, then prune. ``stale_only`` (at start-up):
        only a non-empty regular file last written in an earlier hour; otherwise also anything that is
        not a regular file (rotated away so that a new file can be created)."""
        path = self.baseFilename
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        regular = stat.S_ISREG(info.st_mode)
        if regular:
            if info.st_size == 0 or hour_of(info.st_mtime) >= self.hour:
                return  # empty, or already this hour's file (another writer rotated first)
        elif stale_only:
            return  # refused when opened: the warning says why; it goes at the next hour
        target = rotation_name(path, info.st_mtime)
        if os.path.lexists(target):
            return  # never over an earlier rotation: this file goes on
        os.rename(path, target)
        prune(path)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self._fail(sys.exc_info()[1])

    def _fail(self, err: BaseException | None) -> None:
        self.failed = True
        self._close_stream()
        if self.warned:
            return
        self.warned = True
        if isinstance(err, OSError) and is_refusal(err):
            why = refusal(err)
        else:
            why = f"cannot be written: {getattr(err, 'strerror', None) or err}"
        warning = logging.makeLogRecord(
            {
                "name": __name__,
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": f"cannot use the log file {self.baseFilename}: it {why}; logging to the console only",
            }
        )
        others = [h for h in logging.getLogger().handlers if h is not self]
        for handler in others:
            if warning.levelno >= handler.level:
                handler.handle(warning)
        if not others:
            sys.stderr.write(self.format(warning) + "\n")


def prune(path: str, keep: int = ROTATIONS_KEPT) -> None:
    """Remove all but the newest ``keep`` hourly rotations of ``path`` (never anything else)."""
    directory, base = os.path.split(path)
    prefix = base + "."
    found = []
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return
    for name in names:
        match = _ROTATION_NAME.match(name[len(prefix) :]) if name.startswith(prefix) else None
        if match:
            found.append((match.group(1) + match.group(2), name))
    found.sort(reverse=True)
    for _, name in found[keep:]:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass
