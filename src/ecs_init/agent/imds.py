"""The instance's region from the EC2 instance metadata service (IMDSv2).

Used only when the agent must be downloaded (SPEC §10, §5): a host that is
not on EC2 must not be stalled, so the whole lookup is bounded by a short
deadline (about a second) and never goes through an HTTP proxy.
"""

from __future__ import annotations

import http.client
import logging
import re
import time
import urllib.parse

from ecs_init.core import settings

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = settings.IMDS_ENDPOINT.default
TOKEN_PATH = "/latest/api/token"
REGION_PATH = "/latest/meta-data/placement/region"
TOKEN_TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TOKEN_TTL = "60"

# Budget for the whole lookup, and for one request of it.
DEADLINE = 1.0
REQUEST_TIMEOUT = 0.4
ATTEMPTS = 2
MAX_ANSWER = 4096

_REGION_RE = re.compile(r"[a-z]{2,}(-[a-z0-9]+)+-\d+")


def valid_region(name: str) -> bool:
    """True for names shaped like AWS regions (``eu-west-1``, ``us-isob-east-1``)."""
    return len(name) <= 40 and bool(_REGION_RE.fullmatch(name))


class ImdsError(Exception):
    """A request failed; ``status`` is the HTTP status when the service answered (it refused)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _request(endpoint: str, method: str, path: str, headers: dict[str, str], timeout: float) -> str:
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImdsError(f"bad metadata endpoint {endpoint!r}")
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        base = parts.path.rstrip("/")
        conn.request(method, base + path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(MAX_ANSWER)
        if resp.status != 200:
            raise ImdsError(f"{method} {path}: HTTP {resp.status} {resp.reason}".rstrip(), resp.status)
        return body.decode("utf-8", errors="replace").strip()
    except (OSError, http.client.HTTPException) as err:
        raise ImdsError(f"{method} {path}: {err or type(err).__name__}") from err
    finally:
        conn.close()


def region(
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    deadline: float = DEADLINE,
    request_timeout: float = REQUEST_TIMEOUT,
    attempts: int = ATTEMPTS,
) -> str | None:
    """The region the metadata service reports, or None (unreachable, bad answer).

    IMDSv2: PUT a session token, then GET the region path with it. The lookup
    gives up after ``deadline`` seconds in total, whatever the network does.
    """
    endpoint = endpoint or DEFAULT_ENDPOINT
    stop = time.monotonic() + deadline
    last = "no attempt"
    answered: int | None = None  # the HTTP status of a refusal (the service is there)
    for attempt in range(attempts):
        try:
            left = stop - time.monotonic()
            if left <= 0.05:
                break
            token = _request(endpoint, "PUT", TOKEN_PATH, {TOKEN_TTL_HEADER: TOKEN_TTL}, min(request_timeout, left))
            if not token:
                raise ImdsError("empty session token")
            left = stop - time.monotonic()
            if left <= 0.05:
                last = "out of time"
                break
            answer = _request(endpoint, "GET", REGION_PATH, {TOKEN_HEADER: token}, min(request_timeout, left))
        except ImdsError as err:
            last, answered = str(err), err.status
            log.debug("metadata service attempt %d: %s", attempt + 1, last)
            continue
        if valid_region(answer):
            return answer
        log.warning("metadata service returned an invalid region %r; ignoring it", answer[:64])
        return None
    if answered is not None:
        why = " (IMDS may be disabled for this instance)" if answered == 403 else ""
        log.warning("metadata service at %s refused: %s%s", endpoint, last, why)
    else:
        log.info("metadata service at %s did not answer (%s)", endpoint, last)
    return None
