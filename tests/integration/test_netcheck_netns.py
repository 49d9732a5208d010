"""``check --network`` end to end, inside a network namespace against stand-ins on its loopback.

The namespace (tests/netlab.py) resolves the real endpoint names to its
loopback through its own /etc/hosts; its resolver is absent (or, in one
test, swallows queries). Inside it run: the IMDSv2 stand-in (region
eu-west-1), moto as S3 (the agent's ``.md5`` in the partition bucket and the
eu-west-1 bucket), an HTTPS server on port 443 with a certificate from a CA
made for this module (trusted only through ``SSL_CERT_FILE``), the proxy
stand-in, a server that never answers, and the agent's credentials endpoint
stand-in on 127.0.0.1:51679. pre-start's host-network steps (tests/netns.py)
put the credentials rules in place when a test needs them.

One scenario per failure, each asserting the FAIL line and its hint.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Iterator

import jsonschema
import pytest
from helpers import write_config
from netlab import NetLab
from s3_stub import agent_key
from tls_stub import TestCA

pytestmark = [pytest.mark.netns, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(ROOT, "src", "ecs_init", "schemas", "check-network.schema.json")
ECS_HOST = "ecs.eu-west-1.amazonaws.com"
# "s3mirror" has no dot, so moto serves it path-style like 127.0.0.1
NAMES = {ECS_HOST: "127.0.0.1", "ecs.ap-south-1.amazonaws.com": "127.0.0.1", "s3mirror": "127.0.0.1"}
LOCAL_IPS = "169.254.169.254,169.254.170.2,/var/run/docker.sock"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetLab]:
    if os.geteuid() != 0:
        pytest.skip("needs root for ip netns")
    ca = TestCA(str(tmp_path_factory.mktemp("ca")))
    cert, key = ca.issue([ECS_HOST, "ecs.ap-south-1.amazonaws.com", "ecs.denied.example"])
    with NetLab() as net:
        net.hosts(NAMES)
        net.start_servers(
            {
                "imds": {"region": "eu-west-1"},
                "s3": {"buckets": ["amazon-ecs-agent", "amazon-ecs-agent-eu-west-1"]},
                "tls": {"cert": cert, "key": key, "port": 443},
                "proxy": {"deny": ["ecs.denied.example"]},
                "silent": True,
                "dns_blackhole": "127.0.0.2",
                "credentials": True,
            }
        )
        net.endpoints["ca"] = ca.cert_path
        yield net


@pytest.fixture
def net(lab: NetLab) -> Iterator[NetLab]:
    """The lab as every test expects it, and back so afterwards."""
    yield lab
    lab.command(s3_acl="public-read", credentials=True)
    lab.host_network("post-stop")
    lab.hosts(NAMES)
    lab.resolver("127.0.0.1")


def network_check(net: NetLab, prefix: str, **env: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]], float]:
    """Run ``check --network --json`` in the lab: (document, checks by name, seconds it took)."""
    defaults = {
        "ECS_INIT_IMDS_ENDPOINT": net.endpoints["imds"],
        "ECS_INIT_S3_ENDPOINT": net.endpoints["s3"],
        "SSL_CERT_FILE": net.endpoints["ca"],
    }
    merged = {**defaults, **env}
    started = time.monotonic()
    proc = net.cli(prefix, "check", "--network", "--json", **{k: v for k, v in merged.items() if v is not None})
    took = time.monotonic() - started
    assert "Traceback" not in proc.stderr, proc.stderr
    try:
        doc = json.loads(proc.stdout)
    except ValueError as err:
        raise AssertionError(f"no JSON: {proc.stdout!r} {proc.stderr!r}") from err
    with open(SCHEMA) as fh:
        jsonschema.validate(doc, json.load(fh))
    assert proc.returncode == doc["exit_code"]
    return doc, {c["name"]: c for c in doc["checks"]}, took


def test_everything_reachable(net: NetLab, prefix: str) -> None:
    net.host_network("pre-start")
    doc, by_name, took = network_check(net, prefix)
    statuses = {name: c["status"] for name, c in by_name.items()}
    assert statuses == {
        "network.imds": "PASS",
        "network.ecs-endpoint": "PASS",
        "network.s3.partition-bucket": "PASS",
        "network.s3.regional-bucket": "PASS",
        "network.proxy": "SKIP",
        "network.credentials-rules": "PASS",
        "network.credentials-endpoint": "PASS",
    }, json.dumps(doc, indent=1)
    assert (doc["exit_code"], doc["region"], doc["region_source"]) == (0, "eu-west-1", "instance metadata")
    ecs = by_name["network.ecs-endpoint"]
    assert ecs["url"] == f"https://{ECS_HOST}" and ecs["addresses"] == ["127.0.0.1"]
    assert ecs["reason"].startswith(f"{ECS_HOST} resolves to 127.0.0.1, TLS (TLSv1.")
    key = agent_key() + ".md5"
    assert by_name["network.s3.partition-bucket"]["url"] == f"{net.endpoints['s3']}/amazon-ecs-agent/{key}"
    assert by_name["network.s3.regional-bucket"]["url"] == f"{net.endpoints['s3']}/amazon-ecs-agent-eu-west-1/{key}"
    assert "both answer HTTP 400" in by_name["network.credentials-endpoint"]["reason"]
    assert took < 10


def test_human_output(net: NetLab, prefix: str) -> None:
    proc = net.cli(
        prefix, "check", "--network", ECS_INIT_IMDS_ENDPOINT=net.endpoints["imds"],
        ECS_INIT_S3_ENDPOINT=net.endpoints["s3"], SSL_CERT_FILE=net.endpoints["ca"],
    )  # fmt: skip
    assert proc.stdout.startswith("Region eu-west-1 (from instance metadata)\n")
    assert "PASS  network.ecs-endpoint" in proc.stdout
    assert "FAIL  network.credentials-rules" in proc.stdout and "hint: run `amazon-ecs-init pre-start`" in proc.stdout
    assert proc.returncode == 1


def test_dns_fails(net: NetLab, prefix: str) -> None:
    _, by_name, _ = network_check(net, prefix, ECS_INIT_ECS_ENDPOINT="https://ecs.nowhere.example")
    ecs = by_name["network.ecs-endpoint"]
    assert (ecs["status"], ecs["failed_step"]) == ("FAIL", "dns")
    assert ecs["reason"].startswith("the agent cannot reach ECS: DNS lookup of ecs.nowhere.example failed: ")
    assert "resolv.conf" in ecs["hint"] and "VPC endpoints" in ecs["hint"]


def test_tcp_refused(net: NetLab, prefix: str) -> None:
    _, by_name, _ = network_check(net, prefix, ECS_INIT_ECS_ENDPOINT=f"https://{ECS_HOST}:8443")
    ecs = by_name["network.ecs-endpoint"]
    assert (ecs["status"], ecs["failed_step"]) == ("FAIL", "connect")
    assert ecs["reason"] == f"the agent cannot reach ECS: connection to {ECS_HOST} (127.0.0.1:8443) refused"
    assert ecs["hint"].startswith("the connection was actively refused")


def test_tls_untrusted(net: NetLab, prefix: str) -> None:
    _, by_name, _ = network_check(net, prefix, SSL_CERT_FILE=None)  # type: ignore[arg-type]
    ecs = by_name["network.ecs-endpoint"]
    assert (ecs["status"], ecs["failed_step"]) == ("FAIL", "tls")
    assert ecs["reason"].startswith(f"the agent cannot reach ECS: the certificate of {ECS_HOST} is not trusted: ")
    assert "ca-certificates" in ecs["hint"]


def test_http_403(net: NetLab, prefix: str) -> None:
    net.command(s3_acl="private")
    _, by_name, _ = network_check(net, prefix)
    for name, bucket in (("network.s3.partition-bucket", "amazon-ecs-agent"),
                         ("network.s3.regional-bucket", "amazon-ecs-agent-eu-west-1")):  # fmt: skip
        s3 = by_name[name]
        assert (s3["status"], s3["failed_step"], s3["http_status"]) == ("FAIL", "http", 403)
        assert s3["reason"].startswith(f"anonymous HEAD of s3://{bucket}/{agent_key()}.md5 (")
        assert s3["reason"].lower().endswith(": http 403 forbidden")
        assert "anonymous reads" in s3["hint"] and "s3:GetObject" in s3["hint"]


def test_external_mode_and_a_missing_regional_bucket(net: NetLab, prefix: str) -> None:
    doc, by_name, _ = network_check(net, prefix, ECS_EXTERNAL="true", AWS_DEFAULT_REGION="ap-south-1")
    assert (doc["region"], doc["region_source"]) == ("ap-south-1", "AWS_DEFAULT_REGION")
    assert by_name["network.imds"]["status"] == "SKIP"
    assert by_name["network.ecs-endpoint"]["status"] == "PASS"
    assert by_name["network.ecs-endpoint"]["url"] == "https://ecs.ap-south-1.amazonaws.com"
    assert by_name["network.s3.partition-bucket"]["status"] == "PASS"
    regional = by_name["network.s3.regional-bucket"]
    assert (regional["status"], regional["http_status"]) == ("WARN", 404)
    assert regional["reason"].endswith("(the download uses the other bucket)")


def test_imds_unreachable(net: NetLab, prefix: str) -> None:
    doc, by_name, _ = network_check(net, prefix, ECS_INIT_IMDS_ENDPOINT="http://127.0.0.1:9")
    imds = by_name["network.imds"]
    assert imds["status"] == "FAIL"
    assert "http://127.0.0.1:9 does not answer: connection to 127.0.0.1:9 refused" in imds["reason"]
    assert imds["reason"].endswith("us-east-1 is assumed") and "ECS_EXTERNAL=true" in imds["hint"]
    assert (doc["region"], doc["region_source"]) == ("us-east-1", "fallback")


def test_through_the_proxies(net: NetLab, prefix: str) -> None:
    """The agent's proxy (ecs.config) for ECS, the download's (this program's environment) for S3."""
    proxy = net.endpoints["proxy"]
    write_config(prefix, f"HTTPS_PROXY={proxy.replace('http://', '')}\nNO_PROXY={LOCAL_IPS}\n")
    s3 = net.endpoints["s3"].replace("127.0.0.1", "s3mirror")
    before = len(net.command(records=True)["proxy"])
    _, by_name, _ = network_check(net, prefix, ECS_INIT_S3_ENDPOINT=s3, HTTP_PROXY=proxy)
    seen = net.command(records=True)["proxy"][before:]
    assert ["CONNECT", f"{ECS_HOST}:443"] in seen
    assert ["HEAD", f"{s3}/amazon-ecs-agent/{agent_key()}.md5"] in seen
    assert ["HEAD", f"{s3}/amazon-ecs-agent-eu-west-1/{agent_key()}.md5"] in seen
    for name in ("network.ecs-endpoint", "network.s3.partition-bucket", "network.s3.regional-bucket"):
        assert by_name[name]["status"] == "PASS", by_name[name]
        assert by_name[name]["proxy"] == proxy and f"through proxy {proxy}" in by_name[name]["reason"]
    assert by_name["network.proxy"]["status"] == "PASS"
    assert by_name["network.imds"]["status"] == "PASS"  # never through the proxy
    assert all(not target.startswith(("127.0.0.1", "169.254")) for _, target in seen)


def test_proxy_refusing_the_tunnel_and_no_proxy_missing_the_local_endpoints(net: NetLab, prefix: str) -> None:
    write_config(prefix, f"HTTPS_PROXY={net.endpoints['proxy']}\nNO_PROXY=s3mirror\n")
    _, by_name, _ = network_check(net, prefix, ECS_INIT_ECS_ENDPOINT="https://ecs.denied.example")
    ecs = by_name["network.ecs-endpoint"]
    assert (ecs["status"], ecs["failed_step"]) == ("FAIL", "proxy")
    assert "refused to open a tunnel to ecs.denied.example:443: HTTP 403 Forbidden" in ecs["reason"]
    assert ecs["hint"].startswith("check HTTPS_PROXY in /etc/ecs/ecs.config")
    settings = by_name["network.proxy"]
    assert settings["status"] == "WARN" and "169.254.169.254, 169.254.170.2" in settings["reason"]
    assert LOCAL_IPS in settings["hint"]


def test_credentials_endpoint_without_the_rules(net: NetLab, prefix: str) -> None:
    _, by_name, _ = network_check(net, prefix)
    rules = by_name["network.credentials-rules"]
    assert rules["status"] == "FAIL" and "-j DNAT --to-destination 127.0.0.1:51679" in rules["reason"]
    assert "-j REDIRECT --to-ports 51679" in rules["reason"] and "pre-start" in rules["hint"]
    endpoint = by_name["network.credentials-endpoint"]
    assert endpoint["status"] == "FAIL"
    assert endpoint["reason"].startswith("169.254.170.2:80 does not reach the agent's 127.0.0.1:51679: ")
    assert "REDIRECT rule" in endpoint["hint"] and "pre-start" in endpoint["hint"]


def test_agent_not_running(net: NetLab, prefix: str) -> None:
    net.host_network("pre-start")
    net.command(credentials=False)
    _, by_name, _ = network_check(net, prefix)
    assert by_name["network.credentials-rules"]["status"] == "PASS"
    endpoint = by_name["network.credentials-endpoint"]
    assert endpoint["status"] == "SKIP" and endpoint["reason"].startswith("the agent is not running")


def test_everything_hangs_yet_the_command_ends_within_10_seconds(net: NetLab, prefix: str) -> None:
    """Metadata that never answers, a resolver that swallows queries, S3 that never answers."""
    net.resolver("127.0.0.2", timeout=30, attempts=5)
    silent = net.endpoints["silent"]
    doc, by_name, took = network_check(net, prefix, ECS_INIT_IMDS_ENDPOINT=silent, ECS_INIT_S3_ENDPOINT=silent)
    assert took < 10, took
    assert doc["duration_seconds"] < 8
    assert "does not answer" in by_name["network.imds"]["reason"]
    ecs = by_name["network.ecs-endpoint"]
    assert ecs["reason"].endswith("DNS lookup of ecs.us-east-1.amazonaws.com did not answer within 3s")
    for name in ("network.s3.partition-bucket", "network.s3.regional-bucket"):
        assert by_name[name]["status"] == "FAIL" and "no answer within 3s" in by_name[name]["reason"]
