"""The netfilter rule planner (pure) and the setup/teardown logic over a fake iptables."""

from __future__ import annotations

import itertools
import logging
import subprocess
from typing import Sequence

import pytest
from fakes import FakeEngine
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_init.core.config import Config
from ecs_init.core.errors import CommandError
from ecs_init.core.paths import Paths
from ecs_init.docker.errors import EngineUnavailable
from ecs_init.host import ipv6_route, loopback, netfilter
from ecs_init.host.context import HostContext
from ecs_init.host.netrules import (
    IPV4,
    IPV6,
    NetFacts,
    Rule,
    RuleSettings,
    bridge_accept,
    introspection_block,
    introspection_rule_of,
    parse_loopback,
    plan_inserts,
    plan_setup,
    stale_introspection_rule,
    teardown_rules,
)

SPEC_LINES = [
    "iptables -t nat -A PREROUTING -p tcp -d 169.254.170.2 --dport 80 -j DNAT --to-destination 127.0.0.1:51679",
    "iptables -t filter -I INPUT --dst 127.0.0.0/8 ! --src 127.0.0.0/8 -m conntrack "
    "! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    "iptables -t filter -I INPUT -p tcp --dport 51678 ! -i lo -j DROP",
    "ip6tables -t filter -I INPUT -p tcp --dport 51678 ! -i lo -j DROP",
    "iptables -t filter -I INPUT -p tcp --dport 51678 -i docker0 -j ACCEPT",
    "ip6tables -t filter -I INPUT -p tcp --dport 51678 -i docker0 -j ACCEPT",
    "iptables -t nat -A OUTPUT -p tcp -d 169.254.170.2 --dport 80 -j REDIRECT --to-ports 51679",
]
FULL = NetFacts(loopback="lo", bridge="docker0", ipv6=True)


def _t(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# ---------------------------------------------------------------- planner


def test_default_plan_is_spec_section_7_in_order() -> None:
    assert [str(r) for r in plan_setup(RuleSettings(), FULL)] == SPEC_LINES


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("allow", [False, True])
@pytest.mark.parametrize("bridge", [None, "br-x"])
@pytest.mark.parametrize("ipv6", [False, True])
def test_plan_for_every_combination(skip: bool, allow: bool, bridge: str | None, ipv6: bool) -> None:
    plan = plan_setup(RuleSettings(skip, allow), NetFacts("lo0", bridge, ipv6))
    text = [str(r) for r in plan]
    assert text[0].startswith("iptables -t nat -A PREROUTING") and "DNAT" in text[0]
    assert text[-1].startswith("iptables -t nat -A OUTPUT") and "REDIRECT --to-ports 51679" in text[-1]
    assert any("127.0.0.0/8" in t for t in text) is (not skip)
    blocks = [r for r in plan if r.spec[-1] == "DROP" and "51678" in r.spec]
    accepts = [r for r in plan if r.spec[-1] == "ACCEPT"]
    families = [IPV4, IPV6] if ipv6 else [IPV4]
    assert [r.family for r in blocks] == ([] if allow else families)
    assert all(r.spec[r.spec.index("-i") - 1] == "!" and r.spec[r.spec.index("-i") + 1] == "lo0" for r in blocks)
    assert [r.family for r in accepts] == ([] if allow or not bridge else families)
    assert all(r.spec[r.spec.index("-i") + 1] == bridge for r in accepts)
    assert all(r.family == IPV4 for r in plan if r.table == "nat")
    assert len(set(plan)) == len(plan)
    # every rule a plan may create is one teardown removes
    assert set(plan) <= set(teardown_rules(NetFacts("lo0", bridge, ipv6)))


def test_every_call_waits_for_the_xtables_lock() -> None:
    for rule in teardown_rules(FULL):
        for argv in (rule.add_argv(), rule.argv("-C"), rule.argv("-D")):
            assert argv[1] == "-w" and argv[2].isdigit() and int(argv[2]) >= 10
            assert argv[3:5] == ["-t", rule.table]


def test_teardown_set_ignores_settings() -> None:
    assert teardown_rules(FULL) == plan_setup(RuleSettings(False, False), FULL)
    assert len(teardown_rules(NetFacts("lo", None, False))) == 4


@pytest.mark.parametrize(
    ("present", "to_delete", "to_insert"),
    [
        ([False, False, False], [], [0, 1, 2]),
        ([True, True, True], [], []),
        ([True, False, False], [], [1, 2]),
        ([True, True, False], [], [2]),  # e.g. Docker's bridge appeared since the last run
        ([False, True, True], [1, 2], [0, 1, 2]),  # the filter removed by hand: re-insert in order
        ([True, False, True], [0, 2], [0, 1, 2]),
    ],
)
def test_plan_inserts_keeps_the_planned_order(present: list[bool], to_delete: list[int], to_insert: list[int]) -> None:
    group = [r for r in plan_setup(RuleSettings(), NetFacts("lo", "docker0", False)) if r.position == "-I"]
    assert len(group) == 3
    dele, ins = plan_inserts(group, present)
    assert dele == [group[i] for i in to_delete]
    assert ins == [group[i] for i in to_insert]


@pytest.mark.parametrize(
    "line",
    [
        "-A INPUT -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT",
        "-A INPUT -i br-old -p tcp -m tcp --dport 51678 -j ACCEPT",
        "-A INPUT ! -i lo -p tcp -m tcp --dport 51678 -j DROP",
        "-A INPUT -p tcp --dport 51678 ! -i lo0 -j DROP",
    ],
)
def test_stale_introspection_rule_recognised(line: str) -> None:
    spec = stale_introspection_rule(line)
    assert spec is not None and spec == line.split()[2:]


@pytest.mark.parametrize(
    "line",
    [
        "-P INPUT ACCEPT",
        "-A INPUT -i docker0 -p tcp -m tcp --dport 51679 -j ACCEPT",
        "-A INPUT ! -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT",  # negated ACCEPT: not ours
        "-A INPUT -i eth0 -p tcp -m tcp --dport 51678 -j DROP",  # positive DROP: not ours
        "-A INPUT -s 10.0.0.0/8 -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT",  # extra match
        "-A FORWARD -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 51678 -j DROP",  # no interface
        '-A INPUT -m comment --comment "unbalanced',
    ],
)
def test_stale_introspection_rule_ignores_others(line: str) -> None:
    assert stale_introspection_rule(line) is None


@pytest.mark.parametrize(
    ("line", "family", "rule"),
    [
        ("-A INPUT -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT", IPV4, bridge_accept(IPV4, "docker0")),
        ("-A INPUT ! -i lo -p tcp -m tcp --dport 51678 -j DROP", IPV4, introspection_block(IPV4, "lo")),
        ("-A INPUT -p tcp --dport 51678 ! -i lo0 -j DROP", IPV6, introspection_block(IPV6, "lo0")),
        ("-A INPUT --in-interface br-1 -p tcp --dport 51678 -j ACCEPT", IPV6, bridge_accept(IPV6, "br-1")),
        ("-A INPUT ! --in-interface lo -p tcp --dport 51678 -j DROP", IPV4, introspection_block(IPV4, "lo")),
    ],
)
def test_a_stale_rule_is_logged_as_the_rule_pre_start_added(line: str, family: str, rule: Rule) -> None:
    """post-stop deletes a stale introspection rule under the name pre-start gave it."""
    spec = stale_introspection_rule(line)
    assert spec is not None and introspection_rule_of(spec, family) == rule


def test_parse_loopback() -> None:
    out = (
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback 00:00\n"
        "2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\\    link/ether 02:42\n"
    )
    assert parse_loopback(out) == "lo"
    assert parse_loopback("3: veth0@if2: <BROADCAST> mtu 1\n7: lback@NONE: <LOOPBACK> mtu 1\n") == "lback"
    assert parse_loopback("2: eth0: <BROADCAST,UP> mtu 1500\n") is None
    assert parse_loopback("garbage\n\n") is None


def test_rule_purposes_as_status_shows_them() -> None:
    """``status`` reports each rule with its purpose; ``netfilter`` logs it."""
    assert [(r.tool, r.purpose) for r in plan_setup(RuleSettings(), FULL)] == [
        ("iptables", "credentials endpoint from containers (DNAT)"),
        ("iptables", "drop off-host traffic to 127.0.0.0/8"),
        ("iptables", "block off-host introspection access"),
        ("ip6tables", "block off-host introspection access"),
        ("iptables", "allow introspection from the Docker default bridge"),
        ("ip6tables", "allow introspection from the Docker default bridge"),
        ("iptables", "credentials endpoint from the host (REDIRECT)"),
    ]


def test_argv_carries_the_lock_wait() -> None:
    rule = bridge_accept(IPV6, "docker0")
    assert rule.add_argv(7) == ["ip6tables", "-w", "7", "-t", "filter", "-I", "INPUT", *rule.spec]
    assert rule.add_argv() == rule.argv("-I") == rule.argv("-I", 60)
    assert rule.argv("-D", 3)[:7] == ["ip6tables", "-w", "3", "-t", "filter", "-D", "INPUT"]


@pytest.mark.parametrize(
    ("line", "spec"),
    [
        (
            "-A INPUT --in-interface br0 -p tcp --dport 51678 -j ACCEPT",
            ["--in-interface", "br0", "-p", "tcp", "--dport", "51678", "-j", "ACCEPT"],
        ),
        (
            "-A INPUT -p tcp -m tcp --dport 51678 -j DROP ! -i lo",  # the interface last
            ["-p", "tcp", "-m", "tcp", "--dport", "51678", "-j", "DROP", "!", "-i", "lo"],
        ),
    ],
)
def test_stale_introspection_rule_any_interface_form(line: str, spec: list[str]) -> None:
    assert stale_introspection_rule(line) == spec


@pytest.mark.parametrize(
    "line",
    [
        "",
        "-A",
        "-A INPUT",
        "-A INPUT -i '' -p tcp -m tcp --dport 51678 -j ACCEPT",  # an empty interface name
        "-A INPUT -p tcp -m tcp --dport 51678 -j ACCEPT -i",  # -i without a name
        "-I INPUT -i docker0 -p tcp -m tcp --dport 51678 -j ACCEPT",
    ],
)
def test_stale_introspection_rule_ignores_short_or_odd_lines(line: str) -> None:
    assert stale_introspection_rule(line) is None


@pytest.mark.parametrize(
    ("text", "loopback"),
    [
        ("junk\n", None),  # a line that is not a link is skipped
        ("1: lo: <LOOPBACK,UP> mtu 65536 alias <UP>\n", "lo"),  # the flags are the first <...>
        ("2: eth0: <BROADCAST,UP> mtu 1500 alias x,LOOPBACK>\n", None),
        ("3: x:LOOPBACK> mtu 1\n", None),  # no flags
        ("4: x: >LOOPBACK< mtu 1\n", None),
        ("5: : <LOOPBACK> mtu 1\n", None),  # no name
        ("6: @x: <LOOPBACK> mtu 1\n", None),
        ("7: lb:<LOOPBACK> mtu 1\n", "lb"),  # no blank before the flags
        ("8: lb@a@b: <LOOPBACK> mtu 1\n", "lb"),
        ("9: lb: alias a:b <LOOPBACK>\n", "lb"),  # a colon after the name belongs to the rest
        ("1: lo: <UP> mtu 1\n2: lo2: <LOOPBACK> mtu 1\n3: lo3: <LOOPBACK> mtu 1\n", "lo2"),
    ],
)
def test_parse_loopback_odd_lines(text: str, loopback: str | None) -> None:
    """An odd line is never taken for the loopback, nor stops the search."""
    assert parse_loopback(text + "10: next: <LOOPBACK,UP> mtu 1\n") == (loopback or "next")


# ---------------------------------------------------------------- fake host


class FakeHost:
    """A runner that emulates iptables/ip6tables, sysctl and ip on a fake host."""

    def __init__(self, tools: Sequence[str] = ("iptables", "ip6tables", "sysctl", "ip")) -> None:
        self.tools = set(tools)
        self.chains: dict[tuple[str, str, str], list[tuple[str, ...]]] = {}
        self.calls: list[list[str]] = []
        self.sysctl = {"net.ipv4.conf.all.route_localnet": "0", "net.ipv4.conf.default.route_localnet": "0"}
        self.routes: set[str] = set()
        self.v4_default = True
        self.fail_on: str | None = None

    def which(self, name: str) -> str | None:
        return f"/usr/sbin/{name}" if name in self.tools else None

    def _done(self, argv: Sequence[str], rc: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), rc, out, err)

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        if argv[0] not in self.tools:
            raise CommandError(f"{argv[0]}: command not found")
        proc = self._dispatch(argv)
        if check and proc.returncode != 0:
            raise CommandError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def _dispatch(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if self.fail_on and self.fail_on in " ".join(argv):
            return self._done(argv, 4, err="simulated failure")
        tool = argv[0]
        if tool in ("iptables", "ip6tables"):
            assert argv[1] == "-w" and argv[3] == "-t", argv
            table, op, chain, spec = argv[4], argv[5], argv[6], tuple(argv[7:])
            rules = self.chains.setdefault((tool, table, chain), [])
            if op == "-C":
                return self._done(argv, 0 if spec in rules else 1)
            if op == "-A":
                rules.append(spec)
            elif op == "-I":
                rules.insert(0, spec)
            elif op == "-D":
                if spec not in rules:
                    return self._done(argv, 1, err="Bad rule")
                rules.remove(spec)
            elif op == "-S":
                return self._done(argv, 0, "".join(f"-A {chain} {' '.join(r)}\n" for r in rules))
            return self._done(argv)
        if tool == "sysctl":
            if argv[1] == "-n":
                return self._done(argv, 0, self.sysctl[argv[2]] + "\n")
            key, value = argv[2].split("=", 1)
            if key not in self.sysctl and "docker0" in key:
                return self._done(argv, 255, err=f"sysctl: cannot stat /proc/sys/{key}: No such file or directory")
            self.sysctl[key] = value
            return self._done(argv)
        if tool == "ip":
            if argv[1:3] == ["-o", "link"]:
                return self._done(argv, 0, "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n2: eth0: <BROADCAST> mtu 1\n")
            if argv[1:3] == ["-4", "route"]:
                return self._done(argv, 0, "default via 10.0.0.1 dev eth0\n" if self.v4_default else "")
            route = " ".join(argv[3:])
            if argv[2] == "add":
                if route in self.routes:
                    return self._done(argv, 2, err="RTNETLINK answers: File exists")
                self.routes.add(route)
            elif argv[2] == "del":
                if route not in self.routes:
                    return self._done(argv, 2, err="RTNETLINK answers: No such process")
                self.routes.remove(route)
            return self._done(argv)
        raise AssertionError(argv)

    def ours(self) -> int:
        return sum(len(v) for v in self.chains.values())


def engine(bridge: str | None = "docker0", fail: bool = False) -> FakeEngine:
    fake = FakeEngine(bridge=bridge)
    if fail:
        fake.fail("networks", EngineUnavailable("cannot connect to Docker at unix:///var/run/docker.sock"))
    return fake


def ctx_for(host: FakeHost, environ: dict[str, str] | None = None, docker: FakeEngine | None = None) -> HostContext:
    cfg = Config(paths=Paths(prefix="/nonexistent"), environ=dict(environ or {}))
    d = docker or engine()
    return HostContext(cfg=cfg, runner=host, docker_factory=lambda: d)


@pytest.fixture(autouse=True)
def _ipv6_kernel(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(netfilter, "PROC_IPV6", str(tmp_path))


def test_setup_creates_the_spec_rules_once_each() -> None:
    host = FakeHost()
    for _ in range(3):
        netfilter.setup(ctx_for(host))
    assert host.chains[("iptables", "filter", "INPUT")] == [
        _t("-p tcp --dport 51678 -i docker0 -j ACCEPT"),
        _t("-p tcp --dport 51678 ! -i lo -j DROP"),
        _t("--dst 127.0.0.0/8 ! --src 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"),
    ]
    assert len(host.chains[("ip6tables", "filter", "INPUT")]) == 2
    assert len(host.chains[("iptables", "nat", "PREROUTING")]) == 1
    assert len(host.chains[("iptables", "nat", "OUTPUT")]) == 1
    assert all(c[1] == "-w" for c in host.calls if c[0].endswith("tables"))
    netfilter.teardown(ctx_for(host))
    assert host.ours() == 0


def test_no_ip6tables_without_ipv6_kernel_or_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeHost(tools=("iptables", "sysctl", "ip"))
    netfilter.setup(ctx_for(host))
    assert not any(c[0] == "ip6tables" for c in host.calls)
    monkeypatch.setattr(netfilter, "PROC_IPV6", "/nonexistent/ipv6")
    host = FakeHost()
    netfilter.setup(ctx_for(host))
    netfilter.teardown(ctx_for(host))
    assert not any(c[0] == "ip6tables" for c in host.calls)


def test_settings_from_environment_and_ecs_config() -> None:
    host = FakeHost()
    netfilter.setup(ctx_for(host, {"ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": "true"}))
    assert host.ours() == 6
    cfg = Config(paths=Paths(), environ={}, operator={"ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS": "true"})
    host2 = FakeHost()
    netfilter.setup(HostContext(cfg=cfg, runner=host2, docker_factory=engine))
    assert host2.ours() == 3
    assert not any("51678" in " ".join(c) for c in host2.calls)


def test_docker_unreachable_means_no_bridge_rule(caplog: pytest.LogCaptureFixture) -> None:
    host = FakeHost()
    with caplog.at_level(logging.WARNING):
        netfilter.setup(ctx_for(host, docker=engine(fail=True)))
    assert "cannot ask Docker" in caplog.text
    assert not any("ACCEPT" in " ".join(c) for c in host.calls)
    assert host.ours() == 7 - 2


def test_allow_offhost_does_not_ask_docker() -> None:
    host = FakeHost()
    netfilter.setup(ctx_for(host, {"ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS": "1"}, engine(fail=True)))
    assert host.ours() == 3


def test_teardown_removes_duplicates_and_rules_for_other_interfaces() -> None:
    host = FakeHost()
    for bridge in ("docker0", "br-old", "br-new"):
        netfilter.setup(ctx_for(host, docker=engine(bridge)))
    rule = _t("-p tcp -d 169.254.170.2 --dport 80 -j REDIRECT --to-ports 51679")
    host.chains[("iptables", "nat", "OUTPUT")].extend([rule, rule])  # a Go ecs-init's copies
    foreign = _t("-p tcp --dport 22 -j ACCEPT")
    host.chains[("iptables", "filter", "INPUT")].append(foreign)
    netfilter.teardown(ctx_for(host, {"ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": "true"}, engine(fail=True)))
    assert host.ours() == 1 and host.chains[("iptables", "filter", "INPUT")] == [foreign]


def test_missing_iptables_fails_setup_and_teardown_is_quiet() -> None:
    host = FakeHost(tools=("sysctl", "ip"))
    with pytest.raises(CommandError, match="iptables: command not found"):
        netfilter.setup(ctx_for(host))
    netfilter.teardown(ctx_for(host))


def test_failing_rule_command_names_command_and_output() -> None:
    host = FakeHost()
    host.fail_on = "-I INPUT -p tcp --dport 51678 ! -i lo"
    with pytest.raises(CommandError) as info:
        netfilter.setup(ctx_for(host))
    assert "iptables -w" in str(info.value) and "simulated failure" in str(info.value)
    assert info.value.exit_code == 255
    host.fail_on = None
    netfilter.teardown(ctx_for(host))
    assert host.ours() == 0


def test_teardown_reports_failures_after_trying_everything() -> None:
    host = FakeHost()
    netfilter.setup(ctx_for(host))
    host.fail_on = "-t nat -C PREROUTING"
    with pytest.raises(CommandError, match="removing netfilter rules failed"):
        netfilter.teardown(ctx_for(host))
    assert host.ours() == 1  # everything but the failing one went


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.booleans(), st.sampled_from([None, "docker0", "br1"]), st.booleans()),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
    st.booleans(),
)
def test_any_history_of_pre_starts_then_one_post_stop_is_clean(
    runs: list[tuple[bool, bool, str | None, bool]], skip: bool, allow: bool
) -> None:
    host = FakeHost()
    for s, a, bridge, docker_down in runs:
        env = {"ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": str(s), "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS": str(a)}
        netfilter.setup(ctx_for(host, env, engine(bridge, fail=docker_down)))
        # every planned rule exactly once
        for rules in host.chains.values():
            assert len(rules) == len(set(rules))
    env = {"ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": str(skip), "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS": str(allow)}
    netfilter.teardown(ctx_for(host, env, engine(fail=True)))
    assert host.ours() == 0


def test_insert_order_survives_a_bridge_appearing_later() -> None:
    host = FakeHost()
    netfilter.setup(ctx_for(host, docker=engine(None)))
    netfilter.setup(ctx_for(host, docker=engine("docker0")))
    top = host.chains[("iptables", "filter", "INPUT")]
    assert [r[-1] for r in top] == ["ACCEPT", "DROP", "DROP"] and "51678" in top[1]


# ---------------------------------------------------------------- loopback, ipv6_route


def test_sysctl_setup_and_restore() -> None:
    host = FakeHost()
    host.sysctl["net.ipv4.conf.default.route_localnet"] = "0"
    loopback.setup(ctx_for(host))  # docker0 key missing: fine
    assert host.sysctl["net.ipv4.conf.all.route_localnet"] == "1"
    host.sysctl["net.ipv6.conf.docker0.accept_ra"] = "1"
    loopback.setup(ctx_for(host))
    assert host.sysctl["net.ipv6.conf.docker0.accept_ra"] == "0"
    loopback.teardown(ctx_for(host))
    assert host.sysctl["net.ipv4.conf.all.route_localnet"] == "0"


def test_missing_sysctl_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="sysctl"):
        loopback.setup(ctx_for(FakeHost(tools=("iptables", "ip"))))


def test_ipv6_only_route() -> None:
    host = FakeHost()
    ipv6_route.setup(ctx_for(host))
    assert host.routes == set()
    host.v4_default = False
    for _ in range(2):
        ipv6_route.setup(ctx_for(host))
    assert host.routes == {"169.254.170.2/32 dev lo scope link"}
    for _ in range(2):
        ipv6_route.teardown(ctx_for(host))
    assert host.routes == set()


def test_fake_host_rule_combinations_cover_all_rules() -> None:
    """Sanity: the fake stores exactly the argv tokens the planner produces."""
    for fam, name in itertools.product((IPV4, IPV6), ("lo", "docker0")):
        r: Rule = introspection_block(fam, name)
        assert r.argv("-C")[7:] == list(r.spec)
        assert bridge_accept(fam, name).argv("-D")[5:7] == ["-D", "INPUT"]


# ---------------------------------------------------------------- post-stop says what pre-start said


def test_post_stop_logs_the_bridge_rule_as_pre_start_added_it(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 20 item 7: not '-A INPUT -i docker0 -p tcp -m tcp ...' as iptables -S prints it."""
    host = FakeHost()
    with caplog.at_level(logging.INFO):
        netfilter.setup(ctx_for(host))
    added = {m.split(": ", 1)[1] for m in caplog.messages if m.startswith("added rule (")}
    # iptables -S prints what the kernel holds: '-m tcp' added, options reordered
    kernel = ("-p tcp --dport 51678 -i docker0", "-i docker0 -p tcp -m tcp --dport 51678")
    for rules in host.chains.values():
        rules[:] = [tuple(" ".join(r).replace(*kernel).split()) for r in rules]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        netfilter.teardown(ctx_for(host, docker=FakeEngine(bridge=None)))  # Docker may be gone at post-stop
    removed = {m.split(": ", 1)[1] for m in caplog.messages if m.startswith("removed rule (")}
    assert removed == added and host.ours() == 0
    bridge = [m for m in caplog.messages if "docker0" in m]
    assert bridge == [
        "removed rule (allow introspection from the Docker default bridge): "
        "iptables -t filter -I INPUT -p tcp --dport 51678 -i docker0 -j ACCEPT",
        "removed rule (allow introspection from the Docker default bridge): "
        "ip6tables -t filter -I INPUT -p tcp --dport 51678 -i docker0 -j ACCEPT",
    ]
