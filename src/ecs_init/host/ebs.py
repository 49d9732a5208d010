"""pre-start step: the EBS task-attach mount directory (``/mnt/ecs/ebs``, mode 0755).

A failure is logged, not fatal: the agent then gets ECS_EBSTA_SUPPORTED=false
(the container spec checks the directory). Nothing to undo at post-stop: the
directory outlives the service, as in the Go program.
"""

from __future__ import annotations

import logging
import os

from ecs_init.host.context import HostContext

log = logging.getLogger(__name__)


def setup(ctx: HostContext) -> None:
    path = ctx.paths.ebs_dir
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, 0o755)
    except OSError as err:
        log.error("cannot create the EBS mount directory %s: %s; EBS task attach will be off", path, err)
