"""No human-readable output of status, check or render shows Python's ``None``, a bare float clock
(a monotonic reading such as 2667.37) or a raw traceback, whatever the state files, the agent
container and the configuration hold (issue 20 item 8's property).

The generated text uses lower-case letters and a few signs only, so that a ``None`` or a float in
the output can only come from the program itself. Values outside what this program writes (huge
times, NaN) are issue 14's (malformed state) and are not generated here.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from typing import Any, Optional

from fakes import FakeEngine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecs_init.core.config import Config
from ecs_init.core.known_keys import BOOLEAN_KEYS, JSON_KEYS, KNOWN_KEYS
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext
from ecs_init.ops import check, check_config, render, status

# a float with at least two digits before the point, not part of a version or an address, without a unit
FLOAT_CLOCK = re.compile(r"(?<![\w.:/-])\d{2,}\.\d+(?![\w.])(?! ?(?:B|KiB|MiB|GiB|TiB)\b)")
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_ ", max_size=20)
NOW = 1_780_000_000.0
CHECKS = dict(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_the_float_clock_pattern() -> None:
    assert FLOAT_CLOCK.search('"upgrade": {"started": 2667.37}') and FLOAT_CLOCK.search("since 12345.678901")
    for fine in ("Docker API 1.41", "77.5 GiB free", "in 0.01s", "v1.105.1", "127.0.0.1:51678", "1.0 MiB", "0.5 s"):
        assert FLOAT_CLOCK.search(fine) is None, fine


def assert_for_people(text: str) -> None:
    assert "None" not in text, text
    assert "Traceback" not in text and 'File "' not in text, text
    assert FLOAT_CLOCK.search(text) is None, FLOAT_CLOCK.search(text)


def _maybe(strategy: Any) -> Any:
    return st.one_of(st.none(), strategy)


EPOCH = st.floats(min_value=1e9, max_value=2e9, allow_nan=False, allow_infinity=False)
MONOTONIC = st.floats(min_value=10.0, max_value=1e7, allow_nan=False, allow_infinity=False)
DOCKER_TIME = st.sampled_from(["2026-01-02T03:04:05.123456789Z", "0001-01-01T00:00:00Z", "", "garbage"])
SUPERVISOR = st.fixed_dictionaries(
    {},
    optional={
        "pid": _maybe(st.integers(min_value=-5, max_value=4_000_000)),
        "state": _maybe(WORDS),
        "started_at": _maybe(st.one_of(EPOCH, WORDS)),
        "updated_at": _maybe(EPOCH),
        "restarts": _maybe(st.integers(min_value=0, max_value=10_000)),
        "container_id": _maybe(WORDS),
        "last_exit_code": _maybe(st.integers(min_value=-3, max_value=255)),
        # the shapes this program wrote: the current one, and the monotonic one of earlier versions
        "upgrade": _maybe(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "previous_image": WORDS,
                        "new_image": WORDS,
                        "started": MONOTONIC,
                        "failures": st.lists(MONOTONIC, max_size=3),
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "previous_image": WORDS,
                        "new_image": WORDS,
                        "started_at": st.just("2026-01-02T03:04:05Z"),
                        "failures": st.integers(0, 9),
                        "last_failure_at": _maybe(WORDS),
                    }
                ),
            )
        ),
    },
)
EVENT = st.fixed_dictionaries(
    {"event": WORDS},
    optional={
        "time": _maybe(WORDS),
        "previous": _maybe(WORDS),
        "new": _maybe(WORDS),
        "downloaded": st.booleans(),
        "last_exit_code": _maybe(st.integers(-3, 255)),
        "tarball": WORDS,
    },
)
CONTAINER = _maybe(
    st.fixed_dictionaries(
        {
            "Id": WORDS,
            "Image": _maybe(WORDS),
            "Config": st.fixed_dictionaries({"Image": _maybe(WORDS)}),
            "State": st.fixed_dictionaries(
                {
                    "Running": st.booleans(),
                    "Status": _maybe(WORDS),
                    "ExitCode": _maybe(st.integers(-1, 255)),
                    "StartedAt": DOCKER_TIME,
                    "FinishedAt": DOCKER_TIME,
                },
            ),
        }
    )
)


def _write(path: str, text: Optional[str]) -> None:
    if text is None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)


@settings(**CHECKS)
@given(
    supervisor=_maybe(SUPERVISOR),
    events=_maybe(st.lists(EVENT, max_size=3)),
    container=CONTAINER,
    state_text=_maybe(st.sampled_from(["0", "1\n", "2\n", "3", "", "abc", " 7 x"])),
    tarball=st.booleans(),
    intro=st.fixed_dictionaries({"version": _maybe(WORDS), "cluster": _maybe(WORDS), "arn": _maybe(WORDS)}),
    route_localnet=_maybe(st.sampled_from(["0", "1"])),
    reachable=st.booleans(),
)
def test_status_human_output(
    supervisor: Any,
    events: Any,
    container: Any,
    state_text: Any,
    tarball: bool,
    intro: dict[str, Any],
    route_localnet: Any,
    reachable: bool,
) -> None:
    with tempfile.TemporaryDirectory() as root:
        paths = Paths(prefix=root)
        _write(paths.supervisor_state, None if supervisor is None else json.dumps(supervisor))
        _write(paths.events_file, None if events is None else json.dumps(events))
        _write(paths.cache_state, state_text)
        _write(paths.cache_tarball, "x" if tarball else None)
        engine = FakeEngine()
        if container is not None:
            engine.containers["ecs-agent"] = container
        ctx = HostContext(cfg=Config(paths=paths, environ={}), docker_factory=lambda: engine)
        event, event_error = status.last_event_part(ctx)
        doc: dict[str, Any] = {
            "time": "2026-01-01T00:00:00Z",
            "docker": {
                "reachable": reachable,
                "host": "unix:///x",
                "version": None,
                "api_version": None,
                "server_api_version": None,
                "error": None if reachable else "Docker does not answer",
            },
            "agent": status.agent_part(engine if reachable else None, NOW),
            "supervisor": status.supervisor_part(ctx),
            "introspection": {
                "url": "http://127.0.0.1:51678/v1/metadata",
                "answering": intro["version"] is not None,
                "version": intro["version"],
                "cluster": intro["cluster"],
                "container_instance_arn": intro["arn"],
                "error": "it does not answer",
            },
            "cache": status.cache_part(ctx),
            "last_event": event,
            "last_event_error": event_error,
            "host_network": {
                "route_localnet": route_localnet,
                "route_localnet_ok": None if route_localnet is None else route_localnet == "1",
                "rules": [],
                "notes": [],
            },
        }
        code, summary = status.verdict(doc)
        doc.update(exit_code=int(code), summary=summary)
        assert_for_people(status.format_human(doc))
        assert FLOAT_CLOCK.search(json.dumps(doc["supervisor"])) is None  # --json: no monotonic reading either


KEYS = st.one_of(
    st.sampled_from(sorted(KNOWN_KEYS)),
    st.sampled_from(sorted(BOOLEAN_KEYS)),
    st.sampled_from(sorted(JSON_KEYS)),
    st.from_regex(r"[A-Z_]{1,12}", fullmatch=True),
)
VALUES = st.one_of(
    st.sampled_from(
        [
            "true",
            "false",
            "yes",
            "1",
            "True",
            "",
            "{}",
            "[22,",
            '{"a":"b"}',
            "[]",
            "inf",
            "-5",
            '{"splunk-token":"abcd"}',
            "json-file",
            "loki",
        ]
    ),
    st.text(alphabet='abcdefghijklmnopqrstuvwxyz{}[]":,', max_size=20),
)
LINES = st.lists(
    st.one_of(st.tuples(KEYS, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"), WORDS, st.just("# a comment")),
    max_size=12,
)


@settings(**CHECKS)
@given(operator=_maybe(LINES), instance=_maybe(LINES))
def test_check_and_render_human_output(operator: Any, instance: Any) -> None:
    with tempfile.TemporaryDirectory() as root:
        paths = Paths(prefix=root)
        _write(paths.ecs_config, None if operator is None else "\n".join(operator) + "\n")
        _write(paths.instance_config, None if instance is None else "\n".join(instance) + "\n")
        cfg = Config.load(environ={"ECS_INIT_PATH_PREFIX": root, "DOCKER_HOST": "unix:///nonexistent.sock"})
        started = time.monotonic()
        checks = check_config.config_checks(cfg)
        assert_for_people(check.format_human(check.report(checks, time.monotonic() - started)))
        doc = render.render(HostContext(cfg=cfg), api_version="1.41")
        assert_for_people(render.format_human(doc))
