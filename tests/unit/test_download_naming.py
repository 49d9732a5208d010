"""Artifact names, partitions, source order and URLs, MD5 parsing (SPEC §10)."""

from __future__ import annotations

import pytest

from ecs_init import AGENT_VERSION
from ecs_init.download import (
    artifact_key,
    md5_key,
    object_url,
    parse_md5,
    partition_for,
    sources,
)
from ecs_init.errors import InitError


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


@pytest.mark.parametrize(
    "region,name,bucket_region",
    [
        ("us-east-1", "aws", "us-east-1"),
        ("eu-west-1", "aws", "us-east-1"),
        ("ap-southeast-2", "aws", "us-east-1"),
        ("cn-north-1", "aws-cn", "cn-north-1"),
        ("cn-northwest-1", "aws-cn", "cn-north-1"),
        ("us-gov-east-1", "aws-us-gov", "us-gov-west-1"),
        ("us-gov-west-1", "aws-us-gov", "us-gov-west-1"),
        ("us-iso-east-1", "aws-iso", "us-iso-east-1"),
        ("us-iso-west-1", "aws-iso", "us-iso-east-1"),
        ("us-isob-east-1", "aws-iso-b", "us-isob-east-1"),
        ("xx-unknown-9", "aws", "us-east-1"),
    ],
)
def test_partition_table(region: str, name: str, bucket_region: str) -> None:
    part = partition_for(region)
    assert (part.name, part.bucket_region) == (name, bucket_region)


KEY = "ecs-agent-v1.105.1.tar"


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


def test_sources_china_use_the_cn_domain() -> None:
    urls = [s.url for s in sources("cn-northwest-1", KEY)]
    assert urls == [
        f"https://amazon-ecs-agent.s3.cn-north-1.amazonaws.com.cn/{KEY}",
        f"https://amazon-ecs-agent-cn-northwest-1.s3.cn-northwest-1.amazonaws.com.cn/{KEY}",
    ]


@pytest.mark.parametrize(
    "region,first",
    [
        ("us-gov-east-1", "https://amazon-ecs-agent.s3.us-gov-west-1.amazonaws.com/"),
        ("us-iso-west-1", "https://amazon-ecs-agent.s3.us-iso-east-1.amazonaws.com/"),
        ("us-isob-east-1", "https://amazon-ecs-agent.s3.us-isob-east-1.amazonaws.com/"),
        ("us-east-1", "https://amazon-ecs-agent.s3.us-east-1.amazonaws.com/"),
    ],
)
def test_sources_other_partitions(region: str, first: str) -> None:
    found = sources(region, KEY)
    assert found[0].url == first + KEY
    assert found[1].bucket == f"amazon-ecs-agent-{region}"
    assert found[1].url == f"https://amazon-ecs-agent-{region}.s3.{region}.amazonaws.com/{KEY}"


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
