"""Secret redaction shared by logs, status, check and render (SPEC §11)."""

from __future__ import annotations

import logging
import threading
from typing import Iterable, Mapping

REDACTED = "<redacted>"
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "AUTH")
_ALWAYS_SECRET = {"ECS_ENGINE_AUTH_DATA"}

_lock = threading.Lock()
_values: set[str] = set()


def is_secret_key(key: str) -> bool:
    upper = key.upper()
    return upper in _ALWAYS_SECRET or any(word in upper for word in _SECRET_WORDS)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with every secret key's value replaced."""
    return {k: (REDACTED if is_secret_key(k) and v else v) for k, v in env.items()}


def register_secrets(env: Mapping[str, str]) -> None:
    """Remember secret values so that no log line can carry them."""
    with _lock:
        for key, value in env.items():
            # Very short values would redact innocent text; they are not secrets worth the noise.
            if is_secret_key(key) and len(value) >= 4:
                _values.add(value)


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    with _lock:
        values = sorted(set(_values) | set(extra), key=len, reverse=True)
    for value in values:
        if value and value in text:
            text = text.replace(value, REDACTED)
    return text


class RedactFilter(logging.Filter):
    """Rewrites each record's final message with registered secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not crash logging
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        return True
