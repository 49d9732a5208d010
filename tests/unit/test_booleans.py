"""Boolean settings, key by key, with the Go ecs-init's two rules (SPEC §3).

Go reference: config.RunPrivileged / RunningInExternal and docker.go compare
with == "true"; iptables.go and IsECSAgentPIDNamespaceHostEnabled use
strconv.ParseBool. A privileged agent or dropped capabilities must never
follow from a spelling the Go program would not accept.
"""

from __future__ import annotations

import logging
import subprocess
from typing import Any, Sequence

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ecs_init.agent import hostfacts
from ecs_init.agent.spec import EXTERNAL_CREDS_BIND, HostFacts, build_spec
from ecs_init.core import settings as S
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.core.platform import detect_platform
from ecs_init.host import netfilter
from ecs_init.host.context import HostContext

# The boolean rows of the settings table, by name (SPEC §3: which Go rule each switch follows).
BOOLEAN_RULES = {s.name: s.kind for s in S.SETTINGS if s.kind in S.BOOLEAN_KINDS}
EXACT_TRUE, PARSE_BOOL = S.Kind.EXACT_TRUE, S.Kind.PARSE_BOOL


def bool_setting(key: str, raw: str) -> bool:
    return S.read_flag(S.BY_NAME[key], raw)[0]


def read_bool(key: str, raw: str) -> tuple[bool, str | None]:
    return S.read_flag(S.BY_NAME[key], raw)


def rules_disagree(key: str, raw: str) -> str | None:
    return S.rules_disagree(S.BY_NAME[key], raw)


EXACT_KEYS = [
    "ECS_AGENT_RUN_PRIVILEGED",
    "ECS_EXTERNAL",
    "ECS_GMSA_SUPPORTED",
    "ECS_ENABLE_GPU_SUPPORT",
    "ECS_DOMAIN_JOINED_LINUX_INSTANCE",
]
PARSE_BOOL_KEYS = [
    "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER",
    "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS",
    "ECS_AGENT_PID_NAMESPACE_HOST",
]
GO_TRUE = ["1", "t", "T", "TRUE", "true", "True"]
GO_FALSE = ["0", "f", "F", "FALSE", "false", "False"]
OTHER = ["", "yes", "on", "tRUE", " true", "true ", "2", "-1", "enabled", "y"]

AL2 = detect_platform({"ID": "amzn", "VERSION_ID": "2023"})
EBS = "/mnt/ecs/ebs"


def test_the_rule_table_is_exactly_spec_3() -> None:
    assert {**{k: EXACT_TRUE for k in EXACT_KEYS}, **{k: PARSE_BOOL for k in PARSE_BOOL_KEYS}} == BOOLEAN_RULES


@pytest.mark.parametrize("key", EXACT_KEYS)
@pytest.mark.parametrize("raw", GO_TRUE + GO_FALSE + OTHER)
def test_exact_true_keys(key: str, raw: str) -> None:
    assert bool_setting(key, raw) is (raw == "true")


@pytest.mark.parametrize("key", PARSE_BOOL_KEYS)
@pytest.mark.parametrize("raw", GO_TRUE + GO_FALSE + OTHER)
def test_parse_bool_keys(key: str, raw: str) -> None:
    assert bool_setting(key, raw) is (raw in GO_TRUE)


def test_unlisted_key_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        read_bool("ECS_NOT_A_SWITCH", "true")


def _cfg(where: str, key: str, value: str) -> Config:
    env, operator, instance = {}, {}, {}
    {"environ": env, "operator": operator, "instance": instance}[where][key] = value
    return Config(paths=Paths(), environ=env, operator=operator, instance=instance)


def _spec(cfg: Config) -> Any:
    return build_spec(cfg, HostFacts(platform=AL2, directories=frozenset({EBS})))


@pytest.mark.parametrize("where", ["environ", "operator", "instance"])
@pytest.mark.parametrize("raw", ["1", "True", "TRUE", "t", "T", "yes", " true"])
def test_privileged_needs_exactly_true(where: str, raw: str) -> None:
    """Issue 13: ECS_AGENT_RUN_PRIVILEGED=1 (or True) started a privileged agent."""
    host = _spec(_cfg(where, "ECS_AGENT_RUN_PRIVILEGED", raw)).host_config
    assert "Privileged" not in host
    assert _spec(_cfg(where, "ECS_AGENT_RUN_PRIVILEGED", "true")).host_config["Privileged"] is True


@pytest.mark.parametrize("where", ["environ", "operator", "instance"])
@pytest.mark.parametrize("raw", ["1", "True", "TRUE", "t", "T", "yes"])
def test_external_needs_exactly_true(where: str, raw: str) -> None:
    """Issue 13: ECS_EXTERNAL=1 dropped the agent's capabilities and its task ENI."""
    spec = _spec(_cfg(where, "ECS_EXTERNAL", raw))
    assert spec.host_config["CapAdd"] == ["NET_ADMIN", "SYS_ADMIN"]
    assert spec.env["ECS_ENABLE_TASK_ENI"] == "true"
    assert EXTERNAL_CREDS_BIND not in spec.binds
    external = _spec(_cfg(where, "ECS_EXTERNAL", "true"))
    assert external.host_config["CapAdd"] == []
    assert external.env["ECS_ENABLE_TASK_ENI"] == "false"
    assert EXTERNAL_CREDS_BIND in external.binds


@given(raw=st.text(max_size=12))
@example(raw="1")
@example(raw="True")
@example(raw="TRUE")
def test_no_spelling_but_true_gives_privilege_or_drops_capabilities(raw: str) -> None:
    if raw == "true":
        return
    cfg = Config(
        paths=Paths(),
        environ={"ECS_AGENT_RUN_PRIVILEGED": raw},
        operator={"ECS_EXTERNAL": raw, "ECS_AGENT_RUN_PRIVILEGED": raw},
    )
    spec = _spec(cfg)
    assert "Privileged" not in spec.host_config
    assert spec.host_config["CapAdd"] == ["NET_ADMIN", "SYS_ADMIN"]
    assert EXTERNAL_CREDS_BIND not in spec.binds


@pytest.mark.parametrize("raw", GO_TRUE)
def test_pid_namespace_host_is_parse_bool(raw: str) -> None:
    assert _spec(_cfg("operator", "ECS_AGENT_PID_NAMESPACE_HOST", raw)).host_config["PidMode"] == "host"


@pytest.mark.parametrize("raw", GO_FALSE + ["yes", "on"])
def test_pid_namespace_host_off(raw: str) -> None:
    assert "PidMode" not in _spec(_cfg("operator", "ECS_AGENT_PID_NAMESPACE_HOST", raw)).host_config


@pytest.mark.parametrize("raw", ["1", "True", "t"])
def test_netfilter_switches_are_parse_bool(raw: str) -> None:
    cfg = Config(
        paths=Paths(),
        environ={},
        operator={"ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": raw, "ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS": raw},
    )
    settings = netfilter.settings_from(HostContext(cfg=cfg))
    assert settings.skip_localhost_filter and settings.allow_offhost_introspection


class RecordingRunner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return None

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 0, "domain.example\n  realm-name: DOMAIN.EXAMPLE\n", "")


@pytest.mark.parametrize("raw", ["1", "True"])
def test_gmsa_needs_exactly_true(raw: str) -> None:
    """No realm check, no domain-joined flag and no socket bind for ECS_GMSA_SUPPORTED=1."""
    runner = RecordingRunner()
    ctx = HostContext(cfg=_cfg("environ", "ECS_GMSA_SUPPORTED", raw), runner=runner)  # type: ignore[arg-type]
    assert hostfacts.realm_output(ctx) == ""
    assert runner.calls == []
    on = HostContext(cfg=_cfg("environ", "ECS_GMSA_SUPPORTED", "true"), runner=runner)  # type: ignore[arg-type]
    output = hostfacts.realm_output(on)
    assert runner.calls == [["realm", "list"]]
    facts = HostFacts(platform=AL2, directories=frozenset({EBS}), realm_output=output)
    assert build_spec(on.cfg, facts).env["ECS_DOMAIN_JOINED_LINUX_INSTANCE"] == "true"
    assert "ECS_DOMAIN_JOINED_LINUX_INSTANCE" not in build_spec(ctx.cfg, facts).env


@pytest.mark.parametrize("raw", ["1", "True"])
def test_gpu_needs_exactly_true(raw: str) -> None:
    """ECS_ENABLE_GPU_SUPPORT=1 in the instance file: no wait for devices, no GPU bind (the Go == "true")."""
    cfg = _cfg("instance", "ECS_ENABLE_GPU_SUPPORT", raw)
    facts = HostFacts(platform=AL2, directories=frozenset({EBS}), gpu_devices=True)
    assert hostfacts.gpu_devices_appeared(HostContext(cfg=cfg), facts) is None
    spec = build_spec(cfg, facts)
    assert not any(b.startswith("/var/lib/ecs/gpu:") for b in spec.binds)
    assert spec.env["ECS_ENABLE_GPU_SUPPORT"] == raw  # still passed to the agent as written
    on = build_spec(_cfg("instance", "ECS_ENABLE_GPU_SUPPORT", "true"), facts)
    assert "/var/lib/ecs/gpu:/var/lib/ecs/gpu" in on.binds


def test_doubtful_values_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(paths=Paths(), environ={"ECS_AGENT_RUN_PRIVILEGED": "1", "ECS_AGENT_PID_NAMESPACE_HOST": "yes"})
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert cfg.flag(S.RUN_PRIVILEGED) is False
            assert cfg.flag(S.PID_NAMESPACE_HOST) is False
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "ECS_AGENT_RUN_PRIVILEGED='1' is not exactly 'true', so it is off (only the word true turns it on)",
        "ECS_AGENT_PID_NAMESPACE_HOST='yes' is not a boolean; treating it as false",
    ]


@pytest.mark.parametrize("raw", ["", "true", "false", "0", "False"])
def test_clear_values_are_not_logged(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(paths=Paths(), environ={key: raw for key in BOOLEAN_RULES})
    with caplog.at_level(logging.WARNING):
        for key in BOOLEAN_RULES:
            cfg.flag(S.BY_NAME[key])
    assert caplog.records == []


@pytest.mark.parametrize("key", list(BOOLEAN_RULES))
@pytest.mark.parametrize("raw", GO_TRUE + GO_FALSE + OTHER)
def test_rules_disagree_exactly_when_one_rule_says_true(key: str, raw: str) -> None:
    exact = raw == "true"
    parse = raw in GO_TRUE
    note = rules_disagree(key, raw)
    assert (note is not None) is (exact != parse)
    if note is not None:
        assert key in note and repr(raw) in note
        assert ("is off" in note) is (BOOLEAN_RULES[key] == EXACT_TRUE)


def test_rules_disagree_text_as_check_shows_it() -> None:
    assert rules_disagree("ECS_EXTERNAL", "1") == (
        "ECS_EXTERNAL='1' is off for ecs-init, which turns this on only for the exact word true "
        "(as the Go ecs-init does); other readers of ParseBool take it as true"
    )
    assert rules_disagree("ECS_AGENT_PID_NAMESPACE_HOST", "T") == (
        "ECS_AGENT_PID_NAMESPACE_HOST='T' is on (read like Go's ParseBool), "
        "but ecs-init's other switches accept only the word true"
    )
    assert rules_disagree(S.LOG_DRIVER.name, "1") is None  # not a switch
