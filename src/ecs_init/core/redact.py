"""Secret redaction shared by logs, status, check and render (SPEC §11).

What is a secret: the value of ``ECS_ENGINE_AUTH_DATA`` and of every key
whose name contains SECRET, TOKEN or PASSWORD (any case), also inside JSON
values (``ECS_LOG_OPTS={"splunk-token": ...}``, labels); the password part
of credentials in a URL (``http://user:<password>@proxy:3128``). Nothing
else: ``ECS_ENGINE_AUTH_TYPE=docker`` is not a secret.

Two ways to redact, so that redaction never alters text that is not a secret:

- **by key** in structured output (the settings ``render`` and ``check``
  show): the value of a secret key is replaced whatever it is, even ``true``.
  A key part that itself looks like a secret key but is malformed (``KEY
  value`` with a space instead of ``=`` lands the value in the key) is shown
  as its name and ``<redacted>``.
- **by value** in free text (log lines, report text): a secret value is
  searched for only when it is specific enough not to be a common word
  (``free_text_secret``): at least 8 characters, not a number, and not a
  plain word (letters only, under 16 characters). A value like ``true``,
  ``docker``, ``dockercfg`` or ``12345678`` is never blanked out of other
  text; it is still redacted wherever it is shown by key.
  URL credentials are redacted in free text wherever they appear.

Where free text is gathered from other programs (the support bundle's logs
and command output), ``redact_keyed_values`` adds the by-key rule to it:
in ``KEY=value`` and ``"key": "value"`` pairs whose key names a secret, the
value goes and the key stays.
"""

from __future__ import annotations

import json
import logging
import re
import threading

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping

REDACTED = "<redacted>"
AUTH_DATA_KEY = "ECS_ENGINE_AUTH_DATA"
_SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD")
# The parts of a Docker auth entry (inside ECS_ENGINE_AUTH_DATA) that are credentials.
_AUTH_ENTRY_SECRETS = ("auth", "password", "identitytoken", "registrytoken")
_AUTH_ENTRY_RE = re.compile(r'"(?:' + "|".join(_AUTH_ENTRY_SECRETS) + r')"\s*:\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)

# Free-text rule: long and specific enough not to be a word, a number or a boolean.
MIN_FREE_TEXT_SECRET = 8
MIN_LETTERS_ONLY_SECRET = 16  # letters only and shorter: a plain word
_ONLY_LETTERS = re.compile(r"[A-Za-z]+\Z")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")

# scheme://user:password@ -- the password is everything up to the last '@'
# before the host (no whitespace, '/', '?' or '#'). Each part is bounded so
# that hostile text costs linear time.
_URL_CREDENTIALS = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s/?#:@]{0,256}:)(?P<password>[^\s/?#]{1,256})(?=@)"
)
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLEAN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")

_lock = threading.Lock()
_values: set[str] = set()


# ---------------------------------------------------------------- what is secret


def is_secret_key(key: str) -> bool:
    """``ECS_ENGINE_AUTH_DATA``, or a name containing SECRET, TOKEN or PASSWORD (any case).

    Also true for a malformed key part that contains such a name (``ECS_ENGINE_AUTH_DATA {...}``).
    """
    upper = key.upper()
    return AUTH_DATA_KEY in upper or any(word in upper for word in _SECRET_WORDS)


def free_text_secret(value: str) -> bool:
    """Whether ``value`` is specific enough to be searched for in free text.

    At least MIN_FREE_TEXT_SECRET characters, not a number, and not a plain
    word (ASCII letters only and shorter than MIN_LETTERS_ONLY_SECRET);
    booleans and short values fail the length test. Everything else is
    searched for and replaced wherever it appears.
    """
    if len(value) < MIN_FREE_TEXT_SECRET or _NUMBER.match(value):
        return False
    return len(value) >= MIN_LETTERS_ONLY_SECRET or not _ONLY_LETTERS.match(value)


def _auth_entry_secrets(text: str) -> list[str]:
    """The credentials in Docker auth JSON (valid or not): auth, password, identitytoken, registrytoken."""
    found = []
    for match in _AUTH_ENTRY_RE.finditer(text):
        raw = match.group(1)
        try:
            found.append(json.loads(f'"{raw}"'))
        except ValueError:
            found.append(raw)
    return found


def free_text_values(env: Mapping[str, str]) -> set[str]:
    """Every secret value in ``env`` that free text is searched for (see the module rule)."""
    out: set[str] = set()
    for key, value in env.items():
        candidates: list[str] = []
        if is_secret_key(key):
            candidates.append(value)
            if not _CLEAN_KEY.match(key):
                candidates.append(key)  # the credential is in the malformed key itself
            if AUTH_DATA_KEY in key.upper():
                candidates += _auth_entry_secrets(key + "=" + value)
        candidates += _nested_secrets(_as_json_object(value))
        for candidate in candidates:
            for form in _text_forms(candidate.strip()):
                if free_text_secret(form):
                    out.add(form)
    return out


def _text_forms(value: str) -> set[str]:
    """The value as it appears in plain text, inside JSON output, and in a Python repr (``%r``:
    both quote styles), each escaped as those write it."""
    forms = {value}
    try:
        forms.add(json.dumps(value)[1:-1])
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    except (ValueError, RecursionError):
        pass
    escaped = repr(value)[1:-1]
    forms.add(escaped)
    if repr(value)[0] == '"':  # inside a longer string holding both quote styles, repr escapes the '
        forms.add(escaped.replace("'", "\\'"))
    else:
        forms.add(escaped.replace("\\'", "'"))
    return forms


def register_secrets(env: Mapping[str, str]) -> None:
    """Remember the secret values of ``env`` that no log line or report may carry."""
    found = free_text_values(env)
    with _lock:
        _values.update(found)


# ---------------------------------------------------------------- free text


def redact_url_credentials(text: str) -> str:
    """``scheme://user:password@host`` -> ``scheme://user:<redacted>@host``; other text unchanged."""
    if "://" not in text:
        return text
    return _URL_CREDENTIALS.sub(lambda m: m.group("head") + REDACTED, text)


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    """Free text with registered secret values and URL credentials replaced.

    ``extra`` values are searched for too, by the same free-text rule.
    """
    with _lock:
        values = set(_values)
    values.update(v for v in extra if free_text_secret(v))
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return redact_url_credentials(text)


class RedactFilter(logging.Filter):
    """Rewrites each record's final message with registered secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not crash logging
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = ()
        return True


# ---------------------------------------------------------------- by key


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


def _walk_secrets(doc: Any, under_secret_key: bool = False) -> list[str]:
    """Every string under a secret-named key (in lists and objects below it too)."""
    if isinstance(doc, str):
        return [doc] if under_secret_key else []
    if isinstance(doc, dict):
        return [
            s for key, value in doc.items() for s in _walk_secrets(value, under_secret_key or is_secret_key(str(key)))
        ]
    if isinstance(doc, list):
        return [s for item in doc for s in _walk_secrets(item, under_secret_key)]
    return []


def redact_json(doc: Any) -> Any:
    """A copy of a JSON document with the values of secret-named keys replaced (recursively)
    and URL credentials in other strings redacted."""
    if isinstance(doc, dict):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in ("", None) else redact_json(v)) for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [redact_json(item) for item in doc]
    if isinstance(doc, str):
        return redact_url_credentials(doc)
    return doc


def display_key(key: str) -> str:
    """A key for display: a malformed key part that looks like a secret key shows
    only its first name (``ECS_ENGINE_AUTH_DATA <redacted>``); others as written
    (URL credentials redacted)."""
    if _CLEAN_KEY.match(key) or not is_secret_key(key):
        return redact_url_credentials(key)
    name = _KEY_NAME.search(key)
    return f"{name.group(0)} {REDACTED}" if name else REDACTED


def redact_value(key: str, value: str) -> str:
    """One setting's value for display: redacted when the key is secret (whatever
    the value: ``true`` too); else nested secrets of a JSON object and URL
    credentials redacted."""
    if is_secret_key(key):
        return REDACTED if value else value
    doc = _as_json_object(value)
    if isinstance(doc, dict) and _nested_secrets(doc):
        try:
            return json.dumps(redact_json(doc), separators=(",", ":"))
        except RecursionError:
            return REDACTED
    return redact_url_credentials(value)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` for display: keys by ``display_key``, values by ``redact_value``."""
    return {display_key(k): redact_value(k, v) for k, v in env.items()}


def redact_env_entries(entries: Iterable[str]) -> list[str]:
    """``KEY=VALUE`` strings (an Engine API ``Env`` list) with secret values replaced."""
    out = []
    for entry in entries:
        key, sep, value = entry.partition("=")
        out.append(f"{display_key(key)}={redact_value(key, value)}" if sep else display_key(entry))
    return out


# ---------------------------------------------------------------- by key, in free text

# KEY=value and "key": "value" where the key names a secret (SPEC §11): the value goes, the key stays.
# Found from the secret word outwards (a linear scan: a regex that first matches the key's leading
# characters backtracks over every long word of a log and took seconds per 10 MiB).
_KEYED_WORDS = tuple(word.lower() for word in (*_SECRET_WORDS, AUTH_DATA_KEY))
MAX_KEYED_JSON = 64 * 1024  # a JSON value after a secret key is followed this far, else to the end of its line
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_SEPARATOR = re.compile(r"=|\"\s*:\s*")
_QUOTED = re.compile(r"\"(?:[^\"\\\n]|\\.)*\"")
_BARE = re.compile(r"[^\s\",;&}\]]+")


def _secret_words(text: str) -> list[tuple[int, int]]:
    """(start, end) of every secret word in ``text``, any case, in order (plain substring search)."""
    lowered = text.lower()
    if len(lowered) != len(text):  # a character whose lower case is longer: stay exact, search the original
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    found = []
    for word in _KEYED_WORDS:
        at = lowered.find(word)
        while at >= 0:
            found.append((at, at + len(word)))
            at = lowered.find(word, at + 1)
    return sorted(found)


def _line_end(text: str, start: int) -> int:
    """The end of the line ``start`` is on (before its newline)."""
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def _value_end(text: str, start: int) -> int:
    """Where the value starting at ``start`` ends: a quoted string, a JSON object or list (to its
    closing bracket, at most to the end of the line), or a bare word."""
    if start >= len(text):
        return start
    if text[start] == '"':
        quoted = _QUOTED.match(text, start)
        return quoted.end() if quoted else _line_end(text, start)  # unterminated: the rest of the line goes
    if text[start] in "{[":
        depth, position, in_string = 0, start, False
        limit = min(len(text), start + MAX_KEYED_JSON)
        while position < limit:
            char = text[position]
            if char == "\n":
                return position  # unbalanced: the rest of the line goes
            if in_string:
                if char == "\\":
                    position += 1
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return position + 1
            position += 1
        return _line_end(text, limit)  # very long: to the end of the line
    bare = _BARE.match(text, start)
    return bare.end() if bare else start


def redact_keyed_values(text: str) -> str:
    """Free text with the value of every ``KEY=value`` and ``"key": "value"`` pair whose key names a
    secret replaced (by key, as in structured output); the rest of the text is unchanged.

    For text whose structure is unknown (logs, command output). A quoted value goes to its closing
    quote (an unterminated one to the end of its line), a JSON object or list to its closing
    bracket (at most to the end of its line), a bare
    value to the next space, quote, comma, semicolon, ampersand or closing bracket.
    """
    out: list[str] = []
    done = 0
    for start, end in _secret_words(text):
        if start < done:
            continue  # inside a value already replaced
        while end < len(text) and text[end] in _KEY_CHARS:
            end += 1
        separator = _SEPARATOR.match(text, end)
        value_end = _value_end(text, separator.end()) if separator else 0
        if separator is None or value_end <= separator.end():
            continue
        out.append(text[done : separator.end()])
        out.append(f'"{REDACTED}"' if text[separator.end()] == '"' else REDACTED)
        done = value_end
    out.append(text[done:])
    return "".join(out)
