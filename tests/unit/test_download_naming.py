"""Artifact names, partitions, source order and URLs, MD5 parsing (SPEC §10)."""

from __future__ import annotations

import pytest

from ecs_init import AGENT_VERSION
from ecs_init.agent.sources import (
    PARTITIONS,
    artifact_key,
    dns_suffix,
    md5_key,
    object_url,
    parse_md5,
    partition_bucket_region,
    partition_for,
    partition_of,
    sources,
)
from ecs_init.core.errors import InitError


@pytest.mark.parametrize("machine", ["x86_64", "amd64", "X86_64"])
def test_x86_key(machine: str) -> None:
    assert artifact_key("v1.105.1", machine) == "ecs-agent-v1.105.1.tar"


@pytest.mark.parametrize("machine", ["aarch64", "arm64"])
def test_arm_key(machine: str) -> None:
    assert artifact_key("v1.105.1", machine) == "ecs-agent-arm64-v1.105.1.tar"


def test_default_version_is_the_bundled_agent() -> None:
    assert artifact_key(machine="x86_64") == f"ecs-agent-{AGENT_VERSION}.tar"
    assert AGENT_VERSION == "v1.105.1"


def test_md5_key() -> None:
    assert md5_key("ecs-agent-arm64-v1.105.1.tar") == "ecs-agent-arm64-v1.105.1.tar.md5"


@pytest.mark.parametrize("machine", ["armv7l", "i686", "s390x", "ppc64le", "riscv64", ""])
def test_unknown_arch_is_an_error(machine: str) -> None:
    with pytest.raises(InitError) as err:
        artifact_key("v1.105.1", machine)
    assert "architecture" in str(err.value)
    assert "\n" not in str(err.value)


KEY = "ecs-agent-v1.105.1.tar"


# One region of every partition (SPEC §10; Go reference: awsrulesfn's partition
# table and config.partitionBucketRegion): partition, partition-bucket region,
# DNS suffix of both buckets' URLs.
EVERY_PARTITION = [
    ("us-east-1", "aws", "us-east-1", "amazonaws.com"),
    ("eu-west-1", "aws", "us-east-1", "amazonaws.com"),
    ("ap-southeast-2", "aws", "us-east-1", "amazonaws.com"),
    ("sa-east-1", "aws", "us-east-1", "amazonaws.com"),
    ("ca-central-1", "aws", "us-east-1", "amazonaws.com"),
    ("me-south-1", "aws", "us-east-1", "amazonaws.com"),
    ("af-south-1", "aws", "us-east-1", "amazonaws.com"),
    ("il-central-1", "aws", "us-east-1", "amazonaws.com"),
    ("mx-central-1", "aws", "us-east-1", "amazonaws.com"),
    ("cn-north-1", "aws-cn", "cn-north-1", "amazonaws.com.cn"),
    ("cn-northwest-1", "aws-cn", "cn-north-1", "amazonaws.com.cn"),
    ("us-gov-east-1", "aws-us-gov", "us-gov-west-1", "amazonaws.com"),
    ("us-gov-west-1", "aws-us-gov", "us-gov-west-1", "amazonaws.com"),
    ("us-iso-east-1", "aws-iso", "us-iso-east-1", "c2s.ic.gov"),
    ("us-iso-west-1", "aws-iso", "us-iso-east-1", "c2s.ic.gov"),
    ("us-isob-east-1", "aws-iso-b", "us-isob-east-1", "sc2s.sgov.gov"),
    ("eu-isoe-west-1", "aws-iso-e", None, "cloud.adc-e.uk"),
    ("us-isof-south-1", "aws-iso-f", None, "csp.hci.ic.gov"),
    ("us-isof-east-1", "aws-iso-f", None, "csp.hci.ic.gov"),
    ("eusc-de-east-1", "aws-eusc", None, "amazonaws.eu"),
]


@pytest.mark.parametrize("region,name,bucket_region,suffix", EVERY_PARTITION)
def test_partition_of_every_partition(region: str, name: str, bucket_region: str | None, suffix: str) -> None:
    part = partition_of(region)
    assert part is not None
    assert (part.name, part.bucket_region, part.domain) == (name, bucket_region, suffix)
    assert dns_suffix(region) == suffix


def test_every_partition_is_covered() -> None:
    assert {name for _, name, _, _ in EVERY_PARTITION} == {p.name for p in PARTITIONS}
    assert len(PARTITIONS) == 8


@pytest.mark.parametrize("region,name,bucket_region,suffix", EVERY_PARTITION)
def test_sources_of_every_partition(region: str, name: str, bucket_region: str | None, suffix: str) -> None:
    """The partition bucket (in the partition's bucket region, else us-east-1), then the regional bucket."""
    partition_bucket, regional = sources(region, KEY)
    if bucket_region is not None:
        assert partition_bucket.region == bucket_region
        # both buckets of a partition with its own bucket use its DNS suffix
        assert partition_bucket.url == f"https://amazon-ecs-agent.s3.{bucket_region}.{suffix}/{KEY}"
    else:
        # no agent bucket of its own: the Go program looks in us-east-1 (an amazonaws.com host)
        assert partition_bucket.region == "us-east-1"
        assert partition_bucket.url == f"https://amazon-ecs-agent.s3.us-east-1.amazonaws.com/{KEY}"
    assert regional.bucket == f"amazon-ecs-agent-{region}"
    assert regional.region == region
    assert regional.url == f"https://amazon-ecs-agent-{region}.s3.{region}.{suffix}/{KEY}"
    assert regional.md5_url == regional.url + ".md5"


def test_isolated_partitions_never_use_amazonaws_com_for_their_regional_bucket() -> None:
    """Issue 13: aws-iso, -iso-b, -iso-e, -iso-f and aws-eusc used amazonaws.com everywhere."""
    for region in ("us-iso-east-1", "us-isob-east-1", "eu-isoe-west-1", "us-isof-south-1", "eusc-de-east-1"):
        assert ".amazonaws.com/" not in sources(region, KEY)[1].url, region


@pytest.mark.parametrize("region", ["xx-unknown-9", "us-east", "useast1", "us-gov-x", "eusc-fr-east-1", "ｕs-east-1"])
def test_unknown_region(region: str) -> None:
    """Go reference: no partition -> partition bucket in us-east-1; the SDK's fallback suffix amazonaws.com."""
    assert partition_of(region) is None
    assert partition_for(region).name == "aws"
    assert partition_bucket_region(region) == "us-east-1"
    assert sources(region, KEY)[0].url == f"https://amazon-ecs-agent.s3.us-east-1.amazonaws.com/{KEY}"


def test_sources_aws() -> None:
    found = [(s.bucket, s.region, s.url, s.md5_url) for s in sources("eu-west-1", KEY)]
    assert found == [
        (
            "amazon-ecs-agent",
            "us-east-1",
            f"https://amazon-ecs-agent.s3.us-east-1.amazonaws.com/{KEY}",
            f"https://amazon-ecs-agent.s3.us-east-1.amazonaws.com/{KEY}.md5",
        ),
        (
            "amazon-ecs-agent-eu-west-1",
            "eu-west-1",
            f"https://amazon-ecs-agent-eu-west-1.s3.eu-west-1.amazonaws.com/{KEY}",
            f"https://amazon-ecs-agent-eu-west-1.s3.eu-west-1.amazonaws.com/{KEY}.md5",
        ),
    ]


def test_endpoint_override_is_path_style() -> None:
    found = sources("cn-north-1", KEY, "http://127.0.0.1:9000/")
    assert [s.url for s in found] == [
        f"http://127.0.0.1:9000/amazon-ecs-agent/{KEY}",
        f"http://127.0.0.1:9000/amazon-ecs-agent-cn-north-1/{KEY}",
    ]
    assert found[1].md5_url == f"http://127.0.0.1:9000/amazon-ecs-agent-cn-north-1/{KEY}.md5"


def test_endpoint_override_keeps_a_base_path() -> None:
    assert object_url("b", "us-east-1", "k.tar", "https://mirror.example/s3") == "https://mirror.example/s3/b/k.tar"


DIGEST = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "raw",
    [
        DIGEST.encode(),
        DIGEST.upper().encode(),
        b"  " + DIGEST.encode() + b"\n",
        b"\t" + DIGEST.encode() + b"\r\n",
        (DIGEST + "  ecs-agent-v1.105.1.tar\n").encode(),
    ],
)
def test_parse_md5_accepts(raw: bytes) -> None:
    assert parse_md5(raw) == DIGEST


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \n", DIGEST[:-1].encode(), (DIGEST + "0").encode(), b"z" * 32, b"<Error>NoSuchKey</Error>"],
)
def test_parse_md5_rejects(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_md5(raw)
