"""The desired-image locator (SPEC §5): a bare file name inside the cache dir, nothing else."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_init.agent.cache import resolve_desired_image
from ecs_init.core.errors import InitError
from ecs_init.core.paths import Paths


@pytest.fixture
def paths(tmp_path) -> Paths:  # type: ignore[no-untyped-def]
    root = str(tmp_path / "root")
    os.makedirs(os.path.join(root, "var/cache/ecs"))
    return Paths(prefix=root)


def put(path: str, data: bytes = b"tarball") -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def locate(paths: Paths, text: str | bytes) -> str:
    put(paths.desired_image, text.encode() if isinstance(text, str) else text)
    return resolve_desired_image(paths)


def refused(paths: Paths, text: str | bytes) -> str:
    with pytest.raises(InitError) as caught:
        locate(paths, text)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------ accepted


@pytest.mark.parametrize(
    "text",
    [
        "ecs-agent-v1.106.0.tar",
        "ecs-agent-v1.106.0.tar\n",
        "ecs-agent-v1.106.0.tar\r\n",
        "  ecs-agent-v1.106.0.tar  \n",
        "ecs-agent-v1.106.0.tar\n/etc/passwd\n../other\n",
    ],
)
def test_first_line_names_a_tarball_in_the_cache_dir(paths: Paths, text: str) -> None:
    tarball = put(os.path.join(paths.cache_dir, "ecs-agent-v1.106.0.tar"))
    assert locate(paths, text) == os.path.realpath(tarball)


def test_names_that_merely_contain_dots_are_fine(paths: Paths) -> None:
    tarball = put(os.path.join(paths.cache_dir, "..ecs-agent..tar"))
    assert locate(paths, "..ecs-agent..tar") == os.path.realpath(tarball)


def test_symlink_to_another_file_inside_the_cache_dir_is_followed(paths: Paths) -> None:
    real = put(os.path.join(paths.cache_dir, "ecs-agent-v1.106.0.tar"))
    os.symlink("ecs-agent-v1.106.0.tar", os.path.join(paths.cache_dir, "latest.tar"))
    # the resolved path is returned: what is loaded is what was checked
    assert locate(paths, "latest.tar\n") == os.path.realpath(real)


def test_cache_dir_reached_through_a_symlink(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """/var/cache/ecs may itself be a symlink (e.g. to a bigger disk)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    root = tmp_path / "root"
    (root / "var/cache").mkdir(parents=True)
    os.symlink(str(disk), str(root / "var/cache/ecs"))
    paths = Paths(prefix=str(root))
    put(str(disk / "ecs-agent-v2.tar"))
    assert locate(paths, "ecs-agent-v2.tar") == os.path.realpath(str(disk / "ecs-agent-v2.tar"))


# ------------------------------------------------------------ refused


@pytest.mark.parametrize(
    "text",
    [
        "/var/cache/ecs/ecs-agent.tar",
        "/etc/passwd",
        "../x",
        "../ecs/ecs-agent.tar",
        "sub/ecs-agent.tar",
        "./ecs-agent.tar",
        "..",
        ".",
        "ecs-agent\\..\\x.tar",
        "ecs-agent\x00.tar",
    ],
)
def test_anything_but_a_bare_file_name_is_refused(paths: Paths, text: str) -> None:
    # make every target exist so only the rule can refuse it
    os.makedirs(os.path.join(paths.cache_dir, "sub"), exist_ok=True)
    put(os.path.join(paths.cache_dir, "sub", "ecs-agent.tar"))
    put(os.path.join(paths.cache_dir, "ecs-agent.tar"))
    put(os.path.join(os.path.dirname(paths.cache_dir), "x"))
    message = refused(paths, text + "\n")
    assert "refusing desired image" in message
    assert paths.cache_dir in message


@pytest.mark.parametrize("text", ["", "\n", "   \n", "\necs-agent.tar\n", "\r\n"])
def test_empty_first_line_is_refused(paths: Paths, text: str) -> None:
    put(os.path.join(paths.cache_dir, "ecs-agent.tar"))
    assert "is empty" in refused(paths, text)


def test_missing_locator_is_refused(paths: Paths) -> None:
    with pytest.raises(InitError, match="cannot read the desired-image locator"):
        resolve_desired_image(paths)


def test_missing_tarball_is_refused(paths: Paths) -> None:
    assert "does not exist" in refused(paths, "ecs-agent-v9.tar\n")


def test_symlink_leading_out_of_the_cache_dir_is_refused(paths: Paths, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = put(str(tmp_path / "elsewhere.tar"))
    os.symlink(outside, os.path.join(paths.cache_dir, "ecs-agent-v2.tar"))
    message = refused(paths, "ecs-agent-v2.tar\n")
    assert "resolves outside" in message


def test_relative_symlink_climbing_out_is_refused(paths: Paths) -> None:
    put(os.path.join(os.path.dirname(paths.cache_dir), "up.tar"))
    os.symlink("../up.tar", os.path.join(paths.cache_dir, "ecs-agent-v2.tar"))
    assert "resolves outside" in refused(paths, "ecs-agent-v2.tar")


def test_symlink_chain_leading_out_is_refused(paths: Paths, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outside = put(str(tmp_path / "elsewhere.tar"))
    os.symlink(outside, os.path.join(paths.cache_dir, "b.tar"))
    os.symlink("b.tar", os.path.join(paths.cache_dir, "a.tar"))
    assert "resolves outside" in refused(paths, "a.tar")


def test_symlink_to_the_cache_dir_itself_is_refused(paths: Paths) -> None:
    os.symlink(".", os.path.join(paths.cache_dir, "loop"))
    assert "refusing desired image" in refused(paths, "loop")


def test_directory_is_refused(paths: Paths) -> None:
    os.makedirs(os.path.join(paths.cache_dir, "ecs-agent-v2.tar"))
    assert "not a regular file" in refused(paths, "ecs-agent-v2.tar")


def test_fifo_tarball_is_refused(paths: Paths) -> None:
    os.mkfifo(os.path.join(paths.cache_dir, "ecs-agent-v2.tar"))
    assert "not a regular file" in refused(paths, "ecs-agent-v2.tar")


def test_fifo_locator_is_refused_without_hanging(paths: Paths) -> None:
    os.mkfifo(paths.desired_image)
    with pytest.raises(InitError, match="not a regular file"):
        resolve_desired_image(paths)


# ------------------------------------------------------------ property


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_locator_content_is_confined_or_refused(tmp_path_factory, content: bytes) -> None:  # type: ignore[no-untyped-def]
    root = str(tmp_path_factory.mktemp("prop"))
    paths = Paths(prefix=root)
    os.makedirs(paths.cache_dir)
    put(os.path.join(os.path.dirname(paths.cache_dir), "x"))
    put(os.path.join(paths.cache_dir, "ecs-agent.tar"))
    put(paths.desired_image, content)
    try:
        found = resolve_desired_image(paths)
    except InitError as err:
        assert "\n" not in str(err)
        return
    cache_real = os.path.realpath(paths.cache_dir)
    assert os.path.dirname(found) == cache_real
    assert os.path.isfile(found)
