"""setuptools hooks: record the git revision in the built package (SPEC §1 `version`).

Everything else is in pyproject.toml. Wheels get ``ecs_init/_build_info.py``
from ``git`` of this tree (build_py); an sdist carries one too (sdist), so a
wheel built from it later, without git, keeps the revision it was cut from.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "src", "ecs_init"))
import versioninfo  # noqa: E402 - standard library only, from this tree


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not self.dry_run:
            versioninfo.write_build_info(os.path.join(self.build_lib, "ecs_init"), HERE)


class SDist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        if not self.dry_run:
            versioninfo.write_build_info(os.path.join(base_dir, "src", "ecs_init"), HERE)


setup(cmdclass={"build_py": BuildPy, "sdist": SDist})
