"""What is a secret, and redaction that never alters text that is not one (SPEC §11, issue 13 item 6).

Secrets: ECS_ENGINE_AUTH_DATA and keys containing SECRET, TOKEN or PASSWORD
(by key, in structured output, whatever the value); in free text only
values specific enough (8+ characters, not a number, not a plain word of
letters under 16 characters); URL credentials everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import string
import tempfile
from typing import Iterator

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from ecs_init.agent import config_problems
from ecs_init.core import envfile, redact
from ecs_init.core.cmd import Runner
from ecs_init.core.config import Config
from ecs_init.core.logsetup import LogfmtFormatter
from ecs_init.core.redact import REDACTED
from ecs_init.host.context import HostContext
from ecs_init.ops import check_config, render


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    saved = set(redact._values)
    with redact._lock:
        redact._values.clear()
    yield
    with redact._lock:
        redact._values.clear()
        redact._values.update(saved)


def _reset() -> None:
    with redact._lock:
        redact._values.clear()


# ---------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("ECS_ENGINE_AUTH_DATA", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("AWS_SESSION_TOKEN", True),
        ("db_password", True),
        ("ECS_SOME_PASSWORD", True),
        ("ECS_ENGINE_AUTH_TYPE", False),
        ("AUTH", False),
        ("X_AUTH_HEADER", False),
        ("ECS_CLUSTER", False),
        ("AWS_ACCESS_KEY_ID", False),
        ('ECS_ENGINE_AUTH_DATA {"https://quay.io":{"auth":"dXNlcjpwYXNz', True),
    ],
)
def test_secret_keys_are_exactly_spec_11(key: str, secret: bool) -> None:
    assert redact.is_secret_key(key) is secret


@pytest.mark.parametrize(
    ("value", "searched"),
    [
        ("true", False),
        ("false", False),
        ("docker", False),
        ("dockercfg", False),
        ("password", False),
        ("Configuration", False),
        ("abcdefghijklmno", False),
        ("abcdefghijklmnop", True),
        ("topsecretauthdata", True),
        ("12345678", False),
        ("-1234.5678", False),
        ("1e100000", False),
        ("short1!", False),
        ("hunter22", True),
        ("c2VjcmV0OnNlY3JldA==", True),
        ("p@ss-word", True),
        ("correct horse battery", True),
        ('{"https://quay.io":{"auth":"x"}}', True),
    ],
)
def test_free_text_rule(value: str, searched: bool) -> None:
    assert redact.free_text_secret(value) is searched


# ---------------------------------------------------------------- issue 13 item 6: nothing mangled


def _log_line(message: str) -> str:
    import logging

    record = logging.LogRecord("ecs_init.t", logging.INFO, __file__, 1, message, None, None)
    redact.RedactFilter().filter(record)
    return LogfmtFormatter().format(record)


COMMON_LINES = [
    "connecting to Docker at unix:///var/run/docker.sock",
    "iptables -t filter -I INPUT -p tcp --dport 51678 -i docker0 -j ACCEPT",
    "ECS_UPDATES_ENABLED=true ECS_ENABLE_TASK_ENI=true",
    "ECS_ENGINE_AUTH_TYPE=docker",
    "pre-start: done",
]


@pytest.mark.parametrize("setting", ["ECS_ENGINE_AUTH_TYPE=docker", "ECS_ENGINE_AUTH_TYPE=dockercfg"])
def test_auth_type_never_mangles_logs(setting: str) -> None:
    """Issue 13: ECS_ENGINE_AUTH_TYPE=docker turned every 'docker' into <redacted>."""
    key, value = setting.split("=")
    redact.register_secrets({key: value})
    for line in COMMON_LINES:
        assert redact.redact_text(line) == line
        assert line.replace('"', '\\"') in _log_line(line)


@pytest.mark.parametrize("value", ["true", "1", "docker", "secret", "12345678", "abc", "password"])
def test_a_common_secret_value_is_redacted_by_key_only(value: str) -> None:
    redact.register_secrets({"ECS_SOME_PASSWORD": value})
    for line in COMMON_LINES:
        assert redact.redact_text(line) == line
    assert redact.redact_value("ECS_SOME_PASSWORD", value) == REDACTED
    assert redact.redact_env_entries([f"ECS_SOME_PASSWORD={value}", "ECS_UPDATES_ENABLED=true"]) == [
        f"ECS_SOME_PASSWORD={REDACTED}",
        "ECS_UPDATES_ENABLED=true",
    ]


# ---------------------------------------------------------------- properties

UNSPECIFIC = st.one_of(
    st.sampled_from(["true", "false", "docker", "dockercfg", "1", "0", "yes", "none", "info", "us-east-1"[:6]]),
    st.text(string.ascii_letters, min_size=1, max_size=15),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=7),
)
SECRET_KEYS = st.sampled_from(["ECS_ENGINE_AUTH_DATA", "MY_TOKEN", "DB_PASSWORD", "AWS_SECRET_ACCESS_KEY"])


@settings(max_examples=300)
@given(env=st.dictionaries(SECRET_KEYS, UNSPECIFIC, max_size=4), text=st.text(max_size=80))
@example(env={"ECS_SOME_PASSWORD": "true"}, text="ECS_UPDATES_ENABLED=true")
@example(env={"MY_TOKEN": "docker"}, text="unix:///var/run/docker.sock")
def test_common_secret_values_never_change_any_text(env: dict[str, str], text: str) -> None:
    """Secret values as common as a word, a number or a boolean are never searched for in free text."""
    assume("://" not in text)
    _reset()
    redact.register_secrets(env)
    assert redact.redact_text(text) == text


@settings(max_examples=300)
@given(env=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=5), text=st.text())
@example(env={"ECS_ENGINE_AUTH_TYPE": "docker", "ECS_SOME_PASSWORD": "true"}, text="docker true")
@example(env={"HTTP_PROXY": "http://proxy:3128"}, text="see http://proxy:3128/x and user@host")
def test_redaction_never_changes_text_free_of_secrets(env: dict[str, str], text: str) -> None:
    """Text holding none of the registered secrets and no URL credentials comes back unchanged."""
    _reset()
    redact.register_secrets(env)
    registered = redact.free_text_values(env)
    assume(not any(secret in text for secret in registered))
    assume(redact.redact_url_credentials(text) == text)  # text with URL credentials is covered below
    assert redact.redact_text(text) == text


@given(
    scheme=st.sampled_from(["http", "https", "socks5", "tcp"]),
    user=st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12),
    password=st.text(string.ascii_letters + string.digits + "!$%&*+,;=._~-@", min_size=1, max_size=16),
    host=st.sampled_from(["proxy", "proxy.example.com:3128", "10.0.0.1:8080"]),
    before=st.sampled_from(["", "HTTP_PROXY=", "via ", '"']),
    after=st.sampled_from(["", "/", "/path?q=1", " and more", '"']),
)
def test_url_credentials_are_redacted_and_nothing_else(
    scheme: str, user: str, password: str, host: str, before: str, after: str
) -> None:
    text = f"{before}{scheme}://{user}:{password}@{host}{after}"
    assert redact.redact_text(text) == f"{before}{scheme}://{user}:{REDACTED}@{host}{after}"


@pytest.mark.parametrize(
    "text",
    [
        "http://proxy:3128",
        "http://proxy:3128/path?user=a@b",
        "ssh://git@github.com:22/x",
        "http://[::1]:8080/",
        "mailto:someone@example.com",
        "user:pass@host without a scheme",
    ],
)
def test_text_that_only_resembles_url_credentials_is_kept(text: str) -> None:
    assert redact.redact_text(text) == text


# ---------------------------------------------------------------- render, by key


class _NeverDocker:
    def __call__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("render must not contact Docker")


def _render_texts(root: str, config: str) -> tuple[str, str, dict[str, object]]:
    """(redacted human text as printed, the same with --show-secrets, the redacted JSON doc)."""
    os.makedirs(os.path.join(root, "etc/ecs"), exist_ok=True)
    with open(os.path.join(root, "etc/ecs/ecs.config"), "w") as fh:
        fh.write(config)
    env = {"ECS_INIT_PATH_PREFIX": root, "PATH": os.environ.get("PATH", ""), "DOCKER_HOST": "unix:///nonexistent"}
    cfg = Config.load(environ=env)
    _reset()
    redact.register_secrets(cfg.merged)
    ctx = HostContext(cfg=cfg, runner=Runner(), docker_factory=_NeverDocker())
    shown = render.format_human(render.render(ctx, api_version="1.44", show_secrets=True))
    doc = render.render(ctx, api_version="1.44")
    hidden = redact.redact_text(render.format_human(doc))
    return hidden, shown, doc


def test_some_password_true_blanks_nothing_else_and_does_not_reveal_itself(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 13: with ECS_SOME_PASSWORD=true every 'true' in render was blanked, revealing the secret."""
    hidden, shown, _ = _render_texts(str(tmp_path), "ECS_CLUSTER=ops\nECS_SOME_PASSWORD=true\n")
    assert "ECS_SOME_PASSWORD=<redacted>" in hidden
    assert "ECS_UPDATES_ENABLED=true" in hidden
    assert hidden.count(REDACTED) == 1
    assert hidden.replace("ECS_SOME_PASSWORD=<redacted>", "ECS_SOME_PASSWORD=true") == shown.replace(
        "secrets SHOWN", "secrets redacted"
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    secret=st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20).map(str.strip)
)
@example(secret="true")
@example(secret="json-file")
@example(secret="host")
def test_render_changes_only_the_secret_entry(secret: str) -> None:
    assume(secret and "=" not in secret)
    other = ["ECS_CLUSTER=ops", "ECS_ENGINE_AUTH_TYPE=docker", "HTTP_PROXY=http://proxy:3128"]
    with tempfile.TemporaryDirectory() as root:
        hidden, shown, _ = _render_texts(root, "\n".join([*other, f"ECS_SOME_PASSWORD={secret}"]) + "\n")
    expected = shown.replace("secrets SHOWN", "secrets redacted").replace(
        f"ECS_SOME_PASSWORD={secret}\n", f"ECS_SOME_PASSWORD={REDACTED}\n"
    )
    # where a specific secret also appears inside other text, that is redacted too (it is the secret)
    if redact.free_text_secret(secret):
        expected = expected.replace(secret, REDACTED)
    assert hidden == expected


def test_url_credentials_in_render(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hidden, shown, doc = _render_texts(
        str(tmp_path), "HTTP_PROXY=http://ops:Pr0xyPa55@proxy:3128\nNO_PROXY=169.254.169.254\n"
    )
    assert "HTTP_PROXY=http://ops:<redacted>@proxy:3128" in hidden
    assert "Pr0xyPa55" not in hidden and "Pr0xyPa55" not in json.dumps(doc)
    assert "HTTP_PROXY=http://ops:Pr0xyPa55@proxy:3128" in shown
    assert "NO_PROXY=169.254.169.254" in hidden


MALFORMED = 'ECS_ENGINE_AUTH_DATA {"https://quay.io":{"auth":"dXNlcjpwYXNzd29yZA==","email":"ops@example.com"}}'


def test_malformed_secret_line_is_shown_by_key_only_in_render(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 item 3: a space instead of '=' makes the credential part of the key (base64 '=' splits it)."""
    hidden, _, doc = _render_texts(str(tmp_path), "ECS_CLUSTER=ops\n" + MALFORMED + "\n")
    assert "dXNlcjpwYXNzd29yZA" not in hidden
    assert "dXNlcjpwYXNzd29yZA" not in json.dumps(doc)
    assert "ECS_ENGINE_AUTH_DATA <redacted>=<redacted>" in hidden
    assert "ECS_CLUSTER=ops" in hidden


def test_malformed_secret_line_is_shown_by_key_only_in_check(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "etc/ecs"))
    with open(os.path.join(root, "etc/ecs/ecs.config"), "w") as fh:
        # (three good lines: a file mostly not KEY=VALUE would be refused as a whole, unlisted)
        fh.write("ECS_CLUSTER=ops\n" + MALFORMED + "\nMY_TOKEN something=else\nECS_LOGLEVEL=info\nECS_DATADIR=/d\n")
    operator = envfile.read(os.path.join(root, "etc/ecs/ecs.config"))
    found = config_problems.find(Config.load(environ={"ECS_INIT_PATH_PREFIX": root}))
    results = [c for c in check_config.check_keys(found) if c.name == "config.unknown-key"]
    text = json.dumps([c.as_dict() for c in results])
    assert "dXNlcjpwYXNzd29yZA" not in text and "something" not in text
    assert [c.details["key"] for c in results] == ["ECS_ENGINE_AUTH_DATA <redacted>", "MY_TOKEN <redacted>"]
    assert results[0].reason == f"unknown key ECS_ENGINE_AUTH_DATA <redacted> at {operator.path}:2"
    assert results[0].hint == "write ECS_ENGINE_AUTH_DATA=<value>, with '=' right after the key"


def test_malformed_secret_key_is_kept_out_of_free_text() -> None:
    key, _, value = MALFORMED.partition("=")
    redact.register_secrets({key: value})
    line = redact.redact_text(f"unknown key {key}")
    assert "dXNlcjpwYXNzd29yZA" not in line
    assert "dXNlcjpwYXNzd29yZA" not in redact.redact_text("auth dXNlcjpwYXNzd29yZA== rejected")


def test_auth_data_credentials_are_searched_for_on_their_own() -> None:
    auth = '{"https://quay.io":{"auth":"dXNlcjpwYXNzd29yZA==","email":"ops@example.com"}}'
    redact.register_secrets({"ECS_ENGINE_AUTH_DATA": auth})
    assert redact.redact_text("login with dXNlcjpwYXNzd29yZA== failed") == f"login with {REDACTED} failed"
    assert redact.redact_text("registry https://quay.io") == "registry https://quay.io"  # not a credential


SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
HOSTILE = """
import sys, time
from ecs_init.core import redact
for text in ("a." * 500000 + "://", "x://:" + "a@b:" * 250000, "http://u:" + "p@" * 400000, "x://a:b" * 150000):
    started = time.monotonic()
    redact.redact_text(text)
    redact.redact_value("HTTP_PROXY", text)
    print(round(time.monotonic() - started, 3))
"""


def test_url_redaction_is_linear_on_hostile_text() -> None:
    """A 1 MB value built to make an unbounded URL pattern quadratic (minutes) takes well under a second."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", HOSTILE],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    times = [float(t) for t in proc.stdout.split()]
    assert len(times) == 4 and max(times) < 5, times


# ---------------------------------------------------------------- exact answers (issue 21)


def test_nested_secrets_two_levels_deep_and_inside_lists() -> None:
    doc = {
        "outer": {"inner": {"splunk-token": "s3cret-one", "plain": "keep-me-1"}},
        "list": [{"db_password": "s3cret-two"}, "keep-me-2", [{"x": {"API_SECRET": "s3cret-three"}}]],
        "count": 3,
        "token_list": ["s3cret-four", {"k": "s3cret-five"}],  # everything under a secret name
    }
    found = ["s3cret-one", "s3cret-two", "s3cret-three", "s3cret-four", "s3cret-five"]
    assert redact._nested_secrets(doc) == found
    assert redact.free_text_values({"ECS_LOG_OPTS": json.dumps(doc)}) == set(found)
    assert redact.redact_json(doc) == {
        "outer": {"inner": {"splunk-token": REDACTED, "plain": "keep-me-1"}},
        "list": [{"db_password": REDACTED}, "keep-me-2", [{"x": {"API_SECRET": REDACTED}}]],
        "count": 3,
        "token_list": REDACTED,
    }


def test_redact_json_keeps_empty_secrets_and_redacts_urls_in_lists() -> None:
    doc = {"token": "", "password": None, "secret": "x", "proxies": ["http://u:pw@proxy:3128", "http://h"], "n": 1}
    assert redact.redact_json(doc) == {
        "token": "",
        "password": None,
        "secret": REDACTED,
        "proxies": [f"http://u:{REDACTED}@proxy:3128", "http://h"],
        "n": 1,
    }


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        (
            "ECS_LOG_OPTS",
            '{"splunk-token": "abc", "url": "http://u:p@h/x"}',
            '{"splunk-token":"<redacted>","url":"http://u:<redacted>@h/x"}',
        ),
        (
            "ECS_LOG_OPTS",
            '{"splunk-url": "https://h:8088", "tag": "x"}',
            '{"splunk-url": "https://h:8088", "tag": "x"}',
        ),
        ("ECS_AGENT_LABELS", '{"a": {"b": {"token": "t0k3n-value"}}}', '{"a":{"b":{"token":"<redacted>"}}}'),
        ("HTTP_PROXY", "http://user:pw@proxy:3128", f"http://user:{REDACTED}@proxy:3128"),
        ("ECS_CLUSTER", '{"not": "json"', '{"not": "json"'),
        ("MY_TOKEN", "", ""),
        ("MY_TOKEN", "true", REDACTED),
    ],
)
def test_redact_value_exactly(key: str, value: str, shown: str) -> None:
    """Only the secret parts change; a JSON value without secrets is shown as written."""
    assert redact.redact_value(key, value) == shown


def test_redact_env_entries_exactly() -> None:
    entries = [
        "ECS_CLUSTER=a=b",
        "AWS_SESSION_TOKEN=x=y",
        "NOEQUALS",
        "ECS_ENGINE_AUTH_DATA {x}",
        "HTTP_PROXY=http://u:p@h",
    ]
    assert redact.redact_env_entries(entries) == [
        "ECS_CLUSTER=a=b",
        f"AWS_SESSION_TOKEN={REDACTED}",
        "NOEQUALS",
        f"ECS_ENGINE_AUTH_DATA {REDACTED}",
        f"HTTP_PROXY=http://u:{REDACTED}@h",
    ]


def test_overlapping_secrets_are_replaced_longest_first() -> None:
    """A secret inside a longer one: replacing the shorter first would leave parts of the longer."""
    redact.register_secrets({"A_TOKEN": "zzsecret9", "B_TOKEN": "xxzzsecret99"})
    assert redact.redact_text("token xxzzsecret99 and zzsecret9") == f"token {REDACTED} and {REDACTED}"
    assert redact.redact_text("abcdefgh12345", extra=["abcdefgh", "abcdefgh12345"]) == REDACTED


def test_extra_values_follow_the_free_text_rule() -> None:
    text = "docker short s3cr3t-value"
    assert redact.redact_text(text, extra=["docker", "short", "s3cr3t-value"]) == f"docker short {REDACTED}"
    assert redact._values == set()  # extra values are not remembered


def test_secret_forms_in_json_text_are_searched_too() -> None:
    """A value with a quote or a non-ASCII letter also appears JSON-escaped in reports."""
    assert redact.free_text_values({"MY_PASSWORD": 'sé"cret-1'}) == {
        'sé"cret-1',
        'sé\\"cret-1',
        's\\u00e9\\"cret-1',
    }


def test_auth_data_with_a_broken_escape_is_searched_as_written() -> None:
    auth = '{"r":{"auth":"abc\\qdefghij","password":"p\\u0041ssw0rd-1"}}'
    assert redact.free_text_values({"ECS_ENGINE_AUTH_DATA": auth}) >= {"abc\\qdefghij", "pAssw0rd-1"}


def test_filter_redacts_a_record_whose_format_string_is_broken() -> None:
    redact.register_secrets({"MY_TOKEN": "tok-123456"})
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d tok-123456", ("not a number",), None)
    assert redact.RedactFilter().filter(record) is True
    assert record.getMessage() == f"%d {REDACTED}"
    assert not record.args


# ---------------------------------------------------------------- by key in free text (collect)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # JSON values: nested, with brackets and escapes inside strings
        ('X_TOKEN={"a": {"b": "}\\"]"}, "c": [1, {"d": 2}]} after', "X_TOKEN=<redacted> after"),
        ('X_TOKEN={"k": "a\\\\"} tail', "X_TOKEN=<redacted> tail"),
        ('X_TOKEN=["s1", "s2"], next=1', "X_TOKEN=<redacted>, next=1"),
        ('X_TOKEN={"k": 1', "X_TOKEN=<redacted>"),  # unbalanced at the end of the text
        ('first\nX_TOKEN="abc\nline 2', 'first\nX_TOKEN="<redacted>"\nline 2'),  # unterminated quote: the line
        ('X_TOKEN="a\\"b" c', 'X_TOKEN="<redacted>" c'),
        ('X_TOKEN="', 'X_TOKEN="<redacted>"'),
        # nothing to replace
        ("X_TOKEN=", "X_TOKEN="),
        ("X_TOKEN= x", "X_TOKEN= x"),
        ("the MY_TOKEN", "the MY_TOKEN"),
        # every pair, also a key inside a value already replaced
        ("A_TOKEN=1 B_TOKEN=2 C_TOKEN=3", "A_TOKEN=<redacted> B_TOKEN=<redacted> C_TOKEN=<redacted>"),
        ("A_TOKEN=my_password_x B_SECRET=s2", "A_TOKEN=<redacted> B_SECRET=<redacted>"),
        ("A_TOKENS=abc", "A_TOKENS=<redacted>"),
        ("token refreshed, A_TOKEN=1", "token refreshed, A_TOKEN=<redacted>"),
        ("A_TOKEN=Xyz next", "A_TOKEN=<redacted> next"),
        ("X_TOKEN=[X] tail", "X_TOKEN=<redacted> tail"),
        # a character whose lower case is longer does not shift what is replaced
        ("\u0130 MY_TOKEN=abc \u0130", "\u0130 MY_TOKEN=<redacted> \u0130"),
    ],
)
def test_keyed_values_exactly(text: str, shown: str) -> None:
    assert redact.redact_keyed_values(text) == shown


def test_a_json_value_too_long_to_follow_goes_to_the_end_of_its_line() -> None:
    long_value = 'X_TOKEN={"k": "' + "a" * (redact.MAX_KEYED_JSON + 10) + '"}'
    assert (
        redact.redact_keyed_values(f"before\n{long_value} tail\nnext\nlast") == "before\nX_TOKEN=<redacted>\nnext\nlast"
    )
    assert redact.redact_keyed_values(f"before\n{long_value} tail") == "before\nX_TOKEN=<redacted>"


@pytest.mark.parametrize(
    ("value", "forms"),
    [
        ("it's-secret1", {"it's-secret1", "it\\'s-secret1"}),  # %r of a longer string escapes the '
        ("a'b\"c-secret", {"a'b\"c-secret", "a'b\\\"c-secret", "a\\'b\"c-secret"}),
        ("tab\tsecret1", {"tab\tsecret1", "tab\\tsecret1"}),
    ],
)
def test_secret_forms_in_reprs_are_searched_too(value: str, forms: set[str]) -> None:
    assert redact.free_text_values({"MY_PASSWORD": value}) == forms
