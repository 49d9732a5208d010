"""Region selection for the download (SPEC §10) and the IMDSv2 client."""

from __future__ import annotations

import time

import pytest
from imds_stub import ImdsStub, SilentServer, closed_port_endpoint

from ecs_init.agent import imds
from ecs_init.agent.download import resolve_region
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths


def make_cfg(tmp_path, **env: str) -> Config:  # type: ignore[no-untyped-def]
    return Config.load(environ=env, paths=Paths(prefix=str(tmp_path)))


def refuse(endpoint: str) -> str | None:
    raise AssertionError("the metadata service must not be asked in external mode")


def test_external_uses_aws_default_region(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(tmp_path, ECS_EXTERNAL="true", AWS_DEFAULT_REGION="ap-south-1")
    assert resolve_region(cfg, refuse) == "ap-south-1"


def test_external_region_from_ecs_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "etc" / "ecs").mkdir(parents=True)
    (tmp_path / "etc" / "ecs" / "ecs.config").write_text("ECS_EXTERNAL=true\nAWS_DEFAULT_REGION=eu-central-1\n")
    assert resolve_region(make_cfg(tmp_path), refuse) == "eu-central-1"


def test_external_without_region_is_us_east_1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(tmp_path, ECS_EXTERNAL="true")
    assert resolve_region(cfg, refuse) == "us-east-1"


def test_external_with_garbage_region_is_us_east_1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(tmp_path, ECS_EXTERNAL="true", AWS_DEFAULT_REGION="evil.example.com/x")
    assert resolve_region(cfg, refuse) == "us-east-1"


def test_not_external_asks_the_metadata_service_at_the_configured_endpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def lookup(endpoint: str) -> str | None:
        asked.append(endpoint)
        return "sa-east-1"

    cfg = make_cfg(tmp_path, AWS_DEFAULT_REGION="ap-south-1", ECS_INIT_IMDS_ENDPOINT="http://127.0.0.1:1")
    assert resolve_region(cfg, lookup) == "sa-east-1"
    assert asked == ["http://127.0.0.1:1"]


def test_default_imds_endpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []

    def lookup(endpoint: str) -> str | None:
        asked.append(endpoint)
        return None

    assert resolve_region(make_cfg(tmp_path), lookup) == "us-east-1"
    assert asked == ["http://169.254.169.254"]


def test_imds_stub_region(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ImdsStub("eu-west-1") as stub:
        cfg = make_cfg(tmp_path, ECS_INIT_IMDS_ENDPOINT=stub.endpoint)
        assert resolve_region(cfg) == "eu-west-1"
        # the IMDSv2 flow: a token first, then the region with it
        assert stub.requests == [("PUT", imds.TOKEN_PATH), ("GET", imds.REGION_PATH)]


def test_imds_invalid_answer_is_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with ImdsStub("<html>not a region</html>") as stub:
        assert imds.region(stub.endpoint) is None
        cfg = make_cfg(tmp_path, ECS_INIT_IMDS_ENDPOINT=stub.endpoint)
        assert resolve_region(cfg) == "us-east-1"


def test_imds_without_token_is_refused_by_the_stub() -> None:
    """The stub really enforces IMDSv2 (so the client test above means something)."""
    import urllib.error
    import urllib.request

    with ImdsStub("eu-west-1") as stub, pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(stub.endpoint + imds.REGION_PATH, timeout=2)
    assert err.value.code == 401


def test_imds_closed_port_is_fast_and_falls_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(tmp_path, ECS_INIT_IMDS_ENDPOINT=closed_port_endpoint())
    started = time.monotonic()
    assert resolve_region(cfg) == "us-east-1"
    assert time.monotonic() - started < 1.2


def test_imds_black_hole_costs_at_most_about_a_second(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with SilentServer() as silent:
        cfg = make_cfg(tmp_path, ECS_INIT_IMDS_ENDPOINT=silent.endpoint)
        started = time.monotonic()
        assert resolve_region(cfg) == "us-east-1"
        elapsed = time.monotonic() - started
        assert silent.accepted >= 1  # it really connected and waited
    assert elapsed < 1.2


def test_imds_bad_endpoint(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert imds.region("not a url") is None
    assert imds.region("ftp://127.0.0.1") is None


@pytest.mark.parametrize(
    "name,ok",
    [
        ("us-east-1", True),
        ("us-isob-east-1", True),
        ("cn-northwest-1", True),
        ("", False),
        ("us-east-1\n", False),
        ("a.b.c", False),
        ("US-EAST-1", False),
    ],
)
def test_valid_region(name: str, ok: bool) -> None:
    assert imds.valid_region(name) is ok
