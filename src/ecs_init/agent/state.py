"""The supervisor's state, as ``status`` and systemd's STATUS= see it (``Paths.supervisor_state``)."""

from __future__ import annotations

import enum
import json
import logging
import re

from ecs_init.core.fsutil import atomic_write

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable

log = logging.getLogger(__name__)


class SupervisorState(str, enum.Enum):
    """What ``start`` is doing now (the string is what the state file and STATUS= carry)."""

    STARTING = "starting"  # creating and starting the agent container (the action lock is held)
    RUNNING = "running"  # the agent container runs; waiting for it to exit
    BACKOFF = "backoff"  # the agent exited; waiting before the next start
    DOCKER_LOST = "docker-lost"  # the Docker daemon is away; waiting for it to return
    HEALING = "healing"  # the agent stopped answering: the health monitor is stopping it to restart it
    STOPPED = "stopped"  # supervision ended (agent exit 0, or SIGTERM)
    TERMINAL = "terminal"  # the agent exited 5: not restarted

    def __str__(self) -> str:
        return self.value


def write(path: str, doc: dict[str, Any]) -> None:
    """Replace the state file (not fsynced: it describes this boot only); a failure is logged at debug."""
    try:
        atomic_write(path, json.dumps(doc), durable=False)
    except OSError as err:
        log.debug("cannot write supervisor status: %s", err)


# ---------------------------------------------------------------- reading it back (status)

MAX_PID = 4194304  # Linux's pid_max ceiling (2**22)
LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z: later is no time this program wrote
_KNOWN = {s.value for s in SupervisorState}


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= LATEST_TIME


# field -> (is it usable, what it should be); a field that is absent or null is "not known", not broken
_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "pid": (lambda v: _int(v, 1, MAX_PID), f"a process ID (1-{MAX_PID})"),
    "state": (lambda v: isinstance(v, str) and v in _KNOWN, "one of " + ", ".join(sorted(_KNOWN))),
    "restarts": (lambda v: _int(v, 0, 2**63 - 1), "a count"),
    "started_at": (_time, "a time"),
    "updated_at": (_time, "a time"),
    "last_exit_code": (lambda v: _int(v, -(2**31), 2**32 - 1), "an exit code"),
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse(doc: Any) -> tuple[dict[str, Any], list[str]]:
    """The state file's document as ``status`` shows it: (fields, problems).

    Every field of ``_FIELDS`` and ``upgrade`` is in ``fields``: its value
    when usable, else None; each field that is there but unusable (a pid of
    1e23, a start time of 1e20, NaN) adds one line to ``problems``.
    """
    fields: dict[str, Any] = dict.fromkeys([*_FIELDS, "upgrade"])
    if not isinstance(doc, dict):
        return fields, ["does not hold a JSON object"]
    problems = []
    for name, (usable, expected) in _FIELDS.items():
        value = doc.get(name)
        if value is None:
            continue
        if usable(value):
            fields[name] = value
        else:
            problems.append(f"{name} {_show(value)} is not {expected}")
    upgrade = doc.get("upgrade")
    if isinstance(upgrade, dict):
        fields["upgrade"], problem = _upgrade(upgrade)
        if problem:
            problems.append(problem)
    elif upgrade is not None:
        problems.append(f"upgrade {_show(upgrade)} is not an object")
    return fields, problems


def _iso_time(value: Any) -> bool:
    return isinstance(value, str) and _ISO.fullmatch(value) is not None


_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
# the watched upgrade's fields, as ``Upgrades._upgrade_doc`` writes them (wall-clock times as text)
_UPGRADE_FIELDS: dict[str, Callable[[Any], bool]] = {
    "previous_image": lambda v: isinstance(v, str),
    "new_image": lambda v: isinstance(v, str),
    "started_at": _iso_time,
    "failures": lambda v: _int(v, 0, 2**63 - 1),
    "last_failure_at": _iso_time,
}


def _upgrade(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The watched upgrade's usable fields (None unless it names both images), and what is broken."""
    usable = {k: doc[k] for k, ok in _UPGRADE_FIELDS.items() if doc.get(k) is not None and ok(doc[k])}
    broken = [k for k in _UPGRADE_FIELDS if doc.get(k) is not None and k not in usable]
    if "previous_image" not in usable or "new_image" not in usable:
        return None, "upgrade does not name its previous and new images"
    return usable, "upgrade " + ", ".join(broken) + " unusable" if broken else ""
