"""No registered secret ever appears in a formatted log line (hypothesis).

Secrets here are values the free-text rule searches for (``free_text_secret``:
8+ characters, not a number, not a short plain word); shorter or commoner ones are
redacted by key only (see test_redact_rule.py).
"""

from __future__ import annotations

import logging
import string
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ecs_init.core import redact
from ecs_init.core.logsetup import LogfmtFormatter
from ecs_init.core.redact import RedactFilter, register_secrets

# Secrets avoid '<', '>' (the "<redacted>" marker could complete one) and the
# characters the logfmt quoting rewrites (\\ " \n \r), so that any occurrence
# in the output is a real leak, not an artifact of redaction or escaping.
SECRET_ALPHABET = string.ascii_letters + string.digits + "!#$%&'()*+,-./:;=?@[]^_`{|}~ " + "éß漢"
secrets_st = st.text(SECRET_ALPHABET, min_size=8, max_size=24).filter(
    lambda s: s.strip() == s and redact.free_text_secret(s)
)
noise = st.text(max_size=30)
SECRET_KEYS = ["ECS_ENGINE_AUTH_DATA", "AWS_SECRET_ACCESS_KEY", "MY_TOKEN", "db_password", "X_SECRET"]


def _format(record: logging.LogRecord) -> str:
    RedactFilter().filter(record)
    return LogfmtFormatter().format(record)


def _leaks(secret: str, line: str) -> bool:
    """Whether ``secret`` is in the line's payload (after ``msg=``), markers aside.

    The fixed parts (``level=info time=...``) and the ``<redacted>`` marker
    may contain a short secret by coincidence; that is not a leak.
    """
    payload = line.split(" msg=", 1)[1].replace("<redacted>", "\x00")
    return secret in payload


def _record(msg: str, args: tuple[object, ...] = (), level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("ecs_init.test", level, __file__, 1, msg, args, None)


@pytest.fixture(autouse=True)
def _clean_registry():  # type: ignore[no-untyped-def]
    saved = set(redact._values)
    yield
    with redact._lock:
        redact._values.clear()
        redact._values.update(saved)


@settings(max_examples=150)
@given(key=st.sampled_from(SECRET_KEYS), secret=secrets_st, before=noise, after=noise, how=st.integers(0, 3))
@example(key="MY_TOKEN", secret="abcd1234", before="", after="abcd1234", how=0)
@example(key="MY_TOKEN", secret="ab cd efg", before='"', after="\n", how=2)
def test_registered_secret_never_in_a_line(key: str, secret: str, before: str, after: str, how: int) -> None:
    register_secrets({key: secret})
    if how == 0:
        record = _record(before + secret + after)
    elif how == 1:
        record = _record("value %s here", (before + secret + after,))
    elif how == 2:
        record = _record("%s=%r", (key, before + secret + after))
    else:
        record = _record("%(k)s", ({"k": before + secret + after},))
    line = _format(record)
    assert not _leaks(secret, line), line
    assert "<redacted>" in line


@given(env=st.dictionaries(st.sampled_from(SECRET_KEYS + ["ECS_CLUSTER", "PLAIN"]), secrets_st, max_size=5))
def test_every_registered_value_is_redacted_together(env: dict[str, str]) -> None:
    register_secrets(env)
    line = _format(_record(" | ".join(f"{k}={v}" for k, v in env.items())))
    for key, value in env.items():
        if redact.is_secret_key(key):
            assert not _leaks(value, line), line


@given(secret=secrets_st)
def test_a_broken_format_string_does_not_leak(secret: str) -> None:
    register_secrets({"MY_SECRET": secret})
    line = _format(_record("%d items " + secret, ("not-a-number",)))
    assert not _leaks(secret, line), line


@given(secret=secrets_st)
def test_secret_nested_in_a_json_setting_is_redacted(secret: str) -> None:
    register_secrets({"ECS_LOG_OPTS": '{"splunk-token": "' + secret + '"}'})
    assert not _leaks(secret, _format(_record("log options: splunk-token=" + secret)))


def test_secret_in_a_debug_traceback_is_redacted() -> None:
    register_secrets({"MY_SECRET": "hunter2-secret"})
    try:
        raise ValueError("connect failed for hunter2-secret")
    except ValueError:
        record = logging.LogRecord("t", logging.DEBUG, __file__, 1, "unexpected error", (), sys.exc_info())
    assert not _leaks("hunter2-secret", _format(record))


def test_secret_in_structured_fields_is_redacted() -> None:
    register_secrets({"MY_SECRET": "hunter2-secret"})
    record = _record("request")
    record.fields = {"auth": "hunter2-secret"}
    assert not _leaks("hunter2-secret", _format(record))


def test_register_secrets_survives_deep_json() -> None:
    register_secrets({"ECS_LOG_OPTS": '{"a":' * 100_000})
    assert redact.redact_value("ECS_LOG_OPTS", '{"a":' * 100_000)
