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


class DockerUnavailable(InitError):
    """The Docker daemon did not answer in time."""


class ImageLoadError(InitError):
    """A tarball could not be loaded into Docker."""


class TerminalExit(InitError):
    """The agent asked not to be restarted."""

    exit_code = EXIT_TERMINAL
