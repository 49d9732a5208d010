from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ecs_init import cli


def test_usage_lists_every_action(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    for action in ("pre-start", "start", "stop", "pre-stop", "post-stop", "reload-cache", "version"):
        assert f"  {action}" in err


def test_unknown_action_exit_1(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["frobnicate"]) == 1
    assert "unknown action 'frobnicate'" in capsys.readouterr().err


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ecs-init version ") and "v1.105.1" in out


def test_version_does_not_import_docker() -> None:
    code = "import sys; from ecs_init import cli; cli.main(['version']); print('docker' in sys.modules)"
    src = os.path.dirname(os.path.dirname(cli.__file__))
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().endswith("False")


def test_deeply_nested_json_in_ecs_config_never_tracebacks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    os.makedirs(tmp_path / "etc/ecs")
    deep = "[" * 100000 + "]" * 100000
    (tmp_path / "etc/ecs/ecs.config").write_text(f'ECS_AGENT_LABELS={deep}\nECS_LOG_OPTS={{"a":{deep}}}\n')
    src = os.path.dirname(os.path.dirname(cli.__file__))
    env = dict(
        os.environ, ECS_INIT_PATH_PREFIX=str(tmp_path), PYTHONPATH=src, DOCKER_HOST="unix:///tmp/no-such-docker.sock"
    )
    for action, code in (("render", 0), ("check", 1), ("status", 1)):
        proc = subprocess.run([sys.executable, "-m", "ecs_init", action], env=env, capture_output=True, text=True)
        assert proc.returncode == code, (action, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr


# ---------------------------------------------------------------- help, usage errors (issue 20 item 5, issue 14 item 4)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ("iptables", "ip6tables", "sysctl", "ip", "apparmor_parser", "realm")


def _sandbox(tmp_path) -> tuple[str, str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A root prefix, a marker file any host tool would create, and the environment to run the CLI in."""
    root, bindir = str(tmp_path / "root"), str(tmp_path / "bin")
    os.makedirs(root)
    os.makedirs(bindir)
    marker = str(tmp_path / "a-tool-ran")
    for tool in TOOLS:
        path = os.path.join(bindir, tool)
        with open(path, "w") as fh:
            fh.write(f"#!/bin/sh\necho \"$0 $*\" >> {marker}\nexit 1\n")
        os.chmod(path, 0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "DOCKER_HOST")}
    env.update(
        ECS_INIT_PATH_PREFIX=root,
        PYTHONPATH=os.path.join(ROOT, "src"),
        PATH=bindir,
        DOCKER_HOST="unix:///nonexistent/docker.sock",
        ECS_INIT_DOCKER_WAIT_TIMEOUT="0",
    )
    return root, marker, env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "ecs_init", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def _touched(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _dirs, files in os.walk(root) for f in files)


def test_the_sandbox_sees_an_action_that_acts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The harness below would notice: post-stop without --help runs iptables and sysctl and logs."""
    root, marker, env = _sandbox(tmp_path)
    assert _run(env, "post-stop").returncode == 0
    assert os.path.exists(marker) and _touched(root)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("action", list(cli.ACTIONS))
def test_help_anywhere_after_an_action_prints_its_help_and_touches_nothing(tmp_path, action: str, flag: str) -> None:  # type: ignore[no-untyped-def]
    root, marker, env = _sandbox(tmp_path)
    for args in ([action, flag], [action, "--json", flag] if action in cli.REPORT_ACTIONS else [action, flag, "x"]):
        proc = _run(env, *args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: amazon-ecs-init {action} [-h]"), proc.stdout
        assert "-h, --help" in proc.stdout
        assert proc.stderr == ""
    assert not os.path.exists(marker), "a host tool ran"
    assert _touched(root) == []  # no log, no lock, no state


@pytest.mark.parametrize("action", list(cli.ACTIONS))
def test_unknown_option_is_a_usage_error_before_anything_runs(tmp_path, action: str) -> None:  # type: ignore[no-untyped-def]
    root, marker, env = _sandbox(tmp_path)
    proc = _run(env, action, "--bogus")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == f"amazon-ecs-init {action}: unrecognized arguments: --bogus"
    assert lines[1].startswith(f"usage: amazon-ecs-init {action}")
    assert "level=" not in proc.stderr and "Traceback" not in proc.stderr  # for a person, not logfmt
    assert proc.stdout == ""
    assert not os.path.exists(marker) and _touched(root) == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["render", "--api-version", "x"], "argument --api-version: 'x' is not a version like 1.44"),
        (["collect", "--since", "soon"], "argument --since: 'soon' is not a duration"),
        (["frobnicate"], "amazon-ecs-init: unknown action 'frobnicate'"),
    ],
)
def test_bad_option_values_are_plain_usage_errors(tmp_path, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    root, _marker, env = _sandbox(tmp_path)
    proc = _run(env, *args)
    assert proc.returncode == 1 and fragment in proc.stderr.splitlines()[0]
    assert "level=" not in proc.stderr and "sage: amazon-ecs-init" in proc.stderr
    assert _touched(root) == []


def test_dash_dash_version_is_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    _root, _marker, env = _sandbox(tmp_path)
    plain, flag = _run(env, "version"), _run(env, "--version")
    assert plain.returncode == flag.returncode == 0
    assert flag.stdout == plain.stdout and flag.stdout.startswith("ecs-init version ")


def test_help_lists_every_exit_code() -> None:
    from ecs_init.core.exitcodes import EXIT_MEANINGS, Exit

    text = cli.usage()
    assert set(EXIT_MEANINGS) == set(Exit.__members__)
    for name, member in Exit.__members__.items():
        assert EXIT_MEANINGS[name] in text, name
        assert f"\n  {int(member):<4} " in text or f"       {EXIT_MEANINGS[name]}" in text
    section = text[text.index("Exit codes:") :].split("\n\n")[0]
    assert [line.split()[0] for line in section.splitlines()[1:] if line[:3].strip()] == ["0", "1", "3", "5", "255"]


@pytest.mark.parametrize("action", sorted(cli.REPORT_ACTIONS))
def test_json_help_points_at_the_installed_schemas(action: str) -> None:
    text = cli.action_help(action)
    flat = " ".join(text.split())
    assert "/usr/share/amazon-ecs-init/schemas/" in flat.replace("amazon-ecs- init", "amazon-ecs-init")
    assert "src/ecs_init/schemas/" in flat
    schema = f"{action}.schema.json"
    assert schema in flat and os.path.exists(os.path.join(ROOT, "src/ecs_init/schemas", schema))


def test_man_page_synopsis_names_every_option() -> None:
    with open(os.path.join(ROOT, "packaging/man/amazon-ecs-init.1")) as fh:
        page = fh.read()
    synopsis = page[page.index(".SH SYNOPSIS") : page.index(".SH DESCRIPTION")]
    for option in ("\\-\\-api\\-version", "\\-\\-show\\-secrets", "\\-\\-network", "\\-\\-output", "\\-\\-since",
                   "\\-\\-version", "\\-\\-help", "collect", "render", "check", "status"):  # fmt: skip
        assert option in synopsis, option
