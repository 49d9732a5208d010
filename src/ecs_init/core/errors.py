"""Exceptions that carry the program's documented exit codes (SPEC §1)."""

from __future__ import annotations

from ecs_init.core.exitcodes import Exit


class InitError(Exception):
    """An expected failure: logged as one line, then exit ``exit_code``."""

    exit_code: int = Exit.FAILURE


class UsageError(InitError):
    exit_code = Exit.USAGE


class CommandError(InitError):
    """An external command failed or is missing."""


class ImageLoadError(InitError):
    """A tarball could not be loaded into Docker."""


class TerminalExit(InitError):
    """The agent asked not to be restarted."""

    exit_code = Exit.TERMINAL


def first_line(err: BaseException) -> str:
    """An error as one line (its first), or its type's name when it says nothing."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
