"""Netfilter rules for the credentials endpoint and introspection port (SPEC §7).

What to create comes from the pure planner in ``ecs_init.host.netrules``; this
module discovers the host facts, runs ``iptables``/``ip6tables`` through
``ctx.runner`` (always with ``-w``, waiting for the xtables lock) and makes
setup idempotent (``-C`` before adding) and teardown complete (every rule
this program may have created, duplicates included, whatever the settings
are now).
"""

from __future__ import annotations

import logging
import os

from ecs_init.core import settings
from ecs_init.core.cmd import Runner
from ecs_init.core.errors import CommandError, first_line
from ecs_init.docker.api import default_bridge as bridge_of
from ecs_init.docker.errors import EngineError
from ecs_init.host import loopback
from ecs_init.host.context import HostContext
from ecs_init.host.netrules import (
    INSERT,
    IPV4,
    IPV6,
    XTABLES_WAIT_SECONDS,
    NetFacts,
    Rule,
    RuleSettings,
    introspection_rule_of,
    plan_inserts,
    plan_setup,
    stale_introspection_rule,
    teardown_rules,
)

log = logging.getLogger(__name__)

PROC_IPV6 = "/proc/sys/net/ipv6"
# A command waits up to XTABLES_WAIT_SECONDS for the lock, then some slack.
_TIMEOUT = XTABLES_WAIT_SECONDS + 30.0
# Guard against a delete loop that never converges (a rule -D cannot remove).
_MAX_DUPLICATES = 1000


def settings_from(ctx: HostContext) -> RuleSettings:
    return RuleSettings(
        skip_localhost_filter=ctx.cfg.flag(settings.SKIP_LOCALHOST_TRAFFIC_FILTER),
        allow_offhost_introspection=ctx.cfg.flag(settings.ALLOW_OFFHOST_INTROSPECTION_ACCESS),
    )


def ipv6_tables_available(ctx: HostContext) -> bool:
    """ip6tables is used only when the kernel has IPv6 and ip6tables is installed."""
    return os.path.isdir(PROC_IPV6) and ctx.runner.which("ip6tables") is not None


def default_bridge(ctx: HostContext) -> str | None:
    """Docker's default bridge interface; None (with a warning) when Docker cannot say."""
    try:
        name = bridge_of(ctx.docker.networks())
    except EngineError as err:  # Docker away or failing means "no bridge"
        log.warning("cannot ask Docker for its default bridge (%s); no bridge ACCEPT rule", first_line(err))
        return None
    if not name:
        log.info("Docker has no default bridge network; no bridge ACCEPT rule")
    return name or None


def _describe(argv: list[str], returncode: int, stdout: str | None, stderr: str | None) -> str:
    out = ((stderr or "").strip() or (stdout or "").strip()).replace("\n", " | ")
    return f"{' '.join(argv)}: exit {returncode}: {out}"


def _require(ctx: HostContext, tool: str) -> None:
    if ctx.runner.which(tool) is None:
        raise CommandError(f"{tool}: command not found on PATH; install the iptables package")


def is_present(runner: Runner, rule: Rule, wait: int = XTABLES_WAIT_SECONDS, timeout: float = _TIMEOUT) -> bool:
    """``iptables -C``: whether ``rule`` is in place; CommandError when iptables cannot tell."""
    argv = rule.argv("-C", wait)
    proc = runner.run(argv, check=False, timeout=timeout)
    if proc.returncode == 0:
        return True
    if proc.returncode == 1:
        return False
    raise CommandError(_describe(argv, proc.returncode, proc.stdout, proc.stderr))


def _present(ctx: HostContext, rule: Rule) -> bool:
    return is_present(ctx.runner, rule)


def facts(ctx: HostContext, bridge: str | None) -> NetFacts:
    """What the rule plan depends on: the loopback's name, Docker's bridge, whether IPv6 rules apply."""
    return NetFacts(loopback=loopback.loopback_name(ctx), bridge=bridge, ipv6=ipv6_tables_available(ctx))


def planned(ctx: HostContext, bridge: str | None) -> list[Rule]:
    """The rules pre-start creates under the current settings (``status`` checks the same list)."""
    return plan_setup(settings_from(ctx), facts(ctx, bridge))


def _add(ctx: HostContext, rule: Rule) -> None:
    ctx.runner.run(rule.add_argv(), check=True, timeout=_TIMEOUT)
    log.info("added rule (%s): %s", rule.purpose, rule)


def _delete_all(ctx: HostContext, rule: Rule) -> int:
    """Delete every copy of ``rule``; returns how many were removed."""
    removed = 0
    while removed < _MAX_DUPLICATES and _present(ctx, rule):
        ctx.runner.run(rule.argv("-D"), check=True, timeout=_TIMEOUT)
        removed += 1
    return removed


def apply(ctx: HostContext, plan: list[Rule]) -> None:
    """Bring the host to ``plan``: each rule exactly once, inserted ones in order."""
    groups: dict[tuple[str, str, str], list[Rule]] = {}
    for rule in plan:
        if rule.position == INSERT:
            groups.setdefault(rule.group, []).append(rule)
    to_insert: set[Rule] = set()
    for members in groups.values():
        present = [_present(ctx, r) for r in members]
        to_delete, inserts = plan_inserts(members, present)
        for rule in to_delete:
            log.info("re-ordering: removing %s to insert the group again", rule)
            _delete_all(ctx, rule)
        to_insert.update(inserts)
    for rule in plan:
        if rule.position == INSERT:
            if rule in to_insert:
                _add(ctx, rule)
            else:
                log.info("rule already present: %s", rule)
        elif _present(ctx, rule):
            log.info("rule already present: %s", rule)
        else:
            _add(ctx, rule)


def setup(ctx: HostContext) -> None:
    """Create every rule once (idempotent)."""
    _require(ctx, "iptables")
    chosen = settings_from(ctx)
    bridge = None if chosen.allow_offhost_introspection else default_bridge(ctx)
    found = facts(ctx, bridge)
    if not found.ipv6:
        log.info("no IPv6 or no ip6tables on this host; IPv4 rules only")
    apply(ctx, plan_setup(chosen, found))


def _remove_stale(ctx: HostContext, family: str) -> int:
    tool = "iptables" if family == IPV4 else "ip6tables"
    argv = [tool, "-w", str(XTABLES_WAIT_SECONDS), "-t", "filter", "-S", "INPUT"]
    proc = ctx.runner.run(argv, check=True, timeout=_TIMEOUT)
    removed = 0
    for line in proc.stdout.splitlines():
        spec = stale_introspection_rule(line)
        if spec is None:
            continue
        ctx.runner.run(
            [tool, "-w", str(XTABLES_WAIT_SECONDS), "-t", "filter", "-D", "INPUT", *spec], check=True, timeout=_TIMEOUT
        )
        rule = introspection_rule_of(spec, family)
        log.info("removed rule (%s): %s", rule.purpose, rule)
        removed += 1
    return removed


def teardown(ctx: HostContext) -> None:
    """Remove every rule this program may have created; missing rules are fine.

    Docker is not consulted (it may be stopped at post-stop): introspection
    rules are found by their shape for any interface name. Every removal is
    attempted; failures are reported together at the end.
    """
    if ctx.runner.which("iptables") is None:
        log.warning("iptables: command not found; no netfilter rules to remove")
        return
    found = facts(ctx, None)
    failures: list[str] = []
    for rule in teardown_rules(found):
        try:
            count = _delete_all(ctx, rule)
        except CommandError as err:
            failures.append(str(err))
            continue
        if count:
            log.info("removed rule (%s%s): %s", rule.purpose, f", {count} copies" if count > 1 else "", rule)
    for family in [IPV4, IPV6] if found.ipv6 else [IPV4]:
        try:
            _remove_stale(ctx, family)
        except CommandError as err:
            failures.append(str(err))
    if failures:
        raise CommandError("removing netfilter rules failed: " + "; ".join(failures))
    log.info("netfilter rules removed")
