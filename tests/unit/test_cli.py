from __future__ import annotations

import os
import subprocess
import sys

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
