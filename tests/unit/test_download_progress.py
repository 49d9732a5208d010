"""Progress reporting: a bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import io
import logging

import pytest

from ecs_init.agent.progress import Progress, ProgressReader, human_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


MiB = 1024 * 1024


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ecs_init.agent.progress"]


def test_human_bytes() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(500 * MiB) == "500.0 MiB"
    assert human_bytes(3 * 1024 * MiB) == "3.0 GiB"


def test_log_lines_at_start_every_five_seconds_and_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    stream = io.StringIO()
    p = Progress("downloading x.tar", 100 * MiB, stream=stream, tty=False, clock=clock)
    for _ in range(100):  # 1 MiB every 0.5 s: 50 s in all
        clock.now += 0.5
        p.update(MiB)
    p.close()
    lines = messages(caplog)
    assert lines[0] == "downloading x.tar: started (100.0 MiB)"
    assert lines[-1] == "downloading x.tar: done, 100.0 MiB in 50.0 s (2.0 MiB/s)"
    periodic = lines[1:-1]
    # at most one line per 5 s of a 50 s transfer
    assert 8 <= len(periodic) <= 10
    assert periodic[0] == "downloading x.tar: 10.0 MiB of 100.0 MiB (10%), 2.0 MiB/s"
    assert stream.getvalue() == ""  # nothing drawn when not a terminal


def test_no_periodic_lines_for_a_fast_transfer(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    with Progress("loading", None, stream=io.StringIO(), tty=False, clock=clock) as p:
        for _ in range(10):
            clock.now += 0.1
            p.update(1000)
    lines = messages(caplog)
    assert lines == ["loading: started (unknown size)", "loading: done, 9.8 KiB in 1.0 s (9.8 KiB/s)"]


def test_failure_is_logged_as_stopped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    with pytest.raises(RuntimeError), Progress("dl", 4 * MiB, stream=io.StringIO(), tty=False, clock=clock) as p:
        clock.now += 2
        p.update(MiB)
        raise RuntimeError("boom")
    assert messages(caplog)[-1] == "dl: stopped after 1.0 MiB of 4.0 MiB (25%) in 2.0 s"


def test_terminal_bar(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    stream = io.StringIO()
    p = Progress("downloading", 10 * MiB, stream=stream, tty=True, clock=clock)
    for _ in range(10):
        clock.now += 1
        p.update(MiB)
    p.close()
    out = stream.getvalue()
    assert out.startswith("\r")
    assert out.endswith("\n")
    frames = [f for f in out.split("\r") if f]
    assert len(frames) == 11  # one per update (>=0.1 s apart) plus the final one
    assert "100%" in frames[-1] and "10.0 MiB/10.0 MiB" in frames[-1] and "1.0 MiB/s" in frames[-1]
    assert "[" in frames[-1] and "]" in frames[-1]
    # the log still has start and end, but no periodic lines
    assert len(messages(caplog)) == 2


def test_terminal_bar_throttled() -> None:
    clock = Clock()
    stream = io.StringIO()
    p = Progress("x", 1000, stream=stream, tty=True, clock=clock)
    for _ in range(1000):
        clock.now += 0.001
        p.update(1)
    assert 9 <= stream.getvalue().count("\r") <= 11  # ~1 s at 10 redraws a second


def test_render_fits_the_width() -> None:
    clock = Clock()
    p = Progress("a-rather-long-label-for-a-download", 10 * MiB, stream=io.StringIO(), tty=True, clock=clock)
    clock.now += 1
    p.update(5 * MiB)
    for width in (20, 40, 80, 200):
        assert len(p.render(width=width)) < width
    assert " 50% " in p.render(width=120)
    unknown = Progress("x", None, stream=io.StringIO(), tty=True, clock=clock)
    clock.now += 1
    unknown.update(2 * MiB)
    assert unknown.render(width=80) == "x 2.0 MiB 2.0 MiB/s"


def test_progress_reader_reports_and_passes_data_through() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    p = Progress("load", len(data), stream=io.StringIO(), tty=False)
    reader = ProgressReader(io.BytesIO(data), p)
    first = reader.read(1000)
    assert p.done == 1000
    rest = b"".join(reader)
    assert first + rest == data
    assert p.done == len(data)
    reader.close()


def test_progress_reader_unknown_size_reads_in_chunks() -> None:
    p = Progress("load", None, stream=io.StringIO(), tty=False)
    reader = ProgressReader(io.BytesIO(b"abc"), p, chunk_size=2)
    assert reader.read() == b"ab"  # a bare read() is one chunk, never the whole file
    assert reader.read() == b"c"
    assert reader.read() == b""
    assert p.done == 3


def test_broken_terminal_falls_back_to_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError(5, "EIO")

    caplog.set_level(logging.INFO)
    clock = Clock()
    p = Progress("x", 100, stream=Broken(), tty=True, clock=clock)
    clock.now += 1
    p.update(10)
    assert p.tty is False
    clock.now += 6
    p.update(10)
    p.close()
    assert any("20 B of 100 B" in m for m in messages(caplog))
