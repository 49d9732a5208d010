"""Mutation score of the pure modules (a benchmark, not a pass/fail test).

Runs mutmut 3.x module group by module group, each with only the unit test
files that exercise it (hypothesis derandomized: ``--hypothesis-profile=mutation``
in ``tests/conftest.py``), and prints per group how many mutants the tests
killed, how many survived, how many no selected test reaches, and the score.

    scripts/mutation                 # every group
    scripts/mutation redaction cache-decision   # some groups (names from --list)
    scripts/mutation --survivors     # also print each surviving mutant's diff

GROUPS below is the one place that says which modules, functions and test
files are measured: moving a module is a one-line change there.

Counting rule: ``score = killed / (killed + survived + untested)``, where a
timeout or a crash of the mutated code counts as killed. A mutant that only
changes the arguments of a logging call (``log.info("...", x)``: the message
text or its values) is *log-only*: shown in its own column and left out of
the score. That rule is applied to the mutated code (see ``log_only``), not
by pragmas in the source, so it cannot hide anything else.

Each group runs in its own scratch copy under ``build/mutation/<group>/``
(mutmut writes its ``mutants/`` tree there); a summary is written to
``build/mutation/summary.json``.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "build", "mutation")
UNIT = "tests/unit/"


@dataclass(frozen=True)
class Group:
    """One measured unit: source files with the functions counted, and its unit tests.

    ``functions`` maps a file under ``src/`` to the functions whose mutants
    count: ``name`` for a module function, ``Class.method`` for a method,
    globs allowed (``Class.*``, ``*`` for the whole file).
    """

    name: str
    functions: dict[str, tuple[str, ...]]
    tests: tuple[str, ...]


ALL = ("*",)

# The module list: one row per group (issue 21).
GROUPS: tuple[Group, ...] = (
    Group(
        "container spec",
        {"src/ecs_init/agent/spec.py": ALL},
        ("test_agent_spec.py", "test_property_agent_spec.py", "test_booleans.py", "test_platform.py"),
    ),
    Group("rule planner", {"src/ecs_init/host/netrules.py": ALL}, ("test_netrules.py",)),
    Group(
        "redaction",
        {"src/ecs_init/core/redact.py": ALL},
        ("test_redact_rule.py", "test_property_redact.py", "test_logging.py", "test_collect_logic.py"),
    ),
    Group(
        "cache decision",
        {
            "src/ecs_init/agent/cache.py": (
                "parse_number", "parse_state", "state_name", "read_state",
                "decide", "unknown_state_message", "write_state",
            ),
        },
        ("test_cache_logic.py", "test_property_cache.py"),
    ),
    Group(
        "supervision policy",
        {
            "src/ecs_init/agent/policy.py": ALL,
            "src/ecs_init/agent/supervisor.py": ("Supervisor.run", "Supervisor._start_failed"),
            "src/ecs_init/agent/upgrade.py": ALL,
            "src/ecs_init/core/backoff.py": ALL,
            "src/ecs_init/agent/events.py": ("rolled_back_images",),
        },
        (
            "test_supervisor_logic.py",
            "test_property_backoff.py",
            "test_rollback_logic.py",
            "test_supervision_loop.py",
            "test_supervision_engine.py",
        ),
    ),
    Group(
        "settings parsing",
        {
            "src/ecs_init/core/config.py": ALL,
            "src/ecs_init/core/settings.py": (
                "parse_bool", "read_flag", "read_number", "validate", "rules_disagree", "_num",
            ),
            "src/ecs_init/core/envfile.py": ALL,
            "src/ecs_init/core/platform.py": ALL,
            "src/ecs_init/core/paths.py": ALL,
        },
        (
            "test_config.py",
            "test_property_config.py",
            "test_booleans.py",
            "test_platform.py",
            "test_settings_table.py",
            "test_check_config.py",
        ),
    ),
    Group(
        "volume options",
        {"src/ecs_init/volume_plugin/drivers.py": ALL},
        ("test_volume_plugin_drivers.py", "test_volume_plugin_state.py", "test_volume_plugin_host.py"),
    ),
    Group(
        "volume state",
        {"src/ecs_init/volume_plugin/state.py": ALL, "src/ecs_init/volume_plugin/registry.py": ALL},
        ("test_volume_plugin_state.py",),
    ),
)  # fmt: skip

KILLED = {"killed", "timeout", "segfault"}
SURVIVED = {"survived", "suspicious"}
UNTESTED = {"no tests"}
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical"}
LOGGER_NAMES = {"log", "logger", "logging"}
_CLASS_SEP = "\u01c1"  # mutmut's separator in mangled method names
_MUTANT_RE = re.compile(r"^\s+(\S+__mutmut_\d+): (.+)$")


def module_name(path: str) -> str:
    return path[len("src/") : -len(".py")].replace("/", ".")


def mutant_glob(path: str, function: str) -> str:
    """A glob over mutmut's mutant names for ``function`` of ``path``."""
    if "." in function:
        cls, method = function.split(".", 1)
        mangled = f"x{_CLASS_SEP}{cls}{_CLASS_SEP}{method}"
    elif function == "*":
        mangled = "x*"
    else:
        mangled = f"x_{function}"
    return f"{module_name(path)}.{mangled}__mutmut_*"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ---------------------------------------------------------------- log-only rule


def _is_log_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in LOG_METHODS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in LOGGER_NAMES
    )


def _differences(a: ast.AST, b: ast.AST, trail: list[ast.AST], out: list[list[ast.AST]]) -> None:
    """Append the ancestor trail (ending at the differing node of ``a``) of every difference."""
    here = [*trail, a]
    if type(a) is not type(b):
        out.append(here)
        return
    for name, value_a in ast.iter_fields(a):
        value_b = getattr(b, name, None)
        if isinstance(value_a, list) and isinstance(value_b, list):
            if len(value_a) != len(value_b):
                out.append(here)
                continue
            for item_a, item_b in zip(value_a, value_b):
                if isinstance(item_a, ast.AST) and isinstance(item_b, ast.AST):
                    _differences(item_a, item_b, here, out)
                elif item_a != item_b:
                    out.append(here)
        elif isinstance(value_a, ast.AST) and isinstance(value_b, ast.AST):
            _differences(value_a, value_b, here, out)
        elif value_a != value_b:
            out.append(here)


def _only_in_log_arguments(trail: list[ast.AST]) -> bool:
    for i, node in enumerate(trail):
        if not _is_log_call(node):
            continue
        assert isinstance(node, ast.Call)
        inner = trail[i + 1] if i + 1 < len(trail) else None
        if inner is None:  # the call itself differs: its argument lists changed length
            return True
        if inner is not node.func:
            return True
    return False


def log_only(original: ast.FunctionDef, mutant: ast.FunctionDef) -> bool:
    """Whether every change of ``mutant`` lies in the arguments of a logging call."""
    diffs: list[list[ast.AST]] = []
    _differences(original.args, mutant.args, [], diffs)
    for stmt_a, stmt_b in zip(original.body, mutant.body):
        _differences(stmt_a, stmt_b, [], diffs)
    if len(original.body) != len(mutant.body):
        return False
    return bool(diffs) and all(_only_in_log_arguments(trail) for trail in diffs)


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def log_only_mutants(workdir: str, paths: Iterable[str], names: Iterable[str]) -> set[str]:
    """The mutants among ``names`` that the log-only rule leaves out."""
    defs: dict[str, ast.FunctionDef] = {}
    for path in paths:
        with open(os.path.join(workdir, "mutants", path), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        prefix = module_name(path) + "."
        defs.update({prefix + k: v for k, v in _functions(tree).items()})
    out = set()
    for name in names:
        base = name.rpartition("__mutmut_")[0]
        original, mutant = defs.get(base + "__mutmut_orig"), defs.get(name)
        if original is not None and mutant is not None and log_only(original, mutant):
            out.add(name)
    return out


# ---------------------------------------------------------------- running


@dataclass
class Result:
    group: str
    killed: list[str] = field(default_factory=list)
    survived: list[str] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)
    log_only: list[str] = field(default_factory=list)
    other: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: Optional[str] = None

    @property
    def score(self) -> float:
        counted = len(self.killed) + len(self.survived) + len(self.untested)
        return 100.0 * len(self.killed) / counted if counted else 0.0


def mutmut_config(group: Group) -> str:
    def toml_list(items: Iterable[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return "\n".join(
        [
            "",
            "[tool.mutmut]",
            'source_paths = ["src"]',
            f"only_mutate = {toml_list(group.functions)}",
            'also_copy = ["standin", "README.md"]',
            f"pytest_add_cli_args_test_selection = {toml_list(UNIT + t for t in group.tests)}",
            'pytest_add_cli_args = ["-p", "no:cacheprovider", "--hypothesis-profile=mutation"]',
            "",
        ]
    )


def prepare(group: Group, workdir: str) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "out")
    for folder in ("src", "tests", "standin"):
        shutil.copytree(os.path.join(REPO, folder), os.path.join(workdir, folder), ignore=ignore)
    shutil.copy2(os.path.join(REPO, "README.md"), workdir)  # a test holds its settings table to the code
    with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as fh:
        project = fh.read()
    if "[tool.mutmut]" in project:
        raise SystemExit("pyproject.toml has a [tool.mutmut] section: this script writes its own per group")
    with open(os.path.join(workdir, "pyproject.toml"), "w", encoding="utf-8") as fh:
        fh.write(project + mutmut_config(group))


def run_group(group: Group, jobs: int) -> Result:
    workdir = os.path.join(BUILD, slug(group.name))
    prepare(group, workdir)
    globs = [mutant_glob(path, fn) for path, fns in group.functions.items() for fn in fns]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    result = Result(group.name)
    started = time.monotonic()
    with open(os.path.join(workdir, "mutmut.log"), "w") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *globs],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    result.seconds = time.monotonic() - started
    if proc.returncode != 0:
        result.error = f"mutmut exited {proc.returncode}: see {os.path.relpath(workdir, REPO)}/mutmut.log"
        return result
    listing = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses: dict[str, str] = {}
    for line in listing.splitlines():
        match = _MUTANT_RE.match(line)
        if match and any(fnmatch.fnmatchcase(match.group(1), g) for g in globs):
            statuses[match.group(1)] = match.group(2)
    excluded = log_only_mutants(workdir, group.functions, statuses)
    for name, status in sorted(statuses.items()):
        if name in excluded:
            result.log_only.append(name)
        elif status in KILLED:
            result.killed.append(name)
        elif status in SURVIVED:
            result.survived.append(name)
        elif status in UNTESTED:
            result.untested.append(name)
        else:
            result.other[name] = status
    return result


def show(workdir: str, name: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name], cwd=workdir, capture_output=True, text=True
    ).stdout


COLUMNS = ("group", "mutants", "killed", "survived", "untested", "log-only", "score", "time")


def row(cells: Iterable[object]) -> str:
    first, *rest = (str(c) for c in cells)
    return f"{first:<20}" + "".join(f" {c:>8}" for c in rest)


def table(results: list[Result]) -> str:
    """The per-group table with a total row."""
    lines = [row(COLUMNS)]
    rule = "-" * len(lines[0])
    lines.append(rule)
    totals = Result("total")
    for r in [*results, None]:
        if r is None:
            lines.append(rule)
            r = totals
        elif r.error:
            lines.append(f"{r.group:<20} {r.error}")
            continue
        else:
            for attr in ("killed", "survived", "untested", "log_only"):
                getattr(totals, attr).extend(getattr(r, attr))
            totals.other.update(r.other)
            totals.seconds += r.seconds
        n = len(r.killed) + len(r.survived) + len(r.untested) + len(r.log_only) + len(r.other)
        counts = (len(r.killed), len(r.survived), len(r.untested), len(r.log_only))
        lines.append(row((r.group, n, *counts, f"{r.score:.1f}%", f"{r.seconds:.0f}s")))
    if totals.other:
        lines.append(f"not counted (other mutmut states): {len(totals.other)}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="*", help="group names (default: all); see --list")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the groups and exit")
    parser.add_argument("--survivors", action="store_true", help="print the diff of every survivor and untested mutant")
    args = parser.parse_args(argv)
    os.chdir(REPO)
    by_slug = {slug(g.name): g for g in GROUPS}
    if args.list:
        for g in GROUPS:
            files = ", ".join(f"{p} ({' '.join(fns)})" for p, fns in g.functions.items())
            print(f"{slug(g.name):<20} {files}\n{'':<20} tests: {' '.join(g.tests)}")
        return 0
    unknown = [name for name in args.groups if slug(name) not in by_slug]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(by_slug)}")
    chosen = [by_slug[slug(name)] for name in args.groups] or list(GROUPS)
    missing = [p for g in chosen for p in (*g.functions, *(UNIT + t for t in g.tests)) if not os.path.isfile(p)]
    if missing:  # a module or test file moved: GROUPS must follow
        parser.error(f"GROUPS names files that do not exist: {', '.join(missing)}")
    if importlib.util.find_spec("mutmut") is None:
        raise SystemExit("mutmut is not installed in this interpreter: pip install -e '.[test]'")
    started = time.monotonic()
    results = []
    for group in chosen:
        print(f"== {group.name}", flush=True)
        result = run_group(group, args.jobs)
        results.append(result)
        if result.error:
            print(f"   {result.error}", flush=True)
            continue
        print(
            f"   {len(result.killed)} killed, {len(result.survived)} survived, {len(result.untested)} untested,"
            f" {len(result.log_only)} log-only: {result.score:.1f}% in {result.seconds:.0f}s",
            flush=True,
        )
        if args.survivors:
            workdir = os.path.join(BUILD, slug(group.name))
            for kind, names in (("survived", result.survived), ("untested", result.untested)):
                for name in names:
                    print(f"--- {kind}: {name}\n{show(workdir, name)}")
    print()
    print(table(results))
    print(f"wall time: {time.monotonic() - started:.0f}s")
    summary = {
        r.group: {
            "killed": len(r.killed),
            "survived": r.survived,
            "untested": r.untested,
            "log_only": len(r.log_only),
            "other": r.other,
            "score": round(r.score, 1),
            "seconds": round(r.seconds),
            "error": r.error,
        }
        for r in results
    }
    with open(os.path.join(BUILD, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
