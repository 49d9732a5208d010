"""Issue 14, items 5 and 7, over arbitrary input (hypothesis): what the agent container could write into the
supervisor's state or the events file never makes ``status`` or ``start``'s bookkeeping fail, and no human
output ever carries a raw control character."""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ecs_init.agent import events
from ecs_init.agent import state as supervisor_state
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.core.printable import escape_controls
from ecs_init.host.context import HostContext
from ecs_init.ops import status
from ecs_init.ops.report import printable

# Arbitrary JSON, numbers at their edges (huge, negative, fractional), strings with control characters.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_docs = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
)
state_fields = st.sampled_from(
    ["pid", "state", "restarts", "started_at", "updated_at", "last_exit_code", "upgrade", "container_id"]
)
state_docs = json_docs | st.dictionaries(state_fields, json_docs, max_size=8)
# What may be in the file as text, beyond what Python writes: NaN, Infinity, numbers past float range, deep nests.
raw_texts = st.sampled_from(
    [
        "NaN",
        '{"pid": NaN}',
        '{"pid": 1, "started_at": 1e20}',
        '{"pid": 100000000000000000000000}',
        '{"pid": 1e23, "started_at": -Infinity}',
        '{"started_at": 1e400, "updated_at": -1e400}',
        "[" * 5000,
        '{"upgrade": ' * 300 + "1" + "}" * 300,
        '{"state": "\\u001b]0;title\\u0007", "pid": true}',
    ]
)

UPGRADE_FIELDS = ("previous_image", "new_image", "started_at", "failures", "last_failure_at")
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _ctx(root: str) -> HostContext:
    paths = Paths(prefix=root)
    os.makedirs(paths.run_dir, exist_ok=True)
    os.makedirs(os.path.dirname(paths.events_file), exist_ok=True)
    return HostContext(cfg=Config.load({}, paths))


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as fh:
        fh.write(text)


def _assert_supervisor_part_is_sound(part: dict[str, Any]) -> None:
    """What status --json and the human report get: valid JSON (no NaN), each field usable or None."""
    json.dumps(part, allow_nan=False)
    pid = part["pid"]
    assert pid is None or (type(pid) is int and 1 <= pid <= supervisor_state.MAX_PID)
    assert part["alive"] is None or isinstance(part["alive"], bool)
    assert part["restarts"] is None or (type(part["restarts"]) is int and part["restarts"] >= 0)
    for key in ("started_at", "updated_at"):
        assert part[key] is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", part[key])
    assert part["state"] is None or part["state"] in {s.value for s in supervisor_state.SupervisorState}
    upgrade = part["upgrade"]
    assert upgrade is None or {"previous_image", "new_image"} <= set(upgrade) <= set(UPGRADE_FIELDS)


@settings(max_examples=300, deadline=None)
@given(doc=state_docs)
@example(doc={"pid": 1, "started_at": 1e20})
@example(doc={"pid": 10**23})
@example(doc={"pid": 1.0e23, "restarts": -1, "last_exit_code": 2**40})
def test_supervisor_state_parse_never_fails_and_marks_every_broken_field(doc: Any) -> None:
    fields, problems = supervisor_state.parse(doc)
    assert set(fields) == {"pid", "state", "restarts", "started_at", "updated_at", "last_exit_code", "upgrade"}
    if not isinstance(doc, dict):
        assert problems == ["does not hold a JSON object"]
        return
    for name, value in fields.items():
        given_value = doc.get(name)
        if given_value is not None and value is None:
            assert any(p.startswith(name + " ") for p in problems), (name, problems)


@settings(max_examples=150, deadline=None)
@given(doc=state_docs, raw=st.none() | raw_texts)
def test_status_supervisor_part_and_report_never_fail(doc: Any, raw: Any) -> None:
    with tempfile.TemporaryDirectory() as root:
        ctx = _ctx(root)
        text = raw if raw is not None else json.dumps(doc)
        _write(ctx.paths.supervisor_state, text)
        part = status.supervisor_part(ctx)
        _assert_supervisor_part_is_sound(part)
        broken = part["present"] and (part["error"] is not None)
        if raw is not None and raw.startswith("["):
            assert part["error"] and "nested" in part["error"]
        report = _minimal_report(part)
        human = printable(status.format_human(report))
        assert not CONTROL.search(human)
        if broken:
            assert "BROKEN:" in human


def _minimal_report(supervisor: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": "unknown",
        "docker": {"reachable": False, "error": "no"},
        "agent": {"container": "ecs-agent", "error": "Docker does not answer"},
        "supervisor": supervisor,
        "introspection": {"answering": False, "error": "no"},
        "cache": {
            "state_file": "/s",
            "state": None,
            "state_name": None,
            "state_file_reading": "is missing",
            "effective_state": 0,
            "effective_state_name": "uncached",
            "effective_reason": "the tarball is missing",
            "tarball": "/t",
            "tarball_present": False,
            "tarball_bytes": None,
            "desired_image": "\x1b[2Jx",
            "desired_image_error": None,
        },
        "last_event": {"event": "upgrade", "time": "t", "reason": "\x9b31m\x07"},
        "last_event_error": None,
        "host_network": {"route_localnet": None, "route_localnet_ok": None, "rules": [], "notes": []},
    }


@settings(max_examples=150, deadline=None)
@given(doc=json_docs, raw=st.none() | raw_texts)
def test_events_bookkeeping_never_fails_whatever_the_file_holds(doc: Any, raw: Any) -> None:
    with tempfile.TemporaryDirectory() as root:
        ctx = _ctx(root)
        _write(ctx.paths.events_file, raw if raw is not None else json.dumps(doc))
        assert isinstance(events.rolled_back_images(ctx), set)
        events.record_event(ctx, "upgrade-failed", reason="x")
        with open(ctx.paths.events_file) as fh:
            written = json.load(fh)
        assert isinstance(written, list) and written[-1]["event"] == "upgrade-failed"
        assert len(written) <= events.MAX_EVENTS
        json.dumps(written, allow_nan=False)
        _, error = status.last_event_part(ctx)
        assert error is None


@settings(max_examples=500, deadline=None)
@given(text=st.text())
@example(text="\x1b]0;title\x07\x9b2J\udcff\r\n\t\x7f")
def test_escaped_text_has_no_control_character_but_newlines(text: str) -> None:
    out = escape_controls(text)
    assert not CONTROL.search(out)
    out.encode("utf-8")  # a lone surrogate would make writing it fail
    assert out.count("\n") == text.count("\n")
    assert "\n" not in escape_controls(text, keep_newlines=False)
    if not CONTROL.search(text):
        assert out == text  # nothing but control characters is ever changed


@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=50))
def test_printable_text_is_left_alone(text: str) -> None:
    assert printable(text) == text


def test_a_watched_upgrade_keeps_its_usable_fields_and_names_the_broken_ones() -> None:
    upgrade = {"previous_image": "a", "new_image": "b", "started_at": "2026-01-01T00:00:00Z", "failures": 2}
    fields, problems = supervisor_state.parse({"upgrade": {**upgrade, "last_failure_at": 1e20}})
    assert fields["upgrade"] == upgrade and problems == ["upgrade last_failure_at unusable"]
    fields, problems = supervisor_state.parse({"upgrade": {"previous_image": "a", "new_image": 7}})
    assert fields["upgrade"] is None and problems == ["upgrade does not name its previous and new images"]
