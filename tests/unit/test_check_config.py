"""`check`: the pure configuration and tarball checks (no Docker)."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile

import pytest

from ecs_init.agent import config_problems
from ecs_init.core import envfile
from ecs_init.core.config import Config
from ecs_init.core.envfile import EnvFile
from ecs_init.core.known_keys import AGENT_KEYS, BOOLEAN_KEYS, KNOWN_KEYS, OWN_KEYS
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext
from ecs_init.ops import check, check_config, check_host

SHARED_KEYS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "ecs-config-keys.txt")


def _cfg(tmp_path, operator: str = "", instance: str = "", environ: dict[str, str] | None = None) -> Config:  # type: ignore[no-untyped-def]
    root = str(tmp_path)
    for rel, text in (("etc/ecs/ecs.config", operator), ("var/lib/ecs/ecs.config", instance)):
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        if text:
            with open(os.path.join(root, rel), "w") as fh:
                fh.write(text)
    env = {"ECS_INIT_PATH_PREFIX": root, **(environ or {})}
    return Config.load(environ=env)


def _spec_check(cfg: Config, name: str) -> check.Check:
    (found,) = [c for c in check_config.check_spec_values(cfg, config_problems.find(cfg)) if c.name == name]
    return found


def _file_check(cf: EnvFile, label: str = "operator") -> check.Check:
    """check's verdict on one env file read on its own (the other one absent)."""
    files = (cf, EnvFile("/nonexistent/other")) if label == "operator" else (EnvFile("/nonexistent/other"), cf)
    cfg = Config(paths=Paths(prefix="/nonexistent"), environ={}, files=files)
    return check_config.check_config_file(cf, label, config_problems.find(cfg))


# ---------------------------------------------------------------- known keys


def test_known_keys_cover_the_shared_list_and_own_settings() -> None:
    if os.path.exists(SHARED_KEYS):
        with open(SHARED_KEYS) as fh:
            listed = {line.strip() for line in fh if line.strip() and not line.startswith("#")}
        assert listed == set(AGENT_KEYS)
    assert "ECS_CLUSTER" in KNOWN_KEYS and "ECS_ENGINE_AUTH_DATA" in KNOWN_KEYS
    assert {"ECS_INIT_PATH_PREFIX", "ECS_INIT_ROLLBACK_WINDOW", "ECS_INIT_LOCK_TIMEOUT"} <= set(OWN_KEYS)
    assert BOOLEAN_KEYS <= KNOWN_KEYS
    assert "ECS_CLUSTER" not in BOOLEAN_KEYS and "ECS_ENABLE_TASK_ENI" in BOOLEAN_KEYS


def test_every_own_setting_the_code_reads_is_known() -> None:
    """Guards against drift: a new ECS_INIT_* setting must not be reported as an unknown key."""
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src", "ecs_init")
    names: set[str] = set()
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name)) as fh:
                    names.update(re.findall(r"\"(ECS_INIT_[A-Z0-9_]+)\"", fh.read()))
    assert "ECS_INIT_PATH_PREFIX" in names
    assert sorted(names - KNOWN_KEYS) == []


# ---------------------------------------------------------------- parsing with line numbers


def test_parse_config_lines_keeps_line_numbers_and_reports_lines_without_equals() -> None:
    text = "\n  ECS_CLUSTER = prod \n# a comment\nnot a setting\nECS_LOGLEVEL=debug=x\n=orphan\n"
    entries, ignored = envfile.parse_lines(text)
    assert [(e.line, e.key, e.value) for e in entries] == [(2, "ECS_CLUSTER", "prod"), (5, "ECS_LOGLEVEL", "debug=x")]
    assert ignored == [(4, "not a setting")]


def test_config_file_checks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator="ECS_CLUSTER=a\noops\n")
    operator = _file_check(envfile.read(cfg.paths.ecs_config), "operator")
    assert (operator.name, operator.status, operator.details["lines"]) == ("config.operator", "WARN", [2])
    instance = _file_check(envfile.read(cfg.paths.instance_config), "instance")
    assert (instance.name, instance.status) == ("config.instance", "PASS")
    missing = _file_check(envfile.read(str(tmp_path / "nope")), "operator")
    assert missing.status == "WARN" and "does not exist" in missing.reason and missing.hint


def test_config_file_that_is_a_directory_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    os.makedirs(tmp_path / "etc/ecs/ecs.config")
    result = _file_check(envfile.read(str(tmp_path / "etc/ecs/ecs.config")), "operator")
    assert result.status == "FAIL" and "is a directory" in result.reason


def test_config_file_that_is_a_fifo_fails_without_hanging(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fifo = str(tmp_path / "ecs.config")
    os.mkfifo(fifo)
    result = _file_check(envfile.read(fifo), "operator")
    assert result.status == "FAIL" and "not a regular file" in result.reason


def test_oversized_config_file_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "ecs.config"
    big.write_bytes(b"A=" + b"x" * (1024 * 1024))
    result = _file_check(envfile.read(str(big)), "operator")
    assert result.status == "FAIL" and "larger than" in result.reason


# ---------------------------------------------------------------- keys


def test_unknown_keys_warn_with_did_you_mean(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(
        tmp_path,
        operator="ECS_CLUSTR=prod\nECS_RESERVED_MEMROY=32\necs_loglevel=debug\n#ECS_LOGLEVEL=info\nXYZZY=1\n",
        instance="ECS_ENABLE_GPU_SUPORT=true\n",
    )
    found = [
        (c.name, c.status, c.details["key"], c.details["line"], c.details["suggestion"])
        for c in check_config.check_keys(config_problems.find(cfg))
    ]
    assert found == [
        ("config.unknown-key", "WARN", "ECS_CLUSTR", 1, "ECS_CLUSTER"),
        ("config.unknown-key", "WARN", "ECS_RESERVED_MEMROY", 2, "ECS_RESERVED_MEMORY"),
        ("config.unknown-key", "WARN", "ecs_loglevel", 3, "ECS_LOGLEVEL"),
        ("config.unknown-key", "WARN", "#ECS_LOGLEVEL", 4, "ECS_LOGLEVEL"),
        ("config.unknown-key", "WARN", "XYZZY", 5, None),
        ("config.unknown-key", "WARN", "ECS_ENABLE_GPU_SUPORT", 1, "ECS_ENABLE_GPU_SUPPORT"),
    ]
    results = check_config.check_keys(config_problems.find(cfg))
    assert results[0].hint == "did you mean ECS_CLUSTER?"
    assert "no comments" in results[3].hint
    assert results[4].hint.startswith("check the spelling")
    assert results[5].details["file"] == cfg.paths.instance_config


def test_known_keys_pass_and_duplicates_warn(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator="ECS_CLUSTER=a\nECS_LOGLEVEL=info\nECS_CLUSTER=b\n")
    results = check_config.check_keys(config_problems.find(cfg))
    assert [(c.name, c.status) for c in results] == [("config.keys", "PASS"), ("config.duplicate-key", "WARN")]
    assert results[0].reason == "all 2 key(s) are known"
    assert "line 1" in results[1].reason and results[1].details["line"] == 3


def test_own_settings_are_known(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator="ECS_INIT_ROLLBACK_FAILURES=5\nECS_INIT_S3_ENDPOINT=http://127.0.0.1:1\n")
    assert [c.status for c in check_config.check_keys(config_problems.find(cfg))] == ["PASS"]


# ---------------------------------------------------------------- booleans


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "t", "1", "false", "F", "0"])
def test_go_booleans_parse(tmp_path, value: str) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator=f"ECS_ENABLE_TASK_ENI={value}\n")
    assert [(c.name, c.status) for c in check_config.check_booleans(config_problems.find(cfg))] == [
        ("config.boolean", "PASS")
    ]


@pytest.mark.parametrize("value", ["1", "True", "TRUE", "t", "T"])
def test_privileged_spelled_other_than_true_warns(tmp_path, value: str) -> None:  # type: ignore[no-untyped-def]
    """SPEC §3: ECS_AGENT_RUN_PRIVILEGED=1 is off (as in Go); check says so."""
    cfg = _cfg(tmp_path, operator=f"ECS_CLUSTER=c\nECS_AGENT_RUN_PRIVILEGED={value}\n")
    results = check_config.check_booleans(config_problems.find(cfg))
    assert [(c.name, c.status, c.details["key"], c.details["line"]) for c in results] == [
        ("config.boolean", "WARN", "ECS_AGENT_RUN_PRIVILEGED", 2)
    ]
    assert "is off" in results[0].reason and repr(value) in results[0].reason


def test_parse_bool_switch_spelled_1_warns_but_is_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator="ECS_SKIP_LOCALHOST_TRAFFIC_FILTER=1\nECS_EXTERNAL=0\nECS_GMSA_SUPPORTED=true\n")
    results = check_config.check_booleans(config_problems.find(cfg))
    assert [(c.status, c.details["key"]) for c in results] == [("WARN", "ECS_SKIP_LOCALHOST_TRAFFIC_FILTER")]
    assert "is on" in results[0].reason


def test_unparsable_booleans_fail(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator="ECS_CLUSTER=yes\nECS_ENABLE_TASK_ENI=yes\nECS_AGENT_RUN_PRIVILEGED=on\n")
    results = check_config.check_booleans(config_problems.find(cfg))
    assert [(c.status, c.details["key"], c.details["line"]) for c in results] == [
        ("FAIL", "ECS_ENABLE_TASK_ENI", 2),
        ("FAIL", "ECS_AGENT_RUN_PRIVILEGED", 3),
    ]
    assert "'yes'" in results[0].reason and results[0].hint == "use true or false"


# ---------------------------------------------------------------- labels, log driver, log options


@pytest.mark.parametrize(
    ("value", "status", "fragment"),
    [
        ("", "PASS", "not set"),
        ('{"team":"infra","env":"prod"}', "PASS", "2 label(s)"),
        ('{"team":"infra"', "FAIL", "not valid JSON"),
        ('["team"]', "FAIL", "not a JSON object"),
        ('{"team":1}', "FAIL", "value of team is not a string"),
    ],
)
def test_agent_labels(tmp_path, value: str, status: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator=f"ECS_AGENT_LABELS={value}\n" if value else "ECS_CLUSTER=a\n")
    result = _spec_check(cfg, "config.agent-labels")
    assert (result.name, result.status) == ("config.agent-labels", status)
    assert fragment in result.reason
    if status == "FAIL":
        assert cfg.paths.ecs_config in result.reason and result.hint


@pytest.mark.parametrize(
    ("driver", "status"),
    [("", "PASS"), ("json-file", "PASS"), ("awslogs", "PASS"), ("splunk", "PASS"), ("none", "FAIL"), ("loki", "FAIL")],
)
def test_log_driver(tmp_path, driver: str, status: str) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator=f"ECS_LOG_DRIVER={driver}\n")
    result = _spec_check(cfg, "config.log-driver")
    assert (result.name, result.status) == ("config.log-driver", status)
    if status == "FAIL":
        assert "json-file" in result.hint


def test_log_driver_from_process_environment_wins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator="ECS_LOG_DRIVER=syslog\n", environ={"ECS_LOG_DRIVER": "bogus"})
    result = _spec_check(cfg, "config.log-driver")
    assert result.status == "FAIL" and "process environment" in result.reason


@pytest.mark.parametrize(
    ("value", "status"),
    [('{"max-size":"10m"}', "PASS"), ('{"max-size":10}', "WARN"), ("{max-size:10m}", "FAIL"), ('"10m"', "FAIL")],
)
def test_log_opts(tmp_path, value: str, status: str) -> None:  # type: ignore[no-untyped-def]
    cfg = _cfg(tmp_path, operator=f"ECS_LOG_OPTS={value}\n")
    result = _spec_check(cfg, "config.log-opts")
    assert (result.name, result.status) == ("config.log-opts", status)


# ---------------------------------------------------------------- the tarball


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _archive(path: str, tags: list[str], manifest: bool = True, layer: bytes = b"x" * 4096) -> None:
    with tarfile.open(path, "w") as tar:
        _add(tar, "abc.json", b"{}")
        _add(tar, "l1/layer.tar", layer)
        if manifest:
            doc = [{"Config": "abc.json", "RepoTags": tags, "Layers": ["l1/layer.tar"]}]
            _add(tar, "manifest.json", json.dumps(doc).encode())


def test_inspect_archive_reads_tags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "a.tar")
    _archive(path, ["amazon/amazon-ecs-agent:latest", "amazon/amazon-ecs-agent:v1"])
    assert check_host.inspect_archive(path) == (["amazon/amazon-ecs-agent:latest", "amazon/amazon-ecs-agent:v1"], "")


def test_inspect_archive_problems(tmp_path) -> None:  # type: ignore[no-untyped-def]
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a docker save archive\n" * 100)
    assert "not a readable tar archive" in check_host.inspect_archive(str(garbage))[1]
    plain = str(tmp_path / "plain.tar")
    _archive(plain, [], manifest=False)
    assert "no manifest.json" in check_host.inspect_archive(plain)[1]
    # Truncated: manifest.json written first, then the file cut inside the big layer.
    full = str(tmp_path / "full.tar")
    with tarfile.open(full, "w") as tar:
        _add(
            tar, "manifest.json", json.dumps([{"Config": "c.json", "RepoTags": [], "Layers": ["l/layer.tar"]}]).encode()
        )
        _add(tar, "c.json", b"{}")
        _add(tar, "l/layer.tar", os.urandom(256 * 1024))
    cut = tmp_path / "cut.tar"
    with open(full, "rb") as fh:
        cut.write_bytes(fh.read(128 * 1024))
    assert "truncated" in check_host.inspect_archive(str(cut))[1]


def _ctx(tmp_path) -> HostContext:  # type: ignore[no-untyped-def]
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "var/cache/ecs"), exist_ok=True)
    return HostContext(cfg=Config(paths=Paths(prefix=root), environ={}))


def test_tarball_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = _ctx(tmp_path)
    paths = ctx.paths
    missing = check_host.check_tarball(ctx)
    assert (missing.name, missing.status) == ("cache.tarball", "WARN") and "download" in missing.reason
    _archive(paths.cache_tarball, ["amazon/amazon-ecs-agent:latest"])
    with open(paths.cache_state, "w") as fh:
        fh.write("1\n")
    good = check_host.check_tarball(ctx)
    assert good.status == "PASS" and good.details["tags"] == ["amazon/amazon-ecs-agent:latest"]
    assert "cache state 1" in good.reason
    _archive(paths.cache_tarball, ["busybox:latest"])
    wrong = check_host.check_tarball(ctx)
    assert (
        wrong.status == "FAIL"
        and "does not contain amazon/amazon-ecs-agent:latest (it has busybox:latest)" in wrong.reason
    )
    with open(paths.cache_tarball, "wb") as fh:
        fh.write(b"junk" * 1000)
    corrupt = check_host.check_tarball(ctx)
    assert corrupt.status == "FAIL" and paths.cache_state in corrupt.hint
    open(paths.cache_tarball, "wb").close()
    assert check_host.check_tarball(ctx).status == "WARN"


def test_tarball_check_fails_an_unknown_cache_state(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SPEC §4: state 3 fails pre-start; check says so before it happens."""
    ctx = _ctx(tmp_path)
    paths = ctx.paths
    _archive(paths.cache_tarball, ["amazon/amazon-ecs-agent:latest"])
    with open(paths.cache_state, "w") as fh:
        fh.write("3\n")
    result = check_host.check_tarball(ctx)
    assert result.status == "FAIL" and result.details["state"] == 3
    assert "pre-start will fail" in result.reason and "holds 3" in result.reason
    assert "reload-cache" in result.hint


# ---------------------------------------------------------------- disk and report


def test_free_space_thresholds(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Fake:
        f_frsize = 4096

        def __init__(self, free: int) -> None:
            self.f_bavail = free // 4096

    for free, status in ((100 * check_host.MIB, "FAIL"), (500 * check_host.MIB, "WARN"), (2 * check_host.GIB, "PASS")):
        monkeypatch.setattr(check_host.os, "statvfs", lambda _p, free=free: Fake(free))
        result = check_host.free_space_check("disk.cache", "the cache directory", str(tmp_path / "not/yet"), "hint")
        assert result.status == status
        assert result.details["free_bytes"] == free


def test_report_exit_code_and_human_format() -> None:
    checks = [
        check.Check("docker", "PASS", "ok"),
        check.Check("config.unknown-key", "WARN", "unknown key X", "did you mean Y?"),
    ]
    doc = check.report(checks, 0.01)
    assert (doc["ok"], doc["exit_code"], doc["counts"]) == (True, 0, {"PASS": 1, "WARN": 1, "FAIL": 0, "SKIP": 0})
    text = check.format_human(doc)
    assert "WARN  config.unknown-key  unknown key X" in text and "hint: did you mean Y?" in text
    failed = check.report([*checks, check.Check("cgroup", "FAIL", "missing", "mount it")], 0.01)
    assert (failed["ok"], failed["exit_code"]) == (False, 1)
