"""``ecs_init.core.record`` behaves as ``dataclasses`` for what the start path uses: every check runs
against both, and the outcomes must be the same."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any, Callable, Optional

import pytest

from ecs_init.core import record

Make = Callable[..., Any]


def build(module: Any) -> dict[str, type]:
    """The same classes, made by ``module``'s ``dataclass`` and ``field``."""
    dataclass, field = module.dataclass, module.field

    @dataclass(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: frozenset[str] = frozenset()

    @dataclass
    class Bag:
        name: str
        items: list[str] = field(default_factory=list)
        extra: dict[str, int] = field(default_factory=dict)
        note: Optional[str] = None

    @dataclass
    class Plain:
        a: int = field()
        b: str = field(default="b")

        def total(self) -> int:
            return self.a + len(self.b)

    @dataclass(frozen=True)
    class Custom:
        a: int

        def __repr__(self) -> str:
            return "custom"

        def __hash__(self) -> int:
            return 7

    @dataclass
    class Keyed:
        a: int

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 3

    return {"Point": Point, "Bag": Bag, "Plain": Plain, "Custom": Custom, "Keyed": Keyed}


STD, OURS = build(dataclasses), build(record)


def outcome(action: Callable[[dict[str, type]], Any], classes: dict[str, type]) -> tuple[str, Any]:
    """What ``action`` gives (a value, or the type of the exception it raised)."""
    try:
        return "value", action(classes)
    except Exception as err:  # noqa: BLE001 - compared, not handled
        kind = "FrozenInstanceError" if type(err).__name__ == "FrozenInstanceError" else type(err).__name__
        return "raised", (kind, isinstance(err, AttributeError))


CASES: dict[str, Callable[[dict[str, type]], Any]] = {
    "positional": lambda c: repr(c["Point"](1, 2)),
    "keyword": lambda c: repr(c["Point"](y=5, x=4)),
    "defaults": lambda c: repr(c["Point"](3)),
    "factory values": lambda c: repr(c["Bag"]("n")),
    "a fresh factory value each": lambda c: c["Bag"]("a").items is not c["Bag"]("b").items,
    "factory not a class attribute": lambda c: hasattr(c["Bag"], "items"),
    "plain default is a class attribute": lambda c: (c["Point"].y, c["Plain"].b),
    "methods kept": lambda c: c["Plain"](2).total(),
    "field() alone is required": lambda c: c["Plain"](),
    "field() alone is no class attribute": lambda c: hasattr(c["Plain"], "a"),
    "equal by value": lambda c: c["Point"](1, 2) == c["Point"](1, 2),
    "unequal by value": lambda c: c["Point"](1, 2) != c["Point"](1, 3),
    "another class is not equal": lambda c: c["Point"](1) == (1, 0, frozenset()),
    "frozen hash": lambda c: hash(c["Point"](1, 2)) == hash(c["Point"](1, 2)),
    "frozen assignment": lambda c: setattr(c["Point"](1), "x", 2),
    "frozen new attribute": lambda c: setattr(c["Point"](1), "z", 2),
    "frozen delete": lambda c: delattr(c["Point"](1), "x"),
    "mutable assignment": lambda c: (lambda b: (setattr(b, "name", "m"), b.name)[1])(c["Bag"]("n")),
    "mutable is unhashable": lambda c: hash(c["Bag"]("n")),
    "too many positional": lambda c: c["Point"](1, 2, frozenset(), 4),
    "unknown keyword": lambda c: c["Point"](1, z=2),
    "twice": lambda c: c["Point"](1, x=2),
    "missing": lambda c: c["Point"](),
    "own repr and hash kept": lambda c: (repr(c["Custom"](1)), hash(c["Custom"](1))),
    "own eq and hash kept": lambda c: (c["Keyed"](1) == c["Keyed"](2), hash(c["Keyed"](1))),
    "nested repr": lambda c: repr(c["Bag"]("n", [repr(c["Point"](1))], {"k": 1}, "note")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_as_dataclasses(case: str) -> None:
    assert outcome(CASES[case], OURS) == outcome(CASES[case], STD)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    for module in (dataclasses, record):
        with pytest.raises(TypeError):

            @module.dataclass  # type: ignore[misc]
            class Wrong:
                a: int = 0
                b: int  # type: ignore[misc]


def test_the_start_path_classes_load_no_dataclasses() -> None:
    code = (
        "import sys\n"
        "import ecs_init.agent.supervisor, ecs_init.agent.spec, ecs_init.agent.config_problems\n"
        "import ecs_init.agent.cache, ecs_init.agent.health, ecs_init.agent.healer, ecs_init.agent.policy\n"
        "import ecs_init.host.nvml, ecs_init.host.apparmor, ecs_init.core.platform\n"
        "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
