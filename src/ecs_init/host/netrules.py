"""Pure planning of the netfilter rules of SPEC §7 (no commands run here).

``plan_setup`` turns the two settings and a few discovered host facts into
the ordered list of rules pre-start must create; ``teardown_rules`` lists
every rule this program may ever have created on such a host, whatever the
settings are now; ``stale_introspection_rule`` recognises, in
``iptables -S INPUT`` output, the introspection rules created for an
interface whose name is no longer known (a renamed Docker bridge, Docker not
answering at post-stop).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence

CREDENTIALS_IP = "169.254.170.2"
CREDENTIALS_PORT = 80
AGENT_CREDENTIALS_PORT = 51679
INTROSPECTION_PORT = 51678
LOCALHOST_NET = "127.0.0.0/8"

# Seconds an iptables call waits for the xtables lock (Docker at boot holds it).
XTABLES_WAIT_SECONDS = 60

IPV4 = "ipv4"
IPV6 = "ipv6"
APPEND = "-A"
INSERT = "-I"


@dataclass(frozen=True)
class Rule:
    """One rule: where it lives, how it is placed, and its match/target tokens."""

    family: str  # IPV4 or IPV6
    table: str
    chain: str
    position: str  # APPEND or INSERT (at the top of the chain)
    spec: tuple[str, ...]
    purpose: str

    @property
    def tool(self) -> str:
        return "iptables" if self.family == IPV4 else "ip6tables"

    @property
    def group(self) -> tuple[str, str, str]:
        """Rules inserted into one chain of one family keep a relative order."""
        return (self.family, self.table, self.chain)

    def argv(self, op: str, wait: int = XTABLES_WAIT_SECONDS) -> list[str]:
        """``op`` is ``-C``, ``-D``, or the rule's own position (``-A``/``-I``)."""
        return [self.tool, "-w", str(wait), "-t", self.table, op, self.chain, *self.spec]

    def add_argv(self, wait: int = XTABLES_WAIT_SECONDS) -> list[str]:
        return self.argv(self.position, wait)

    def __str__(self) -> str:
        return " ".join([self.tool, "-t", self.table, self.position, self.chain, *self.spec])


@dataclass(frozen=True)
class RuleSettings:
    skip_localhost_filter: bool = False
    allow_offhost_introspection: bool = False


@dataclass(frozen=True)
class NetFacts:
    loopback: str = "lo"
    bridge: str | None = None  # Docker's default bridge interface, if any
    ipv6: bool = False  # /proc/sys/net/ipv6 exists and ip6tables is installed


# ---------------------------------------------------------------- the rules


def credentials_dnat() -> Rule:
    return Rule(
        IPV4,
        "nat",
        "PREROUTING",
        APPEND,
        (
            "-p", "tcp", "-d", CREDENTIALS_IP, "--dport", str(CREDENTIALS_PORT),
            "-j", "DNAT", "--to-destination", f"127.0.0.1:{AGENT_CREDENTIALS_PORT}",
        ),
        "credentials endpoint from containers (DNAT)",
    )  # fmt: skip


def localhost_filter() -> Rule:
    return Rule(
        IPV4,
        "filter",
        "INPUT",
        INSERT,
        (
            "--dst", LOCALHOST_NET, "!", "--src", LOCALHOST_NET,
            "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP",
        ),
        "drop off-host traffic to 127.0.0.0/8",
    )  # fmt: skip


def introspection_block(family: str, loopback: str) -> Rule:
    return Rule(
        family,
        "filter",
        "INPUT",
        INSERT,
        ("-p", "tcp", "--dport", str(INTROSPECTION_PORT), "!", "-i", loopback, "-j", "DROP"),
        "block off-host introspection access",
    )


def bridge_accept(family: str, bridge: str) -> Rule:
    return Rule(
        family,
        "filter",
        "INPUT",
        INSERT,
        ("-p", "tcp", "--dport", str(INTROSPECTION_PORT), "-i", bridge, "-j", "ACCEPT"),
        "allow introspection from the Docker default bridge",
    )


def credentials_redirect() -> Rule:
    return Rule(
        IPV4,
        "nat",
        "OUTPUT",
        APPEND,
        (
            "-p", "tcp", "-d", CREDENTIALS_IP, "--dport", str(CREDENTIALS_PORT),
            "-j", "REDIRECT", "--to-ports", str(AGENT_CREDENTIALS_PORT),
        ),
        "credentials endpoint from the host (REDIRECT)",
    )  # fmt: skip


def _families(facts: NetFacts) -> list[str]:
    return [IPV4, IPV6] if facts.ipv6 else [IPV4]


def plan_setup(settings: RuleSettings, facts: NetFacts) -> list[Rule]:
    """The rules pre-start creates, in SPEC §7 order."""
    rules = [credentials_dnat()]
    if not settings.skip_localhost_filter:
        rules.append(localhost_filter())
    if not settings.allow_offhost_introspection:
        rules.extend(introspection_block(f, facts.loopback) for f in _families(facts))
        if facts.bridge:
            rules.extend(bridge_accept(f, facts.bridge) for f in _families(facts))
    rules.append(credentials_redirect())
    return rules


def teardown_rules(facts: NetFacts) -> list[Rule]:
    """Every rule this program may have created, whatever the settings are now.

    Rules that name an interface can only be listed for the names known now;
    ``stale_introspection_rule`` finds the ones created for other names.
    """
    return plan_setup(RuleSettings(), facts)  # the default settings plan every rule


def plan_inserts(plan: Sequence[Rule], present: Sequence[bool]) -> tuple[list[Rule], list[Rule]]:
    """Decide how to bring one group of inserted rules into the planned order.

    ``plan`` is the group's rules in plan order; each ``-I`` puts a rule on
    top, so the final top-to-bottom order is the reverse of ``plan``. A
    missing rule can simply be inserted when every rule already present comes
    earlier in the plan (it then lands above them, where it belongs).
    Otherwise the present rules are deleted first and the whole group is
    inserted again. Returns ``(to_delete, to_insert)``, both in plan order.
    """
    missing = [i for i, p in enumerate(present) if not p]
    there = [i for i, p in enumerate(present) if p]
    if not missing:
        return [], []
    if all(present[: len(there)]):  # the rules present are the first ones of the plan
        return [], [plan[i] for i in missing]
    return [plan[i] for i in there], list(plan)


def _introspection_shape(tokens: list[str]) -> str | None:
    """Return the target (ACCEPT/DROP) if ``tokens`` is one of our 51678 rules."""
    where = next((i for i, token in enumerate(tokens[:-1]) if token in ("-i", "--in-interface")), None)
    if where is None or not tokens[where + 1]:
        return None
    negated = where > 0 and tokens[where - 1] == "!"
    rest = tokens[: where - 1 if negated else where] + tokens[where + 2 :]
    for expected_target, want_negated in (("DROP", True), ("ACCEPT", False)):
        shapes = (
            ["-p", "tcp", "-m", "tcp", "--dport", str(INTROSPECTION_PORT), "-j", expected_target],
            ["-p", "tcp", "--dport", str(INTROSPECTION_PORT), "-j", expected_target],
        )
        if negated == want_negated and rest in shapes:
            return expected_target
    return None


def stale_introspection_rule(line: str) -> list[str] | None:
    """If an ``iptables -S`` line is one of our introspection rules, its spec.

    ``-A INPUT -i br0 -p tcp -m tcp --dport 51678 -j ACCEPT`` and
    ``-A INPUT ! -i lo -p tcp -m tcp --dport 51678 -j DROP`` match (any
    interface name); the returned tokens follow the chain name and can be
    passed to ``-D INPUT``.
    """
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    if tokens[:2] != ["-A", "INPUT"]:
        return None
    spec = tokens[2:]
    if _introspection_shape(spec) is None:
        return None
    return spec


def introspection_rule_of(spec: Sequence[str], family: str) -> Rule:
    """The rule a ``stale_introspection_rule`` spec is, in the shape pre-start adds it (so that
    post-stop logs it as pre-start did, not as ``iptables -S`` prints it)."""
    flag = "-i" if "-i" in spec else "--in-interface"
    iface = spec[list(spec).index(flag) + 1]
    return bridge_accept(family, iface) if spec[-1] == "ACCEPT" else introspection_block(family, iface)


def parse_loopback(ip_link_output: str) -> str | None:
    """The first interface with the LOOPBACK flag in ``ip -o link show`` output."""
    for line in ip_link_output.splitlines():
        parts = line.split(":", 2)
        if len(parts) < 3:
            continue
        name = parts[1].strip().partition("@")[0]
        flags_start = parts[2].find("<")
        flags_end = parts[2].find(">")
        if not name or flags_start < 0 or flags_end < flags_start:
            continue
        flags = parts[2][flags_start + 1 : flags_end].split(",")
        if "LOOPBACK" in flags:
            return name
    return None
