"""pre-start step: the EBS task-attach mount directory (``/mnt/ecs/ebs``, mode 0755).

A failure is logged, not fatal: the agent then gets ECS_EBSTA_SUPPORTED=false
(the container spec checks the directory). Nothing to undo at post-stop: the
directory outlives the service, as in the Go program.

A symlink there is refused (one error line): it is never followed, so its
target is never chmodded, and the agent gets ECS_EBSTA_SUPPORTED=false
(``agent.hostfacts`` does not count it as the directory).
"""

from __future__ import annotations

import logging
import os

from ecs_init.core.fsutil import path_kind
from ecs_init.host.context import HostContext

log = logging.getLogger(__name__)


def setup(ctx: HostContext) -> None:
    path = ctx.paths.ebs_dir
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
        # chmod through an fd opened without following a symlink: never the target of a planted link
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)
    except OSError as err:
        kind = _kind(path)
        if kind not in (None, "a directory"):
            log.error(
                "refusing the EBS mount directory %s: it is %s, not a directory; EBS task attach will be off",
                path,
                kind,
            )
            return
        log.error(
            "cannot create the EBS mount directory %s: %s; EBS task attach will be off", path, err.strerror or err
        )


def _kind(path: str) -> str | None:
    try:
        return path_kind(path)
    except OSError:
        return None
