"""What this program needs from the Docker Engine: the ``Engine`` protocol.

Supervision, the image cache, netfilter and the operator commands depend
on this protocol only; ``ecs_init.docker.client.EngineClient`` implements
it over the Engine API and ``tests/fakes.py`` implements it in memory.
Every method raises only ``ecs_init.docker.errors`` exceptions.

Also here: the API version range (SPEC §5) and pure helpers that read
Engine answers. This module imports nothing heavy.
"""

from __future__ import annotations

import collections.abc

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Optional, Protocol, Sequence
else:
    Protocol = object  # the protocols below are read by the type checker; at run time plain classes

# SPEC §5: prefer 1.25-1.44; fall back to 1.21-1.24 for older engines.
PREFERRED_MIN_API = "1.25"
PREFERRED_MAX_API = "1.44"
FALLBACK_MIN_API = "1.21"
STOP_GRACE = 10  # seconds a stopped container gets before SIGKILL


class Readable(Protocol):
    """A binary stream the image load reads in chunks (a file, a ProgressReader)."""

    def read(self, size: int = ..., /) -> bytes: ...


class LogLine:
    """One line of a container's log: ``stream`` is "stdout" or "stderr"; ``text``
    starts with Docker's RFC 3339 timestamp when timestamps were asked for. A value."""

    __slots__ = ("stream", "text")

    def __init__(self, stream: str, text: str) -> None:
        self.stream = stream
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogLine) and (other.stream, other.text) == (self.stream, self.text)

    def __hash__(self) -> int:
        return hash((self.stream, self.text))

    def __repr__(self) -> str:
        return f"LogLine({self.stream!r}, {self.text!r})"


class Engine(Protocol):
    """A connected Docker Engine."""

    @property
    def host(self) -> str:
        """The DOCKER_HOST this engine was reached at (``unix://…``)."""
        ...

    @property
    def api_version(self) -> str:
        """The negotiated API version every call uses."""
        ...

    @property
    def server_version(self) -> Mapping[str, Any]:
        """What the engine told of its version: ``ApiVersion`` always; the whole ``/version``
        answer (Version, MinAPIVersion, …) for the operator commands' quick clients."""
        ...

    def probe(self, timeout: Optional[float] = None) -> bool:
        """Ping over a new connection; False when the daemon does not answer within ``timeout``
        (None: the client's own probe timeout)."""
        ...

    def reconnect(self, timeout: float, sleep: Callable[[float], None] = ...) -> None:
        """Wait (up to ``timeout``) for the daemon to answer again and renegotiate.

        ``sleep`` paces the pings (it may raise to abandon the wait).
        Raises EngineUnavailable when it does not answer in time.
        """
        ...

    def info(self) -> dict[str, Any]:
        """``docker info``."""
        ...

    def image_id(self, ref: str) -> Optional[str]:
        """The ID of the image ``ref`` names, or None when there is none."""
        ...

    def tag_image(self, image_id: str, repository: str, tag: str) -> None: ...

    def load_image(self, stream: Readable) -> list[str]:
        """Stream a ``docker save`` archive to the engine; return the names it loaded.

        Raises EngineError with one line when the engine refuses the archive,
        EngineUnavailable when the daemon goes away meanwhile.
        """
        ...

    def container_state(self, name: str) -> Optional[dict[str, Any]]:
        """``docker inspect`` of the container, or None when there is none."""
        ...

    def create_container(self, name: str, body: Mapping[str, Any]) -> str:
        """``POST /containers/create`` with exactly ``body``; returns the new ID.

        NotFound: the image is missing. Conflict: the name is taken.
        """
        ...

    def start_container(self, name: str) -> None: ...

    def wait_container(self, name: str, on_idle: Optional[Callable[[], None]] = None) -> int:
        """Block (no timeout) until the container exits; return its exit code.

        EngineUnavailable when the daemon goes away or stops answering.
        ``on_idle`` is called after each ping that found the daemon answering
        during a long wait (the supervisor's heartbeat).
        """
        ...

    def stop_container(self, name: str, grace: int = STOP_GRACE, timeout: Optional[float] = None) -> bool:
        """Stop gracefully; False when there was no running container.

        ``timeout`` bounds the whole call (default: the grace plus a margin).
        """
        ...

    def remove_container(self, name: str) -> bool:
        """Remove (force); False when there was none."""
        ...

    def logs_tail(self, name: str, lines: int = 200) -> list[LogLine]:
        """The last ``lines`` lines of stdout and stderr, in order, with timestamps; [] when no container."""
        ...

    def networks(self) -> list[dict[str, Any]]:
        """``docker network ls`` with each network's options."""
        ...

    def close(self) -> None: ...


def default_bridge(networks: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """The interface of the bridge network Docker marks as its default bridge (SPEC §7)."""
    for network in networks:
        options = network.get("Options") or {}
        if not isinstance(options, collections.abc.Mapping):
            continue
        if options.get("com.docker.network.bridge.default_bridge") == "true":
            name = options.get("com.docker.network.bridge.name")
            return str(name) if name else None
    return None


def version_tuple(version: str) -> tuple[int, ...]:
    """ "1.41" -> (1, 41); anything unparsable sorts lowest."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)
