"""The host's side of ``check --network``: proxy settings and the credentials endpoint.

``network.proxy`` reads the settings only; ``network.credentials-rules``
asks ``iptables -C`` and reads ``route_localnet``; ``network.credentials-endpoint``
talks to 127.0.0.1:51679 and 169.254.170.2:80 over this host's loopback and
REDIRECT rule. None of them needs the region, so they run alongside the
metadata lookup (see ``netcheck``).
"""

from __future__ import annotations

from typing import Optional

from ecs_init.agent.proxy import bypassed, env_value, invalid_settings
from ecs_init.core.errors import CommandError, first_line
from ecs_init.host import loopback, netfilter, netrules
from ecs_init.host.context import HostContext
from ecs_init.ops.check import FAIL, PASS, SKIP, WARN, Check
from ecs_init.ops.netprobe import Outcome, probe

CHECK_TIMEOUT = 3.0  # seconds, each network check
IMDS_IP = "169.254.169.254"
CREDENTIALS_PATH = "/v2/credentials/"
AGENT_CREDENTIALS_URL = f"http://127.0.0.1:{netrules.AGENT_CREDENTIALS_PORT}{CREDENTIALS_PATH}"
CREDENTIALS_URL = f"http://{netrules.CREDENTIALS_IP}:{netrules.CREDENTIALS_PORT}{CREDENTIALS_PATH}"
INTROSPECTION_URL = f"http://127.0.0.1:{netrules.INTROSPECTION_PORT}/v1/metadata"
PRE_START_HINT = "run `amazon-ecs-init pre-start` (systemctl restart ecs, or stop ecs; start ecs, runs it)"


def elapsed(outcome: Outcome) -> str:
    return f"{outcome.elapsed * 1000:.0f} ms"


# ---------------------------------------------------------------- proxy settings


def check_proxy(ctx: HostContext) -> Check:
    cfg = ctx.cfg
    name = "network.proxy"
    where = {"agent": (cfg.merged, "ecs.config"), "download": (cfg.environ, "this program's environment")}
    found: list[str] = []
    for who, (env, origin) in where.items():
        bad = invalid_settings(env)
        if bad:
            return Check(
                name,
                FAIL,
                f"{', '.join(bad)} in {origin} is not a proxy URL: it is ignored",
                "write it as http://host:port (or host:port)",
            )
        for variable in ("HTTPS_PROXY", "HTTP_PROXY"):
            value, spelled = env_value(env, variable)
            if value:
                found.append(f"{who}: {spelled} in {origin}")
                break
    if not found:
        return Check(name, SKIP, "no HTTPS_PROXY or HTTP_PROXY set: every endpoint is reached directly")
    details = {"settings": found}
    agent_env = cfg.merged
    no_proxy, _ = env_value(agent_env, "NO_PROXY")
    agent_proxied = found[0].startswith("agent:")
    if agent_proxied and no_proxy:
        leaks = [ip for ip, port in ((IMDS_IP, 80), (netrules.CREDENTIALS_IP, 80)) if not bypassed(ip, port, no_proxy)]
        if leaks:
            return Check(
                name,
                WARN,
                f"NO_PROXY in ecs.config does not cover {', '.join(leaks)}: the agent would ask the proxy for them",
                f"add {IMDS_IP},{netrules.CREDENTIALS_IP},/var/run/docker.sock to NO_PROXY in /etc/ecs/ecs.config",
                details,
            )
    reason = "proxy set (" + "; ".join(found) + ")"
    if agent_proxied:
        reason += (
            "; NO_PROXY keeps the metadata and credentials endpoints direct"
            if no_proxy
            else "; with no NO_PROXY the agent keeps the metadata and credentials endpoints off the proxy itself"
        )
    return Check(name, PASS, reason, "", details)


# ---------------------------------------------------------------- credentials endpoint


def check_credentials_rules(ctx: HostContext) -> Check:
    name = "network.credentials-rules"
    if ctx.runner.which("iptables") is None:
        return Check(
            name, WARN, "iptables is not installed: cannot tell whether the rules are in place", "install iptables"
        )
    missing, unknown = [], []
    for rule in (netrules.credentials_dnat(), netrules.credentials_redirect()):
        try:
            if not netfilter.is_present(ctx.runner, rule, wait=1, timeout=CHECK_TIMEOUT - 0.5):
                missing.append(str(rule))
        except CommandError as err:
            unknown.append(first_line(err))
    try:
        localnet: Optional[str] = loopback.route_localnet(ctx, timeout=CHECK_TIMEOUT - 0.5)
    except CommandError:
        localnet = None
    if missing:
        return Check(name, FAIL, f"missing: {'; '.join(missing)}", PRE_START_HINT, {"missing": missing})
    if unknown:
        return Check(name, WARN, f"cannot check the rules: {unknown[0]}", "run as root")
    if localnet is not None and localnet != "1":
        return Check(
            name,
            FAIL,
            f"net.ipv4.conf.all.route_localnet is {localnet}: containers' DNAT to 127.0.0.1 is dropped",
            PRE_START_HINT,
        )
    return Check(
        name,
        PASS,
        "DNAT (nat PREROUTING) and REDIRECT (nat OUTPUT) rules for "
        f"{netrules.CREDENTIALS_IP}:{netrules.CREDENTIALS_PORT} in place, route_localnet={localnet}",
    )


def check_credentials_endpoint(ctx: HostContext) -> Check:
    name = "network.credentials-endpoint"
    budget = (CHECK_TIMEOUT - 0.2) / 2
    direct = probe(AGENT_CREDENTIALS_URL, method="GET", timeout=budget)
    if direct.status is None:
        metadata = probe(INTROSPECTION_URL, method="GET", timeout=min(1.0, budget))
        if metadata.ok:
            return Check(
                name,
                FAIL,
                f"the agent answers on {INTROSPECTION_URL} but not on 127.0.0.1:51679: {direct.error}",
                "look at the agent's log (/var/log/ecs/ecs-agent.log): its credentials endpoint did not start",
                direct.details(),
            )
        return Check(name, SKIP, f"the agent is not running (nothing answers on 127.0.0.1:51679: {direct.error})")
    via = probe(CREDENTIALS_URL, method="GET", timeout=budget)
    details = {**via.details(), "agent_http_status": direct.status}
    if via.status is None:
        return Check(
            name,
            FAIL,
            f"{netrules.CREDENTIALS_IP}:{netrules.CREDENTIALS_PORT} does not reach the agent's 127.0.0.1:51679: "
            f"{via.error}",
            f"the REDIRECT rule, route_localnet or (IPv6-only hosts) the route to {netrules.CREDENTIALS_IP} is "
            f"missing: {PRE_START_HINT}",
            details,
        )
    if via.status != direct.status:
        return Check(
            name,
            WARN,
            f"{netrules.CREDENTIALS_IP}:{netrules.CREDENTIALS_PORT} answers HTTP {via.status} but the agent's "
            f"127.0.0.1:51679 answers HTTP {direct.status}: something else answers there",
            "look for other rules or services on 169.254.170.2 (iptables-save -t nat)",
            details,
        )
    return Check(
        name,
        PASS,
        f"{netrules.CREDENTIALS_IP}:{netrules.CREDENTIALS_PORT} reaches the agent's credentials endpoint "
        f"127.0.0.1:51679 (both answer HTTP {via.status}) in {elapsed(via)}",
        "",
        details,
    )
