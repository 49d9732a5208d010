"""Hostile input to the agent labels and log options (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ecs_init.agent.spec import SUPPORTED_LOG_DRIVERS, build_log_config, parse_labels
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
json_texts = st.one_of(json_values.map(json.dumps), st.text(max_size=200))

DEEP = ["[" * 100_000, '{"a":' * 100_000, "[" * 5000 + "]" * 5000]


@given(json_texts)
@example("")
@example("   ")
@example("null")
@example('{"a": 1}')
@example('{"a": "b", "a": "c"}')
@example('{"\\ud800": "x"}')
@example("1" * 5000)
@example("NaN")
def test_parse_labels_never_raises(raw: str) -> None:
    labels, error = parse_labels(raw)
    assert isinstance(labels, dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    if error is not None:
        assert labels == {} and "\n" not in error and error.startswith("ECS_AGENT_LABELS")
    else:
        assert labels == ({} if not raw.strip() else json.loads(raw))


@pytest.mark.parametrize("raw", DEEP, ids=["array", "object", "balanced"])
def test_parse_labels_deep_nesting(raw: str) -> None:
    labels, error = parse_labels(raw)
    assert labels == {} and error


def _cfg(**env: str) -> Config:
    return Config(paths=Paths(), environ=dict(env))


@given(
    driver=st.one_of(st.sampled_from(("", *SUPPORTED_LOG_DRIVERS, "none", "JSON-FILE")), st.text(max_size=20)),
    opts=st.one_of(st.just(""), json_texts),
    size=st.text(max_size=10),
    num=st.text(max_size=10),
)
@example(driver="awslogs", opts='{"awslogs-group": 5, "x": null, "y": [1]}', size="", num="")
@example(driver="json-file", opts="[]", size="1g", num="x")
@example(driver="bogus", opts='{"a":"b"}', size="", num="")
def test_build_log_config_never_raises(driver: str, opts: str, size: str, num: str) -> None:
    env = {"ECS_LOG_DRIVER": driver, "ECS_LOG_OPTS": opts}
    if size:
        env["ECS_INIT_DOCKER_LOG_FILE_SIZE"] = size
    if num:
        env["ECS_INIT_DOCKER_LOG_FILE_NUM"] = num
    warnings: list[str] = []
    config = build_log_config(_cfg(**env), warnings)
    assert set(config) == {"Type", "Config"}
    assert config["Type"] in SUPPORTED_LOG_DRIVERS
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in config["Config"].items())
    assert all(isinstance(w.text, str) and "\n" not in w.text for w in warnings)
    if driver and driver not in SUPPORTED_LOG_DRIVERS:
        assert config["Type"] == "json-file" and warnings
    if driver in ("", "json-file") and not opts:
        assert config["Config"] == {"max-size": size or "16m", "max-file": num or "4"}


@pytest.mark.parametrize("raw", DEEP, ids=["array", "object", "balanced"])
def test_build_log_config_deep_nesting(raw: str) -> None:
    warnings: list[str] = []
    config = build_log_config(_cfg(ECS_LOG_DRIVER="json-file", ECS_LOG_OPTS=raw), warnings)
    assert config["Type"] == "json-file" and warnings
