"""A broken ecs.config is never silent (issue 20 items 1-2, issue 14 item 8).

One producer (``agent.config_problems``): ``check`` lists the problems, ``render`` shows and
``pre-start``/``start`` log one line per class, capped, pointing at ``check``; a file that is not
KEY=VALUE text refuses pre-start and start (255) with one error line; a file that cannot be used
(too large, unreadable, not a regular file) is logged in logfmt, to ecs-init.log too.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_init import actions
from ecs_init.agent import config_problems as cp
from ecs_init.core import envfile
from ecs_init.core.config import Config
from ecs_init.core.errors import InitError
from ecs_init.core.exitcodes import Exit
from ecs_init.host.context import HostContext
from ecs_init.ops import check_config, render

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NO_DOCKER = "unix:///nonexistent/docker.sock"
TYPOS = (
    "ECS_CLUSTR=prod\n"
    "ECS_ENABLE_TASK_ENI=yes\n"
    "oops no equals\n"
    "ECS_RESERVED_PORTS=[22,\n"
    'ECS_INSTANCE_ATTRIBUTES={"a":1\n'
    "ECS_AGENT_LABELS={broken\n"
    "ECS_INIT_ROLLBACK_FAILURES=inf\n"
    "ECS_CLUSTER=a\n"
    "ECS_CLUSTER=b\n"
    "ECS_LOGLEVEL=info\n"
)


def _root(tmp_path: Any, operator: str | bytes | None = None, instance: str | bytes | None = None) -> str:
    root = str(tmp_path / "root")
    for rel, content in (("etc/ecs/ecs.config", operator), ("var/lib/ecs/ecs.config", instance)):
        os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
        if content is not None:
            with open(os.path.join(root, rel), "wb") as fh:
                fh.write(content.encode() if isinstance(content, str) else content)
    return root


def _cfg(tmp_path: Any, operator: str | bytes | None = None, instance: str | bytes | None = None) -> Config:
    return Config.load(environ={"ECS_INIT_PATH_PREFIX": _root(tmp_path, operator, instance)})


def _cli(root: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "DOCKER_HOST")}
    environ.update(
        ECS_INIT_PATH_PREFIX=root, PYTHONPATH=os.path.join(ROOT, "src"), DOCKER_HOST=NO_DOCKER, PATH="/nonexistent"
    )
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "ecs_init", *args], env=environ, capture_output=True, text=True, timeout=60
    )


def _log(root: str) -> str:
    path = os.path.join(root, "var/log/ecs/ecs-init.log")
    if not os.path.exists(path):
        return ""
    with open(path) as fh:
        return fh.read()


# ---------------------------------------------------------------- the text rule


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ECS_CLUSTER=a\x00b\n", "NUL bytes"),
        ("ECS_CLUSTER=\ufffd\ufffd\ufffd\ufffd\ufffd\n", "is binary"),
        ("ECS_CLUSTER prod\n", "has no KEY=VALUE line"),
        ("export ECS_CLUSTER=prod\n", "has no KEY=VALUE line"),
        ("ECS_CLUSTER=a\nfoo\nbar baz\n", "is mostly not KEY=VALUE text: 2 of its 3 lines"),
    ],
)
def test_text_rule_refuses(text: str, fragment: str) -> None:
    assert fragment in envfile.text_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n  \n",
        "# only a comment\n",
        "ECS_CLUSTER=a\n",
        "ECS_CLUSTER=a\nnot a setting\n",  # half: warned, not refused
        "#ECS_LOGLEVEL=debug\nECS_CLUSTER=caf\u00e9\n",
        "ECS_CLUSTER=a\r\nECS_LOGLEVEL=info\r\n",  # CRLF
        "\tECS_CLUSTER = a \n",
    ],
)
def test_text_rule_accepts(text: str) -> None:
    assert envfile.text_refusal(text) == ""


_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True)
_VALUE = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffd"), max_size=40)


@given(st.lists(st.tuples(_NAME, _VALUE), min_size=1, max_size=30), st.lists(st.sampled_from(["", "# c", "  "])))
def test_property_key_value_files_are_never_refused(pairs: list[tuple[str, str]], extra: list[str]) -> None:
    text = "\n".join([f"{k}={v}" for k, v in pairs] + extra)
    assert envfile.text_refusal(text) == ""


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=64, max_size=4096))
def test_property_random_bytes_are_refused_or_read_never_raise(tmp_path: Any, data: bytes) -> None:
    """Random bytes never crash the reader; with a NUL byte, or mostly not UTF-8, they are refused."""
    path = tmp_path / "ecs.config"
    path.write_bytes(data)
    read = envfile.read(str(path))
    if b"\x00" in data:
        assert "NUL" in read.refusal
    if read.refusal:
        assert "\n" not in read.refusal


def test_three_kilobytes_of_random_data_is_refused(tmp_path: Any) -> None:
    """The issue's own case: 3 000 random bytes (with a NUL, as /dev/urandom gives almost surely)."""
    data = os.urandom(3000)
    data = data if b"\x00" in data else data + b"\x00"
    cfg = _cfg(tmp_path, operator=data)
    assert cfg.refusals() and "not KEY=VALUE text" in cfg.refusals()[0]


# ---------------------------------------------------------------- one producer, one line per class


def test_each_class_is_one_line_capped_and_points_at_check(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, operator=TYPOS)
    found = cp.find(cfg)
    lines = found.summary()
    assert all("run `amazon-ecs-init check` for details" in line for line in lines)
    kinds = [kind for kind, _ in found.summary_by_kind()]
    assert kinds == [
        cp.MALFORMED,
        cp.UNKNOWN_KEY,
        cp.DUPLICATE_KEY,
        cp.BOOLEAN,
        cp.JSON_VALUE,
        cp.SETTING,
        cp.SPEC,
    ]
    text = "\n".join(lines)
    operator = cfg.paths.ecs_config
    assert f"1 line(s) without KEY=VALUE, ignored (not passed to the agent): {operator} line(s) 3;" in text
    assert f"ECS_CLUSTR at {operator}:1 (did you mean ECS_CLUSTER?)" in text
    assert f"ECS_ENABLE_TASK_ENI='yes' at {operator}:2 is not a boolean" in text
    assert f"ECS_RESERVED_PORTS at {operator}:4 is not valid JSON" in text
    assert "ECS_INSTANCE_ATTRIBUTES" in text and "the agent refuses to start with it" in text
    assert "ECS_INIT_ROLLBACK_FAILURES='inf'" in text
    assert text.count("ECS_AGENT_LABELS is not valid JSON") == 1
    assert f"ECS_CLUSTER at {operator}:9 (first at line 8)" in text


def test_many_problems_are_counted_not_listed(tmp_path: Any) -> None:
    text = "ECS_CLUSTER=a\n" + "".join(f"ECS_UNKNOWN_{i}=x\n" for i in range(2000))
    cfg = _cfg(tmp_path, operator=text)
    started = time.monotonic()
    found = cp.find(cfg)
    assert time.monotonic() - started < 2.0  # did-you-mean only for the first MAX_ITEMS
    assert found.totals[cp.UNKNOWN_KEY] == 2000 and len(found.of(cp.UNKNOWN_KEY)) == cp.MAX_ITEMS
    (line,) = [line for kind, line in found.summary_by_kind() if kind == cp.UNKNOWN_KEY]
    assert line.startswith("ecs.config: 2000 unknown key(s)") and f"and {2000 - cp.SHOWN} more" in line
    checks = check_config.check_keys(found)
    assert len(checks) == cp.MAX_ITEMS + 1 and "and 1950 more unknown key(s)" in checks[-1].reason


def test_render_warnings_are_the_lines_start_logs(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    root = _root(tmp_path, operator=TYPOS)
    cfg = Config.load(environ={"ECS_INIT_PATH_PREFIX": root, "DOCKER_HOST": NO_DOCKER})
    doc = render.render(HostContext(cfg=cfg), api_version="1.41")
    with caplog.at_level(logging.WARNING):
        actions.check_config(HostContext(cfg=Config.load(environ={"ECS_INIT_PATH_PREFIX": root})), "start")
    logged = [r.getMessage() for r in caplog.records]
    assert logged == doc["warnings"] and len(logged) == 7
    # the settings' own lines are not logged twice by the accessors once the summary told them
    caplog.clear()
    cfg2 = Config.load(environ={"ECS_INIT_PATH_PREFIX": root})
    with caplog.at_level(logging.WARNING):
        actions.check_config(HostContext(cfg=cfg2), "start")
        cfg2.count(cp.settings.ROLLBACK_FAILURES)
    assert sum("ECS_INIT_ROLLBACK_FAILURES" in r.getMessage() for r in caplog.records) == 1


def test_check_reports_each_problem_of_the_same_producer(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, operator=TYPOS)
    checks = check_config.config_checks(cfg)
    bad = [(c.name, c.status) for c in checks if c.status != "PASS"]
    assert bad == [
        ("config.operator", "WARN"),
        ("config.duplicate-key", "WARN"),
        ("config.unknown-key", "WARN"),
        ("config.boolean", "FAIL"),
        ("config.json", "WARN"),
        ("config.json", "FAIL"),
        ("config.setting", "FAIL"),
        ("config.agent-labels", "FAIL"),
    ]


def test_a_refused_file_is_one_fail_not_a_flood(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, operator=b"ECS_CLUSTER=a\n" + bytes(range(256)) * 4)
    checks = check_config.config_checks(cfg)
    failed = [c for c in checks if c.status != "PASS"]
    assert [(c.name, c.status) for c in failed] == [("config.operator", "FAIL")]
    assert "pre-start and start refuse to run with it" in failed[0].reason
    assert cp.find(cfg).summary() == [
        f"config file {cfg.paths.ecs_config} {cfg.files[0].refusal}: pre-start and start refuse to run with it; "
        "run `amazon-ecs-init check` for details"
    ]


def test_unknown_keys_are_shown_without_terminal_escapes(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, operator="ECS_CLUSTER=a\nECS_LOGLEVEL=info\nX\x1b[31mY=1\n")
    (problem,) = cp.find(cfg).of(cp.UNKNOWN_KEY)
    assert "\x1b" not in problem.reason and "X\\x1b[31mY" in problem.reason


# ---------------------------------------------------------------- pre-start and start, through the CLI


@pytest.mark.parametrize("action", ["pre-start", "start"])
def test_not_text_refuses_pre_start_and_start_with_one_error(tmp_path: Any, action: str) -> None:
    root = _root(tmp_path, operator=b"ECS_CLUSTER=prod\x00\x01\x02garbage\n")
    proc = _cli(root, action)
    assert proc.returncode == Exit.FAILURE, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("level=error")]
    assert len(errors) == 1 and f"{action}: refusing to run: config file" in errors[0] and "NUL bytes" in errors[0]
    assert "Traceback" not in proc.stderr
    assert errors[0] in _log(root)  # in ecs-init.log too, as the same logfmt line
    assert not os.path.exists(os.path.join(root, "var/run/ecs-init"))  # refused before any lock or step


def test_start_logs_one_warning_per_class(tmp_path: Any) -> None:
    root = _root(tmp_path, operator=TYPOS)
    proc = _cli(root, "start", ECS_INIT_DOCKER_WAIT_TIMEOUT="0")
    assert proc.returncode == Exit.FAILURE  # no Docker: after the warnings
    warnings = [line for line in _log(root).splitlines() if line.startswith("level=warn")]
    expected = cp.find(Config.load(environ={"ECS_INIT_PATH_PREFIX": root})).summary()
    assert len(warnings) == len(expected) == 7
    assert all(want.replace('"', '\\"') in got for want, got in zip(expected, warnings))


@pytest.mark.parametrize("action", ["status", "check", "render", "stop", "start"])
def test_unusable_file_is_logged_in_logfmt_by_every_action(tmp_path: Any, action: str) -> None:
    root = _root(tmp_path)
    big = os.path.join(root, "etc/ecs/ecs.config")
    with open(big, "wb") as fh:
        fh.write(b"A=" + b"x" * (envfile.MAX_CONFIG_BYTES + 10))
    proc = _cli(root, action, ECS_INIT_DOCKER_WAIT_TIMEOUT="0")
    lines = [line for line in proc.stderr.splitlines() if "larger than" in line]
    assert len(lines) == 1 and lines[0].startswith("level=error time=") and f"config file {big}" in lines[0]
    if action == "check":
        assert "FAIL  config.operator" in proc.stdout and "larger than" in proc.stdout
    if action in ("stop", "start"):  # an action that writes ecs-init.log has the line there too
        assert lines[0].split(" time=", 1)[1].split(" ", 1)[1] in _log(root)


def test_unreadable_file_is_logged_and_checked(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied (root reads anything, so the refusal is simulated at the one reader)."""
    root = _root(tmp_path, operator="ECS_CLUSTER=a\n")

    def denied(path: str, limit: int, **_kw: Any) -> bytes:
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(envfile, "read_regular", denied)
    cfg = Config.load(environ={"ECS_INIT_PATH_PREFIX": root})
    assert cfg.file_errors() == [f"config file {cfg.paths.ecs_config} cannot be read: Permission denied; ignoring it"]
    (check,) = [c for c in check_config.config_checks(cfg) if c.name == "config.operator"]
    assert check.status == "FAIL" and "Permission denied" in check.reason


def test_pre_start_refusal_names_no_step(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, operator="ECS_CLUSTER prod\n")
    with pytest.raises(InitError) as err:
        actions.check_config(HostContext(cfg=cfg), "pre-start")
    assert "has no KEY=VALUE line" in str(err.value) and "\n" not in str(err.value)
