"""Exceptions that carry the program's documented exit codes (SPEC §1)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_TERMINAL = 5
EXIT_FAILURE = 255


class InitError(Exception):
    """An expected failure: logged as one line, then exit ``exit_code``."""

    exit_code = EXIT_FAILURE


class UsageError(InitError):
    exit_code = 1


class CommandError(InitError):
    """An external command failed or is missing."""


class ImageLoadError(InitError):
    """A tarball could not be loaded into Docker."""


class TerminalExit(InitError):
    """The agent asked not to be restarted."""

    exit_code = EXIT_TERMINAL


def first_line(err: BaseException) -> str:
    """An error as one line (its first), or its type's name when it says nothing."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
