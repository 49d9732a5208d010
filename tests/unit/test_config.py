from __future__ import annotations

import os

import pytest

from ecs_init.config import (
    Config,
    Paths,
    parse_bool,
    parse_env_text,
    read_env_file,
    version_tuple,
)


def test_paths_without_prefix_are_the_real_ones() -> None:
    p = Paths()
    assert p.ecs_config == "/etc/ecs/ecs.config"
    assert p.ecs_config_json == "/etc/ecs/ecs.config.json"
    assert p.instance_config == "/var/lib/ecs/ecs.config"
    assert p.data_dir == "/var/lib/ecs/data"
    assert p.init_log == "/var/log/ecs/ecs-init.log"
    assert p.log_dir == "/var/log/ecs"
    assert p.cache_tarball == "/var/cache/ecs/ecs-agent.tar"
    assert p.cache_state == "/var/cache/ecs/state"
    assert p.desired_image == "/var/cache/ecs/desired-image"
    assert p.ebs_dir == "/mnt/ecs/ebs"
    assert p.gpu_info == "/var/lib/ecs/gpu/nvidia-gpu-info.json"


def test_paths_under_prefix() -> None:
    p = Paths.from_env({"ECS_INIT_PATH_PREFIX": "/tmp/x/"})
    assert p.ecs_config == "/tmp/x/etc/ecs/ecs.config"
    assert p.cache_state == "/tmp/x/var/cache/ecs/state"
    assert p.ebs_dir == "/tmp/x/mnt/ecs/ebs"


def test_env_parsing_rules() -> None:
    text = "\n\n  A=1  \nnoequals\nB = two=2\n=empty\n#C=3\n  D=\nA=override\n"
    assert parse_env_text(text) == {"A": "override", "B": "two=2", "#C": "3", "D": ""}


def test_missing_file_is_empty(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert read_env_file(str(tmp_path / "nope")) == {}


def test_binary_and_huge_files(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    binary = tmp_path / "bin"
    binary.write_bytes(b"ECS_CLUSTER=a\x00\xff\xfeB=2\n")
    assert read_env_file(str(binary))["ECS_CLUSTER"] == "a"
    huge = tmp_path / "huge"
    huge.write_bytes(b"A=" + b"x" * (2 * 1024 * 1024))
    assert read_env_file(str(huge)) == {}
    assert "larger than" in caplog.text
    assert read_env_file(str(tmp_path)) == {}  # a directory


def test_merge_order_operator_wins(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = Paths(prefix=str(tmp_path))
    os.makedirs(tmp_path / "etc/ecs")
    os.makedirs(tmp_path / "var/lib/ecs")
    (tmp_path / "var/lib/ecs/ecs.config").write_text("A=instance\nB=instance\n")
    (tmp_path / "etc/ecs/ecs.config").write_text("B=operator\nC=operator\n")
    cfg = Config.load({"C": "process"}, paths)
    assert cfg.merged == {"A": "instance", "B": "operator", "C": "operator"}
    # own settings: process env first, then the merged files
    assert cfg.setting("C") == "process"
    assert cfg.setting("B") == "operator"
    assert cfg.setting("Z", "dflt") == "dflt"


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(value: str) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(value: str) -> None:
    assert parse_bool(value) is False


@pytest.mark.parametrize("value", ["yes", "tRUE", "", " true", "2"])
def test_parse_bool_invalid(value: str) -> None:
    assert parse_bool(value) is None


def test_flag_unparsable_is_false_and_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    cfg = Config(paths=Paths(), environ={"ECS_SKIP_LOCALHOST_TRAFFIC_FILTER": "yes"})
    assert cfg.flag("ECS_SKIP_LOCALHOST_TRAFFIC_FILTER") is False
    assert "not a boolean" in caplog.text
    assert cfg.flag("ECS_ALLOW_OFFHOST_INTROSPECTION_ACCESS") is False  # unset


def test_version_tuple() -> None:
    assert version_tuple("1.41") < version_tuple("1.44")
    assert version_tuple("1.9") < version_tuple("1.25")
    assert version_tuple("junk") == (0,)
