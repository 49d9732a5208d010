"""Hostile input to the env-file parser and reader (hypothesis)."""

from __future__ import annotations

import logging
import os
import tempfile

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ecs_init.core import settings as S
from ecs_init.core.config import Config
from ecs_init.core.envfile import MAX_CONFIG_BYTES, parse_env_text, read_env_file
from ecs_init.core.paths import Paths

FILE_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

line_chars = st.characters(codec="utf-8", exclude_characters="\n")
env_lines = st.lists(
    st.one_of(
        st.tuples(st.text(line_chars, max_size=20), st.text(line_chars, max_size=40)).map(
            lambda kv: f"{kv[0]}={kv[1]}"
        ),
        st.text(line_chars, max_size=40),
    ),
    max_size=30,
)


@given(st.text())
@example("\x00\x00=\x00")
@example("=value\n   =\nKEY")
@example("\ufeffKEY=value")
def test_parse_env_text_never_raises_and_yields_clean_pairs(text: str) -> None:
    parsed = parse_env_text(text)
    for key, value in parsed.items():
        assert key and key == key.strip()
        assert "=" not in key and "\n" not in key and "\n" not in value
        assert value == value.strip()


@given(env_lines)
def test_later_lines_win(lines: list[str]) -> None:
    parsed = parse_env_text("\n".join(lines))
    expected: dict[str, str] = {}
    for line in "\n".join(lines).strip().split("\n"):
        line = line.strip()
        if "=" in line:
            key, value = line.split("=", 1)
            if key.strip():
                expected[key.strip()] = value.strip()
    assert parsed == expected


@FILE_SETTINGS
@given(st.binary(max_size=4096))
@example(b"KEY=\xff\xfe\x00VALUE=1\n")
@example(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
def test_read_env_file_takes_any_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ecs.config")
        with open(path, "wb") as fh:
            fh.write(data)
        parsed = read_env_file(path)
    assert isinstance(parsed, dict)
    for key, value in parsed.items():
        assert isinstance(key, str) and isinstance(value, str)
        assert "\x00" not in key and "\x00" not in value


def test_huge_file_is_refused_with_a_message(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ecs.config"
    path.write_bytes(b"ECS_CLUSTER=big\n" + b"#" * MAX_CONFIG_BYTES)
    with caplog.at_level(logging.ERROR):
        assert read_env_file(str(path)) == {}
    assert "larger than" in caplog.text


def test_directory_is_refused_with_a_message(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.ERROR):
        assert read_env_file(str(tmp_path)) == {}
    assert "is a directory" in caplog.text


def test_symlink_to_a_device_is_refused(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "ecs.config"
    os.symlink("/dev/zero", link)
    with caplog.at_level(logging.ERROR):
        assert read_env_file(str(link)) == {}
    assert "not a regular file" in caplog.text


def test_fifo_does_not_hang(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "ecs.config"
    os.mkfifo(fifo)
    with caplog.at_level(logging.ERROR):
        assert read_env_file(str(fifo)) == {}  # before the fix: open() blocked forever
    assert "not a regular file" in caplog.text


def test_symlink_to_a_regular_file_elsewhere_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "shared.config"
    target.write_text("ECS_CLUSTER=linked\n")
    os.symlink(target, tmp_path / "ecs.config")
    assert read_env_file(str(tmp_path / "ecs.config")) == {"ECS_CLUSTER": "linked"}


def test_dangling_symlink_is_empty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    os.symlink(tmp_path / "nowhere", tmp_path / "ecs.config")
    assert read_env_file(str(tmp_path / "ecs.config")) == {}


@FILE_SETTINGS
@given(st.text(max_size=200), st.text(max_size=200))
def test_config_load_with_hostile_files(operator: str, instance: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = Paths(prefix=tmp)
        os.makedirs(os.path.dirname(paths.ecs_config))
        os.makedirs(os.path.dirname(paths.instance_config))
        with open(paths.ecs_config, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(operator)
        with open(paths.instance_config, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(instance)
        cfg = Config.load(environ={}, paths=paths)
        merged = cfg.merged
        assert isinstance(merged, dict)
        cfg.seconds(S.LOCK_TIMEOUT)
        cfg.flag(S.ENABLE_GPU_SUPPORT)
