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
import logging.handlers
import os
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


class SafeFileHandler(logging.handlers.TimedRotatingFileHandler):
    """The hourly-rotated log file (24 kept), opened safely. A file it cannot use turns it off until
    the next rotation, with one warning on the console (not again until the file worked once more),
    never a ``--- Logging error ---`` traceback."""

    def __init__(self, path: str):
        super().__init__(path, when="H", interval=1, backupCount=24, utc=True, delay=True)
        self.failed = False  # off until the next rotation
        self.warned = False  # said so since the file last worked

    def _open(self) -> io.TextIOWrapper:
        fd = open_append(self.baseFilename)
        return open(fd, "a", encoding=self.encoding or "utf-8", errors=getattr(self, "errors", None))

    def open_now(self) -> None:
        """Open the file at once, so that a file that cannot be used is said before anything is logged."""
        try:
            self.stream = self._open()
        except OSError as err:
            self._fail(err)

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            if time.time() < self.rolloverAt:
                return
            self.failed = False
        super().emit(record)
        if not self.failed:
            self.warned = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self._fail(sys.exc_info()[1])

    def _fail(self, err: BaseException | None) -> None:
        self.failed = True
        stream, self.stream = self.stream, None  # type: ignore[assignment]
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
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
