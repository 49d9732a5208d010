"""The tree shows the design: packages by role, each importing only the floors below it; no module over 400 lines.

Floors, from the ground: ``core`` < ``docker`` < ``host`` < ``agent`` < ``ops``;
``actions.py`` and ``cli.py`` stand on top; ``volume_plugin`` is its own
program on ``core`` alone. Every import counts, lazy and type-only ones too.
"""

from __future__ import annotations

import ast
import os

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
FLOORS = {"core": 0, "docker": 1, "host": 2, "agent": 3, "ops": 4}
PACKAGE_ROOT_NAMES = {"__version__", "AGENT_VERSION", "versioninfo"}  # ecs_init/__init__.py, ecs_init/versioninfo.py
MAX_LINES = 400


def _modules() -> list[tuple[str, str]]:
    out = []
    for dirpath, _dirs, files in os.walk(os.path.join(SRC, "ecs_init")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                out.append((os.path.relpath(path, SRC)[:-3].replace(os.sep, "."), path))
    return sorted(out)


def _imports(path: str) -> list[str]:
    """Every ``ecs_init`` name the file imports, as ``ecs_init.<package>.<...>``."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ecs_init":
            found += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "ecs_init"]
    return found


def _package(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 else ""


def test_each_package_imports_only_the_floors_below() -> None:
    wrong = []
    for module, path in _modules():
        here = _package(module)
        for target in _imports(path):
            there = target.split(".")[1]
            if there in PACKAGE_ROOT_NAMES or there == here:
                continue
            if here == "volume_plugin":
                ok = there == "core"
            elif here in FLOORS:
                ok = there in FLOORS and FLOORS[there] < FLOORS[here]
            else:  # actions, cli, __main__: the top
                ok = True
            if not ok:
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_no_module_is_over_400_lines() -> None:
    long = []
    for module, path in _modules():
        with open(path, encoding="utf-8") as fh:
            lines = sum(1 for _ in fh)
        if lines > MAX_LINES:
            long.append(f"{module}: {lines}")
    assert long == []


@pytest.mark.parametrize("package", [*FLOORS, "volume_plugin"])
def test_each_package_says_what_lives_there_and_what_it_may_import(package: str) -> None:
    with open(os.path.join(SRC, "ecs_init", package, "__init__.py"), encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    doc = ast.get_docstring(tree) or ""
    assert "May import" in doc
    assert all(isinstance(node, ast.Expr) for node in tree.body) or package == "volume_plugin"
