"""``check --network``: the decisions that need no network (endpoints, proxy settings, external mode)."""

from __future__ import annotations

import pytest

from ecs_init.core.config import Config, Paths
from ecs_init.host.context import HostContext
from ecs_init.ops import netcheck, netcheck_local


def ctx(tmp_path, environ: dict[str, str] | None = None, operator: dict[str, str] | None = None) -> HostContext:  # type: ignore[no-untyped-def]
    cfg = Config(paths=Paths(prefix=str(tmp_path)), environ=dict(environ or {}), operator=dict(operator or {}))
    return HostContext(cfg=cfg)


@pytest.mark.parametrize(
    ("region", "url"),
    [
        ("eu-west-1", "https://ecs.eu-west-1.amazonaws.com"),
        ("cn-north-1", "https://ecs.cn-north-1.amazonaws.com.cn"),
        ("us-iso-east-1", "https://ecs.us-iso-east-1.c2s.ic.gov"),
        ("us-isob-east-1", "https://ecs.us-isob-east-1.sc2s.sgov.gov"),
        ("eusc-de-east-1", "https://ecs.eusc-de-east-1.amazonaws.eu"),
    ],
)
def test_ecs_endpoint_by_partition(tmp_path, region: str, url: str) -> None:  # type: ignore[no-untyped-def]
    assert netcheck.ecs_endpoint_url(ctx(tmp_path), region) == url


def test_ecs_endpoint_overrides(tmp_path) -> None:  # type: ignore[no-untyped-def]
    backend = ctx(tmp_path, operator={"ECS_BACKEND_HOST": "ecs-fips.us-east-1.amazonaws.com"})
    assert netcheck.ecs_endpoint_url(backend, "us-east-1") == "https://ecs-fips.us-east-1.amazonaws.com"
    both = ctx(
        tmp_path,
        environ={"ECS_INIT_ECS_ENDPOINT": "https://127.0.0.1:8443/"},
        operator={"ECS_BACKEND_HOST": "https://ecs-fips.us-east-1.amazonaws.com"},
    )
    assert netcheck.ecs_endpoint_url(both, "us-east-1") == "https://127.0.0.1:8443"


def test_external_mode_takes_the_region_from_the_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    check, region, source = netcheck.check_imds(
        ctx(tmp_path, {"ECS_EXTERNAL": "true", "AWS_DEFAULT_REGION": "ap-south-1"})
    )
    assert (check.status, region, source) == ("SKIP", "ap-south-1", "AWS_DEFAULT_REGION")
    check, region, source = netcheck.check_imds(ctx(tmp_path, {"ECS_EXTERNAL": "true"}))
    assert (check.status, region, source) == ("WARN", "us-east-1", "fallback")
    assert "AWS_DEFAULT_REGION" in check.hint
    check, region, _ = netcheck.check_imds(ctx(tmp_path, {"ECS_EXTERNAL": "true", "AWS_DEFAULT_REGION": "Mars"}))
    assert (check.status, region) == ("WARN", "us-east-1") and "'Mars' is not a region name" in check.reason


def test_proxy_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    none = netcheck_local.check_proxy(ctx(tmp_path))
    assert none.status == "SKIP"
    good = netcheck_local.check_proxy(
        ctx(tmp_path, operator={"HTTP_PROXY": "10.0.0.131:3128", "NO_PROXY": "169.254.169.254,169.254.170.2"})
    )
    assert good.status == "PASS" and "agent: HTTP_PROXY in ecs.config" in good.reason
    leaky = netcheck_local.check_proxy(ctx(tmp_path, operator={"HTTPS_PROXY": "proxy:3128", "NO_PROXY": "10.0.0.0/8"}))
    assert leaky.status == "WARN" and "169.254.169.254, 169.254.170.2" in leaky.reason
    # no NO_PROXY at all: the agent adds the local endpoints itself
    assert netcheck_local.check_proxy(ctx(tmp_path, operator={"HTTPS_PROXY": "proxy:3128"})).status == "PASS"
    bad = netcheck_local.check_proxy(ctx(tmp_path, environ={"HTTPS_PROXY": "ftp://proxy:21"}))
    assert bad.status == "FAIL" and "HTTPS_PROXY in this program's environment is not a proxy URL" in bad.reason


def test_a_broken_or_late_check_is_a_fail_line() -> None:
    broken = netcheck._as_checks("network.proxy", RuntimeError("boom"))
    assert [(c.name, c.status) for c in broken] == [("network.proxy", "FAIL")] and "boom" in broken[0].reason
    late = netcheck._as_checks("network.ecs-endpoint", None)
    assert late[0].status == "FAIL" and "no answer within 3s" in late[0].reason
