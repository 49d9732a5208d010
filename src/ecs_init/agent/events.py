"""The events file: upgrades, rollbacks, image reloads (``Paths.events_file``).

Written by the supervisor, read by ``status``. It keeps the last 50 events
and is replaced atomically. The agent container can write its directory, so
it is read as hostile input (``core.jsonfile``: no symlink, no FIFO, size
and depth capped): an unusable file is logged once and replaced by a new
list, and nothing in it can make the supervisor fail or wait.
"""

from __future__ import annotations

import json
import logging
import time

from ecs_init.core import jsonfile
from ecs_init.core.fsutil import atomic_write
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger(__name__)

MAX_EVENTS = 50


def events_path(ctx: HostContext) -> str:
    return ctx.paths.events_file


def read_events(path: str) -> tuple[list[dict[str, Any]], str]:
    """(the events that are JSON objects, "") or ([], why the file is unusable); a missing file is ([], "")."""
    doc, error = jsonfile.read(path)
    if error:
        return [], error
    if doc is None:
        return [], ""
    if not isinstance(doc, list):
        return [], f"{path} does not hold a JSON list"
    return [event for event in doc if isinstance(event, dict)], ""


def record_event(ctx: HostContext, kind: str, **details: Any) -> None:
    """Append an event (upgrade, rollback, image reload; the last 50 are kept) for `status`.

    Bookkeeping only: a failure is logged and never stops the caller.
    """
    path = events_path(ctx)
    try:
        events, error = read_events(path)
        if error:
            log.warning("%s: starting a new events file", error)
        events.append({"event": kind, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **details})
        atomic_write(path, json.dumps(events[-MAX_EVENTS:], indent=1))
    except Exception as err:  # noqa: BLE001 - the supervisor must never die of its own bookkeeping
        log.warning("cannot record %s event in %s: %s", kind, path, err)


def rolled_back_images(ctx: HostContext) -> set[str]:
    """Image IDs an automatic rollback replaced (from the events file)."""
    events, _ = read_events(events_path(ctx))
    return {
        str(e["failed_image"])
        for e in events
        if e.get("event") == "rollback" and isinstance(e.get("failed_image"), str) and e["failed_image"]
    }
