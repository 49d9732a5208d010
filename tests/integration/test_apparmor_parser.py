"""The AppArmor profile pre-start writes compiles with the real ``apparmor_parser`` (SPEC §8).

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

from ecs_init.core.cmd import Runner
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.host import apparmor, apparmor_profile
from ecs_init.host.context import HostContext

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
    path = write(tmp_path, apparmor_profile.render(True, True))
    proc = parse(path)
    assert proc.returncode == 0, proc.stderr
    # the includes were really read: the preprocessed text carries their content
    assert PARSER is not None
    pre = subprocess.run([PARSER, "-p", path], capture_output=True, text=True, timeout=60)
    assert pre.returncode == 0, pre.stderr
    assert "@{PROC}" in pre.stdout  # defined by tunables/global (via tunables/proc)
    assert len(pre.stdout) > 10 * len(apparmor_profile.render(True, True))


@pytest.mark.parametrize("abstractions", [False, True])
def test_profile_without_tunables_parses(tmp_path, abstractions: bool) -> None:  # type: ignore[no-untyped-def]
    """Without tunables/global the profile defines @{PROC} itself (Go reference: the same fallback)."""
    base = tmp_path / "include-dir"
    base.mkdir()
    if abstractions:
        (base / "abstractions").mkdir()
        (base / "abstractions" / "base").write_text("# empty base\n")
    # -b points the include base at our dir: nothing outside it is read
    path = write(tmp_path, apparmor_profile.render(False, abstractions))
    proc = parse(path, "-b", str(base))
    assert proc.returncode == 0, proc.stderr
    assert PARSER is not None
    names = subprocess.run([PARSER, "-N", "-b", str(base), path], capture_output=True, text=True, timeout=60)
    assert names.stdout.split() == ["ecs-agent-default"]


def test_parser_check_is_real(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Negative controls: a broken rule and a missing include both fail."""
    good = apparmor_profile.render(False, False)
    broken = write(tmp_path, good.replace("network inet,", "network inetz,"), "broken")
    proc = parse(broken)
    assert proc.returncode != 0
    assert "Invalid network entry" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    needs_include = write(tmp_path, apparmor_profile.render(True, False), "needs")
    proc = parse(needs_include, "-b", str(empty))
    assert proc.returncode != 0
    assert "tunables/global" in proc.stderr
    no_proc = write(tmp_path, good.replace("@{PROC}=/proc/", ""), "no-proc")
    proc = parse(no_proc, "-b", str(empty))
    assert proc.returncode != 0  # @{PROC} is used by the rules: the definition is needed


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


def _fake_support(prefix: str) -> None:
    """The files the support check reads, under the prefix (the test host may lack AppArmor)."""
    flag_dir = os.path.join(prefix, "sys", "module", "apparmor", "parameters")
    os.makedirs(flag_dir)
    with open(os.path.join(flag_dir, "enabled"), "w") as fh:
        fh.write("Y\n")
    os.makedirs(os.path.join(prefix, "sys", "kernel", "security", "apparmor"))
    os.makedirs(os.path.join(prefix, "sbin"))
    with open(os.path.join(prefix, "sbin", "apparmor_parser"), "w") as fh:
        fh.write("")


@pytest.mark.skipif(not HAVE_INCLUDES, reason="the apparmor package's include files are missing")
@pytest.mark.parametrize("chosen", ["", "docker-default", "operator-profile"])
def test_setup_end_to_end_under_prefix(prefix: str, chosen: str) -> None:
    """apparmor.setup with the real parser: the prefix holds a copy of the
    real tunables/abstractions, the profile includes them, and the parser
    (told to search the prefixed dir first) compiles it. Whatever
    ECS_AGENT_APPARMOR_PROFILE says, only ecs-agent-default is written and
    loaded; docker-default and an operator's profile stay byte for byte."""
    aa_dir = os.path.join(prefix, "etc", "apparmor.d")
    os.makedirs(aa_dir)
    for sub in ("tunables", "abstractions", "abi"):
        if os.path.isdir(os.path.join(REAL_DIR, sub)):
            shutil.copytree(os.path.join(REAL_DIR, sub), os.path.join(aa_dir, sub), symlinks=True)
    theirs = {
        "docker-default": b"# docker's profile, not ours\nprofile docker-default flags=(attach_disconnected) {\n}\n",
        "operator-profile": b"# an operator's work\nprofile operator-profile {\n  file,\n}\n",
    }
    for name, data in theirs.items():
        with open(os.path.join(aa_dir, name), "wb") as fh:
            fh.write(data)
    before = {name: os.stat(os.path.join(aa_dir, name)) for name in theirs}
    _fake_support(prefix)
    runner = CompileOnlyRunner()
    cfg = Config(paths=Paths(prefix=prefix), environ={"ECS_AGENT_APPARMOR_PROFILE": chosen})
    apparmor.setup(HostContext(cfg=cfg, runner=runner))
    profile = os.path.join(aa_dir, "ecs-agent-default")
    assert runner.argvs == [["apparmor_parser", "-Kr", "-I", aa_dir, profile]]
    with open(profile) as fh:
        text = fh.read()
    assert "#include <tunables/global>" in text
    assert "#include <abstractions/base>" in text
    # the written file parses on its own with the real include files (parse only: -Q)
    proc = parse(profile)
    assert proc.returncode == 0, proc.stderr
    for name, data in theirs.items():
        path = os.path.join(aa_dir, name)
        with open(path, "rb") as fh:
            assert fh.read() == data, name
        st = os.stat(path)
        assert (st.st_ino, st.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns), name
