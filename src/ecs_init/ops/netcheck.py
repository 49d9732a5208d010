"""``amazon-ecs-init check --network``: can this host reach what the agent needs?

Each check reports PASS/WARN/FAIL/SKIP with a hint, like ``check``:

- ``network.imds``: an IMDSv2 token and the region from the instance
  metadata service (never through a proxy); skipped in external mode, where
  the region is ``AWS_DEFAULT_REGION``.
- ``network.ecs-endpoint``: DNS, TCP and a verified TLS handshake with the
  ECS endpoint ``ecs.<region>.<partition DNS suffix>`` (``ECS_BACKEND_HOST``
  from ecs.config when the agent is given one), through the proxy the agent
  would use (its environment: the ecs.config files).
- ``network.s3.partition-bucket`` / ``network.s3.regional-bucket``: an
  anonymous HEAD of the agent's ``.md5`` in each bucket the download tries,
  through the proxy the download would use (this program's environment).
- ``network.proxy``: the proxy settings, and whether ``NO_PROXY`` keeps the
  metadata and credentials endpoints off the proxy.
- ``network.credentials-rules``: the DNAT/REDIRECT rules for 169.254.170.2:80
  and ``route_localnet``.
- ``network.credentials-endpoint``: when the agent listens on
  127.0.0.1:51679, that 169.254.170.2:80 reaches it (from this host, i.e.
  through the REDIRECT rule).

Every check has a 3 s budget; checks that do not depend on each other run in
parallel (the region first), so the whole command finishes in about 6 s
and never more than 10 s. Overrides for tests and private mirrors:
``ECS_INIT_IMDS_ENDPOINT``, ``ECS_INIT_S3_ENDPOINT``, ``ECS_INIT_ECS_ENDPOINT``.
"""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from typing import Any, Callable, Mapping, Sequence

from ecs_init.agent import imds
from ecs_init.agent import sources as agent_sources
from ecs_init.agent.proxy import proxy_for
from ecs_init.core import redact, settings
from ecs_init.core.errors import InitError
from ecs_init.host.context import HostContext
from ecs_init.ops.check import FAIL, PASS, SKIP, WARN, Check, format_human, report
from ecs_init.ops.netcheck_local import (
    CHECK_TIMEOUT,
    check_credentials_endpoint,
    check_credentials_rules,
    check_proxy,
    elapsed,
)
from ecs_init.ops.netprobe import CONNECT, DNS, HTTP, PROXY, REFUSED, TLS, Outcome, probe
from ecs_init.ops.report import write_report

TOTAL_TIMEOUT = 10.0  # seconds, the whole command
RESERVE = 1.0  # seconds of it kept for start-up and the report
BACKEND_HOST_KEY = "ECS_BACKEND_HOST"

REGION_IMDS = "instance metadata"
REGION_ENV = "AWS_DEFAULT_REGION"
REGION_FALLBACK = "fallback"

_STEP_HINTS = {
    DNS: "check /etc/resolv.conf and the VPC's DNS (enableDnsSupport); a subnet without internet access needs "
    "interface VPC endpoints with private DNS, or a proxy",
    CONNECT: "outbound HTTPS (port 443) is blocked or unrouted: check the security group's outbound rules, the network "
    "ACLs, the route to an internet or NAT gateway (or VPC endpoint) and the host firewall",
    REFUSED: "the connection was actively refused: a firewall REJECTs it, or nothing listens on that address and "
    "port (check an endpoint override, if one is set)",
    PROXY: "check HTTPS_PROXY/HTTP_PROXY and that the proxy allows CONNECT to port 443 of this endpoint",
    TLS: "the host does not trust this certificate: update the ca-certificates package; a TLS-inspecting proxy "
    "needs its CA in the host's trust store",
}


def _hint(outcome: Outcome) -> str:
    """The fix for a failed step (a refused connection has its own)."""
    return _STEP_HINTS.get(outcome.cause if outcome.cause == REFUSED else outcome.step, "")


def _via(outcome: Outcome) -> str:
    return f" through proxy {outcome.proxy}" if outcome.proxy else ""


# ---------------------------------------------------------------- instance metadata and region


def check_imds(ctx: HostContext) -> tuple[Check, str, str]:
    """(the check, the region the other checks use, where it came from)."""
    cfg = ctx.cfg
    name = "network.imds"
    if cfg.flag(settings.EXTERNAL):
        configured = cfg.raw(settings.REGION).strip()
        if configured and imds.valid_region(configured):
            reason = f"external instance (ECS_EXTERNAL=true): region {configured} from AWS_DEFAULT_REGION"
            return Check(name, SKIP, reason), configured, REGION_ENV
        shown = f"AWS_DEFAULT_REGION={configured!r} is not a region name" if configured else "no AWS_DEFAULT_REGION"
        return (
            Check(
                name,
                WARN,
                f"external instance (ECS_EXTERNAL=true) with {shown}: {agent_sources.DEFAULT_REGION} is used",
                "set AWS_DEFAULT_REGION to this instance's region in /etc/ecs/ecs.config",
            ),
            agent_sources.DEFAULT_REGION,
            REGION_FALLBACK,
        )
    endpoint = (cfg.raw(settings.IMDS_ENDPOINT).strip() or imds.DEFAULT_ENDPOINT).rstrip("/")
    started = time.monotonic()
    token = probe(
        endpoint + imds.TOKEN_PATH,
        method="PUT",
        headers={imds.TOKEN_TTL_HEADER: imds.TOKEN_TTL},
        timeout=CHECK_TIMEOUT * 0.6,
    )
    details = {"url": endpoint, **{k: v for k, v in token.details().items() if k != "url"}}
    fallback = f"; {agent_sources.DEFAULT_REGION} is assumed"
    enable = (
        "on EC2: enable the metadata service (aws ec2 modify-instance-metadata-options --http-endpoint enabled); "
        "off EC2 (ECS Anywhere): set ECS_EXTERNAL=true and AWS_DEFAULT_REGION"
    )
    if not token.ok or not token.body.strip():
        if token.status is not None and token.status >= 400:
            what = f"refused an IMDSv2 token: HTTP {token.status} {token.reason}".rstrip()
            hint = "allow IMDSv2 token requests in the instance's metadata options (http-endpoint enabled)"
        else:
            what = f"does not answer: {token.error or 'empty token'}"
            hint = enable
        return (
            Check(name, FAIL, f"the instance metadata service at {endpoint} {what}{fallback}", hint, details),
            agent_sources.DEFAULT_REGION,
            REGION_FALLBACK,
        )
    left = max(0.2, CHECK_TIMEOUT - (time.monotonic() - started))
    answer = probe(
        endpoint + imds.REGION_PATH,
        method="GET",
        headers={imds.TOKEN_HEADER: token.body.decode("ascii", errors="replace").strip()},
        timeout=left,
    )
    details["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    region = answer.body.decode("utf-8", errors="replace").strip()
    if not answer.ok or not imds.valid_region(region):
        why = answer.error if not answer.ok else f"answered {region[:40]!r}, not a region name"
        return (
            Check(
                name,
                FAIL,
                f"IMDSv2 token from {endpoint}, but the region lookup failed: {why}{fallback}",
                enable,
                details,
            ),
            agent_sources.DEFAULT_REGION,
            REGION_FALLBACK,
        )
    details["region"] = region
    reason = f"IMDSv2 token and region {region} from {endpoint} in {details['elapsed_ms']} ms"
    return Check(name, PASS, reason, "", details), region, REGION_IMDS


# ---------------------------------------------------------------- ECS and S3


def ecs_endpoint_url(ctx: HostContext, region: str) -> str:
    """ECS_INIT_ECS_ENDPOINT, else the agent's ECS_BACKEND_HOST, else ``https://ecs.<region>.<dns suffix>``."""
    cfg = ctx.cfg
    override = cfg.raw(settings.ECS_ENDPOINT).strip() or cfg.merged.get(BACKEND_HOST_KEY, "").strip()
    if override:
        return (override if "://" in override else "https://" + override).rstrip("/")
    return f"https://ecs.{region}.{agent_sources.dns_suffix(region)}"


def check_ecs_endpoint(ctx: HostContext, region: str) -> Check:
    name = "network.ecs-endpoint"
    url = ecs_endpoint_url(ctx, region)
    agent_proxy = proxy_for(url, ctx.cfg.merged)
    outcome = probe(url, proxy=agent_proxy, timeout=CHECK_TIMEOUT, tls_only=url.startswith("https:"))
    details = outcome.details()
    host = outcome.url.split("//", 1)[-1]
    if outcome.ok:
        resolved = f" resolves to {', '.join(outcome.addresses[:3])}," if outcome.addresses else ""
        tls = f" TLS ({outcome.tls_version}) verified" if outcome.tls_version else " answers"
        return Check(name, PASS, f"{host}{resolved}{tls}{_via(outcome)} in {elapsed(outcome)}", "", details)
    hint = _hint(outcome)
    if outcome.step == PROXY and agent_proxy is not None:
        hint = f"check {agent_proxy.variable} in /etc/ecs/ecs.config and that the proxy allows CONNECT to {host}:443"
    return Check(name, FAIL, f"the agent cannot reach ECS{_via(outcome)}: {outcome.error}", hint, details)


def _s3_hint(outcome: Outcome, key: str, region: str) -> str:
    if outcome.step != HTTP:
        return _hint(outcome)
    if outcome.status == 403:
        return (
            "S3 refuses anonymous reads from here: an S3 VPC endpoint policy, a proxy or a firewall may deny the agent "
            "bucket; allow s3:GetObject on arn:aws:s3:::amazon-ecs-agent*"
        )
    if outcome.status == 404:
        return f"{key} is not published there for {region}: check ECS_INIT_S3_ENDPOINT, or install the agent tarball"
    return "S3 answered with an error: try again later, or check ECS_INIT_S3_ENDPOINT"


def _head(url: str, env: Mapping[str, str]) -> Outcome:
    """An anonymous HEAD of ``url`` as the download would send it (its proxy, from ``env``)."""
    return probe(url, proxy=proxy_for(url, env), timeout=CHECK_TIMEOUT)


def check_s3(ctx: HostContext, region: str) -> list[Check]:
    """One check per bucket the download tries; when one works, the other only WARNs."""
    try:
        artifact = agent_sources.artifact_key()
    except InitError as err:
        return [Check("network.s3.partition-bucket", FAIL, str(err), "run on x86_64 or aarch64")]
    endpoint = ctx.cfg.raw(settings.S3_ENDPOINT).strip()
    names = ("network.s3.partition-bucket", "network.s3.regional-bucket")
    key = agent_sources.md5_key(artifact)
    sources = agent_sources.sources(region, artifact, endpoint)
    results = _parallel([partial(_head, s.md5_url, ctx.cfg.environ) for s in sources], CHECK_TIMEOUT + 0.5)
    outcomes = [r if isinstance(r, Outcome) else None for r in results]
    any_ok = any(o is not None and o.ok for o in outcomes)
    checks = []
    for name, source, outcome in zip(names, sources, outcomes):
        bucket = f"s3://{source.bucket}/{key} ({source.region})"
        if outcome is None:
            checks.append(Check(name, FAIL, f"{bucket}: no answer within {CHECK_TIMEOUT:g}s", _STEP_HINTS[CONNECT]))
            continue
        details = {**outcome.details(), "bucket": source.bucket}
        if outcome.ok:
            reason = f"anonymous HEAD of {bucket}: HTTP {outcome.status}{_via(outcome)} in {elapsed(outcome)}"
            checks.append(Check(name, PASS, reason, "", details))
            continue
        status = WARN if any_ok else FAIL
        also = " (the download uses the other bucket)" if any_ok else ""
        reason = f"anonymous HEAD of {bucket}{_via(outcome)} failed: {outcome.error}{also}"
        checks.append(Check(name, status, reason, _s3_hint(outcome, key, region), details))
    return checks


# ---------------------------------------------------------------- running them


def _parallel(jobs: Sequence[Callable[[], object]], timeout: float) -> list[object]:
    """Run ``jobs`` in daemon threads; a job that has not finished by ``timeout`` yields None."""
    results: list[object] = [None] * len(jobs)

    def runner(index: int, job: Callable[[], object]) -> None:
        try:
            results[index] = job()
        except Exception as err:  # noqa: BLE001 - a check that breaks becomes a FAIL, never a traceback
            results[index] = err

    threads = [threading.Thread(target=runner, args=(i, job), daemon=True) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return list(results)


def _as_checks(name: str, result: object) -> list[Check]:
    if isinstance(result, Check):
        return [result]
    if isinstance(result, list):
        return [c for c in result if isinstance(c, Check)]
    if isinstance(result, BaseException):
        return [Check(name, FAIL, f"the check broke: {type(result).__name__}: {result}", "report this as a bug")]
    return [Check(name, FAIL, f"no answer within {CHECK_TIMEOUT:g}s", _STEP_HINTS[CONNECT])]


def run_checks(ctx: HostContext) -> tuple[list[Check], str, str]:
    """Every network check (the region first, alongside the local ones); (checks, region, region source)."""
    started = time.monotonic()
    first = _parallel(
        [
            lambda: check_imds(ctx),
            lambda: check_proxy(ctx),
            lambda: check_credentials_rules(ctx),
            lambda: check_credentials_endpoint(ctx),
        ],
        CHECK_TIMEOUT + 0.5,
    )
    imds_result = first[0]
    if isinstance(imds_result, tuple):
        imds_checks, region, source = [imds_result[0]], str(imds_result[1]), str(imds_result[2])
    else:
        imds_checks, region, source = (
            _as_checks("network.imds", imds_result),
            agent_sources.DEFAULT_REGION,
            REGION_FALLBACK,
        )
    left = TOTAL_TIMEOUT - RESERVE - (time.monotonic() - started)
    second = _parallel(
        [lambda: check_ecs_endpoint(ctx, region), lambda: check_s3(ctx, region)], min(CHECK_TIMEOUT + 1.0, left)
    )
    checks = imds_checks
    checks += _as_checks("network.ecs-endpoint", second[0])
    checks += _as_checks("network.s3.partition-bucket", second[1])
    checks += _as_checks("network.proxy", first[1])
    checks += _as_checks("network.credentials-rules", first[2])
    checks += _as_checks("network.credentials-endpoint", first[3])
    return checks, region, source


def network_report(ctx: HostContext) -> dict[str, Any]:
    started = time.monotonic()
    checks, region, source = run_checks(ctx)
    doc = report(checks, time.monotonic() - started)
    doc["region"] = region
    doc["region_source"] = source
    return doc


def main(ctx: HostContext, as_json: bool) -> int:
    doc = network_report(ctx)
    if as_json:
        text = json.dumps(doc, indent=2)
    else:
        text = f"Region {doc['region']} (from {doc['region_source']})\n\n" + format_human(doc)
    write_report(redact.redact_text(text), human=not as_json)
    return int(doc["exit_code"])
