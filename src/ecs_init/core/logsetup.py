"""Logging per SPEC §11: logfmt lines to the console and an hourly-rotated file."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time

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
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
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
            handler = logging.handlers.TimedRotatingFileHandler(
                log_file, when="H", interval=1, backupCount=24, utc=True, delay=True
            )
        except OSError as err:
            logging.getLogger(__name__).warning("cannot open log file %s: %s", log_file, err)
        else:
            handler.setFormatter(formatter)
            handler.addFilter(redactor)
            root.addHandler(handler)
