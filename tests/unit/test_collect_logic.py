"""The pure parts of ``collect``: durations, log selection, the size-bounded bundle, secret scrubbing."""

from __future__ import annotations

import calendar
import json
import os
import stat
import tarfile
import time
from typing import Any

import pytest
from fakes import FakeEngine
from hypothesis import given, settings
from hypothesis import strategies as st

from ecs_init.core import redact
from ecs_init.docker.api import LogLine
from ecs_init.docker.errors import EngineError, EngineUnavailable
from ecs_init.ops import bundle, collect_host, collect_sources, logsel
from ecs_init.ops.collect_redact import redact_container, redact_env_text, scrub
from ecs_init.ops.collect_sources import Item

T0 = calendar.timegm((2026, 11, 27, 12, 0, 0, 0, 0, 0))


def stamp(offset: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + offset))


# ---------------------------------------------------------------- --since


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800), ("45s", 45), ("1.5h", 5400), (" 7D ", 604800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert logsel.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "0h", "-1h", "1w", "1h 30m", "1hh", "x24h", "9" * 40 + "h"])
def test_not_durations(text: str) -> None:
    assert logsel.parse_duration(text) is None


# ---------------------------------------------------------------- log records


@pytest.mark.parametrize(
    "line",
    [
        b'level=info time=2026-11-27T12:00:00Z msg="pre-start"',
        b"2026-11-27T12:00:00Z [INFO] Loading configuration",
        b'{"level":"info","time":"2026-11-27T12:00:00.123456Z","msg":"x"}',
        b"2026-11-27T14:00:00+02:00 [INFO] local time",
        b"2026-11-27 12:00:00,5 no zone counts as UTC",
    ],
)
def test_line_time_formats(line: bytes) -> None:
    assert logsel.line_time(line) == T0


def test_line_time_far_into_the_line_or_absent() -> None:
    assert logsel.line_time(b"x" * 200 + b" 2026-11-27T12:00:00Z") is None
    assert logsel.line_time(b"    at goroutine 7 [running]:") is None
    assert logsel.line_time(b"9999-99-99T99:99:99Z garbage") is None


def test_select_since_keeps_new_records_and_their_continuation_lines() -> None:
    data = (
        f"level=info time={stamp(-7200)} msg=old\n"
        "   old continuation\n"
        f"level=info time={stamp(-60)} msg=new\n"
        "   new continuation\n"
        f"level=info time={stamp(-30)} msg=newer\n"
    ).encode()
    kept = logsel.select_since(data, T0 - 3600, mtime=T0)
    assert kept.decode().splitlines() == [
        f"level=info time={stamp(-60)} msg=new",
        "   new continuation",
        f"level=info time={stamp(-30)} msg=newer",
    ]


def test_lines_before_the_first_timestamp_follow_the_file_time() -> None:
    data = b"no time here\n" + f"t {stamp(-10)} x\n".encode()
    assert logsel.select_since(data, T0 - 60, mtime=T0).startswith(b"no time here")
    assert not logsel.select_since(b"no time at all\n", T0 - 60, mtime=T0 - 120)


def test_newest_lines_cut_at_a_line_boundary() -> None:
    data = b"one\ntwo\nthree\n"
    assert logsel.newest_lines(data, 100) == data
    assert logsel.newest_lines(data, 8) == b"three\n"
    assert logsel.newest_lines(b"x" * 50, 10) == b""


def test_read_tail(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ecs-init.log"
    path.write_bytes(b"".join(b"line %05d\n" % i for i in range(1000)))
    tail = logsel.read_tail(str(path), 100)
    assert tail.truncated and tail.size == 11000
    assert tail.data.startswith(b"line 00991\n") and tail.data.endswith(b"line 00999\n")
    whole = logsel.read_tail(str(path), 1 << 20)
    assert not whole.truncated and len(whole.data) == 11000


def test_read_tail_refuses_symlinks_fifos_and_directories(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hash")
    os.symlink(secret, tmp_path / "ecs-agent.log")
    os.mkfifo(tmp_path / "ecs-init.log")
    os.mkdir(tmp_path / "ecs-volume-plugin.log")
    for name in ("ecs-agent.log", "ecs-init.log", "ecs-volume-plugin.log"):
        with pytest.raises(OSError):
            logsel.read_tail(str(tmp_path / name), 1000)


def test_log_files_current_first_then_newest_rotation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name, age in (("ecs-init.log", 50), ("ecs-init.log.a", 10), ("ecs-init.log.b", 5), ("ecs-init.logx", 1),
                      ("ecs-agent.log", 1)):  # fmt: skip
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (T0 - age, T0 - age))
    found = [os.path.basename(p) for p, _ in logsel.log_files(str(tmp_path), "ecs-init.log")]
    assert found == ["ecs-init.log", "ecs-init.log.b", "ecs-init.log.a"]
    assert logsel.log_files(str(tmp_path / "missing"), "ecs-init.log") == []


# ---------------------------------------------------------------- the bundle


def members(path: str) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        out = {}
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            assert fh is not None
            out[m.name] = fh.read()
        return out


def test_bundle_is_atomic_private_and_complete(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "b.tar.gz")
    with bundle.Bundle(target, "top", now=T0) as b:
        assert not os.path.exists(target)
        assert b.add("a.txt", b"hello\n") == (6, "")
        size = b.commit(b"{}\n")
    assert os.path.getsize(target) == size
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert members(target) == {"top/a.txt": b"hello\n", "top/manifest.json": b"{}\n"}
    assert sorted(os.listdir(tmp_path)) == ["b.tar.gz"]


def test_an_aborted_bundle_leaves_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "b.tar.gz")
    with pytest.raises(RuntimeError), bundle.Bundle(target, "top") as b:
        b.add("a.txt", b"x" * 1000)
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_the_size_limit_holds_for_incompressible_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    limit = 5 * 1024 * 1024
    target = str(tmp_path / "b.tar.gz")
    noise = [os.urandom(1024 * 1024) for _ in range(6)]
    notes = []
    with bundle.Bundle(target, "top", limit=limit) as b:
        for i, blob in enumerate(noise):
            notes.append(b.add(f"noise{i}.bin", blob, keep_newest=False))
        b.commit(json.dumps({"notes": notes}).encode())
    assert os.path.getsize(target) <= limit
    stored = members(target)
    assert stored["top/noise0.bin"] == noise[0] and stored["top/noise1.bin"] == noise[1]
    assert any(n.startswith("cut to") for _, n in notes)
    assert notes[-1] == (0, "left out: the bundle reached its 5 MB limit")


def test_compressible_logs_fit_far_beyond_the_limit_uncompressed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Each member gets the room left after what is already compressed: 10 MiB of logs fit in 5 MB."""
    limit = 5 * 1024 * 1024
    target = str(tmp_path / "b.tar.gz")
    log = b"".join(b'level=info time=2026-11-27T12:00:00Z msg="tick %d"\n' % i for i in range(40000))
    assert len(log) > 2 * 1024 * 1024
    with bundle.Bundle(target, "top", limit=limit) as b:
        for i in range(5):
            assert b.add(f"logs/ecs-init.log.{i}", log) == (len(log), "")
        b.commit(b"{}")
    assert os.path.getsize(target) < limit < 5 * len(log)


# ---------------------------------------------------------------- secrets


def test_scrub_by_key_in_free_text() -> None:
    text = (
        'msg="env ECS_DB_PASSWORD=pw-91be" other=1\n'
        '{"splunk-token": "abc", "x": "y"}\n'
        "export MY_SECRET_KEY=short; echo done\n"
        "token refreshed, next in 5m\n"
    )
    assert scrub(text) == (
        'msg="env ECS_DB_PASSWORD=<redacted>" other=1\n'
        '{"splunk-token": "<redacted>", "x": "y"}\n'
        "export MY_SECRET_KEY=<redacted>; echo done\n"
        "token refreshed, next in 5m\n"
    )


def test_scrub_by_key_any_case_and_next_to_other_text() -> None:
    mixed = '{"Splunk-Token":"abc","My_Password": 42}'
    assert scrub(mixed) == '{"Splunk-Token":"<redacted>","My_Password": <redacted>}'
    assert scrub("a=1&db_password=hunter2&b=2") == "a=1&db_password=<redacted>&b=2"
    assert scrub("ECS_ENGINE_AUTH_DATA=x TOKENS: none") == "ECS_ENGINE_AUTH_DATA=<redacted> TOKENS: none"
    auth = 'env ECS_ENGINE_AUTH_DATA={"https://r.example/":{"auth":"dXNlcjpwYXNz","email":"a@b"}} next=1\nline 2'
    assert scrub(auth) == "env ECS_ENGINE_AUTH_DATA=<redacted> next=1\nline 2"
    assert scrub('X_TOKEN={"unterminated": "abc\nline 2') == "X_TOKEN=<redacted>\nline 2"


def test_scrub_is_linear_on_long_words() -> None:
    """Base64 and hex blobs (long runs of key characters) once made the key pattern backtrack for seconds."""
    import base64

    blob = "\n".join(base64.b64encode(os.urandom(3000)).decode() for _ in range(1700))  # about 7 MB
    started = time.monotonic()
    assert scrub(blob + "\nAPI_TOKEN=abc") == blob + "\nAPI_TOKEN=<redacted>"
    assert time.monotonic() - started < 3


def test_scrub_uses_registered_values_and_url_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact, "_values", set())  # this test's secrets only, and none left behind
    redact.register_secrets({"ECS_PLANTED_TOKEN": "tok-unit-3f9a"})
    assert scrub("the agent said tok-unit-3f9a twice: tok-unit-3f9a") == ("the agent said <redacted> twice: <redacted>")
    assert scrub("proxy http://ops:hunter22@proxy:3128 up") == "proxy http://ops:<redacted>@proxy:3128 up"
    assert scrub("ECS_ENGINE_AUTH_TYPE=docker, level=info") == "ECS_ENGINE_AUTH_TYPE=docker, level=info"


def test_env_file_redaction_keeps_the_shape() -> None:
    text = (
        "ECS_CLUSTER=prod\n"
        "# ECS_ENGINE_AUTH_DATA=an-old-secret\n"
        'ECS_ENGINE_AUTH_DATA {"auth":"dXNlcjpwYXNz"}\n'
        "ECS_SOME_PASSWORD=true\n"
        'ECS_LOG_OPTS={"splunk-token":"tok-xyz-123","tag":"t"}\n'
        "not a setting\n"
    )
    assert redact_env_text(text) == (
        "ECS_CLUSTER=prod\n"
        "# ECS_ENGINE_AUTH_DATA=<redacted>\n"
        "ECS_ENGINE_AUTH_DATA <redacted>\n"
        "ECS_SOME_PASSWORD=<redacted>\n"
        'ECS_LOG_OPTS={"splunk-token":"<redacted>","tag":"t"}\n'
        "not a setting\n"
    )


def test_container_inspect_redaction() -> None:
    state = {
        "Config": {
            "Env": ["ECS_CLUSTER=prod", 'ECS_ENGINE_AUTH_DATA={"a":1}', "ECS_X_TOKEN=tok-1234567"],
            "Labels": {"team": "infra", "deploy-token": "lbl-secret-1"},
        },
        "HostConfig": {"LogConfig": {"Type": "splunk", "Config": {"splunk-token": "s-1", "splunk-url": "https://x"}}},
    }
    doc = redact_container(state)
    assert doc["Config"]["Env"] == ["ECS_CLUSTER=prod", "ECS_ENGINE_AUTH_DATA=<redacted>", "ECS_X_TOKEN=<redacted>"]
    assert doc["Config"]["Labels"] == {"team": "infra", "deploy-token": "<redacted>"}
    assert doc["HostConfig"]["LogConfig"]["Config"] == {"splunk-token": "<redacted>", "splunk-url": "https://x"}
    assert state["Config"]["Env"][2] == "ECS_X_TOKEN=tok-1234567"  # the original is untouched


# ---------------------------------------------------------------- host facts


@pytest.mark.parametrize(
    ("mountinfo", "unified", "mode"),
    [
        ("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate", False, "v2 (unified)"),
        ("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,mode=755", True,
         "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)"),
        ("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,mode=755", False, "v1 (legacy)"),
        ("1 0 0:1 / / rw - ext4 /dev/sda1 rw", False, "unknown (nothing mounted at /sys/fs/cgroup)"),
    ],
)  # fmt: skip
def test_cgroup_mode(mountinfo: str, unified: bool, mode: str) -> None:
    assert collect_host.cgroup_mode(mountinfo, unified) == mode


def test_bundle_members_are_owned_by_root_and_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = str(tmp_path / "b.tar.gz")
    with bundle.Bundle(target, "top", now=T0) as b:
        b.add("a", b"x")
        b.commit(b"{}")
    with tarfile.open(target) as tar:
        for member in tar.getmembers():
            assert (member.mode, member.uname, member.mtime) == (0o600, "root", T0)
    with open(target, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_keyed_values_never_touch_text_without_a_secret_key(text: str) -> None:
    lowered = text.lower()
    if any(word in lowered for word in ("secret", "token", "password", "ecs_engine_auth_data")):
        return
    assert redact.redact_keyed_values(text) == text


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["API_TOKEN", "db_password", "Splunk-Token", "ECS_ENGINE_AUTH_DATA", "MY_SECRET"]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters='"\\,;&{[]}'),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["=", '": ', '":']),
)
def test_keyed_values_always_hide_the_value(key: str, value: str, separator: str) -> None:
    if separator == "=":
        assert redact.redact_keyed_values(f"{key}={value}") == f"{key}=<redacted>"
    else:
        assert redact.redact_keyed_values(f'{{"{key}{separator}"{value}"}}') == f'{{"{key}{separator}"<redacted>"}}'


# ---------------------------------------------------------------- the Docker part, with the shared fake engine


def _docker_items(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, engine: FakeEngine) -> dict[str, Item]:
    from ecs_init.core.config import Config
    from ecs_init.core.paths import Paths
    from ecs_init.host.context import HostContext
    from ecs_init.ops import report as status

    monkeypatch.setattr(status, "connect_quick", lambda cfg, timeout=2.0: engine)
    ctx = HostContext(cfg=Config(paths=Paths(prefix=str(tmp_path)), environ={}))
    return {item.name: item for item in collect_sources.docker_items(ctx)}


def test_docker_part_redacts_and_registers_the_container_secrets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(redact, "_values", set())
    engine = FakeEngine()
    engine.add_image("sha256:1", "amazon/amazon-ecs-agent:latest")
    body = {
        "Image": "amazon/amazon-ecs-agent:latest",
        "Env": ["ECS_CLUSTER=c", "ECS_FOO_TOKEN=tok-fake-5c1e"],
        "Labels": {"api-token": "lbl-fake-77aa"},
        "HostConfig": {"LogConfig": {"Type": "splunk", "Config": {"splunk-token": "spl-fake-0b0b"}}},
    }
    engine.create_container("ecs-agent", body)
    engine.start_container("ecs-agent")
    engine.logs = [LogLine("stdout", "2026-11-27T12:00:00Z up"), LogLine("stderr", "2026-11-27T12:00:01Z oops")]
    items = _docker_items(monkeypatch, tmp_path, engine)
    inspect = json.loads(items["docker/inspect-ecs-agent.json"].data)
    assert inspect["Config"]["Env"] == ["ECS_CLUSTER=c", "ECS_FOO_TOKEN=<redacted>"]
    assert inspect["Config"]["Labels"] == {"api-token": "<redacted>"}
    assert inspect["HostConfig"]["LogConfig"]["Config"] == {"splunk-token": "<redacted>"}
    assert items["docker/ecs-agent.log"].data == b"2026-11-27T12:00:00Z up\n2026-11-27T12:00:01Z oops  [stderr]\n"
    assert json.loads(items["docker/info.json"].data)["DockerRootDir"] == "/var/lib/docker"
    # the values are searched for everywhere else in the bundle now
    assert scrub("saw tok-fake-5c1e, lbl-fake-77aa and spl-fake-0b0b") == "saw <redacted>, <redacted> and <redacted>"
    assert engine.calls[-1] == "close"


def test_docker_part_failures_are_manifest_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    engine = FakeEngine()
    engine.fail("info", EngineUnavailable("Docker at unix:///x does not answer: timed out after 2s"))
    items = _docker_items(monkeypatch, tmp_path, engine)
    assert items["docker/info.json"].error == "Docker at unix:///x does not answer: timed out after 2s"
    assert items["docker/inspect-ecs-agent.json"].skipped == "there is no container named ecs-agent"
    assert "docker/ecs-agent.log" not in items
    engine = FakeEngine()
    engine.fail("container_state", EngineError("Docker answered HTTP 500: boom", 500))
    items = _docker_items(monkeypatch, tmp_path, engine)
    assert items["docker/inspect-ecs-agent.json"].error == "Docker answered HTTP 500: boom"
