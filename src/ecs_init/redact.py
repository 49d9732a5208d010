"""Secret redaction shared by logs, status, check and render (SPEC §11)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Iterable, Mapping

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
            # Secrets nested in JSON values (ECS_LOG_OPTS={"splunk-token": ...}, labels).
            for nested in _nested_secrets(_as_json_object(value)):
                if len(nested) >= 4:
                    _values.add(nested)


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


def _as_json_object(value: str) -> Any:
    text = value.strip()
    if not text.startswith("{"):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _nested_secrets(doc: Any) -> list[str]:
    """String values under secret-named keys anywhere in a JSON document."""
    try:
        return _walk_secrets(doc)
    except RecursionError:
        return []


def _walk_secrets(doc: Any) -> list[str]:
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if isinstance(value, str) and is_secret_key(str(key)):
                found.append(value)
            else:
                found.extend(_walk_secrets(value))
    elif isinstance(doc, list):
        for item in doc:
            found.extend(_walk_secrets(item))
    return found


def redact_json(doc: Any) -> Any:
    """A copy of a JSON document with the values of secret-named keys replaced (recursively)."""
    if isinstance(doc, dict):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in ("", None) else redact_json(v)) for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [redact_json(item) for item in doc]
    return doc


def redact_value(key: str, value: str) -> str:
    """One setting's value for display: redacted when the key is secret, or
    with nested secrets redacted when it is a JSON object (compact JSON)."""
    if is_secret_key(key):
        return REDACTED if value else value
    doc = _as_json_object(value)
    if isinstance(doc, dict) and _nested_secrets(doc):
        try:
            return json.dumps(redact_json(doc), separators=(",", ":"))
        except RecursionError:
            return REDACTED
    return value


def redact_env_entries(entries: Iterable[str]) -> list[str]:
    """``KEY=VALUE`` strings (an Engine API ``Env`` list) with secret values replaced."""
    out = []
    for entry in entries:
        key, sep, value = entry.partition("=")
        out.append(f"{key}={redact_value(key, value)}" if sep else entry)
    return out
