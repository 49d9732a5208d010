"""The exceptions of the Engine client: the only ones that leave ``ecs_init.docker``.

Each is an ``InitError``: uncaught, it ends the action with one clear line
and exit 255. ``message`` is the engine's own message when it sent one.
"""

from __future__ import annotations

from ecs_init.core.errors import InitError

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Optional


class EngineError(InitError):
    """The engine answered with an error (``status`` is the HTTP status, if any)."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotFound(EngineError):
    """No such container or image (HTTP 404)."""


class Conflict(EngineError):
    """A name is taken, or the object is busy (HTTP 409)."""


class EngineUnavailable(EngineError):
    """The daemon cannot be reached, does not answer in time, or went away mid-call."""
