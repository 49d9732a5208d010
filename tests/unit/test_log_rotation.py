"""ecs-init.log rotates at each UTC clock hour, as the Go program's log does (``ecs-init.log.YYYY-MM-DD-HH``,
24 kept), and stays whole when several processes write it: the supervisor beside pre-start, stop and
post-stop."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from ecs_init.core import logsetup

HOUR = 3600


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    yield
    logsetup.setup(None, "info", console=False)


def write_file(path: Path, text: str, epoch: float) -> None:
    path.write_text(text)
    os.utime(path, (epoch, epoch))


def record(msg: str, epoch: float) -> logging.LogRecord:
    rec = logging.LogRecord("ecs_init.t", logging.INFO, __file__, 1, msg, None, None)
    rec.created = epoch
    return rec


def handler_for(path: Path) -> logsetup.SafeFileHandler:
    handler = logsetup.SafeFileHandler(str(path))
    handler.setFormatter(logsetup.LogfmtFormatter())
    handler.open_now()
    return handler


def test_rotation_names_are_the_go_programs_hourly_names_in_utc() -> None:
    epoch = 1795815393.0  # 2026-11-27T21:36:33Z
    assert logsetup.rotation_name("/var/log/ecs/ecs-init.log", epoch) == "/var/log/ecs/ecs-init.log.2026-11-27-21"
    assert logsetup.hour_of(epoch) == logsetup.hour_of(epoch - 36 * 60 - 33)
    assert logsetup.hour_of(epoch) + 1 == logsetup.hour_of(epoch + 27 * 60)


def test_a_file_last_written_in_an_earlier_hour_is_rotated_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "ecs-init.log"
    then = time.time() - 2 * HOUR
    write_file(path, "old line\n", then)
    handler = handler_for(path)
    try:
        handler.handle(record("new line", time.time()))
    finally:
        handler.close()
    rotated = Path(logsetup.rotation_name(str(path), then))
    assert rotated.read_text() == "old line\n"
    assert "new line" in path.read_text() and "old line" not in path.read_text()


def test_a_file_of_this_hour_or_an_empty_one_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "ecs-init.log"
    write_file(path, "this hour\n", time.time())
    empty = tmp_path / "empty.log"
    write_file(empty, "", time.time() - 5 * HOUR)
    for target in (path, empty):
        handler = handler_for(target)
        try:
            handler.handle(record("appended", time.time()))
        finally:
            handler.close()
    assert path.read_text().startswith("this hour\n") and "appended" in path.read_text()
    assert "appended" in empty.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ecs-init.log", "empty.log"]


def test_the_turn_of_the_hour_rotates_the_file_the_process_wrote(tmp_path: Path) -> None:
    path = tmp_path / "ecs-init.log"
    now = time.time()
    handler = handler_for(path)
    try:
        handler.handle(record("before the hour", now))
        handler.flush()
        os.utime(path, (now - HOUR, now - HOUR))  # as if written an hour ago
        handler.hour -= 1
        handler.handle(record("after the hour", now))
    finally:
        handler.close()
    rotated = Path(logsetup.rotation_name(str(path), now - HOUR))
    assert "before the hour" in rotated.read_text() and "after the hour" not in rotated.read_text()
    assert "after the hour" in path.read_text() and "before the hour" not in path.read_text()


def test_two_writers_rotate_once_and_lose_nothing(tmp_path: Path) -> None:
    """The supervisor (a) and a stop (b) share the file: the first to write in the new hour rotates it,
    the other finds it rotated and reopens; the rotation is never renamed over."""
    path = tmp_path / "ecs-init.log"
    now = time.time()
    a, b = handler_for(path), handler_for(path)
    try:
        a.handle(record("a: old hour", now))
        b.handle(record("b: old hour", now))
        for h in (a, b):
            h.flush()
        os.utime(path, (now - HOUR, now - HOUR))
        a.hour -= 1
        b.hour -= 1
        a.handle(record("a: new hour", now))  # rotates
        b.handle(record("b: new hour", now))  # finds this hour's file: reopens it
    finally:
        a.close()
        b.close()
    rotated = Path(logsetup.rotation_name(str(path), now - HOUR))
    old, new = rotated.read_text(), path.read_text()
    assert "a: old hour" in old and "b: old hour" in old and "new hour" not in old
    assert "a: new hour" in new and "b: new hour" in new and "old hour" not in new
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, rotated.name])


def test_an_existing_rotation_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "ecs-init.log"
    then = time.time() - 3 * HOUR
    rotated = Path(logsetup.rotation_name(str(path), then))
    rotated.write_text("the earlier rotation\n")
    write_file(path, "same hour, later\n", then)
    handler = handler_for(path)
    try:
        handler.handle(record("now", time.time()))
    finally:
        handler.close()
    assert rotated.read_text() == "the earlier rotation\n"
    assert path.read_text().startswith("same hour, later\n") and "now" in path.read_text()


def test_rotations_beyond_the_newest_24_are_pruned_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "ecs-init.log"
    base = logsetup.hour_of(time.time()) * HOUR - 40 * HOUR
    names = [os.path.basename(logsetup.rotation_name(str(path), base + h * HOUR)) for h in range(30)]
    for name in names:
        (tmp_path / name).write_text(name)
    legacy = "ecs-init.log.2020-01-01_00"  # this program's first release named them with "_"
    others = ["ecs-init.log.gz", "ecs-init.log.2020-01-01-00.gz", "ecs-init.log.bak", "ecs-agent.log.2020-01-01-00"]
    for name in [legacy, *others]:
        (tmp_path / name).write_text(name)
    write_file(path, "the last hour\n", base + 30 * HOUR)
    handler = handler_for(path)
    handler.close()
    kept = sorted(p.name for p in tmp_path.iterdir())
    newest = sorted([*names, os.path.basename(logsetup.rotation_name(str(path), base + 30 * HOUR))])[-24:]
    assert kept == sorted([path.name, *newest, *others])  # the new file, 24 rotations, the rest untouched


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_symlink_or_fifo_at_the_path_is_refused_at_start_up_and_rotated_away_at_the_next_hour(
    tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "precious"
    target.write_text("precious\n")
    path = tmp_path / "ecs-init.log"
    if kind == "symlink":
        path.symlink_to(target)
    else:
        os.mkfifo(path)
    handler = handler_for(path)
    try:
        handler.handle(record("refused", time.time()))
        assert handler.failed and (path.is_symlink() or path.is_fifo())
        handler.new_hour()
        handler.handle(record("a new file", time.time()))
    finally:
        handler.close()
    assert target.read_text() == "precious\n"
    assert not path.is_symlink() and "a new file" in path.read_text()
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("ecs-init.log.")]
    assert len(moved) == 1 and (moved[0].is_symlink() if kind == "symlink" else moved[0].is_fifo())
