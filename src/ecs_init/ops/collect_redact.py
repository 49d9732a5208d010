"""Secrets in a support bundle: what ``collect`` adds to the shared redaction (``ecs_init.core.redact``).

Every member is scrubbed (registered secret values, URL passwords, and in
text the values of secret keys); structured sources are redacted by key
first: env files line by line (commented-out lines too), ``docker inspect``
of the agent (Env, labels, log options), the agent's JSON config (whose
``EngineAuthData`` is ``ECS_ENGINE_AUTH_DATA`` under another name). The
running container's secrets are registered, so that its Env — which may
differ from the files by now — is searched for everywhere else too.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

from ecs_init.core import redact

AGENT_JSON_SECRET_KEYS = ("EngineAuthData",)  # ECS_ENGINE_AUTH_DATA as the agent's JSON config spells it
_ENV_LINE = re.compile(r"(?P<lead>\s*#?\s*)(?P<key>[^=]*)=(?P<value>.*)\Z", re.DOTALL)


def scrub(text: str, by_key: bool = True) -> str:
    """Text with every registered secret value and URL password removed, and (``by_key``) the value
    of every ``KEY=value`` or ``"key": "value"`` whose key names a secret.

    JSON members are redacted by key as documents already (their fields, such as
    ``secrets_redacted``, are not settings): they get ``by_key=False``.
    """
    text = redact.redact_text(text)
    return redact.redact_keyed_values(text) if by_key else text


def redact_env_text(text: str) -> str:
    """An env file with every secret key's value replaced, commented-out lines included;
    a line whose key part looks like a secret key but is malformed shows its name only."""
    out = []
    for line in text.split("\n"):
        match = _ENV_LINE.match(line)
        if match is None:
            out.append(redact.display_key(line.strip()) if redact.is_secret_key(line) else line)
            continue
        lead, key, value = match.group("lead"), match.group("key"), match.group("value")
        out.append(f"{lead}{redact.display_key(key.strip())}={redact.redact_value(key.strip(), value)}")
    return "\n".join(out)


def redact_agent_config(doc: Any) -> Any:
    """The agent's JSON config with its secrets redacted by key (``EngineAuthData`` and every
    secret-named key), after registering their values for the free-text pass."""
    for value in _values_of(doc, AGENT_JSON_SECRET_KEYS):
        redact.register_secrets({redact.AUTH_DATA_KEY: value})
    try:
        redact.register_secrets({"ecs.config.json": json.dumps(doc)})  # nested secret-named keys
    except (ValueError, RecursionError):
        pass
    return redact.redact_json(_without(doc, AGENT_JSON_SECRET_KEYS))


def _without(doc: Any, keys: tuple[str, ...]) -> Any:
    """``doc`` with the values under ``keys`` (anywhere) redacted."""
    if isinstance(doc, dict):
        return {
            k: (redact.REDACTED if k in keys and v not in ("", None) else _without(v, keys)) for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [_without(v, keys) for v in doc]
    return doc


def _values_of(doc: Any, keys: tuple[str, ...]) -> list[str]:
    """The values under ``keys`` anywhere in ``doc``, as text (JSON for objects)."""
    found: list[str] = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in keys:
                found.append(value if isinstance(value, str) else json.dumps(value))
            else:
                found += _values_of(value, keys)
    elif isinstance(doc, list):
        for value in doc:
            found += _values_of(value, keys)
    return found


def register_container_secrets(state: Mapping[str, Any]) -> None:
    """Remember the secrets of a container's Env, labels and log options, for the free-text pass."""
    config = state.get("Config") or {}
    env = {}
    for entry in config.get("Env") or []:
        key, sep, value = str(entry).partition("=")
        if sep:
            env[key] = value
    redact.register_secrets(env)
    labels = config.get("Labels") or {}
    if isinstance(labels, dict):
        redact.register_secrets({str(k): str(v) for k, v in labels.items()})
    log_config = ((state.get("HostConfig") or {}).get("LogConfig") or {}).get("Config") or {}
    if isinstance(log_config, dict):
        redact.register_secrets({str(k): str(v) for k, v in log_config.items()})


def redact_container(state: Mapping[str, Any]) -> dict[str, Any]:
    """``docker inspect`` of a container with the values of secret keys (Env, labels, log options) replaced."""
    doc: dict[str, Any] = json.loads(json.dumps(state, default=str))
    config = doc.get("Config") or {}
    if isinstance(config.get("Env"), list):
        config["Env"] = redact.redact_env_entries(str(e) for e in config["Env"])
    redacted: dict[str, Any] = redact.redact_json(doc)
    return redacted
