"""The events file: upgrades, rollbacks, image reloads (``Paths.events_file``).

Written by the supervisor, read by ``status``. It keeps the last 50 events
and is replaced atomically.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ecs_init.core.fsutil import atomic_write
from ecs_init.host.context import HostContext

log = logging.getLogger(__name__)

MAX_EVENTS = 50


def events_path(ctx: HostContext) -> str:
    return ctx.paths.events_file


def record_event(ctx: HostContext, kind: str, **details: Any) -> None:
    """Append an event (upgrade, rollback, image reload; the last 50 are kept) for `status`."""
    path = events_path(ctx)
    try:
        with open(path, encoding="utf-8") as fh:
            events = json.load(fh)
        if not isinstance(events, list):
            events = []
    except (OSError, ValueError):
        events = []
    events.append({"event": kind, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **details})
    try:
        atomic_write(path, json.dumps(events[-MAX_EVENTS:], indent=1))
    except OSError as err:
        log.warning("cannot record %s event in %s: %s", kind, path, err)


def rolled_back_images(ctx: HostContext) -> set[str]:
    """Image IDs an automatic rollback replaced (from the events file)."""
    try:
        with open(events_path(ctx), encoding="utf-8") as fh:
            events = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return set()
    if not isinstance(events, list):
        return set()
    return {
        str(e["failed_image"])
        for e in events
        if isinstance(e, dict) and e.get("event") == "rollback" and e.get("failed_image")
    }
