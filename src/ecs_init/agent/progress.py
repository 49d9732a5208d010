"""Progress reporting for long transfers (downloading and loading the agent).

On a terminal (stderr is a TTY) a one-line bar shows bytes done, the total
when known, and the rate. Otherwise -- the journal, a log file -- a line is
logged at the start, at most every ``interval`` seconds while the transfer
runs, and at the end with the size and the duration. The start and end lines
are logged in both cases so the log file always has them.

    progress = Progress("downloading ecs-agent.tar", total=size)
    for chunk in ...:
        progress.update(len(chunk))
    progress.close()

``ProgressReader`` wraps a binary file object so that whoever reads it (the
Engine client streaming the image load) reports progress as it goes.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from typing import IO, Callable, Iterator, Optional

log = logging.getLogger(__name__)

LOG_INTERVAL = 5.0  # seconds between log lines when not on a terminal
BAR_INTERVAL = 0.1  # seconds between redraws of the terminal bar


def human_bytes(n: Optional[float]) -> str:
    """1536 -> '1.5 KiB'; binary units, one decimal above bytes; None -> '?'."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_rate(bytes_done: float, seconds: float) -> str:
    if seconds <= 0:
        return "-"
    return human_bytes(bytes_done / seconds) + "/s"


class Progress:
    """Report the progress of a transfer of ``total`` bytes (None: unknown)."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.label = label
        self.total = total if total is not None and total >= 0 else None
        self.done = 0
        self.closed = False
        self._stream = stream if stream is not None else sys.stderr
        if tty is None:
            try:
                tty = bool(self._stream.isatty())
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = tty
        self._interval = interval
        self._clock = clock
        self._log = logger or log
        self.started = clock()
        self._last_log = self.started
        self._last_draw = 0.0
        self._drawn = False
        size = human_bytes(self.total) if self.total is not None else "unknown size"
        self._log.info("%s: started (%s)", label, size)

    # -- reporting

    def update(self, n: int) -> None:
        """Account ``n`` more bytes."""
        if self.closed or n <= 0:
            return
        self.done += n
        now = self._clock()
        if self.tty:
            if now - self._last_draw >= BAR_INTERVAL:
                self._draw(now)
        elif now - self._last_log >= self._interval:
            self._last_log = now
            self._log.info("%s: %s, %s", self.label, self._amount(), human_rate(self.done, now - self.started))

    def close(self, ok: bool = True) -> None:
        """End the report: a final bar and a log line with size and duration."""
        if self.closed:
            return
        self.closed = True
        now = self._clock()
        elapsed = now - self.started
        if self.tty and self._drawn:
            self._draw(now)
            self._write("\n")
        if ok:
            self._log.info(
                "%s: done, %s in %.1f s (%s)",
                self.label,
                human_bytes(self.done),
                elapsed,
                human_rate(self.done, elapsed),
            )
        else:
            self._log.info("%s: stopped after %s in %.1f s", self.label, self._amount(), elapsed)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(ok=exc_type is None)

    # -- helpers

    def _amount(self) -> str:
        if self.total:
            pct = min(100, self.done * 100 // self.total)
            return f"{human_bytes(self.done)} of {human_bytes(self.total)} ({pct}%)"
        return human_bytes(self.done)

    def render(self, now: float | None = None, width: int | None = None) -> str:
        """The bar line (without the carriage return)."""
        now = self._clock() if now is None else now
        if width is None:
            width = shutil.get_terminal_size((80, 24)).columns
        rate = human_rate(self.done, now - self.started)
        if self.total:
            frac = min(1.0, self.done / self.total)
            tail = f" {frac * 100:3.0f}% {human_bytes(self.done)}/{human_bytes(self.total)} {rate}"
            head = self.label + " "
            room = width - len(head) - len(tail) - 3
            if room >= 10:
                room = min(room, 40)
                filled = int(room * frac)
                bar = "=" * filled + (">" if filled < room else "") + " " * max(0, room - filled - 1)
                line = f"{head}[{bar}]{tail}"
            else:
                line = head + tail.lstrip()
        else:
            line = f"{self.label} {human_bytes(self.done)} {rate}"
        return line[: max(1, width - 1)]

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self._drawn = True
        self._write("\r" + self.render(now) + "\x1b[K")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            self.tty = False  # the terminal went away: fall back to log lines


class ProgressReader:
    """A read-only binary file object that reports each read to ``progress``
    (the Engine client streams the image load from it, chunk by chunk)."""

    def __init__(self, fileobj: IO[bytes], progress: Progress, chunk_size: int = 1024 * 1024) -> None:
        self._fileobj = fileobj
        self.progress = progress
        self.chunk_size = chunk_size

    def read(self, size: int = -1) -> bytes:
        # Never the whole file at once: a bare read() gets one chunk, so memory
        # stays flat whatever the caller does.
        data = self._fileobj.read(size if size is not None and size > 0 else self.chunk_size)
        if data:
            self.progress.update(len(data))
        return data

    def readable(self) -> bool:
        return True

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(self.chunk_size)
            if not data:
                return
            yield data

    def close(self) -> None:
        self._fileobj.close()

    def __enter__(self) -> ProgressReader:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()
