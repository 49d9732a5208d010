"""Every conditional row of SPEC §3, on the pure spec builder."""

from __future__ import annotations

from typing import Any

import pytest

from ecs_init.agent.spec import (
    DEFAULT_CREDENTIALS_FETCHER_SOCKET,
    FIXED_BINDS,
    HostFacts,
    build_spec,
    candidate_paths,
    parse_labels,
)
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.core.platform import Platform, detect_platform

AL2 = detect_platform({"ID": "amzn", "VERSION_ID": "2023"})
DEBIAN = detect_platform({"ID": "debian", "VERSION_ID": "12"})
AL1 = detect_platform({"ID": "amzn", "VERSION_ID": "2018.03"})
PATHS = Paths()
EBS = "/mnt/ecs/ebs"


def make(
    environ: dict[str, str] | None = None,
    instance: dict[str, str] | None = None,
    operator: dict[str, str] | None = None,
    paths: Paths = PATHS,
) -> Config:
    return Config(paths=paths, environ=environ or {}, instance=instance or {}, operator=operator or {})


def facts(**kw: Any) -> HostFacts:
    kw.setdefault("platform", AL2)
    kw.setdefault("directories", frozenset({EBS}))
    return HostFacts(**kw)


def test_defaults() -> None:
    spec = build_spec(make(), facts())
    env = spec.env
    assert spec.name == "ecs-agent"
    assert spec.image == "amazon/amazon-ecs-agent:latest"
    expected = {
        "ECS_LOGFILE": "/log/ecs-agent.log",
        "ECS_DATADIR": "/data",
        "ECS_AGENT_CONFIG_FILE_PATH": "/etc/ecs/ecs.config.json",
        "ECS_UPDATE_DOWNLOAD_DIR": "/var/cache/ecs",
        "ECS_UPDATES_ENABLED": "true",
        "ECS_AVAILABLE_LOGGING_DRIVERS": '["json-file","syslog","awslogs","fluentd","none"]',
        "ECS_ENABLE_TASK_IAM_ROLE": "true",
        "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST": "true",
        "ECS_EBSTA_SUPPORTED": "true",
        "ECS_AGENT_LABELS": "",
        "ECS_VOLUME_PLUGIN_CAPABILITIES": '["efsAuth"]',
        "ECS_DETAILED_OS_FAMILY": "amzn_2023",
        "ECS_ENABLE_TASK_ENI": "true",
        "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE": "true",
        "CREDENTIALS_FETCHER_HOST_DIR": "/var/credentials-fetcher/socket/credentials_fetcher.sock",
    }
    assert env == expected  # no SSL_CERT_DIR: the certs dir does not exist in these facts
    assert spec.labels == {}
    host = spec.host_config
    assert host["NetworkMode"] == "host"
    assert host["UsernsMode"] == "host"
    assert host["Init"] is True
    assert host["CapAdd"] == ["NET_ADMIN", "SYS_ADMIN"]
    assert "Privileged" not in host and "PidMode" not in host and "SecurityOpt" not in host
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "16m", "max-file": "4"}}


def test_always_binds_in_order() -> None:
    spec = build_spec(make(), facts())
    assert spec.binds == [
        "/var/run:/var/run",
        "/var/log/ecs:/log",
        "/var/lib/ecs/data:/data",
        "/etc/ecs:/etc/ecs",
        "/var/cache/ecs:/var/cache/ecs",
        "/sys/fs/cgroup:/sys/fs/cgroup",
        "/var/lib/ecs:/var/lib/ecs",
        "/var/log/ecs/exec:/log/exec",
        *FIXED_BINDS,
    ]
    assert "/proc:/host/proc:ro" in spec.binds and "/usr/bin/lsblk:/usr/bin/lsblk" in spec.binds


def test_prefixed_paths_keep_prefix_on_both_sides() -> None:
    paths = Paths(prefix="/tmp/p")
    spec = build_spec(make(paths=paths), facts(directories=frozenset({"/tmp/p/mnt/ecs/ebs"})))
    assert "/tmp/p/etc/ecs:/tmp/p/etc/ecs" in spec.binds
    assert "/tmp/p/var/cache/ecs:/tmp/p/var/cache/ecs" in spec.binds
    assert "/tmp/p/var/log/ecs:/log" in spec.binds
    assert spec.env["ECS_AGENT_CONFIG_FILE_PATH"] == "/tmp/p/etc/ecs/ecs.config.json"
    assert spec.env["ECS_UPDATE_DOWNLOAD_DIR"] == "/tmp/p/var/cache/ecs"
    assert spec.env["ECS_EBSTA_SUPPORTED"] == "true"


def test_certs_dir_by_platform() -> None:
    spec = build_spec(make(), facts(platform=DEBIAN, directories=frozenset({EBS, "/etc/ssl/certs", "/etc/ssl"})))
    assert spec.env["SSL_CERT_DIR"] == "/etc/ssl/certs"
    assert "/etc/ssl:/etc/ssl:ro" in spec.binds
    spec = build_spec(make(), facts(directories=frozenset({EBS, "/etc/pki/tls/certs", "/etc/pki"})))
    assert spec.env["SSL_CERT_DIR"] == "/etc/pki/tls/certs"
    assert "/etc/pki:/etc/pki:ro" in spec.binds


def test_al1_cgroup_mountpoint() -> None:
    spec = build_spec(make(), facts(platform=AL1))
    assert "/cgroup:/sys/fs/cgroup" in spec.binds


def test_credentials_fetcher_dir_from_process_env() -> None:
    cfg = make(environ={"CREDENTIALS_FETCHER_HOST": "unix:///run/cf.sock"})
    assert build_spec(cfg, facts()).env["CREDENTIALS_FETCHER_HOST_DIR"] == "/run/cf.sock"


def test_gmsa_domain_joined_and_socket_bind() -> None:
    sock = "/var/credentials-fetcher/socket/credentials_fetcher.sock"
    cfg = make(environ={"ECS_GMSA_SUPPORTED": "true"})
    spec = build_spec(cfg, facts(realm_output="example.com\n  realm-name: EXAMPLE.COM\n", existing=frozenset({sock})))
    assert spec.env["ECS_DOMAIN_JOINED_LINUX_INSTANCE"] == "true"
    assert f"{sock}:{sock}" in spec.binds
    # no realm-name, no socket: neither
    spec = build_spec(cfg, facts(realm_output=""))
    assert "ECS_DOMAIN_JOINED_LINUX_INSTANCE" not in spec.env
    assert not any(b.startswith(sock) for b in spec.binds)
    # gMSA off: realm output ignored
    spec = build_spec(make(), facts(realm_output="realm-name: X", existing=frozenset({sock})))
    assert "ECS_DOMAIN_JOINED_LINUX_INSTANCE" not in spec.env
    assert not any(b.startswith(sock) for b in spec.binds)


def test_files_merge_over_defaults_operator_wins() -> None:
    cfg = make(
        instance={"ECS_CLUSTER": "inst", "ECS_UPDATES_ENABLED": "false", "ECS_LOGFILE": "/x"},
        operator={"ECS_CLUSTER": "op"},
    )
    env = build_spec(cfg, facts()).env
    assert env["ECS_CLUSTER"] == "op"
    assert env["ECS_UPDATES_ENABLED"] == "false"
    assert env["ECS_LOGFILE"] == "/x"


def test_instance_gpu_flag_dropped_when_no_devices() -> None:
    cfg = make(instance={"ECS_ENABLE_GPU_SUPPORT": "true"})
    assert "ECS_ENABLE_GPU_SUPPORT" not in build_spec(cfg, facts(), gpu_devices_appeared=False).env
    kept = build_spec(cfg, facts(gpu_devices=True), gpu_devices_appeared=True)
    assert kept.env["ECS_ENABLE_GPU_SUPPORT"] == "true"
    assert "/var/lib/ecs/gpu:/var/lib/ecs/gpu" in kept.binds
    # the operator's own flag is not dropped, but no devices means no bind
    op = build_spec(make(operator={"ECS_ENABLE_GPU_SUPPORT": "true"}), facts(), gpu_devices_appeared=None)
    assert op.env["ECS_ENABLE_GPU_SUPPORT"] == "true"
    assert "/var/lib/ecs/gpu:/var/lib/ecs/gpu" not in op.binds


def test_external_mode() -> None:
    cfg = make(environ={"ECS_EXTERNAL": "true"}, operator={"ECS_ENABLE_TASK_ENI": "true"})
    spec = build_spec(cfg, facts(existing=frozenset({"/var/lib/cloud/data/result.json"})))
    assert spec.env["ECS_ENABLE_TASK_ENI"] == "false"
    assert spec.host_config["CapAdd"] == []
    assert "/root/.aws:/rotatingcreds:ro" in spec.binds
    assert not any("result.json" in b for b in spec.binds)


def test_cloud_init_result_bind_when_present() -> None:
    spec = build_spec(make(), facts(existing=frozenset({"/var/lib/cloud/data/result.json"})))
    assert "/var/lib/cloud/data/result.json:/var/lib/cloud/data/result.json:ro" in spec.binds


def test_old_docker_api() -> None:
    spec = build_spec(make(), facts(docker_api_version="1.24"))
    assert spec.env["ECS_ENABLE_TASK_ENI"] == "false"
    assert "Init" not in spec.host_config


def test_ebs_dir_missing() -> None:
    assert build_spec(make(), facts(directories=frozenset())).env["ECS_EBSTA_SUPPORTED"] == "false"


def test_optional_binds() -> None:
    f = facts(
        existing=frozenset({"/usr/bin/nsenter", "/sbin/modinfo", "/usr/sbin/modinfo"}),
        directories=frozenset({EBS, "/var/lib/ecs/deps", "/var/lib/ecs/deps/execute-command"}),
    )
    binds = build_spec(make(), f).binds
    assert "/usr/bin/nsenter:/usr/bin/nsenter" in binds
    assert "/sbin/modinfo:/sbin/modinfo" in binds
    assert "/usr/sbin/modinfo:/usr/sbin/modinfo" not in binds  # only the first
    assert "/var/lib/ecs/deps:/managed-agents:ro" in binds
    assert "/var/lib/ecs/deps/execute-command/config:/managed-agents/execute-command/config" in binds
    none = build_spec(make(), facts()).binds
    assert not any(b.startswith(("/usr/bin/nsenter", "/sbin/modinfo", "/var/lib/ecs/deps")) for b in none)
    only_usr = build_spec(make(), facts(existing=frozenset({"/usr/sbin/modinfo"}))).binds
    assert "/usr/sbin/modinfo:/usr/sbin/modinfo" in only_usr


def test_docker_socket_bind() -> None:
    cfg = make(environ={"DOCKER_HOST": "unix:///run/alt.sock"})
    assert build_spec(cfg, facts()).binds[0] == "/run/alt.sock:/var/run/docker.sock"
    cfg = make(environ={"DOCKER_HOST": "unix:///run/alt.sock"}, operator={"DOCKER_HOST": "unix:///var/run/in.sock"})
    assert build_spec(cfg, facts()).binds[0] == "/run/alt.sock:/var/run/in.sock"
    cfg = make(environ={"DOCKER_HOST": "unix:///run/alt.sock"}, operator={"DOCKER_HOST": "tcp://1.2.3.4:2375"})
    assert build_spec(cfg, facts()).binds[0] == "/run/alt.sock:/var/run/docker.sock"
    assert build_spec(make(), facts()).binds[0] == "/var/run:/var/run"


def test_labels() -> None:
    spec = build_spec(make(operator={"ECS_AGENT_LABELS": '{"a":"1","b":"2"}'}), facts())
    assert spec.labels == {"a": "1", "b": "2"}
    assert spec.warnings == []
    bad = build_spec(make(operator={"ECS_AGENT_LABELS": "{not json"}), facts())
    assert bad.labels == {}
    assert any(w.key == "ECS_AGENT_LABELS" for w in bad.warnings)
    assert parse_labels('{"a": 1}')[1] is not None
    assert parse_labels("[]")[1] is not None
    assert parse_labels("{}") == ({}, None)


def test_privileged_pid_apparmor() -> None:
    cfg = make(operator={"ECS_AGENT_RUN_PRIVILEGED": "true", "ECS_AGENT_PID_NAMESPACE_HOST": "1"})
    host = build_spec(cfg, facts(apparmor_enabled=True)).host_config
    assert host["Privileged"] is True
    assert host["PidMode"] == "host"
    assert host["SecurityOpt"] == ["apparmor:ecs-agent-default"]
    cfg = make(environ={"ECS_AGENT_APPARMOR_PROFILE": "custom"}, operator={"ECS_AGENT_PID_NAMESPACE_HOST": "nope"})
    host = build_spec(cfg, facts(apparmor_enabled=True)).host_config
    assert host["SecurityOpt"] == ["apparmor:custom"]
    assert "PidMode" not in host


@pytest.mark.parametrize(
    "settings,expected",
    [
        ({"ECS_LOG_DRIVER": "awslogs", "ECS_LOG_OPTS": '{"awslogs-group":"g"}'}, ("awslogs", {"awslogs-group": "g"})),
        ({"ECS_LOG_DRIVER": "journald"}, ("journald", {})),
        ({"ECS_LOG_DRIVER": "bogus", "ECS_LOG_OPTS": '{"k":"v"}'}, ("json-file", {"max-size": "16m", "max-file": "4"})),
        (
            {"ECS_INIT_DOCKER_LOG_FILE_SIZE": "32m", "ECS_INIT_DOCKER_LOG_FILE_NUM": "9"},
            ("json-file", {"max-size": "32m", "max-file": "9"}),
        ),
        ({"ECS_LOG_OPTS": '{"max-size":"1m"}'}, ("json-file", {"max-size": "1m"})),
        ({"ECS_LOG_OPTS": "not json"}, ("json-file", {"max-size": "16m", "max-file": "4"})),
    ],
)
def test_log_config(settings: dict[str, str], expected: tuple[str, dict[str, str]]) -> None:
    spec = build_spec(make(operator=settings), facts())
    assert spec.host_config["LogConfig"] == {"Type": expected[0], "Config": expected[1]}
    if settings.get("ECS_LOG_DRIVER") == "bogus" or settings.get("ECS_LOG_OPTS") == "not json":
        assert spec.warnings


def test_own_settings_from_process_env_beat_files() -> None:
    cfg = make(environ={"ECS_LOG_DRIVER": "syslog"}, operator={"ECS_LOG_DRIVER": "journald"})
    assert build_spec(cfg, facts()).host_config["LogConfig"]["Type"] == "syslog"


def test_engine_body() -> None:
    spec = build_spec(make(operator={"ECS_CLUSTER": "c"}), facts())
    body = spec.engine_body()
    assert body["Image"] == "amazon/amazon-ecs-agent:latest"
    assert "ECS_CLUSTER=c" in body["Env"]
    assert body["HostConfig"]["Binds"] == spec.binds


# ---------------------------------------------------------------- boundaries (issue 21)


@pytest.mark.parametrize(
    ("api", "eni", "init"),
    [
        ("1.24", "false", False),
        ("1.25", "true", True),
        ("1.26", "true", True),
        ("1.44", "true", True),
        ("", "false", False),
    ],
)
def test_docker_api_1_25_is_the_first_with_task_eni_and_init(api: str, eni: str, init: bool) -> None:
    """SPEC §3 step 5 and HostConfig: below 1.25 no task ENI and no Init; 1.25 itself has both."""
    spec = build_spec(make(), facts(docker_api_version=api))
    assert spec.env["ECS_ENABLE_TASK_ENI"] == eni
    assert spec.host_config.get("Init", False) is init


@pytest.mark.parametrize(
    ("value", "socket"),
    [
        ("unix:///run/cf.sock", "/run/cf.sock"),
        ("unix://", DEFAULT_CREDENTIALS_FETCHER_SOCKET),  # no path: the default
        ("tcp://127.0.0.1:8000", DEFAULT_CREDENTIALS_FETCHER_SOCKET),  # not a unix socket
        ("/run/cf.sock", DEFAULT_CREDENTIALS_FETCHER_SOCKET),  # a bare path is no unix:// URL
        ("", DEFAULT_CREDENTIALS_FETCHER_SOCKET),
    ],
)
def test_credentials_fetcher_socket_only_from_a_unix_url(value: str, socket: str) -> None:
    cfg = make(environ={"CREDENTIALS_FETCHER_HOST": value, "ECS_GMSA_SUPPORTED": "true"})
    spec = build_spec(cfg, facts(existing=frozenset({socket, "/run/cf.sock", "/127.0.0.1:8000"})))
    assert spec.env["CREDENTIALS_FETCHER_HOST_DIR"] == socket
    assert f"{socket}:{socket}" in spec.binds
    assert [b for b in spec.binds if "cf.sock" in b or "8000" in b or "credentials_fetcher" in b] == [
        f"{socket}:{socket}"
    ]


def test_credentials_fetcher_host_in_the_files_is_not_read() -> None:
    cfg = make(operator={"CREDENTIALS_FETCHER_HOST": "unix:///run/cf.sock"})
    assert build_spec(cfg, facts()).env["CREDENTIALS_FETCHER_HOST_DIR"] == DEFAULT_CREDENTIALS_FETCHER_SOCKET


@pytest.mark.parametrize(
    ("process", "files", "bind"),
    [
        ("", "", "/var/run:/var/run"),
        ("tcp://1.2.3.4:2375", "unix:///x.sock", "/var/run:/var/run"),
        ("unix:///run/alt.sock", "", "/run/alt.sock:/var/run/docker.sock"),
        ("unix:///run/alt.sock", "unix://", "/run/alt.sock:/var/run/docker.sock"),
        ("unix:///run/alt.sock", "unix:///in.sock", "/run/alt.sock:/in.sock"),
    ],
)
def test_docker_socket_bind_table(process: str, files: str, bind: str) -> None:
    environ = {"DOCKER_HOST": process} if process else {}
    operator = {"DOCKER_HOST": files} if files else {}
    assert build_spec(make(environ=environ, operator=operator), facts()).binds[0] == bind


# Every host path the spec may depend on (SPEC §3), whatever the platform and settings.
SPEC_HOST_PATHS = (
    "/etc/pki",
    "/etc/pki/tls/certs",
    "/etc/ssl",
    "/etc/ssl/certs",
    "/usr/bin/nsenter",
    "/sbin/modinfo",
    "/usr/sbin/modinfo",
    "/var/lib/cloud/data/result.json",
    "/var/lib/ecs/deps",
    "/var/lib/ecs/deps/execute-command",
    "/mnt/ecs/ebs",
    "/var/lib/ecs/gpu",
    DEFAULT_CREDENTIALS_FETCHER_SOCKET,
    "/run/cf.sock",
)
LINK_SETTINGS = {"ECS_GMSA_SUPPORTED": "true", "CREDENTIALS_FETCHER_HOST": "unix:///run/cf.sock"}


@pytest.mark.parametrize("platform", [AL2, AL1, DEBIAN, detect_platform({})], ids=["al2", "al1", "debian", "generic"])
@pytest.mark.parametrize("environ", [{}, LINK_SETTINGS], ids=["defaults", "gmsa"])
def test_candidate_paths_are_every_path_the_spec_looks_at(platform: Platform, environ: dict[str, str]) -> None:
    """hostfacts only checks candidate_paths: a host path the spec depends on that is not
    among them would be taken as missing, and its bind or setting would vanish silently."""
    cfg = make(environ=environ)
    candidates = set(candidate_paths(cfg, platform))
    everything = frozenset(SPEC_HOST_PATHS)
    seen = facts(platform=platform, existing=everything & candidates, directories=everything & candidates)
    assert build_spec(cfg, seen) == build_spec(
        cfg, facts(platform=platform, existing=everything, directories=everything)
    )
    assert candidates <= everything  # nothing the spec never looks at


def test_candidate_paths_exact() -> None:
    assert candidate_paths(make(), AL2) == (
        "/etc/pki/tls/certs",
        "/etc/pki",
        "/usr/bin/nsenter",
        "/sbin/modinfo",
        "/usr/sbin/modinfo",
        "/var/lib/cloud/data/result.json",
        "/var/lib/ecs/deps",
        "/var/lib/ecs/deps/execute-command",
        "/mnt/ecs/ebs",
        DEFAULT_CREDENTIALS_FETCHER_SOCKET,
    )
    prefixed = candidate_paths(make(paths=Paths(prefix="/p"), environ=LINK_SETTINGS), detect_platform({}))
    assert prefixed == (
        "/usr/bin/nsenter",
        "/sbin/modinfo",
        "/usr/sbin/modinfo",
        "/var/lib/cloud/data/result.json",
        "/p/var/lib/ecs/deps",
        "/p/var/lib/ecs/deps/execute-command",
        "/p/mnt/ecs/ebs",
        "/run/cf.sock",
    )


def test_engine_body_is_exactly_the_spec() -> None:
    spec = build_spec(make(operator={"ECS_CLUSTER": "c", "ECS_AGENT_LABELS": '{"team":"a"}'}), facts())
    host = dict(spec.host_config)
    host["Binds"] = spec.binds
    assert spec.engine_body() == {
        "Image": "amazon/amazon-ecs-agent:latest",
        "Env": [f"{k}={v}" for k, v in spec.env.items()],
        "Labels": {"team": "a"},
        "HostConfig": host,
    }
    assert "Binds" not in spec.host_config  # the body is a copy


LABELS_NOT_STRINGS = "ECS_AGENT_LABELS is not a JSON object of string to string"


@pytest.mark.parametrize(
    ("settings", "warnings"),
    [
        ({}, []),
        ({"ECS_LOG_DRIVER": "json-file", "ECS_LOG_OPTS": '{"max-size":"1m"}'}, []),
        (
            {"ECS_LOG_OPTS": "[1]"},
            [("ECS_LOG_OPTS", "ECS_LOG_OPTS is not a valid JSON object (not a JSON object); ignoring it", True)],
        ),
        (
            {"ECS_LOG_OPTS": '{"b": 1, "\u00e9": true, "ok": "s"}'},
            [("ECS_LOG_OPTS", "ECS_LOG_OPTS: the value of \\xe9, b is not a string (converted to one)", False)],
        ),
        (
            {"ECS_LOG_DRIVER": "bogus", "ECS_LOG_OPTS": '{"k": "v"}'},
            [("ECS_LOG_DRIVER", "ECS_LOG_DRIVER='bogus' is not supported; using json-file without ECS_LOG_OPTS", True)],
        ),
        (
            {"ECS_LOG_DRIVER": "bogus"},
            [("ECS_LOG_DRIVER", "ECS_LOG_DRIVER='bogus' is not supported; using json-file", True)],
        ),
        (
            {"ECS_AGENT_LABELS": '{"b": 1, "\u00e9": null, "ok": "s"}'},
            [
                (
                    "ECS_AGENT_LABELS",
                    f"{LABELS_NOT_STRINGS} (the value of \\xe9, b is not a string); starting the agent without labels",
                    True,
                )
            ],
        ),
        (
            {"ECS_AGENT_LABELS": "[]"},
            [("ECS_AGENT_LABELS", f"{LABELS_NOT_STRINGS}; starting the agent without labels", True)],
        ),
    ],
)
def test_warnings_exactly(settings: dict[str, str], warnings: list[tuple[str, str, bool]]) -> None:
    spec = build_spec(make(operator=settings), facts())
    assert [(w.key, w.text, w.replaced) for w in spec.warnings] == warnings


def test_unsupported_driver_drops_the_options() -> None:
    spec = build_spec(make(operator={"ECS_LOG_DRIVER": "bogus", "ECS_LOG_OPTS": '{"k": "v"}'}), facts())
    assert spec.host_config["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "16m", "max-file": "4"}}
