"""The generated AppArmor profile compiles with the real ``apparmor_parser``.

``-Q`` (skip kernel load) compiles the policy without touching the kernel,
``-K`` skips the cache; nothing is loaded, so this runs on hosts without
AppArmor enabled. Needs Debian's ``apparmor`` package (apt-get install -y
apparmor), which also provides /etc/apparmor.d/{tunables/global,abstractions/base}.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Sequence

import pytest

from ecs_init import apparmor, apparmor_profile
from ecs_init.cmd import Runner
from ecs_init.config import Config, Paths
from ecs_init.context import HostContext

PARSER = shutil.which("apparmor_parser")
REAL_DIR = "/etc/apparmor.d"
HAVE_INCLUDES = os.path.isfile(os.path.join(REAL_DIR, "tunables", "global")) and os.path.isfile(
    os.path.join(REAL_DIR, "abstractions", "base")
)

pytestmark = pytest.mark.skipif(PARSER is None, reason="apparmor_parser missing: apt-get install -y apparmor")


def parse(path: str, *extra: str) -> subprocess.CompletedProcess[str]:
    assert PARSER is not None
    return subprocess.run([PARSER, "-QK", *extra, path], capture_output=True, text=True, timeout=60)


def write(tmp_path, text: str, name: str = "profile") -> str:  # type: ignore[no-untyped-def]
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


@pytest.mark.skipif(not HAVE_INCLUDES, reason="the apparmor package's include files are missing")
def test_profile_with_includes_parses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, apparmor_profile.render("ecs-agent-default", True, True))
    proc = parse(path)
    assert proc.returncode == 0, proc.stderr
    # the includes were really read: the preprocessed text carries their content
    assert PARSER is not None
    pre = subprocess.run([PARSER, "-p", path], capture_output=True, text=True, timeout=60)
    assert pre.returncode == 0, pre.stderr
    assert "@{PROC}" in pre.stdout  # defined by tunables/global (via tunables/proc)
    assert len(pre.stdout) > 10 * len(apparmor_profile.render("ecs-agent-default", True, True))


@pytest.mark.parametrize("name", ["ecs-agent-default", "my.agent_profile+2"])
def test_profile_without_includes_parses(tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty-include-dir"
    empty.mkdir()
    # -b points the include base at an empty dir: nothing outside the file is read
    path = write(tmp_path, apparmor_profile.render(name, False, False))
    proc = parse(path, "-b", str(empty))
    assert proc.returncode == 0, proc.stderr


def test_parser_check_is_real(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Negative controls: a broken rule and a missing include both fail."""
    good = apparmor_profile.render("ecs-agent-default", False, False)
    broken = write(tmp_path, good.replace("network inet,", "network inetz,"), "broken")
    proc = parse(broken)
    assert proc.returncode != 0
    assert "Invalid network entry" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    needs_include = write(tmp_path, apparmor_profile.render("ecs-agent-default", True, False), "needs")
    proc = parse(needs_include, "-b", str(empty))
    assert proc.returncode != 0
    assert "tunables/global" in proc.stderr


class CompileOnlyRunner(Runner):
    """The real runner, with ``-Q`` added so the parser compiles but never loads."""

    def __init__(self) -> None:
        super().__init__()
        self.argvs: list[list[str]] = []

    def run(self, argv: Sequence[str], **kwargs):  # type: ignore[no-untyped-def,override]
        argv = list(argv)
        self.argvs.append(argv)
        assert argv[:2] == ["apparmor_parser", "-Kr"]
        return super().run([argv[0], "-Q", *argv[1:]], **kwargs)


@pytest.mark.skipif(not HAVE_INCLUDES, reason="the apparmor package's include files are missing")
def test_setup_end_to_end_under_prefix(prefix: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """apparmor.setup with the real parser: the prefix holds a copy of the
    real tunables/abstractions, the profile includes them, and the parser
    (told to search the prefixed dir first) compiles it."""
    aa_dir = os.path.join(prefix, "etc", "apparmor.d")
    os.makedirs(aa_dir)
    for sub in ("tunables", "abstractions", "abi"):
        if os.path.isdir(os.path.join(REAL_DIR, sub)):
            shutil.copytree(os.path.join(REAL_DIR, sub), os.path.join(aa_dir, sub), symlinks=True)
    sysfs = tmp_path / "sys" / "module" / "apparmor" / "parameters"
    sysfs.mkdir(parents=True)
    (sysfs / "enabled").write_text("Y\n")
    runner = CompileOnlyRunner()
    cfg = Config(paths=Paths(prefix=prefix), environ={})
    apparmor.setup(HostContext(cfg=cfg, runner=runner), sysfs_root=str(tmp_path / "sys"))
    profile = os.path.join(aa_dir, "ecs-agent-default")
    assert runner.argvs == [["apparmor_parser", "-Kr", "-I", aa_dir, profile]]
    with open(profile) as fh:
        text = fh.read()
    assert "#include <tunables/global>" in text
    assert "#include <abstractions/base>" in text
