from __future__ import annotations

import os

import pytest

from ecs_init.agent.cache import (
    Action,
    UnknownCacheState,
    decide,
    ensure_image,
    parse_state,
    read_state,
    state_name,
    write_state,
)
from ecs_init.core.config import Config
from ecs_init.core.exitcodes import Exit
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext


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


@pytest.mark.parametrize(
    "text,value",
    [
        ("1", 1),
        ("2\n", 2),
        (" 0 ", 0),
        ("\t1", 1),
        ("3", 3),
        ("42\n", 42),
        ("255", 255),
        ("0001", 1),
        ("00", 0),
        ("0000000255", 255),
        ("0256", 0),
        ("1000", 0),
        ("1abc", 1),
        ("2 3", 2),
        ("256", 0),
        ("99999999999999999999999", 0),
        ("x", 0),
        ("", 0),
        ("-1", 0),
        ("+1", 0),
        ("\n1", 0),
        ("１", 0),
    ],
)
def test_parse_state_like_go_fscanf_into_uint8(text: str, value: int) -> None:
    """Go reference (cache.AgentCacheStatus): fmt.Fscanf(file, "%d", &status) with a uint8 status;
    a parse error is uncached, any integer that parses is kept (known or not)."""
    assert parse_state(text) == value


@pytest.mark.parametrize("state", [3, 4, 42, 255])
def test_unknown_state_is_refused(state: int) -> None:
    """Go reference (engine.PreStart): an unhandled cache state is an error, not a download."""
    for present in (True, False):
        with pytest.raises(UnknownCacheState) as err:
            decide(state, present)
        assert err.value.exit_code == Exit.FAILURE
        assert str(state) in str(err.value) and "\n" not in str(err.value)


class _NoDocker:
    def __call__(self) -> object:
        raise AssertionError("an unknown cache state must fail before Docker is asked anything")


def test_pre_start_image_step_fails_on_unknown_state_without_downloading(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = _paths(tmp_path)
    with open(paths.cache_tarball, "wb") as fh:
        fh.write(b"x")
    with open(paths.cache_state, "w") as fh:
        fh.write("3\n")
    ctx = HostContext(cfg=Config(paths=paths, environ={}), docker_factory=_NoDocker())  # type: ignore[arg-type]
    with pytest.raises(UnknownCacheState) as err:
        ensure_image(ctx)
    assert str(err.value) == (
        f"the cache state file {paths.cache_state} holds 3, which is not a known state "
        "(0 uncached, 1 cached, 2 reload): run reload-cache, or write 2 to it to reload the cached tarball"
    )
    with open(paths.cache_state) as fh:
        assert fh.read() == "3\n"  # untouched
    assert sorted(os.listdir(paths.cache_dir)) == ["ecs-agent.tar", "state"]  # nothing downloaded


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


@pytest.mark.parametrize(
    ("content", "state"),
    [
        (b"1" + b" " * 63, 1),  # 64 bytes: the most a state file may hold
        (b"1" + b" " * 64, 0),  # 65 bytes: refused, uncached
        (b"1\n" + b"\x00" * 62, 1),
        (b"\xff1", 0),
        (b"2\xff\xfe", 2),
    ],
)
def test_state_file_size_boundary_and_bytes(tmp_path, content: bytes, state: int) -> None:  # type: ignore[no-untyped-def]
    paths = _paths(tmp_path)
    with open(paths.cache_tarball, "wb") as fh:
        fh.write(b"x")
    with open(paths.cache_state, "wb") as fh:
        fh.write(content)
    assert read_state(paths) == state


def test_write_state_writes_the_number_and_a_newline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = _paths(tmp_path)
    write_state(paths, 1)
    with open(paths.cache_state, "rb") as fh:
        assert fh.read() == b"1\n"


def test_state_names_as_status_shows_them() -> None:
    assert [state_name(s) for s in (0, 1, 2, 3, 255)] == ["uncached", "cached", "reload", "unknown", "unknown"]
