"""Downloading the agent tarball from S3 (SPEC §10).

Imported only when a download is needed (the engine imports it lazily), so
the other actions never pay for it.

Proxies: HTTPS_PROXY, else HTTP_PROXY, unless NO_PROXY excludes the host
(the agent's rule, ``ecs_init.proxy``); the metadata service never goes
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
import platform
import re
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

from ecs_init import AGENT_VERSION, imds, proxy
from ecs_init.config import Config
from ecs_init.context import HostContext
from ecs_init.errors import InitError
from ecs_init.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
BUCKET = "amazon-ecs-agent"
S3_ENDPOINT_KEY = "ECS_INIT_S3_ENDPOINT"
IMDS_ENDPOINT_KEY = "ECS_INIT_IMDS_ENDPOINT"

CHUNK = 1024 * 1024  # bytes per read/write while streaming
HTTP_TIMEOUT = 30.0  # seconds per connect / per read on S3
MAX_MD5_BYTES = 4096
TEMP_PREFIX = ".ecs-agent.tar."
TEMP_SUFFIX = ".download"
STALE_TEMP_AGE = 15 * 60  # temp files untouched this long are leftovers of a crash

_MD5_RE = re.compile(r"[0-9a-fA-F]{32}")


# ---------------------------------------------------------------- naming


def arch_suffix(machine: str) -> str:
    """'' for x86_64, 'arm64-' for aarch64; InitError for anything else."""
    m = machine.strip().lower()
    if m in ("x86_64", "amd64"):
        return ""
    if m in ("aarch64", "arm64"):
        return "arm64-"
    raise InitError(f"cannot download the agent: unsupported architecture {machine!r} (x86_64 and aarch64 only)")


def artifact_key(version: str = AGENT_VERSION, machine: str | None = None) -> str:
    """``ecs-agent-v1.105.1.tar`` / ``ecs-agent-arm64-v1.105.1.tar``."""
    return f"ecs-agent-{arch_suffix(machine if machine is not None else platform.machine())}{version}.tar"


def md5_key(key: str) -> str:
    return key + ".md5"


def parse_md5(data: bytes) -> str:
    """The lower-case hex digest in a ``.md5`` object (whitespace trimmed).

    Tolerates the ``md5sum`` output form ``<digest>  <name>``.
    """
    text = data.decode("ascii", errors="replace").strip()
    first = text.split()[0] if text else ""
    if not _MD5_RE.fullmatch(first):
        shown = text[:40] + ("..." if len(text) > 40 else "")
        raise ValueError(f"not an MD5 checksum: {shown!r}")
    return first.lower()


# ---------------------------------------------------------------- partitions


@dataclass(frozen=True)
class Partition:
    """An AWS partition: its name, the region of its agent bucket, its DNS suffix.

    ``bucket_region`` is None for a partition without an agent bucket of its
    own (the partition bucket is then looked for in us-east-1, as the Go
    program does).
    """

    name: str
    region_pattern: re.Pattern[str]
    domain: str
    bucket_region: str | None = None


# The partitions of the AWS SDK's partition table (awsrulesfn, as vendored by
# the Go ecs-init), matched by region name in this order; the bucket regions
# are the Go ecs-init's partitionBucketRegion table (SPEC §10).
PARTITIONS: tuple[Partition, ...] = (
    Partition("aws", re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$", re.ASCII), "amazonaws.com", "us-east-1"),
    Partition("aws-cn", re.compile(r"^cn-\w+-\d+$", re.ASCII), "amazonaws.com.cn", "cn-north-1"),
    Partition("aws-us-gov", re.compile(r"^us-gov-\w+-\d+$", re.ASCII), "amazonaws.com", "us-gov-west-1"),
    Partition("aws-iso", re.compile(r"^us-iso-\w+-\d+$", re.ASCII), "c2s.ic.gov", "us-iso-east-1"),
    Partition("aws-iso-b", re.compile(r"^us-isob-\w+-\d+$", re.ASCII), "sc2s.sgov.gov", "us-isob-east-1"),
    Partition("aws-iso-e", re.compile(r"^eu-isoe-\w+-\d+$", re.ASCII), "cloud.adc-e.uk"),
    Partition("aws-iso-f", re.compile(r"^us-isof-\w+-\d+$", re.ASCII), "csp.hci.ic.gov"),
    Partition("aws-eusc", re.compile(r"^eusc-(de)-\w+-\d+$", re.ASCII), "amazonaws.eu"),
)
_AWS = PARTITIONS[0]


def partition_of(region: str) -> Partition | None:
    """The partition whose region pattern matches ``region``; None for an unknown region."""
    for part in PARTITIONS:
        if part.region_pattern.match(region):
            return part
    return None


def partition_for(region: str) -> Partition:
    """The partition of ``region``; an unknown region counts as ``aws`` (the SDK's fallback)."""
    return partition_of(region) or _AWS


def partition_bucket_region(region: str) -> str:
    """Where the partition bucket is: the partition's bucket region, else us-east-1."""
    part = partition_of(region)
    if part is None or part.bucket_region is None:
        return DEFAULT_REGION
    return part.bucket_region


def dns_suffix(region: str) -> str:
    """The host-name suffix of S3 in ``region`` (e.g. c2s.ic.gov in us-iso-east-1)."""
    return partition_for(region).domain


def object_url(bucket: str, region: str, key: str, endpoint: str = "") -> str:
    """Virtual-hosted S3 URL, or path-style under ``endpoint`` when set.

    The DNS suffix is the partition's of the bucket's ``region``: the
    partition bucket and the regional bucket of a region in an isolated
    partition both use that partition's suffix.
    """
    quoted = urllib.parse.quote(key)
    if endpoint:
        return f"{endpoint.rstrip('/')}/{bucket}/{quoted}"
    return f"https://{bucket}.s3.{region}.{dns_suffix(region)}/{quoted}"


@dataclass(frozen=True)
class Source:
    bucket: str
    region: str
    key: str
    endpoint: str = ""

    @property
    def url(self) -> str:
        return object_url(self.bucket, self.region, self.key, self.endpoint)

    @property
    def md5_url(self) -> str:
        return object_url(self.bucket, self.region, md5_key(self.key), self.endpoint)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key} ({self.region})"


def sources(region: str, key: str, endpoint: str = "") -> list[Source]:
    """The partition bucket first, then the regional bucket."""
    return [
        Source(BUCKET, partition_bucket_region(region), key, endpoint),
        Source(f"{BUCKET}-{region}", region, key, endpoint),
    ]


# ---------------------------------------------------------------- region


def resolve_region(cfg: Config, imds_lookup: Callable[[str], str | None] | None = None) -> str:
    """External mode: AWS_DEFAULT_REGION; else IMDSv2; else us-east-1."""
    if cfg.flag("ECS_EXTERNAL"):
        configured = cfg.setting("AWS_DEFAULT_REGION").strip()
        if not configured:
            log.info("external instance without AWS_DEFAULT_REGION: downloading from %s", DEFAULT_REGION)
            return DEFAULT_REGION
        if not imds.valid_region(configured):
            log.warning("AWS_DEFAULT_REGION=%r is not a region name; using %s", configured[:64], DEFAULT_REGION)
            return DEFAULT_REGION
        return configured
    endpoint = cfg.setting(IMDS_ENDPOINT_KEY).strip() or imds.DEFAULT_ENDPOINT
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
    endpoint = cfg.setting(S3_ENDPOINT_KEY).strip()
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


__all__ = [
    "PARTITIONS",
    "Partition",
    "Source",
    "artifact_key",
    "download_agent",
    "md5_key",
    "object_url",
    "parse_md5",
    "dns_suffix",
    "partition_bucket_region",
    "partition_for",
    "partition_of",
    "resolve_region",
    "sources",
]
