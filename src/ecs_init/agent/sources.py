"""Where the agent comes from (SPEC §10), pure: artifact names, partitions and their DNS suffixes, buckets, URLs.

``download`` fetches from these sources; ``check --network`` probes them.
"""

from __future__ import annotations

import platform
import re
import urllib.parse
from dataclasses import dataclass

from ecs_init import AGENT_VERSION
from ecs_init.core.errors import InitError

DEFAULT_REGION = "us-east-1"
BUCKET = "amazon-ecs-agent"

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
