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
    assert "amazon-ecs-init version" in out and "v1.105.1" in out


def test_version_does_not_import_docker() -> None:
    code = "import sys; from ecs_init import cli; cli.main(['version']); print('docker' in sys.modules)"
    src = os.path.dirname(os.path.dirname(cli.__file__))
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().endswith("False")
