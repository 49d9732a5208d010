"""The program's version line and the git revision it was built from (SPEC §1).

``amazon-ecs-init version`` prints, first, exactly what the Go program
prints: ``ecs-init version <version> (<git short hash>)``, with ``*`` before
the hash when the tree it was built from had uncommitted changes.

The revision is recorded at build time in ``ecs_init/_build_info.py`` (not in
git): by ``packaging/build-zipapp.py`` (the zipapp of the RPM and the .deb,
whose staged source gets it from ``packaging/stage-source.sh``) and by
``setup.py`` (wheels and sdists, so pip installs have it). A source checkout
has no such file: it asks git once, when git and a ``.git`` are there, and
says ``unknown`` otherwise. Standard library only and nothing heavy: the
``version`` action must stay fast.

Build tools run this module as a script to write the file:

    python3 src/ecs_init/versioninfo.py write-build-info PKGDIR [REPO]
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional, Tuple

BUILD_INFO_MODULE = "_build_info"
UNKNOWN = "unknown"
# Go's build scripts use `git rev-parse --short=8 HEAD`.
HASH_LENGTH = 8
GIT_TIMEOUT = 5.0
# How far above the package directory a source checkout's .git may be (src/ecs_init -> repo).
MAX_REPO_DEPTH = 4


def _git(repo: str, *args: str) -> Optional[str]:
    import subprocess  # only a source checkout runs git: the packaged program records its revision at build time

    env = dict(os.environ, LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
    try:
        proc = subprocess.run(
            ["git", "-C", repo, *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout


def find_repo(directory: str) -> Optional[str]:
    """The nearest directory at or above ``directory`` holding ``.git`` (a dir or a worktree's file)."""
    current = os.path.abspath(directory)
    for _ in range(MAX_REPO_DEPTH + 1):
        if os.path.lexists(os.path.join(current, ".git")):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return None


def git_revision(directory: str) -> Optional[Tuple[str, bool]]:
    """(short hash, dirty) of the git work tree holding ``directory``; None without git or a repository."""
    repo = find_repo(directory)
    if repo is None:
        return None
    head = _git(repo, "rev-parse", f"--short={HASH_LENGTH}", "HEAD")
    if not head or not head.strip():
        return None
    status = _git(repo, "status", "--porcelain")
    if status is None:
        return None
    return head.strip(), bool(status.strip())


def build_info_text(short_hash: str, dirty: bool) -> str:
    return (
        "# Generated at build time by ecs_init/versioninfo.py (write-build-info); not in git.\n"
        f"GIT_SHORT_HASH = {short_hash!r}\n"
        f"GIT_DIRTY = {dirty!r}\n"
    )


def write_build_info(package_dir: str, repo: str) -> Optional[str]:
    """Record ``repo``'s revision in ``package_dir/_build_info.py``; return the revision written.

    Without git (or outside a repository) an existing file is kept (a staged
    source tree or an sdist already carries one) and None is returned.
    """
    revision = git_revision(repo)
    if revision is None:
        return None
    target = os.path.join(package_dir, BUILD_INFO_MODULE + ".py")
    tmp = target + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(build_info_text(*revision))
    os.replace(tmp, target)
    return format_revision(*revision)


def format_revision(short_hash: str, dirty: bool) -> str:
    return ("*" if dirty else "") + short_hash


def _recorded() -> Optional[Tuple[str, bool]]:
    try:
        info = importlib.import_module(f"ecs_init.{BUILD_INFO_MODULE}")
    except ImportError:
        return None
    short_hash = getattr(info, "GIT_SHORT_HASH", None)
    if not isinstance(short_hash, str) or not short_hash:
        return None
    return short_hash, bool(getattr(info, "GIT_DIRTY", False))


def revision() -> str:
    """``abcdef12``, ``*abcdef12`` (dirty build) or ``unknown``."""
    recorded = _recorded()
    if recorded is not None:
        return format_revision(*recorded)
    package_dir = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(package_dir):  # not inside an archive
        found = git_revision(package_dir)
        if found is not None:
            return format_revision(*found)
    return UNKNOWN


def version_line(version: Optional[str] = None) -> str:
    """The first line of ``version``, exactly the Go program's form."""
    if version is None:
        from ecs_init import __version__ as version
    return f"ecs-init version {version} ({revision()})"


def _main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "write-build-info":
        package_dir = argv[1]
        repo = argv[2] if len(argv) == 3 else package_dir
        written = write_build_info(package_dir, repo)
        if written is None:
            kept = os.path.exists(os.path.join(package_dir, BUILD_INFO_MODULE + ".py"))
            print(f"versioninfo: no git revision for {repo}; " + ("kept the recorded one" if kept else "none recorded"))
        else:
            print(f"versioninfo: recorded revision {written} in {package_dir}/{BUILD_INFO_MODULE}.py")
        return 0
    print("usage: versioninfo.py write-build-info PKGDIR [REPO]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
