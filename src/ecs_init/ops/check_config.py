"""``check``'s configuration checks: the env files, their keys, booleans, this program's settings, and the
values the container spec could not use (the same builders ``start`` uses report them)."""

from __future__ import annotations

import difflib
from typing import Any, Optional, Sequence

from ecs_init.agent import spec
from ecs_init.core import redact, settings
from ecs_init.core.config import Config
from ecs_init.core.envfile import EnvFile
from ecs_init.core.known_keys import BOOLEAN_KEYS, KNOWN_KEYS
from ecs_init.ops.report import FAIL, PASS, WARN, Check

SUGGESTION_CUTOFF = 0.75
MAX_LISTED = 50  # unknown or repeated keys listed one by one; the rest are counted


def config_checks(cfg: Config) -> list[Check]:
    """Every configuration check, on the files as ``cfg`` read them."""
    operator, instance = (
        cfg.files if len(cfg.files) == 2 else (EnvFile(cfg.paths.ecs_config), EnvFile(cfg.paths.instance_config))
    )
    files = (operator, instance)
    checks = [check_config_file(operator, "operator"), check_config_file(instance, "instance")]
    checks += check_keys(files)
    checks += check_booleans(cfg, files)
    checks += check_settings(cfg)
    checks += check_spec_values(cfg)
    return checks


def check_config_file(cf: EnvFile, label: str) -> Check:
    name = f"config.{label}"
    if not cf.present:
        if label == "operator":
            return Check(
                name,
                WARN,
                f"{cf.path} does not exist: the agent uses its defaults (cluster 'default')",
                f"create {cf.path} with at least ECS_CLUSTER=<your cluster>",
                {"file": cf.path},
            )
        return Check(name, PASS, f"{cf.path} does not exist (nothing set by the platform)", "", {"file": cf.path})
    if cf.error:
        return Check(
            name, FAIL, f"{cf.path} {cf.error}", f"make {cf.path} a readable KEY=VALUE text file", {"file": cf.path}
        )
    if cf.ignored:
        listed = [n for n, _ in cf.ignored[:MAX_LISTED]]
        numbers = ", ".join(str(n) for n in listed)
        if len(cf.ignored) > MAX_LISTED:
            numbers += f" and {len(cf.ignored) - MAX_LISTED} more"
        return Check(
            name,
            WARN,
            f"{cf.path}: line(s) {numbers} have no '=' and are ignored",
            "write one KEY=VALUE per line",
            {"file": cf.path, "lines": listed},
        )
    return Check(name, PASS, f"{cf.path}: {len(cf.entries)} setting(s)", "", {"file": cf.path})


def suggest_key(key: str) -> Optional[str]:
    upper = key.upper().lstrip("#").strip()
    if upper in KNOWN_KEYS:
        return upper
    words = upper.split()
    if len(words) > 1 and words[0] in KNOWN_KEYS:  # "KEY value": a space instead of '='
        return words[0]
    matches = difflib.get_close_matches(upper, sorted(KNOWN_KEYS), n=1, cutoff=SUGGESTION_CUTOFF)
    return matches[0] if matches else None


def check_keys(files: Sequence[EnvFile]) -> list[Check]:
    """WARN each unknown key (with a did-you-mean) and each key set twice in one file.

    Bounded, whatever the files hold: the first ``MAX_LISTED`` of each kind
    are listed, the rest counted in one summary check (a did-you-mean costs
    a fuzzy match against every known key).
    """
    unknown: list[Check] = []
    duplicates: list[Check] = []
    more = {"config.unknown-key": 0, "config.duplicate-key": 0}
    for cf in files:
        seen: dict[str, int] = {}  # key -> its first line in this file
        for entry in cf.entries:
            where = f"{cf.path}:{entry.line}"
            first = seen.setdefault(entry.key, entry.line)
            if first != entry.line:
                if len(duplicates) < MAX_LISTED:
                    duplicates.append(_repeated_key(cf.path, entry.key, where, entry.line, first))
                else:
                    more["config.duplicate-key"] += 1
            elif entry.key not in KNOWN_KEYS:
                if len(unknown) < MAX_LISTED:
                    unknown.append(_unknown_key(cf.path, entry.key, where, entry.line))
                else:
                    more["config.unknown-key"] += 1
    out = [*duplicates, *unknown]
    for name, count in more.items():
        if count:
            what = "unknown key(s)" if name == "config.unknown-key" else "repeated key(s)"
            out.append(
                Check(
                    name,
                    WARN,
                    f"{count} more {what} not listed (only the first {MAX_LISTED} are)",
                    "fix the ones listed and run check again",
                    {"count": count},
                )
            )
    if not unknown:
        count = len({entry.key for cf in files for entry in cf.entries})
        out.insert(0, Check("config.keys", PASS, f"all {count} key(s) are known"))
    return out


def _repeated_key(path: str, key: str, where: str, line: int, first: int) -> Check:
    # a malformed key part that looks like a secret key (``KEY value`` with a space
    # instead of '=') carries the value in the key: shown by its name only
    shown = redact.display_key(key)
    return Check(
        "config.duplicate-key",
        WARN,
        f"{shown} is set again at {where} (first at line {first}); the last one wins",
        f"keep one {shown} line",
        {"key": shown, "file": path, "line": line},
    )


def _unknown_key(path: str, key: str, where: str, line: int) -> Check:
    shown = redact.display_key(key)
    suggestion = suggest_key(key)
    details: dict[str, Any] = {"key": shown, "file": path, "line": line, "suggestion": suggestion}
    if key.startswith("#"):
        hint = "ecs.config has no comments: this line sets a variable literally named " + repr(shown)
        hint += f"; delete the line{' or remove the #' if suggestion else ''}"
    elif shown != key and suggestion:
        hint = f"write {suggestion}=<value>, with '=' right after the key"
    elif suggestion:
        hint = f"did you mean {suggestion}?"
    else:
        hint = "check the spelling against the ECS agent's configuration documentation"
    return Check("config.unknown-key", WARN, f"unknown key {shown} at {where}", hint, details)


def check_booleans(cfg: Config, files: Sequence[EnvFile]) -> list[Check]:
    """FAIL a boolean no rule can read; WARN a value only one of SPEC §3's two rules takes as true
    (``ECS_AGENT_RUN_PRIVILEGED=1`` is off for ecs-init, as for the Go program)."""
    out = []
    count = 0
    for cf in files:
        for entry in cf.entries:
            own = settings.BY_NAME.get(entry.key)
            if entry.key not in BOOLEAN_KEYS and (own is None or own.kind not in settings.BOOLEAN_KINDS):
                continue
            count += 1
            where = f"{cf.path}:{entry.line}"
            details = {"key": entry.key, "file": cf.path, "line": entry.line}
            if settings.parse_bool(entry.value) is None:
                out.append(
                    Check(
                        "config.boolean",
                        FAIL,
                        f"{entry.key}={entry.value!r} at {where} is not a boolean "
                        "(ecs-init reads it as false, the agent uses its default)",
                        "use true or false",
                        details,
                    )
                )
                continue
            disagreement = settings.rules_disagree(own, entry.value) if own is not None else None
            if disagreement is not None:
                out.append(
                    Check("config.boolean", WARN, f"{disagreement} (at {where})", "write true or false", details)
                )
    if not out:
        out.append(Check("config.boolean", PASS, f"{count} boolean setting(s) parse"))
    return out


def check_settings(cfg: Config) -> list[Check]:
    """This program's own numbers and choices, by the settings table's rule: a value it would
    replace by the default FAILs (the same words ``start`` logs)."""
    out = []
    for setting in settings.SETTINGS:
        if setting.kind in settings.BOOLEAN_KINDS:
            continue  # check_booleans
        raw = cfg.raw(setting)
        problem = settings.validate(setting, raw)
        if problem is None:
            continue
        details = {"key": setting.name, "value": raw, "source": cfg.origin(setting)}
        hint = f"write a value in range ({settings.kind_text(setting)}), or remove it for the default"
        out.append(Check("config.setting", FAIL, f"{problem} (from {cfg.origin(setting)})", hint, details))
    if not out:
        out.append(Check("config.setting", PASS, "this program's own settings are in range"))
    return out


_SPEC_CHECKS = (
    (
        settings.AGENT_LABELS,
        "config.agent-labels",
        'write a JSON object of strings, e.g. ECS_AGENT_LABELS={"team":"infra"}',
    ),
    (settings.LOG_DRIVER, "config.log-driver", "use one of " + ", ".join(spec.SUPPORTED_LOG_DRIVERS)),
    (settings.LOG_OPTS, "config.log-opts", 'write a JSON object of strings, e.g. ECS_LOG_OPTS={"max-size":"50m"}'),
)


def check_spec_values(cfg: Config) -> list[Check]:
    """What the container spec's own builders (as ``start`` runs them) could not use as written."""
    warnings: list[spec.SpecWarning] = []
    labels, label_error = spec.parse_labels(cfg.merged.get(settings.AGENT_LABELS.name, ""))
    if label_error:
        warnings.append(spec.SpecWarning(settings.AGENT_LABELS.name, label_error))
    log_config = spec.build_log_config(cfg, warnings)
    out = []
    for setting, name, hint in _SPEC_CHECKS:
        found = [w for w in warnings if w.key == setting.name]
        origin = cfg.origin(setting)
        for warning in found:
            where = f" (set in {origin})" if origin else ""
            out.append(Check(name, FAIL if warning.replaced else WARN, f"{warning.text}{where}", hint))
        if found:
            continue
        if setting is settings.AGENT_LABELS:
            text = f"ECS_AGENT_LABELS: {len(labels)} label(s)" if labels else "ECS_AGENT_LABELS is not set"
        elif setting is settings.LOG_DRIVER:
            text = f"log driver {log_config['Type']}"
        else:
            text = f"log options: {', '.join(sorted(log_config['Config'])) or 'none'}"
        out.append(Check(name, PASS, text))
    return out
