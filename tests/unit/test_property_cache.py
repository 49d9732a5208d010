"""Hostile input to the cache state file and the desired-image locator (hypothesis)."""

from __future__ import annotations

import os
import tempfile
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ecs_init.agent.cache import STATE_UNCACHED, parse_state, read_state, resolve_desired_image
from ecs_init.core.errors import InitError
from ecs_init.core.paths import Paths

FILE_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@given(st.text())
@example("1\x00")
@example("0x1")
@example("１")  # a full-width digit: int() accepts it
@example("9" * 5000)
@example(" 2 \n")
def test_parse_state_is_always_a_uint8(text: str) -> None:
    """Any text parses to 0..255 (Go: a uint8); only text that starts with digits is not uncached."""
    value = parse_state(text)
    assert 0 <= value <= 255
    if value != STATE_UNCACHED:
        assert text.lstrip(" \t")[:1].isdigit()


@FILE_SETTINGS
@given(state=st.binary(max_size=200), tarball=st.binary(max_size=8))
@example(state=b"1", tarball=b"")
@example(state=b"1" + b" " * 100, tarball=b"x")
@example(state=b"\xff\xfe1", tarball=b"x")
def test_read_state_takes_any_bytes(state: bytes, tarball: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(prefix=tmp)
        os.makedirs(paths.cache_dir)
        with open(paths.cache_state, "wb") as fh:
            fh.write(state)
        with open(paths.cache_tarball, "wb") as fh:
            fh.write(tarball)
        result = read_state(paths)
    assert 0 <= result <= 255
    if not tarball:
        assert result == STATE_UNCACHED


@pytest.mark.parametrize("kind", ["directory", "dangling", "huge"])
def test_read_state_of_odd_files_is_uncached(tmp_path, kind: str) -> None:  # type: ignore[no-untyped-def]
    paths = Paths(prefix=str(tmp_path))
    os.makedirs(paths.cache_dir)
    with open(paths.cache_tarball, "wb") as fh:
        fh.write(b"tar")
    if kind == "directory":
        os.makedirs(paths.cache_state)
    elif kind == "dangling":
        os.symlink(str(tmp_path / "nowhere"), paths.cache_state)
    else:
        with open(paths.cache_state, "wb") as fh:
            fh.write(b"1" + b"\n" * (2 * 1024 * 1024))
    assert read_state(paths) == STATE_UNCACHED


def _run_bounded(func, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    """Run ``func`` in a thread; return (finished, result-or-exception)."""
    box: list[object] = []

    def target() -> None:
        try:
            box.append(func())
        except BaseException as err:  # noqa: BLE001 - reported to the test
            box.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive()), (box[0] if box else None)


def test_read_state_of_a_fifo_does_not_hang(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Paths(prefix=str(tmp_path))
    os.makedirs(paths.cache_dir)
    with open(paths.cache_tarball, "wb") as fh:
        fh.write(b"tar")
    os.mkfifo(paths.cache_state)
    try:
        finished, result = _run_bounded(lambda: read_state(paths))
        assert finished and result == STATE_UNCACHED
    finally:
        # unblock the stuck reader, if any
        fd = os.open(paths.cache_state, os.O_WRONLY | os.O_NONBLOCK) if not finished else -1
        if fd >= 0:
            os.close(fd)


# ---------------------------------------------------------------- desired-image

name_chars = st.sampled_from(list("ab.-_/\\\x00\n \t~*") + ["..", "../", "/etc/passwd", "evil", "\u202e", "é"])
names = st.lists(name_chars, min_size=0, max_size=12).map("".join)

# Entries that can exist in the cache dir: regular files, directories and
# symlinks pointing inside, outside, to a directory, or nowhere.
ENTRIES = {
    "good.tar": "file",
    "sub": "dir",
    "link-in.tar": "link:good.tar",
    "link-out.tar": "link:{outside}/secret.tar",
    "link-out-dir": "link:{outside}",
    "link-up.tar": "link:../outside/secret.tar",
    "link-dangling.tar": "link:nowhere.tar",
    "link-root": "link:/",
    "link-loop": "link:link-loop",
}


def _make_cache(root: str) -> Paths:
    paths = Paths(prefix=os.path.join(root, "p"))
    os.makedirs(paths.cache_dir)
    outside = os.path.join(root, "p", "var", "cache", "outside")
    os.makedirs(outside)
    with open(os.path.join(outside, "secret.tar"), "wb") as fh:
        fh.write(b"outside")
    for name, kind in ENTRIES.items():
        path = os.path.join(paths.cache_dir, name)
        if kind == "file":
            with open(path, "wb") as fh:
                fh.write(b"tar")
        elif kind == "dir":
            os.makedirs(path)
            with open(os.path.join(path, "nested.tar"), "wb") as fh:
                fh.write(b"tar")
        else:
            os.symlink(kind[5:].format(outside=outside), path)
    return paths


def _check_locator(paths: Paths, content: bytes) -> None:
    with open(paths.desired_image, "wb") as fh:
        fh.write(content)
    try:
        found = resolve_desired_image(paths)
    except InitError as err:
        assert str(err) and "\n" not in str(err)
        return
    cache_real = os.path.realpath(paths.cache_dir)
    real = os.path.realpath(found)
    assert real.startswith(cache_real + os.sep), (content, found, real)
    assert os.path.isfile(real)
    first = content.decode("utf-8", errors="replace").split("\n", 1)[0].strip()
    assert "/" not in first and "\x00" not in first  # only a bare name is ever accepted
    assert os.path.realpath(os.path.join(paths.cache_dir, first)) == real


@FILE_SETTINGS
@given(st.one_of(names, st.sampled_from(sorted(ENTRIES))), st.sampled_from(["", "\n", "\nsecond-line", " \n"]))
@example("good.tar", "\n")
@example("link-out.tar", "")
@example("link-out-dir/secret.tar", "")
@example("../outside/secret.tar", "")
@example("sub/nested.tar", "")
@example("sub", "")
@example("link-up.tar", "")
@example("link-root", "")
@example("link-loop", "")
@example("good.tar\x00../../etc/passwd", "")
def test_resolve_desired_image_never_escapes_the_cache_dir(name: str, tail: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _make_cache(tmp)
        _check_locator(paths, (name + tail).encode("utf-8", errors="surrogatepass"))


@FILE_SETTINGS
@given(st.binary(max_size=6000))
@example(b"\xff\xfegood.tar")
@example(b"good.tar" + b"A" * 5000)
def test_resolve_desired_image_takes_any_bytes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = _make_cache(tmp)
        _check_locator(paths, content)


def test_resolve_accepts_a_plain_name_and_an_inside_link(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = _make_cache(str(tmp_path))
    for name in ("good.tar", "link-in.tar"):
        with open(paths.desired_image, "w") as fh:
            fh.write(name + "\n")
        assert resolve_desired_image(paths) == os.path.realpath(os.path.join(paths.cache_dir, "good.tar"))


@pytest.mark.parametrize("name", ["link-out.tar", "link-up.tar", "link-out-dir", "link-root", "../outside/secret.tar"])
def test_resolve_refuses_escapes_with_a_clear_message(tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    paths = _make_cache(str(tmp_path))
    with open(paths.desired_image, "w") as fh:
        fh.write(name)
    with pytest.raises(InitError, match="refusing desired image|does not exist"):
        resolve_desired_image(paths)


def test_desired_image_that_is_a_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = _make_cache(str(tmp_path))
    os.makedirs(paths.desired_image)
    with pytest.raises(InitError, match="not a regular file"):
        resolve_desired_image(paths)


def test_desired_image_locator_that_is_a_fifo_does_not_hang(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = _make_cache(str(tmp_path))
    os.mkfifo(paths.desired_image)
    finished, result = _run_bounded(lambda: resolve_desired_image(paths))
    assert finished and isinstance(result, InitError) and "not a regular file" in str(result)
