"""`amazon-ecs-init version` (SPEC §1, issue 13 item 3): the Go program's first line, the revision.

The Go reference (ecs-init/version/formatting.go) prints
``ecs-init version <version> (<hash>)`` with ``*`` before the hash of a
dirty build; its build scripts take ``git rev-parse --short=8 HEAD`` and call
a tree dirty when ``git status --porcelain`` prints anything.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

from ecs_init import AGENT_VERSION, __version__, cli, versioninfo

SRC = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))
GO_LINE = re.compile(r"^ecs-init version (\S+) \((\*?)([0-9a-f]{8}|unknown)\)$")


def _run(*args: str, pythonpath: str = SRC, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=pythonpath)
    return subprocess.run([sys.executable, "-m", "ecs_init", *args], env=env, capture_output=True, text=True, cwd=cwd)


def _git_repo(path: pathlib.Path) -> None:
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@example.invalid", "-c", "user.name=t",
                                                  "commit", "-q", "-m", "x"]):  # fmt: skip
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)


def _copy_source(tmp_path: pathlib.Path) -> pathlib.Path:
    dest = tmp_path / "checkout" / "src" / "ecs_init"
    shutil.copytree(os.path.join(SRC, "ecs_init"), dest, ignore=shutil.ignore_patterns("__pycache__", "_build_info.py"))
    return dest


def test_first_line_is_the_go_form_and_the_agent_version_follows() -> None:
    proc = _run("version")
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    match = GO_LINE.match(first)
    assert match, first
    assert match.group(1) == __version__
    assert second == f"ECS agent version {AGENT_VERSION}"
    assert proc.stderr == ""


def test_dash_dash_version_is_version() -> None:
    assert _run("--version").stdout == _run("version").stdout
    assert _run("--version").returncode == 0


def test_source_checkout_with_git_asks_git(tmp_path: pathlib.Path) -> None:
    pkg = _copy_source(tmp_path)
    repo = pkg.parent.parent
    _git_repo(repo)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short=8", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    first = _run("version", pythonpath=str(pkg.parent)).stdout.splitlines()[0]
    assert first == f"ecs-init version {__version__} ({head})"
    (repo / "new-file").write_text("uncommitted\n")  # git status --porcelain shows it: dirty
    first = _run("version", pythonpath=str(pkg.parent)).stdout.splitlines()[0]
    assert first == f"ecs-init version {__version__} (*{head})"


def test_source_checkout_without_git_says_unknown(tmp_path: pathlib.Path) -> None:
    pkg = _copy_source(tmp_path)
    first = _run("version", pythonpath=str(pkg.parent), cwd=str(tmp_path)).stdout.splitlines()[0]
    assert first == f"ecs-init version {__version__} (unknown)"


def test_recorded_build_info_wins_over_git(tmp_path: pathlib.Path) -> None:
    pkg = _copy_source(tmp_path)
    _git_repo(pkg.parent.parent)
    (pkg / "_build_info.py").write_text(versioninfo.build_info_text("0123abcd", True))
    first = _run("version", pythonpath=str(pkg.parent)).stdout.splitlines()[0]
    assert first == f"ecs-init version {__version__} (*0123abcd)"


def test_write_build_info_records_git_and_keeps_a_recorded_one_without_it(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "f").write_text("x\n")
    _git_repo(repo)
    out = tmp_path / "pkg"
    out.mkdir()
    written = versioninfo.write_build_info(str(out), str(repo))
    assert written is not None and re.fullmatch(r"[0-9a-f]{8}", written)
    text = (out / "_build_info.py").read_text()
    assert f"GIT_SHORT_HASH = {written!r}" in text and "GIT_DIRTY = False" in text
    bare = tmp_path / "bare"
    bare.mkdir()
    assert versioninfo.write_build_info(str(out), str(bare)) is None
    assert (out / "_build_info.py").read_text() == text  # a staged tree keeps what stage-source.sh recorded
    script = [sys.executable, os.path.join(SRC, "ecs_init", "versioninfo.py"), "write-build-info", str(out), str(repo)]
    assert "recorded revision" in subprocess.run(script, capture_output=True, text=True, check=True).stdout


def test_version_is_fast_and_loads_nothing_heavy() -> None:
    """No HTTP, Docker, config or logging machinery: `version` only formats two lines."""
    code = (
        "import sys, time; t = time.monotonic(); from ecs_init import cli; cli.main(['version']); "
        "print(time.monotonic() - t); print(sorted(m for m in sys.modules if m.startswith('ecs_init'))); "
        "print([m for m in ('docker', 'requests', 'urllib.request', 'http.client', 'ssl', 'json') if m in sys.modules])"
    )
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True, check=True
    )
    wall = time.monotonic() - started
    lines = proc.stdout.splitlines()
    assert eval(lines[-2]) == ["ecs_init", "ecs_init.cli", "ecs_init.versioninfo"]
    assert eval(lines[-1]) == []
    print(f"version: {float(lines[-3]) * 1000:.1f} ms in-process, {wall * 1000:.0f} ms with interpreter start")
    assert float(lines[-3]) < 1.0


@pytest.mark.parametrize("value", ["", None, 42])
def test_a_malformed_build_info_falls_back(tmp_path: pathlib.Path, value: object) -> None:
    pkg = _copy_source(tmp_path)
    (pkg / "_build_info.py").write_text(f"GIT_SHORT_HASH = {value!r}\n")
    first = _run("version", pythonpath=str(pkg.parent), cwd=str(tmp_path)).stdout.splitlines()[0]
    assert first == f"ecs-init version {__version__} (unknown)"
