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
from ecs_init.core.record import dataclass
from ecs_init.host.context import HostContext

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Optional

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


def parse_number(text: str) -> Optional[int]:
    """The state file's integer, read as the Go program reads it (``fmt.Fscanf("%d")`` into a uint8):
    leading blanks, then the leading decimal digits (what follows them is ignored); None when there
    are no digits or the value is over 255 (it cannot be parsed)."""
    match = _STATE_NUMBER.match(text)
    if match is None:
        return None
    value = int(match.group(1))
    return value if value <= 255 else None


def parse_state(text: str) -> int:
    """The state the file's text means: its integer (``parse_number``), or uncached when it has
    none. Any integer is returned as it is, known or not: pre-start refuses an unknown one
    (``decide``)."""
    number = parse_number(text)
    return STATE_UNCACHED if number is None else number


def state_name(state: int) -> str:
    """The name ``status`` and ``check`` show for a state value ("unknown" for another integer)."""
    return CacheState(state).label if state in KNOWN_STATES else "unknown"


@dataclass(frozen=True)
class CacheFacts:
    """What the cache holds, as read: the state file's value and the tarball (issue 20 item 3: what
    pre-start logs and ``status`` shows are these, not the state they lead to)."""

    state_file: str
    value: Optional[int]  # the state file's integer; None: missing, empty, unreadable or not a number
    reading: str  # how the state file reads, for people: "holds 2 (reload)", "is missing", ...
    tarball: str
    tarball_bytes: Optional[int]  # None: no tarball

    @property
    def state(self) -> int:
        """The cache state (SPEC §4): uncached unless both the state file and the tarball are non-empty
        (and the file holds a number)."""
        if not self.tarball_bytes or self.value is None:
            return STATE_UNCACHED
        return self.value

    @property
    def tarball_reading(self) -> str:
        if self.tarball_bytes is None:
            return "is missing"
        return "is empty" if self.tarball_bytes == 0 else f"is present ({self.tarball_bytes} bytes)"

    def uncached_because(self) -> str:
        """Why the cache counts as uncached (when it does)."""
        if self.tarball_bytes is None:
            return "the tarball is missing"
        if self.tarball_bytes == 0:
            return "the tarball is empty"
        if self.value is None:
            return f"the state file {self.reading}"
        return "the state file says so"

    def describe(self) -> str:
        return f"state file {self.state_file} {self.reading}; tarball {self.tarball} {self.tarball_reading}"

    def as_dict(self) -> dict[str, object]:
        """The cache part of ``status --json``: the file's value and the state it makes, apart."""
        state = self.state
        return {
            "state_file": self.state_file,
            "state": self.value,
            "state_name": None if self.value is None else state_name(self.value),
            "state_file_reading": self.reading,
            "effective_state": state,
            "effective_state_name": state_name(state),
            "effective_reason": self.uncached_because() if state == STATE_UNCACHED else "",
            "tarball": self.tarball,
            "tarball_present": self.tarball_bytes is not None,
            "tarball_bytes": self.tarball_bytes,
        }


def read_facts(paths: Paths) -> CacheFacts:
    """The state file and the tarball as they are (never raises)."""
    try:
        size: Optional[int] = os.path.getsize(paths.cache_tarball)
    except OSError:
        size = None
    value: Optional[int] = None
    try:
        # never through a symlink: the agent container can write the cache dir
        raw = read_regular(paths.cache_state, MAX_STATE_BYTES + 1, follow_symlinks=False)
    except FileNotFoundError:
        reading = "is missing"
    except OSError as err:
        reading = refusal(err) if is_refusal(err) else f"cannot be read ({err.strerror or err})"
    else:
        text = raw.decode("ascii", errors="replace")
        if not raw.strip():
            reading = "is empty"
        elif len(raw) > MAX_STATE_BYTES:
            reading = f"is longer than {MAX_STATE_BYTES} bytes (not a state)"
        else:
            value = parse_number(text)
            name = f"{value} ({state_name(value)})" if value is not None else ""
            reading = f"holds {name}" if value is not None else f"holds {text.rstrip()[:16]!r}, not a number"
    return CacheFacts(paths.cache_state, value, reading, paths.cache_tarball, size)


def read_state(paths: Paths) -> int:
    """Cache state: uncached unless both the state file and the tarball are non-empty."""
    return read_facts(paths).state


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


def decision_reason(facts: CacheFacts, present: Optional[bool]) -> str:
    """Why ``decide`` chose what it chose, in words."""
    state = facts.state
    if state == STATE_UNCACHED:
        return f"uncached: {facts.uncached_because()}"
    if state == STATE_RELOAD:
        return "the state file asks for the tarball to be loaded"
    return "cached, and the image is in Docker" if present else "cached, but the image is not in Docker"


def ensure_image(ctx: HostContext) -> Action:
    """pre-start's image step: download/load as the cache state says; one line tells what was read
    (the state file), what was found (the tarball, the image or that it was not checked) and why."""
    paths = ctx.paths
    facts = read_facts(paths)
    state = facts.state
    if state not in KNOWN_STATES:
        raise UnknownCacheState(unknown_state_message(paths, state))
    present = ctx.docker.image_id(AGENT_IMAGE) is not None if state == STATE_CACHED else None
    action = decide(state, bool(present))
    image = {None: "not checked", True: "present", False: "missing"}[present]
    reason = decision_reason(facts, present)
    log.info("agent image: %s; image %s %s: %s (%s)", facts.describe(), AGENT_IMAGE, image, action.value, reason)
    if action is Action.DOWNLOAD_AND_LOAD:
        _download(ctx)
    if action is not Action.NOTHING:
        load_cached(ctx, "image-load", by="pre-start", reason=reason)
    return action


def reload_cache(ctx: HostContext) -> None:
    """reload-cache: download when uncached, then load the cached tarball; recorded as an event, so
    that after the manual rollback ``status`` shows it as the last one."""
    facts = read_facts(ctx.paths)
    downloaded = facts.state == STATE_UNCACHED
    log.info("reload-cache: %s", facts.describe())
    if downloaded:
        log.info("reload-cache: downloading first (%s)", facts.uncached_because())
        _download(ctx)
    load_cached(ctx, "reload-cache", downloaded=downloaded)


def load_cached(ctx: HostContext, event: str, **details: object) -> str:
    """Load the cached tarball, mark the cache cached, record ``event`` (with the image it replaced)."""
    from ecs_init.agent.events import record_event

    paths = ctx.paths
    previous = previous_image(ctx)
    image_id = load_tarball(ctx, paths.cache_tarball)
    write_state(paths, STATE_CACHED)
    tarball = os.path.basename(os.path.realpath(paths.cache_tarball))
    record_event(ctx, event, previous=previous, new=image_id, tarball=tarball, **details)
    return image_id


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
