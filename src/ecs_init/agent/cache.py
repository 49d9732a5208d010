"""The agent image cache (SPEC §4): state file, the pre-start decision, loading."""

from __future__ import annotations

import enum
import logging
import os
import re
import time

from ecs_init.agent.spec import AGENT_IMAGE
from ecs_init.core.errors import ImageLoadError, InitError
from ecs_init.core.fsutil import atomic_write, is_refusal, open_regular, read_regular, refusal
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext

log = logging.getLogger(__name__)


class CacheState(enum.IntEnum):
    """The state file's values (SPEC §4). Another integer is read as it is and refused by pre-start."""

    UNCACHED = 0
    CACHED = 1
    RELOAD = 2  # written by the packages: a freshly installed tarball replaces whatever Docker has

    @property
    def label(self) -> str:
        return {0: "uncached", 1: "cached", 2: "reload"}[self.value]


STATE_UNCACHED = CacheState.UNCACHED
STATE_CACHED = CacheState.CACHED
STATE_RELOAD = CacheState.RELOAD
KNOWN_STATES = tuple(CacheState)
MAX_STATE_BYTES = 64
# desired-image: only its first line matters; a file name is far shorter.
MAX_LOCATOR_BYTES = 4096


class Action(enum.Enum):
    DOWNLOAD_AND_LOAD = "download and load"
    LOAD = "load"
    NOTHING = "nothing"


# Blanks, leading zeros, then at most three digits that no further digit follows.
_STATE_NUMBER = re.compile(r"[ 	]*0*([0-9]{1,3})(?![0-9])")


def parse_state(text: str) -> int:
    """The state file's integer, read as the Go program reads it (``fmt.Fscanf("%d")`` into a uint8).

    Leading blanks, then the leading decimal digits (what follows them is
    ignored); no digits, or a value over 255, cannot be parsed and counts as
    uncached. Any other value is returned as it is, known or not: pre-start
    refuses an unknown one (``decide``).
    """
    match = _STATE_NUMBER.match(text)
    value = int(match.group(1)) if match else STATE_UNCACHED
    return value if value <= 255 else STATE_UNCACHED


def state_name(state: int) -> str:
    """The name ``status`` and ``check`` show for a state value ("unknown" for another integer)."""
    return CacheState(state).label if state in KNOWN_STATES else "unknown"


def read_state(paths: Paths) -> int:
    """Cache state: uncached unless both the state file and the tarball are non-empty."""
    try:
        if os.path.getsize(paths.cache_tarball) == 0:
            return STATE_UNCACHED
        raw = read_regular(paths.cache_state, MAX_STATE_BYTES + 1, follow_symlinks=False)
    except OSError:
        return STATE_UNCACHED
    if not raw or len(raw) > MAX_STATE_BYTES:
        return STATE_UNCACHED
    return parse_state(raw.decode("latin-1"))  # one character per byte: only ASCII digits count


class UnknownCacheState(InitError):
    """The state file holds an integer that is no known state (exit 255, as in Go)."""


def decide(state: int, image_present: bool) -> Action:
    """The pre-start decision table; an unknown state raises UnknownCacheState."""
    if state == STATE_UNCACHED:
        return Action.DOWNLOAD_AND_LOAD
    if state == STATE_RELOAD:
        return Action.LOAD
    if state == STATE_CACHED:
        return Action.NOTHING if image_present else Action.LOAD
    raise UnknownCacheState(f"cache state {state} is not a known state ({_KNOWN})")


_KNOWN = ", ".join(f"{s.value} {s.label}" for s in CacheState)


def unknown_state_message(paths: Paths, state: int) -> str:
    return (
        f"the cache state file {paths.cache_state} holds {state}, which is not a known state "
        f"({_KNOWN}): run reload-cache, or write 2 to it to reload the cached tarball"
    )


def write_state(paths: Paths, state: int) -> None:
    atomic_write(paths.cache_state, f"{state}\n")


def load_tarball(ctx: HostContext, path: str, image: str = AGENT_IMAGE) -> str:
    """Stream ``path`` into Docker; return the ID now tagged ``image``.

    Raises ImageLoadError with one line when the file is missing or
    unreadable, or when it does not provide ``image``; the Engine client's
    EngineError (one line) when Docker refuses the archive or goes away.
    """
    try:
        # non-blocking and regular files only: a FIFO planted there must not hang the supervisor
        fd, info = open_regular(path)
    except OSError as err:
        raise ImageLoadError(f"cannot load agent image: {path} {refusal(err)}")
    size = info.st_size
    fh = os.fdopen(fd, "rb")
    started = time.monotonic()
    log.info("loading agent image from %s (%d bytes)", path, size)
    from ecs_init.agent.progress import Progress, ProgressReader

    progress = Progress(f"loading {os.path.basename(path)}", size)
    ok = False
    try:
        ctx.docker.load_image(ProgressReader(fh, progress))
        ok = True
    except OSError as err:  # reading the tarball (the engine's failures are EngineErrors)
        raise ImageLoadError(f"cannot load agent image: reading {path} failed: {err.strerror or err}")
    finally:
        progress.close(ok)
        fh.close()
    image_id = ctx.docker.image_id(image)
    if image_id is None:
        raise ImageLoadError(f"{path} was loaded but does not contain {image}")
    log.info("loaded %s (%s) in %.1fs", image, image_id[:19], time.monotonic() - started)
    return image_id


def _download(ctx: HostContext) -> None:
    from ecs_init.agent import download  # heavy: imported only when needed

    download.download_agent(ctx)


def ensure_image(ctx: HostContext) -> Action:
    """pre-start's image step: download/load as the cache state says."""
    paths = ctx.paths
    state = read_state(paths)
    if state not in KNOWN_STATES:
        raise UnknownCacheState(unknown_state_message(paths, state))
    present = ctx.docker.image_id(AGENT_IMAGE) is not None if state == STATE_CACHED else False
    action = decide(state, present)
    log.info("agent image: cache state %d, image present=%s: %s", state, present, action.value)
    if action is Action.DOWNLOAD_AND_LOAD:
        _download(ctx)
    if action is not Action.NOTHING:
        load_tarball(ctx, paths.cache_tarball)
        write_state(paths, STATE_CACHED)
    return action


def reload_cache(ctx: HostContext) -> None:
    """reload-cache: download when uncached, then load the cached tarball."""
    paths = ctx.paths
    if read_state(paths) == STATE_UNCACHED:
        _download(ctx)
    load_tarball(ctx, paths.cache_tarball)
    write_state(paths, STATE_CACHED)


def read_desired_image(paths: Paths) -> str:
    """The first line of the desired-image locator, stripped (maybe empty).

    Raises InitError, with one line that never quotes the content, when the
    locator is missing, unreadable, a symlink (never followed: the agent
    container can write the cache dir, and a followed link would echo the
    first line of any file into ``status``, the log and the events file) or
    anything but a regular file (a FIFO never blocks the reader).
    """
    locator = paths.desired_image
    try:
        raw = read_regular(locator, MAX_LOCATOR_BYTES, follow_symlinks=False)
    except OSError as err:
        if is_refusal(err):
            raise InitError(f"refusing the desired-image locator {locator}: it {refusal(err)}")
        raise InitError(f"cannot read the desired-image locator {locator}: {err.strerror or err}")
    return raw.decode("utf-8", errors="replace").split("\n", 1)[0].strip()


def desired_image_name(paths: Paths) -> tuple[str | None, str | None]:
    """For ``status``: (the locator's first line, None), (None, why it is refused), or (None, None)
    when there is no locator or it is blank."""
    if not os.path.lexists(paths.desired_image):
        return None, None
    try:
        return read_desired_image(paths) or None, None
    except InitError as err:
        return None, str(err)


def resolve_desired_image(paths: Paths) -> str:
    """The tarball named by desired-image's first line, confined to the cache dir (SPEC §5).

    Returns the tarball's resolved path. Raises InitError, with one line
    naming the reason, when the locator is refused (``read_desired_image``)
    or empty (first line blank), or when its first line is not a bare file
    name (an absolute path, a directory part, ``.``/``..``, a NUL), or names
    something that resolves outside the cache dir (a symlink leading out)
    or is not a regular file.
    """
    locator = paths.desired_image
    first = read_desired_image(paths)
    if not first:
        raise InitError(f"the desired-image locator {locator} is empty: no image to upgrade to")
    cache_dir = paths.cache_dir
    if "\x00" in first or "/" in first or "\\" in first or first in (".", ".."):
        raise InitError(f"refusing desired image {first!r}: it must be a file name inside {cache_dir}")
    candidate = os.path.join(cache_dir, first)
    cache_real = os.path.realpath(cache_dir)
    target_real = os.path.realpath(candidate)
    if not target_real.startswith(cache_real + os.sep):
        raise InitError(f"refusing desired image {first!r}: it resolves outside {cache_dir} (to {target_real})")
    if not os.path.exists(target_real):
        raise InitError(f"desired image {candidate} does not exist")
    if not os.path.isfile(target_real):
        raise InitError(f"refusing desired image {first!r}: {target_real} is not a regular file")
    return target_real


def previous_image(ctx: HostContext) -> str | None:
    """The ID of the image tagged amazon/amazon-ecs-agent:latest now, if any."""
    return ctx.docker.image_id(AGENT_IMAGE)
