"""The settings table (core/settings.py) is the one source: README, known keys, accessors and check derive from it."""

from __future__ import annotations

import logging
import os
import re

import pytest

from ecs_init.agent import config_problems
from ecs_init.core import settings
from ecs_init.core.config import Config
from ecs_init.core.known_keys import AGENT_KEYS, KNOWN_KEYS, OWN_KEYS
from ecs_init.core.paths import Paths
from ecs_init.ops import check_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "src", "ecs_init")


def _readme_table() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    match = re.search(r"<!-- settings-table:[^>]*-->\n(.*?)\n<!-- end settings-table -->", text, re.S)
    assert match, "the README has no generated settings table"
    return match.group(1)


def test_the_readme_reference_is_the_table() -> None:
    """Regenerate with: python -c 'from ecs_init.core import settings; print(settings.markdown_table())'."""
    assert _readme_table() == settings.markdown_table()


def test_names_are_unique_and_defaults_pass_their_own_rule() -> None:
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names)) == len(settings.BY_NAME)
    for setting in settings.SETTINGS:
        assert settings.validate(setting, setting.default) is None, setting.name
        if setting.kind in settings.NUMBER_KINDS:
            assert setting.low is not None and setting.high is not None and setting.low <= setting.default_number


def test_known_keys_are_the_agent_list_plus_the_table() -> None:
    assert set(OWN_KEYS) == {s.name for s in settings.SETTINGS} - set(AGENT_KEYS)
    assert {s.name for s in settings.SETTINGS} <= KNOWN_KEYS


def test_every_row_is_read_somewhere_and_nothing_reads_a_setting_by_string() -> None:
    code = ""
    for dirpath, _dirs, files in os.walk(SRC):
        for name in files:
            if name.endswith(".py") and name != "settings.py":
                with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                    code += fh.read()
    constants = {
        name for name, value in vars(settings).items() if isinstance(value, settings.Setting) and name.isupper()
    }
    unused = sorted(c for c in constants if not re.search(rf"\b(settings|S)\.{c}\b", code))
    assert unused == []
    assert not re.search(r"cfg\.(flag|seconds|count|text|raw)\(\s*\"", code)


@pytest.mark.parametrize(
    ("raw", "expected", "warned"),
    [("", 60.0, False), ("2.5", 2.5, False), ("-1", 60.0, True), ("nan", 60.0, True), ("inf", 60.0, True),
     ("1e400", 60.0, True), ("86401", 60.0, True), ("soon", 60.0, True)],
)  # fmt: skip
def test_numbers_out_of_range_fall_back_to_the_default_once(
    raw: str, expected: float, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = Config(paths=Paths(), environ={"ECS_INIT_LOCK_TIMEOUT": raw})
    with caplog.at_level(logging.WARNING):
        assert cfg.seconds(settings.LOCK_TIMEOUT) == expected
        assert cfg.seconds(settings.LOCK_TIMEOUT) == expected
    assert len(caplog.records) == (1 if warned else 0)
    if warned:
        assert caplog.records[0].getMessage().startswith(f"ECS_INIT_LOCK_TIMEOUT={raw!r} ")


def test_counts_are_whole_numbers() -> None:
    assert Config(paths=Paths(), environ={"ECS_INIT_ROLLBACK_FAILURES": "5"}).count(settings.ROLLBACK_FAILURES) == 5
    assert Config(paths=Paths(), environ={"ECS_INIT_ROLLBACK_FAILURES": "2.5"}).count(settings.ROLLBACK_FAILURES) == 3


def test_check_fails_what_start_would_replace(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = Config(
        paths=Paths(prefix=str(tmp_path)),
        environ={"ECS_INIT_ROLLBACK_FAILURES": "inf"},
        operator={"ECS_LOGLEVEL": "chatty", "ECS_INIT_BACKOFF_RESET_SECONDS": "30"},
    )
    found = [
        (c.status, c.details["key"], c.details["source"])
        for c in check_config.check_settings(config_problems.find(cfg))
    ]
    assert found == [
        ("FAIL", "ECS_LOGLEVEL", cfg.paths.ecs_config),
        ("FAIL", "ECS_INIT_ROLLBACK_FAILURES", "the process environment"),
    ]
    assert [c.status for c in check_config.check_settings(config_problems.find(Config(paths=Paths(), environ={})))] == [
        "PASS"
    ]


def test_text_settings_empty_means_default_and_choices_are_case_blind() -> None:
    cfg = Config(paths=Paths(), environ={"ECS_LOG_DRIVER": "", "ECS_LOGLEVEL": "DEBUG"})
    assert cfg.text(settings.LOG_DRIVER) == "json-file"
    assert Config(paths=Paths(), environ={"ECS_LOG_DRIVER": " "}).text(settings.LOG_DRIVER) == " "  # as Go reads it
    assert cfg.text(settings.LOGLEVEL) == "DEBUG"
