"""Issue 14, items 1 and 2: FIFOs, devices and symlinks where this program reads or writes.

Every reader is run in a thread with a deadline (``finishes``): a reader that
blocks on a FIFO fails the test instead of hanging the run.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from typing import Any, Callable, TypeVar

import pytest
from fakes import FakeEngine

from ecs_init.agent import cache, events, hostfacts
from ecs_init.agent.spec import build_spec
from ecs_init.core import fsutil, jsonfile, lock
from ecs_init.core.config import Config
from ecs_init.core.errors import ImageLoadError, InitError
from ecs_init.core.paths import Paths
from ecs_init.core.platform import read_platform
from ecs_init.host import ebs
from ecs_init.host.context import HostContext

T = TypeVar("T")
DEADLINE = 5.0


def finishes(fn: Callable[[], T], seconds: float = DEADLINE) -> T:
    """``fn()``'s result (or its exception), failing the test if it takes longer than ``seconds``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed to the test
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds}s"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def ctx_for(tmp_path: Any, engine: FakeEngine | None = None) -> HostContext:
    paths = Paths(prefix=str(tmp_path / "root"))
    for d in (paths.cache_dir, paths.run_dir, paths.log_dir, os.path.dirname(paths.events_file)):
        os.makedirs(d, exist_ok=True)
    cfg = Config.load({}, paths)
    fake = engine or FakeEngine()
    return HostContext(cfg=cfg, docker_factory=lambda: fake)


# ---------------------------------------------------------------- fsutil


def test_open_regular_refuses_a_fifo_without_opening_it(tmp_path: Any) -> None:
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(fsutil.NotRegularFile) as caught:
        finishes(lambda: fsutil.read_regular(fifo, 100))
    assert caught.value.kind == "a FIFO"
    assert fsutil.refusal(caught.value) == "is a FIFO, not a regular file"


def test_no_follow_refuses_a_symlink_and_follow_reads_through_it(tmp_path: Any) -> None:
    target = tmp_path / "target"
    target.write_text("precious")
    link = str(tmp_path / "link")
    os.symlink(target, link)
    with pytest.raises(OSError) as caught:
        fsutil.read_regular(link, 100, follow_symlinks=False)
    assert fsutil.refusal(caught.value) == "is a symlink (not followed)"
    assert fsutil.read_regular(link, 100) == b"precious"


def test_a_device_is_refused_before_it_is_opened(tmp_path: Any) -> None:
    device = str(tmp_path / "null")
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except OSError as err:
        pytest.skip(f"cannot make a device node here: {err}")
    with pytest.raises(fsutil.NotRegularFile, match="character device"):
        fsutil.open_regular(device)
    with pytest.raises(fsutil.NotRegularFile, match="character device"):
        fsutil.open_append(device)


def test_atomic_write_replaces_via_a_private_temp_file_and_leaves_nothing(tmp_path: Any) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    fsutil.atomic_write(str(target), "new", mode=0o640)
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_temp_beside_is_new_private_and_never_through_a_symlink(tmp_path: Any, monkeypatch: Any) -> None:
    precious = tmp_path / "precious"
    precious.write_text("precious")
    path = str(tmp_path / "state.json")
    fd, name = fsutil.temp_beside(path)
    os.close(fd)
    assert os.path.dirname(name) == str(tmp_path)
    assert os.path.basename(name).startswith(".state.json.") and name.endswith(".tmp")
    assert stat.S_IMODE(os.lstat(name).st_mode) == 0o600 and os.path.getsize(name) == 0
    second = fsutil.temp_beside(path)
    os.close(second[0])
    assert second[1] != name
    # every name taken (here: a symlink planted at each): it gives up with an error, never opens one
    monkeypatch.setattr(os, "urandom", lambda n: b"\x00" * n)
    os.symlink(precious, str(tmp_path / f".state.json.{'00' * 6}.tmp"))
    with pytest.raises(FileExistsError):
        fsutil.temp_beside(path, attempts=3)
    assert precious.read_text() == "precious"


def test_open_append_never_follows_never_blocks_and_appends(tmp_path: Any) -> None:
    target = tmp_path / "target"
    target.write_text("precious\n")
    link = str(tmp_path / "link")
    os.symlink(target, link)
    with pytest.raises(OSError) as caught:
        fsutil.open_append(link)
    assert fsutil.refusal(caught.value) == "is a symlink (not followed)"
    assert target.read_text() == "precious\n"
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(fsutil.NotRegularFile):
        finishes(lambda: fsutil.open_append(fifo))
    # a FIFO with a reader: still refused (opening one for writing with a reader would succeed)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(fsutil.NotRegularFile):
            finishes(lambda: fsutil.open_append(fifo))
    finally:
        os.close(reader)
    path = str(tmp_path / "log")
    for text in (b"one\n", b"two\n"):
        fd = fsutil.open_append(path)
        os.write(fd, text)
        os.close(fd)
    assert _read(path) == "one\ntwo\n"
    assert os.stat(path).st_mode & 0o777 == 0o644 & ~_umask()


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


# ---------------------------------------------------------------- JSON state files


@pytest.mark.parametrize(
    "make,why",
    [
        (lambda p: os.mkfifo(p), "is a FIFO, not a regular file"),
        (lambda p: os.symlink("/etc/hostname", p), "is a symlink (not followed)"),
        (lambda p: os.mkdir(p), "is a directory, not a regular file"),
        (lambda p: _write(p, "[" * 100000), "is nested more than 32 deep"),
        (lambda p: _write(p, "[" * 40 + "]" * 40), "is nested more than 32 deep"),
        (lambda p: _write(p, " " * (jsonfile.MAX_JSON_BYTES + 1)), "is larger than"),
        (lambda p: _write(p, "{not json"), "is not valid JSON"),
    ],
)
def test_json_state_files_refused_with_one_line(tmp_path: Any, make: Callable[[str], Any], why: str) -> None:
    path = str(tmp_path / "state.json")
    make(path)
    doc, error = finishes(lambda: jsonfile.read(path))
    assert doc is None and why in error and path in error and "\n" not in error


def test_json_non_finite_numbers_come_back_as_their_text() -> None:
    doc = jsonfile.loads('{"a": NaN, "b": -Infinity, "c": 1e400, "d": 1.5, "e": 100000000000000000000000}')
    assert doc == {"a": "NaN", "b": "-Infinity", "c": "1e400", "d": 1.5, "e": 10**23}
    json.dumps(doc, allow_nan=False)  # what is read back can always be written out as valid JSON


# ---------------------------------------------------------------- the events file


@pytest.mark.parametrize("kind", ["fifo", "symlink", "deep", "huge-depth", "not-a-list", "nan"])
def test_record_event_never_blocks_never_fails_and_leaves_a_valid_file(
    tmp_path: Any, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = ctx_for(tmp_path)
    path = ctx.paths.events_file
    outside = tmp_path / "outside"
    outside.write_text("precious\n")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        os.symlink(outside, path)
    elif kind == "deep":
        _write(path, '[{"event":"rollback","failed_image":"sha256:x","d":' + "[" * 500 + "]" * 500 + "}]")
    elif kind == "huge-depth":
        _write(path, "[" * 200000)
    elif kind == "not-a-list":
        _write(path, '{"event": "upgrade"}')
    else:
        _write(path, '[{"event": "upgrade", "time": NaN}]')
    with caplog.at_level(logging.WARNING):
        finishes(lambda: events.record_event(ctx, "upgrade-failed", reason="r"))
        assert finishes(lambda: events.rolled_back_images(ctx)) == set()
    assert outside.read_text() == "precious\n"
    assert not os.path.islink(path) and stat.S_ISREG(os.lstat(path).st_mode)
    written = json.loads(_read(path))
    assert written[-1]["event"] == "upgrade-failed"
    json.dumps(written, allow_nan=False)
    if kind != "nan":
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "starting a new events file" in warnings[0], warnings


def test_events_that_are_objects_are_kept_and_others_dropped(tmp_path: Any) -> None:
    ctx = ctx_for(tmp_path)
    good = {"event": "rollback", "time": "t", "failed_image": "sha256:bad"}
    _write(ctx.paths.events_file, json.dumps([1, "x", None, good, [good]]))
    assert events.rolled_back_images(ctx) == {"sha256:bad"}
    events.record_event(ctx, "upgrade", new="sha256:new")
    assert [e["event"] for e in json.loads(_read(ctx.paths.events_file))] == ["rollback", "upgrade"]


# ---------------------------------------------------------------- the lock file


def test_a_fifo_at_the_lock_file_is_refused_at_once(tmp_path: Any) -> None:
    path = str(tmp_path / "run" / "ecs-init.lock")
    os.makedirs(os.path.dirname(path))
    os.mkfifo(path)
    held = lock.FileLock(path, "reload-cache", timeout=60)
    with pytest.raises(InitError, match=r"refusing the lock file .* a FIFO, not a regular file \(remove it\)"):
        finishes(held.acquire, seconds=5)
    assert finishes(held.holder) == ""


def test_the_holder_of_a_regular_lock_is_read_without_following(tmp_path: Any) -> None:
    path = str(tmp_path / "ecs-init.lock")
    first = lock.FileLock(path, "pre-start").acquire()
    try:
        assert lock.FileLock(path, "reload-cache").holder() == f"pid={os.getpid()} action=pre-start"
    finally:
        first.release()


# ---------------------------------------------------------------- os-release


def test_os_release_is_followed_but_a_fifo_never_blocks(tmp_path: Any) -> None:
    paths = Paths(prefix=str(tmp_path))
    real = tmp_path / "usr-lib-os-release"
    real.write_text('ID=debian\nVERSION_ID="12"\n')
    link = tmp_path / "etc" / "os-release"
    link.parent.mkdir()
    os.symlink(real, link)
    assert paths.os_release == str(link)
    assert read_platform(paths).detailed_os_family == "debian_12"
    os.unlink(link)
    os.mkfifo(link)
    assert paths.os_release == str(link)
    assert finishes(lambda: read_platform(paths)).detailed_os_family == "linux"


# ---------------------------------------------------------------- desired-image and the tarball


def test_a_symlinked_desired_image_is_refused_and_never_echoed(tmp_path: Any) -> None:
    ctx = ctx_for(tmp_path)
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$very-secret-hash:19000\n")
    os.symlink(secret, ctx.paths.desired_image)
    with pytest.raises(InitError) as caught:
        cache.resolve_desired_image(ctx.paths)
    assert "is a symlink (not followed)" in str(caught.value)
    assert "very-secret" not in str(caught.value) and "root:" not in str(caught.value)
    name, error = cache.desired_image_name(ctx.paths)
    assert name is None and error is not None and "very-secret" not in error


def test_a_fifo_desired_image_or_tarball_never_blocks(tmp_path: Any) -> None:
    ctx = ctx_for(tmp_path)
    os.mkfifo(ctx.paths.desired_image)
    with pytest.raises(InitError, match="a FIFO, not a regular file"):
        finishes(lambda: cache.resolve_desired_image(ctx.paths))
    assert finishes(lambda: cache.desired_image_name(ctx.paths))[1] is not None
    os.mkfifo(ctx.paths.cache_tarball)
    with pytest.raises(ImageLoadError, match="a FIFO, not a regular file"):
        finishes(lambda: cache.load_tarball(ctx, ctx.paths.cache_tarball))


def test_a_symlinked_cache_state_counts_as_uncached(tmp_path: Any) -> None:
    ctx = ctx_for(tmp_path)
    _write(ctx.paths.cache_tarball, "image=sha256:x")
    elsewhere = tmp_path / "one"
    elsewhere.write_text("1\n")
    os.symlink(elsewhere, ctx.paths.cache_state)
    assert cache.read_state(ctx.paths) == cache.STATE_UNCACHED
    os.unlink(ctx.paths.cache_state)
    _write(ctx.paths.cache_state, "1\n")
    assert cache.read_state(ctx.paths) == cache.STATE_CACHED


# ---------------------------------------------------------------- /mnt/ecs/ebs


def test_a_symlinked_ebs_dir_is_refused_its_target_untouched_and_ebs_off(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = ctx_for(tmp_path)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    os.makedirs(os.path.dirname(ctx.paths.ebs_dir))
    os.symlink(private, ctx.paths.ebs_dir)
    with caplog.at_level(logging.ERROR):
        ebs.setup(ctx)
    assert os.stat(private).st_mode & 0o777 == 0o700
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "it is a symlink, not a directory" in errors[0], errors
    facts = hostfacts.gather(ctx, docker_api_version="1.44")
    assert build_spec(ctx.cfg, facts).env["ECS_EBSTA_SUPPORTED"] == "false"


def test_the_ebs_dir_is_made_0755_through_no_link(tmp_path: Any) -> None:
    ctx = ctx_for(tmp_path)
    os.makedirs(ctx.paths.ebs_dir, mode=0o700)
    os.chmod(ctx.paths.ebs_dir, 0o700)
    ebs.setup(ctx)
    assert os.stat(ctx.paths.ebs_dir).st_mode & 0o777 == 0o755
    facts = hostfacts.gather(ctx, docker_api_version="1.44")
    assert build_spec(ctx.cfg, facts).env["ECS_EBSTA_SUPPORTED"] == "true"


# ---------------------------------------------------------------- the ecs.config files


def test_the_instance_config_is_never_read_through_a_symlink(tmp_path: Any) -> None:
    """/var/lib/ecs is the agent container's to write: a link there would hand any root-readable file's
    KEY=VALUE lines to the agent. Root's /etc/ecs/ecs.config is still followed, as the Go program does."""
    paths = Paths(prefix=str(tmp_path / "root"))
    for path in (paths.instance_config, paths.ecs_config):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    credentials = tmp_path / "credentials"
    credentials.write_text("aws_secret_access_key=hunter2hunter2hunter2\nECS_CLUSTER=stolen\n")
    os.symlink(credentials, paths.instance_config)
    cfg = Config.load({}, paths)
    operator, instance = cfg.files
    assert instance.present and instance.error == "is a symlink (not followed)" and instance.entries == []
    assert cfg.instance == {} and "aws_secret_access_key" not in cfg.merged
    os.unlink(paths.instance_config)
    os.symlink(credentials, paths.ecs_config)
    assert Config.load({}, paths).merged["ECS_CLUSTER"] == "stolen"  # root's own file: followed
