from __future__ import annotations

import os

import pytest

from ecs_init.cache import (
    Action,
    decide,
    parse_state,
    read_state,
    write_state,
)
from ecs_init.config import Paths


@pytest.mark.parametrize(
    "state,present,action",
    [
        (0, False, Action.DOWNLOAD_AND_LOAD),
        (0, True, Action.DOWNLOAD_AND_LOAD),
        (2, True, Action.LOAD),
        (2, False, Action.LOAD),
        (1, True, Action.NOTHING),
        (1, False, Action.LOAD),
    ],
)
def test_decision_table(state: int, present: bool, action: Action) -> None:
    assert decide(state, present) is action


@pytest.mark.parametrize("text,value", [("1", 1), ("2\n", 2), (" 0 ", 0), ("3", 0), ("x", 0), ("", 0), ("-1", 0)])
def test_parse_state(text: str, value: int) -> None:
    assert parse_state(text) == value


def _paths(tmp_path) -> Paths:  # type: ignore[no-untyped-def]
    os.makedirs(tmp_path / "var/cache/ecs")
    return Paths(prefix=str(tmp_path))


def test_state_needs_both_files_non_empty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = _paths(tmp_path)
    assert read_state(paths) == 0
    write_state(paths, 1)
    assert read_state(paths) == 0  # no tarball
    with open(paths.cache_tarball, "wb"):
        pass
    assert read_state(paths) == 0  # empty tarball
    with open(paths.cache_tarball, "wb") as fh:
        fh.write(b"x")
    assert read_state(paths) == 1
    with open(paths.cache_state, "w"):
        pass
    assert read_state(paths) == 0  # empty state file
    with open(paths.cache_state, "w") as fh:
        fh.write("garbage")
    assert read_state(paths) == 0


def test_write_state_is_atomic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = _paths(tmp_path)
    write_state(paths, 2)
    with open(paths.cache_state) as fh:
        assert fh.read().strip() == "2"
    assert [n for n in os.listdir(os.path.dirname(paths.cache_state)) if n.endswith(".tmp")] == []
