"""What the operator commands (status, check, render, collect) share: arguments, Docker, the agent's
endpoint, JSON files, times and sizes for people.

Read-only helpers; nothing here changes the host.
"""

from __future__ import annotations

import argparse
import calendar
import json
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Optional

from ecs_init.agent.identity import METADATA_URL
from ecs_init.agent.progress import human_bytes
from ecs_init.core import jsonfile
from ecs_init.core.config import Config
from ecs_init.core.errors import UsageError
from ecs_init.core.printable import escape_controls
from ecs_init.docker.api import Engine

__all__ = ["human_bytes"]  # re-exported: one implementation, in agent/progress.py

DOCKER_TIMEOUT = 2.0  # seconds: operator commands never wait for a daemon that is not up
METADATA_TIMEOUT = 1.0
MAX_JSON_BYTES = jsonfile.MAX_JSON_BYTES


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as UsageError (exit 1) instead of exiting 2."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


# Where the packages install the JSON schemas of the --json documents (and where they are in a source tree).
SCHEMA_DIR = "/usr/share/amazon-ecs-init/schemas"
SOURCE_SCHEMA_DIR = "src/ecs_init/schemas"


def make_parser(action: str, description: str, schema: str = "") -> argparse.ArgumentParser:
    """The parser of an operator command: ``--json`` (and ``-h``/``--help``) included."""
    parser = _Parser(prog=f"amazon-ecs-init {action}", description=description)
    schema = schema or f"{action}.schema.json"
    parser.add_argument(
        "--json",
        action="store_true",
        help=f"print one JSON document; its schema: {schema} in {SCHEMA_DIR}/ (in a source tree: {SOURCE_SCHEMA_DIR}/)",
    )
    return parser


def connect_quick(cfg: Config, timeout: float = DOCKER_TIMEOUT) -> Engine:
    """One attempt to reach Docker; this and every later call bounded by ``timeout`` seconds.

    Raises EngineError (EngineUnavailable: "Docker ... does not answer ...") with one line.
    """
    from ecs_init.docker import client

    return client.connect_quick(cfg.docker_host(), timeout)


def fetch_metadata(url: str = METADATA_URL, timeout: float = METADATA_TIMEOUT) -> tuple[Optional[dict[str, Any]], str]:
    """The agent's ``/v1/metadata`` document, or (None, why not)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            raw = resp.read(MAX_JSON_BYTES)
    except urllib.error.HTTPError as err:
        return None, f"{url} answered HTTP {err.code}"
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        return None, f"{url} does not answer within {timeout:g}s ({reason})"
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None, f"{url} answered something that is not JSON"
    if not isinstance(doc, dict):
        return None, f"{url} answered JSON that is not an object"
    return doc, ""


def read_json_file(path: str) -> tuple[Any, str]:
    """(document, "") or (None, why not); a missing file is (None, ""). Read as hostile input
    (``core.jsonfile``): no symlink followed, never blocking, size and nesting capped."""
    return jsonfile.read(path, MAX_JSON_BYTES)


def printable(text: str) -> str:
    """Human-readable report text safe for a terminal: every control character but the newline
    escaped (``core.printable``). Every operator command's human output goes through it, after
    redaction; JSON output needs nothing (``json.dumps`` escapes them)."""
    return escape_controls(text, keep_newlines=True)


def write_report(text: str, human: bool) -> None:
    """Print a report (redacted already): human text through ``printable``, JSON as it is."""
    sys.stdout.write((printable(text) if human else text) + "\n")
    sys.stdout.flush()


_DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_docker_time(text: str) -> Optional[float]:
    """Docker's RFC 3339 time (nanoseconds allowed) as epoch seconds; None if unset/unparsable."""
    match = _DOCKER_TIME.match(text or "")
    if not match or text.startswith("0001-"):
        return None
    base = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    fraction = float("0." + match.group(2)) if match.group(2) else 0.0
    zone = match.group(3)
    offset = 0
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return base + fraction - offset


def iso(epoch: Optional[float]) -> Optional[str]:
    """RFC 3339 UTC time of ``epoch``; None when unset or no time (NaN, out of the calendar's range)."""
    if epoch is None:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):
        return None


def for_people(value: Any, unknown: str = "unknown") -> str:
    """A value in a human-readable report: never Python's ``None`` (``unknown`` instead), and what is
    not a string or a number (``True``, a dict) as JSON, never as a Python repr."""
    if value is None:
        return unknown
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, default=str)


def human_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h{minutes}m"
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# ---------------------------------------------------------------- check results

PASS = "PASS"
WARN = "WARN"
FAIL = "FAIL"
SKIP = "SKIP"


@dataclass
class Check:
    name: str
    status: str
    reason: str
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "reason": self.reason, "hint": self.hint}
        out.update(self.details)
        return out
