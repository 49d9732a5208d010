"""Issue 14, items 1, 2 and 7 for ecs-init.log: a FIFO or symlink there never hangs the program, is never
appended through, and is said once; control characters in a record are escaped."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Iterator

import pytest

from ecs_init.core import logsetup


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    yield
    logsetup.setup(None, "info", console=False)


def setup_within(path: str, seconds: float = 5.0) -> None:
    """``logsetup.setup`` with the console on; fails (never hangs) if it blocks."""
    thread = threading.Thread(target=logsetup.setup, args=(path, "info"), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"logging set-up blocked on {path}"


def file_handler() -> logsetup.SafeFileHandler:
    found = [h for h in logging.getLogger().handlers if isinstance(h, logsetup.SafeFileHandler)]
    assert len(found) == 1
    return found[0]


def warnings_about(text: str, path: str) -> list[str]:
    return [line for line in text.splitlines() if "cannot use the log file" in line and path in line]


def log_some(count: int = 5) -> None:
    for n in range(count):
        logging.getLogger("ecs_init.t").warning("record %d", n)


def test_a_fifo_at_the_log_file_never_blocks_and_is_said_once(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "ecs-init.log")
    os.mkfifo(path)
    setup_within(path)
    log_some()
    err = capsys.readouterr().err
    assert len(warnings_about(err, path)) == 1, err
    assert "it is a FIFO, not a regular file; logging to the console only" in err
    assert "record 4" in err  # the console still gets every record
    assert "Logging error" not in err and "Traceback" not in err


def test_a_symlink_at_the_log_file_is_never_appended_through(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0::/root:/bin/sh\n")
    path = str(tmp_path / "ecs-init.log")
    os.symlink(target, path)
    setup_within(path)
    log_some()
    file_handler().flush()
    assert target.read_text() == "root:x:0:0::/root:/bin/sh\n"
    err = capsys.readouterr().err
    assert len(warnings_about(err, path)) == 1 and "it is a symlink (not followed)" in err, err
    assert "Logging error" not in err and "Traceback" not in err


def test_a_file_that_goes_bad_later_is_said_once_and_never_a_traceback(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "ecs-init.log")
    setup_within(path)
    logging.getLogger("ecs_init.t").warning("before")
    handler = file_handler()
    handler.acquire()
    try:
        assert handler.stream is not None
        handler.stream.close()
        handler.stream = None  # type: ignore[assignment]
    finally:
        handler.release()
    os.unlink(path)
    os.mkfifo(path)  # planted where the next open happens
    log_some()
    err = capsys.readouterr().err
    assert len(warnings_about(err, path)) == 1, err
    assert "Logging error" not in err and "Traceback" not in err


def test_a_symlink_swapped_in_is_rotated_away_never_written_through(tmp_path: Any) -> None:
    target = tmp_path / "precious"
    target.write_text("precious\n")
    path = str(tmp_path / "ecs-init.log")
    logsetup.setup(path, "info", console=False)
    handler = file_handler()
    logging.getLogger("ecs_init.t").warning("first")
    os.unlink(path)
    os.symlink(target, path)
    handler.new_hour()  # the hourly rotation is due
    logging.getLogger("ecs_init.t").warning("after the rotation")
    handler.flush()
    assert target.read_text() == "precious\n"
    assert not os.path.islink(path)
    with open(path) as fh:
        assert "after the rotation" in fh.read()


def test_control_characters_are_escaped_in_log_lines() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "image \x1b]0;owned\x07 \x9b2J\ttab\rcr", None, None)
    line = logsetup.LogfmtFormatter().format(record)
    assert line.endswith('msg="image \\x1b]0;owned\\x07 \\x9b2J\\ttab\\rcr"')
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)
