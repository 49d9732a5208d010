"""Proxy selection: HTTPS_PROXY/HTTP_PROXY and NO_PROXY, the agent's rule (ecs_init.agent.proxy)."""

from __future__ import annotations

from typing import Optional

import pytest

from ecs_init.agent import proxy
from ecs_init.agent.proxy import bypassed, proxy_for


def chosen(url: str, **env: str) -> Optional[str]:
    found = proxy_for(url, env)
    return found.url if found else None


def test_no_proxy_variables_means_direct() -> None:
    assert chosen("https://ecs.us-east-1.amazonaws.com") is None


def test_https_prefers_https_proxy_and_falls_back_to_http_proxy() -> None:
    assert chosen("https://a.example", HTTPS_PROXY="http://s:1", HTTP_PROXY="http://h:2") == "http://s:1"
    # the AWS documentation sets only HTTP_PROXY: https traffic goes through it too
    assert chosen("https://a.example", HTTP_PROXY="10.0.0.131:3128") == "http://10.0.0.131:3128"


def test_http_uses_only_http_proxy() -> None:
    assert chosen("http://a.example", HTTPS_PROXY="http://s:1") is None
    assert chosen("http://a.example", HTTP_PROXY="http://h:2", HTTPS_PROXY="http://s:1") == "http://h:2"


def test_upper_case_wins_and_empty_counts_as_unset() -> None:
    assert chosen("https://a.example", HTTPS_PROXY="http://up:1", https_proxy="http://low:2") == "http://up:1"
    assert chosen("https://a.example", HTTPS_PROXY="", https_proxy="http://low:2") == "http://low:2"
    found = proxy_for("https://a.example", {"https_proxy": "http://low:2"})
    assert found is not None and found.variable == "https_proxy"


def test_scheme_less_value_is_an_http_proxy_and_garbage_is_ignored() -> None:
    assert proxy.normalize("proxy.corp:3128") == "http://proxy.corp:3128"
    assert proxy.normalize("ftp://x:1") is None
    assert proxy.normalize("http://x:notaport") is None
    assert chosen("https://a.example", HTTPS_PROXY="ftp://x:1") is None
    assert proxy.invalid_settings({"HTTPS_PROXY": "ftp://x:1", "HTTP_PROXY": "ok:1"}) == ["HTTPS_PROXY"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.9.9.9", "[::1]"])
def test_loopback_is_never_proxied(host: str) -> None:
    assert chosen(f"http://{host}:8080/x", HTTP_PROXY="http://p:1") is None


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("s3.amazonaws.com", 443, "*", True),
        ("169.254.169.254", 80, "169.254.169.254,169.254.170.2", True),
        ("169.254.170.2", 80, "169.254.169.254", False),
        ("10.1.2.3", 443, "10.0.0.0/8", True),
        ("10.1.2.3", 443, "10.0.0.0/16", False),
        ("fd00::5", 443, "fd00::/64", True),
        ("ecs.us-east-1.amazonaws.com", 443, "amazonaws.com", True),  # a domain matches itself and below
        ("amazonaws.com", 443, "amazonaws.com", True),
        ("amazonaws.com", 443, ".amazonaws.com", False),  # a leading dot: subdomains only
        ("ecs.us-east-1.amazonaws.com", 443, ".amazonaws.com", True),
        ("ecs.us-east-1.amazonaws.com", 443, "*.amazonaws.com", True),
        ("notamazonaws.com", 443, "amazonaws.com", False),
        ("ecs.example", 443, "ecs.example:443", True),
        ("ecs.example", 443, "ecs.example:8443", False),
        ("10.1.2.3", 80, "10.1.2.3:80", True),
        ("ECS.Example.", 443, "ecs.example", True),
        ("ecs.example", 443, " , ,ecs.example ", True),
        ("ecs.example", 443, "/var/run/docker.sock", False),
    ],
)
def test_no_proxy_rules(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_no_proxy_applies_to_the_url_port() -> None:
    env = {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "ecs.example:443"}
    assert chosen("https://ecs.example/", **env) is None
    assert chosen("https://ecs.example:8443/", **env) == "http://p:1"


def test_proxy_parts_and_credentials() -> None:
    found = proxy_for("https://a.example", {"HTTPS_PROXY": "http://us%40er:p%3Ass@proxy.corp:3128"})
    assert found is not None
    assert (found.host, found.port, found.credentials) == ("proxy.corp", 3128, ("us@er", "p:ss"))
    bare = proxy_for("https://a.example", {"HTTPS_PROXY": "proxy.corp"})
    assert bare is not None and (bare.port, bare.credentials) == (80, None)
