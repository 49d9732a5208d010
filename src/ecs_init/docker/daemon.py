"""Reaching the daemon: its /version, waiting for it, the API version to speak (SPEC §5)."""

from __future__ import annotations

import logging
import time

from ecs_init.core.backoff import Backoff
from ecs_init.docker import transport
from ecs_init.docker.answers import error_of, json_of
from ecs_init.docker.api import FALLBACK_MIN_API, PREFERRED_MAX_API, PREFERRED_MIN_API, version_tuple
from ecs_init.docker.errors import EngineError, EngineUnavailable

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

log = logging.getLogger(__name__)

PING_TIMEOUT = 5.0  # one attempt while waiting for the daemon to come up (a live one answers at once)


def negotiate_api_version(server_max: str, server_min: str = "") -> str:
    """The API version to speak (SPEC §5): the server's, within 1.25-1.44, else 1.21-1.24.

    Raises EngineError when the server speaks nothing in 1.21-1.44.
    """
    top = version_tuple(server_max)
    bottom = version_tuple(server_min) if server_min else (0,)
    if top >= version_tuple(PREFERRED_MIN_API):
        chosen = min(top, version_tuple(PREFERRED_MAX_API))
        if bottom > chosen:
            chosen = bottom
    elif top >= version_tuple(FALLBACK_MIN_API):
        chosen = top  # an old engine: its own version, as the Go program's fallback list does
    else:
        chosen = (0,)
    if chosen == (0,) or chosen > version_tuple(PREFERRED_MAX_API) or len(chosen) < 2:
        raise EngineError(
            f"Docker speaks API {server_min or '?'}-{server_max or '?'}; "
            f"this program speaks {FALLBACK_MIN_API}-{PREFERRED_MAX_API}"
        )
    return ".".join(str(part) for part in chosen[:2])


def server_version(host: str, timeout: float) -> dict[str, Any]:
    """The daemon's ``GET /version`` (unversioned path: it answers whatever the client speaks)."""
    resp = transport.request(host, "GET", "/version", timeout=timeout)
    if resp.status != 200:
        raise error_of(resp)
    doc = json_of(resp, "/version")
    if not isinstance(doc, dict) or not doc.get("ApiVersion"):
        raise EngineError("Docker's /version names no API version", resp.status)
    return doc


def ping_version(host: str, timeout: float) -> dict[str, Any]:
    """The daemon's API version from ``GET /_ping`` (its ``Api-Version`` header), else from /version.

    /_ping is what the daemon answers cheapest: /version also asks containerd
    and runs ``runc --version`` and ``docker-init --version`` (~20 ms here).
    Engines too old to send the header are asked /version.
    """
    resp = transport.request(host, "GET", "/_ping", timeout=timeout)
    api = resp.headers.get("api-version", "")
    try:
        if resp.status != 200:
            raise error_of(resp)
        resp.read_all(1024)
    finally:
        resp.close()
    if api:
        return {"ApiVersion": api}
    return server_version(host, timeout)


def wait_for_daemon(
    host: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    attempt_timeout: float = PING_TIMEOUT,
) -> dict[str, Any]:
    """Ping ``host`` until it answers; its API version (``ping_version``); EngineUnavailable after ``timeout``.

    A daemon that accepts connections but never answers costs one
    ``attempt_timeout`` per attempt; attempts back off (1 s doubling to 10 s).
    """
    deadline = clock() + timeout
    backoff: Optional[Backoff] = None
    attempt = 0
    last_error = ""
    while True:
        attempt += 1
        try:
            return ping_version(host, max(0.1, min(attempt_timeout, deadline - clock())))
        except EngineError as err:
            last_error = str(err)
        remaining = deadline - clock()
        if remaining <= 0:
            raise EngineUnavailable(f"Docker daemon at {host} did not answer within {timeout:.0f}s: {last_error}")
        if attempt == 1 or attempt % 5 == 0:
            log.warning("waiting for the Docker daemon at %s (attempt %d, %.0fs left): %s",
                        host, attempt, remaining, last_error)  # fmt: skip
        backoff = backoff or Backoff(1.0, 10.0, 0.2)
        sleep(min(backoff.next(), remaining))
