"""The events file (upgrades, rollbacks, image reloads) and the supervisor's status file.

Written by the supervisor, read by ``status``. The events file keeps the
last 50 events; both are replaced atomically.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from ecs_init.context import HostContext
from ecs_init.fsutil import atomic_write

log = logging.getLogger(__name__)

MAX_EVENTS = 50


def events_path(ctx: HostContext) -> str:
    return os.path.join(ctx.paths.instance_config_dir, "ecs-init-events.json")


def status_path(ctx: HostContext) -> str:
    return os.path.join(ctx.paths.run_dir, "supervisor.json")


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
