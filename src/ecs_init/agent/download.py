"""Downloading the agent tarball from S3 (SPEC §10).

Imported only when a download is needed (the engine imports it lazily), so
the other actions never pay for it.

Proxies: HTTPS_PROXY, else HTTP_PROXY, unless NO_PROXY excludes the host
(the agent's rule, ``ecs_init.agent.proxy``); the metadata service never goes
through one.

Flow: pick the artifact for this architecture; pick the region (external
mode: AWS_DEFAULT_REGION; otherwise IMDSv2 with a short deadline; else
us-east-1); try the partition bucket, then the regional bucket. For each
source: fetch ``<key>.md5``, then stream ``<key>`` into a temporary file in
the cache directory while computing its MD5; verify, fsync, and atomically
rename it to ``ecs-agent.tar``. Any failure removes the temporary file and
leaves an existing tarball untouched.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

from ecs_init import AGENT_VERSION
from ecs_init.agent import imds, proxy
from ecs_init.agent.progress import Progress
from ecs_init.agent.sources import DEFAULT_REGION, Source, artifact_key, parse_md5, sources
from ecs_init.core import settings
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.host.context import HostContext

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024  # bytes per read/write while streaming
HTTP_TIMEOUT = 30.0  # seconds per connect / per read on S3
MAX_MD5_BYTES = 4096
TEMP_PREFIX = ".ecs-agent.tar."
TEMP_SUFFIX = ".download"
STALE_TEMP_AGE = 15 * 60  # temp files untouched this long are leftovers of a crash


# ---------------------------------------------------------------- region


def resolve_region(cfg: Config, imds_lookup: Callable[[str], str | None] | None = None) -> str:
    """External mode: AWS_DEFAULT_REGION; else IMDSv2; else us-east-1."""
    if cfg.flag(settings.EXTERNAL):
        configured = cfg.raw(settings.REGION).strip()
        if not configured:
            log.info("external instance without AWS_DEFAULT_REGION: downloading from %s", DEFAULT_REGION)
            return DEFAULT_REGION
        if not imds.valid_region(configured):
            log.warning("AWS_DEFAULT_REGION=%r is not a region name; using %s", configured[:64], DEFAULT_REGION)
            return DEFAULT_REGION
        return configured
    endpoint = cfg.raw(settings.IMDS_ENDPOINT).strip() or settings.IMDS_ENDPOINT.default
    lookup = imds_lookup or imds.region
    found = lookup(endpoint)
    if found:
        log.info("region from the instance metadata service: %s", found)
        return found
    log.info("region unknown (no instance metadata); using %s", DEFAULT_REGION)
    return DEFAULT_REGION


# ---------------------------------------------------------------- transfer


class SourceError(Exception):
    """This source failed; the next one may work."""


class LocalError(Exception):
    """Writing on this host failed; other sources would fail the same way."""


def _describe_http_error(url: str, err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"{url}: HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        reason = err.reason
        text = getattr(reason, "strerror", None) or str(reason)
        return f"{url}: {text}"
    if isinstance(err, http.client.IncompleteRead):
        return f"{url}: connection closed after {len(err.partial)} bytes"
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return f"{url}: {text}"


def _opener(url: str) -> urllib.request.OpenerDirector:
    """An opener that goes through the proxy ``proxy.proxy_for`` picks for ``url`` (SPEC §10), or direct."""
    chosen = proxy.proxy_for(url, os.environ)
    scheme = urllib.parse.urlsplit(url).scheme
    return urllib.request.build_opener(urllib.request.ProxyHandler({scheme: chosen.url} if chosen else {}))


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "amazon-ecs-init"})
    try:
        resp: http.client.HTTPResponse = _opener(url).open(request, timeout=timeout)
        return resp
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise SourceError(_describe_http_error(url, err)) from err


def fetch_md5(url: str, timeout: float = HTTP_TIMEOUT) -> str:
    resp = _open(url, timeout)
    try:
        data = resp.read(MAX_MD5_BYTES + 1)
    except (OSError, http.client.HTTPException) as err:
        raise SourceError(_describe_http_error(url, err)) from err
    finally:
        resp.close()
    if len(data) > MAX_MD5_BYTES:
        raise SourceError(f"{url}: checksum object larger than {MAX_MD5_BYTES} bytes")
    try:
        return parse_md5(data)
    except ValueError as err:
        raise SourceError(f"{url}: {err}") from err


def _content_length(resp: http.client.HTTPResponse) -> int | None:
    raw = resp.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def stream_to_file(url: str, fd: int, label: str, timeout: float = HTTP_TIMEOUT) -> tuple[int, str]:
    """GET ``url`` into the open file ``fd``; return (bytes, hex MD5).

    Memory stays flat: fixed-size chunks. A body shorter than its
    Content-Length (the server went away) is a SourceError.
    """
    resp = _open(url, timeout)
    total = _content_length(resp)
    digest = hashlib.md5()  # noqa: S324 - S3's published checksum, not security
    size = 0
    progress = Progress(label, total)
    ok = False
    try:
        while True:
            try:
                chunk = resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise SourceError(_describe_http_error(url, err)) from err
            if not chunk:
                break
            digest.update(chunk)
            view = memoryview(chunk)
            try:
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            except OSError as err:
                raise LocalError(err.strerror or str(err)) from err
            size += len(chunk)
            progress.update(len(chunk))
        if total is not None and size != total:
            raise SourceError(f"{url}: connection closed after {size} of {total} bytes")
        ok = True
    finally:
        progress.close(ok=ok)
        resp.close()
    return size, digest.hexdigest()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        log.warning("cannot remove %s: %s", path, err.strerror or err)


def _sweep_stale_temps(cache_dir: str) -> None:
    """Remove temp files left by a download that was killed (power loss, SIGKILL)."""
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    now = time.time()
    for name in names:
        if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
            continue
        path = os.path.join(cache_dir, name)
        try:
            if now - os.lstat(path).st_mtime < STALE_TEMP_AGE:
                continue
        except OSError:
            continue
        log.info("removing a leftover partial download %s", path)
        _remove(path)


def _prepare_cache_dir(cache_dir: str) -> None:
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        os.chmod(cache_dir, 0o700)
    except OSError as err:
        raise InitError(f"cannot prepare the cache directory {cache_dir}: {err.strerror or err}") from err


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fetch_source(source: Source, target: str, timeout: float = HTTP_TIMEOUT) -> int:
    """Download ``source`` to ``target`` atomically; return its size.

    Raises SourceError (try another source) or LocalError (give up).
    ``target`` is replaced only by a verified file.
    """
    expected = fetch_md5(source.md5_url, timeout)
    directory = os.path.dirname(target) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
    except OSError as err:
        raise LocalError(f"cannot create a file in {directory}: {err.strerror or err}") from err
    try:
        try:
            size, actual = stream_to_file(source.url, fd, f"downloading {source.key}", timeout)
            os.fsync(fd)
        except OSError as err:
            raise LocalError(f"writing {tmp}: {err.strerror or err}") from err
        finally:
            os.close(fd)
        if actual != expected:
            raise SourceError(f"{source.url}: MD5 mismatch (expected {expected}, got {actual})")
        try:
            os.replace(tmp, target)
        except OSError as err:
            raise LocalError(f"cannot rename {tmp} to {target}: {err.strerror or err}") from err
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(directory)
    return size


def download_agent(
    ctx: HostContext,
    *,
    machine: str | None = None,
    version: str = AGENT_VERSION,
    imds_lookup: Callable[[str], str | None] | None = None,
    timeout: float = HTTP_TIMEOUT,
) -> None:
    """Fetch the agent tarball into the cache (verified, atomic).

    Leaves a verified tarball at ``ctx.paths.cache_tarball`` or raises
    InitError with one line naming each source tried and how it failed.
    Does not touch the cache state file.
    """
    key = artifact_key(version, machine)
    cfg = ctx.cfg
    region = resolve_region(cfg, imds_lookup)
    endpoint = cfg.raw(settings.S3_ENDPOINT).strip()
    target = ctx.paths.cache_tarball
    cache_dir = os.path.dirname(target)
    _prepare_cache_dir(cache_dir)
    _sweep_stale_temps(cache_dir)

    failures: list[str] = []
    for source in sources(region, key, endpoint):
        log.info("downloading the agent from %s", source.url)
        started = time.monotonic()
        try:
            size = fetch_source(source, target, timeout)
        except SourceError as err:
            log.warning("download from %s failed: %s", source.describe(), err)
            failures.append(f"{source.describe()}: {err}")
            continue
        except LocalError as err:
            raise InitError(f"downloading the agent failed: {err}") from err
        log.info(
            "downloaded and verified %s (%d bytes, %.1f s) to %s",
            source.describe(),
            size,
            time.monotonic() - started,
            target,
        )
        return
    raise InitError(f"downloading the agent failed from every source: {'; '.join(failures)}")
