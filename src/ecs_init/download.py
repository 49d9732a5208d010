"""Agent download from S3 (SPEC §10).

STUB: filled in by the download work (issue 4).
"""

from __future__ import annotations

from ecs_init.context import HostContext
from ecs_init.errors import InitError


def download_agent(ctx: HostContext) -> None:
    """Fetch the agent tarball into the cache (verified, atomic)."""
    raise InitError("downloading the agent is not implemented yet")
