"""Problems in the configuration, from one producer (issue 20 items 1 and 2).

``find(cfg)`` reads the two ecs.config files as ``Config`` read them and this
program's own settings, and returns every problem once: files that cannot
be used or are not KEY=VALUE text, lines without ``=``, unknown keys (with a
did-you-mean), keys set twice, booleans no rule reads (or only one of SPEC
§3's two rules takes as true), values that are not the JSON the agent
expects, own settings out of range, and what the container spec's builders
(the ones ``start`` runs) could not use. ``check`` reports the problems one
by one; ``render`` shows, and ``pre-start`` and ``start`` log, one line per
class (``ConfigProblems.summary``), so the three never disagree.

Bounded: at most ``MAX_ITEMS`` problems of a class are described (a
did-you-mean costs a fuzzy match); the rest are counted. Secrets: a key part
that looks like a secret key is shown by its name only, values of secret keys
never appear, and malformed lines are named by their number only.
"""

from __future__ import annotations

import json
import logging

from ecs_init.agent import spec
from ecs_init.core import redact, settings
from ecs_init.core.config import Config
from ecs_init.core.envfile import EnvFile
from ecs_init.core.known_keys import BOOLEAN_KEYS, JSON_KEYS, KNOWN_KEYS
from ecs_init.core.record import dataclass, field

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any, Optional

SUGGESTION_CUTOFF = 0.75
MAX_ITEMS = 50  # problems of one class described one by one; the rest are counted
SHOWN = 5  # items named in a summary line
SEE_CHECK = "run `amazon-ecs-init check` for details"

# The classes, in the order their summary lines come.
FILE = "file"  # exists but cannot be used: ignored
NOT_TEXT = "not-text"  # not KEY=VALUE text: pre-start and start refuse it
MALFORMED = "malformed"  # a line without '=': ignored
UNKNOWN_KEY = "unknown-key"
DUPLICATE_KEY = "duplicate-key"
BOOLEAN = "boolean"
JSON_VALUE = "json"
SETTING = "setting"  # this program's own number or choice: the default is used
SPEC = "spec"  # what the container spec could not use as written (labels, log driver, log options)
KINDS = (FILE, NOT_TEXT, MALFORMED, UNKNOWN_KEY, DUPLICATE_KEY, BOOLEAN, JSON_VALUE, SETTING, SPEC)

_SUMMARY = {
    MALFORMED: "{n} line(s) without KEY=VALUE, ignored (not passed to the agent)",
    UNKNOWN_KEY: "{n} unknown key(s), passed to the agent as written",
    DUPLICATE_KEY: "{n} key(s) set more than once (the last one wins)",
    BOOLEAN: "{n} boolean(s) not written true or false",
    JSON_VALUE: "{n} value(s) that are not the JSON the agent expects",
    SETTING: "{n} setting(s) of amazon-ecs-init out of range or unreadable (the default is used)",
}


@dataclass
class Problem:
    kind: str
    fail: bool  # check: FAIL (else WARN)
    reason: str  # one line: check's reason
    hint: str
    item: str  # how the class's summary line names it
    key: str = ""  # the setting it is about, when there is one
    file: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConfigProblems:
    items: list[Problem] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)  # per class, those past MAX_ITEMS included
    keys: int = 0  # distinct keys in the files
    booleans: int = 0  # boolean entries read

    def add(self, problem: Problem) -> None:
        count = self.totals.get(problem.kind, 0) + 1
        self.totals[problem.kind] = count
        if count <= MAX_ITEMS:
            self.items.append(problem)

    def of(self, kind: str, file: Optional[str] = None) -> list[Problem]:
        return [p for p in self.items if p.kind == kind and (file is None or p.file == file)]

    def summary_by_kind(self) -> list[tuple[str, str]]:
        """(class, line): one line per class (one per file, and per spec problem, where each is its own
        story), naming at most ``SHOWN`` items and pointing at ``check``."""
        lines: list[tuple[str, str]] = []
        for kind in KINDS:
            found = self.of(kind)
            if not found:
                continue
            if kind in (FILE, NOT_TEXT, SPEC):
                lines += [(kind, f"{p.item}; {SEE_CHECK}") for p in found]
                continue
            total = self.totals[kind]
            if kind == MALFORMED:  # line numbers, by file
                by_file: dict[str, list[str]] = {}
                for p in found[: SHOWN * 2]:
                    by_file.setdefault(p.file, []).append(str(p.details["line"]))
                named = "; ".join(f"{path} line(s) {', '.join(numbers)}" for path, numbers in by_file.items())
                more = f" and {total - SHOWN * 2} more" if total > SHOWN * 2 else ""
            else:
                named = "; ".join(p.item for p in found[:SHOWN])
                more = f"; and {total - SHOWN} more" if total > SHOWN else ""
            lines.append((kind, f"ecs.config: {_SUMMARY[kind].format(n=total)}: {named}{more}; {SEE_CHECK}"))
        return lines

    def summary(self) -> list[str]:
        """What ``pre-start`` and ``start`` log and ``render`` shows as its warnings."""
        return [line for _, line in self.summary_by_kind()]

    def log_summary(self, logger: logging.Logger, cfg: Config) -> None:
        """Log the summary (a file that cannot be used as an error, the rest as warnings); ``cfg``'s
        accessors then do not log the same settings' problems again."""
        for kind, line in self.summary_by_kind():
            logger.log(logging.ERROR if kind in (FILE, NOT_TEXT) else logging.WARNING, "%s", line)
        cfg.mark_reported(self.setting_names())

    def setting_names(self) -> set[str]:
        """This program's settings whose problems are among these (``Config`` need not log them again)."""
        return {p.key for p in self.items if p.key in settings.BY_NAME}


def visible_key(text: str) -> str:
    """A key as written, every character a reader could not see written as an escape: controls
    (what ``core.printable`` escapes in all output) and also invisible ones (a no-break or
    zero-width space in ``ECS_CLUSTER\u00a0`` is the typo to show)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def suggest_key(key: str) -> Optional[str]:
    """The known key ``key`` was probably meant to be, or None."""
    import difflib  # here: only a config with an unknown key pays for it

    upper = key.upper().lstrip("#").strip()
    if upper in KNOWN_KEYS:
        return upper
    words = upper.split()
    if len(words) > 1 and words[0] in KNOWN_KEYS:  # "KEY value": a space instead of '='
        return words[0]
    matches = difflib.get_close_matches(upper, sorted(KNOWN_KEYS), n=1, cutoff=SUGGESTION_CUTOFF)
    return matches[0] if matches else None


def find(cfg: Config) -> ConfigProblems:
    """Every problem of the configuration ``cfg`` holds (see the module's docstring)."""
    out = ConfigProblems()
    files = [f for f in cfg.files if f.present]
    for cf, line in zip((f for f in cfg.files if f.error), cfg.file_errors()):
        out.add(
            Problem(
                FILE,
                True,
                f"{cf.path} {cf.error}",
                f"make {cf.path} a readable KEY=VALUE text file",
                line,
                file=cf.path,
            )
        )
    for cf, line in zip((f for f in cfg.files if f.refusal), cfg.refusals()):
        out.add(
            Problem(
                NOT_TEXT,
                True,
                f"{cf.path} {cf.refusal}: pre-start and start refuse to run with it",
                f"make {cf.path} a text file of KEY=VALUE lines (or remove it)",
                f"{line}: pre-start and start refuse to run with it",
                file=cf.path,
            )
        )
    files = [f for f in files if not f.refusal]  # not text: its lines mean nothing, the refusal says it all
    for cf in files:
        for number, _text in cf.ignored:
            out.add(
                Problem(
                    MALFORMED,
                    False,
                    f"{cf.path}:{number} has no '=' and is ignored",
                    "write one KEY=VALUE per line",
                    f"{cf.path}:{number}",
                    file=cf.path,
                    details={"file": cf.path, "line": number},
                )
            )
    _keys(out, files)
    _booleans(out, files)
    _json_values(out, files)
    _settings(out, cfg)
    _spec_values(out, cfg)
    return out


def _keys(out: ConfigProblems, files: list[EnvFile]) -> None:
    seen: dict[tuple[str, str], int] = {}
    keys: set[str] = set()
    for cf in files:
        for entry in cf.entries:
            keys.add(entry.key)
            first = seen.setdefault((cf.path, entry.key), entry.line)
            known = entry.key in KNOWN_KEYS
            if first == entry.line and (known or out.totals.get(UNKNOWN_KEY, 0) >= MAX_ITEMS):
                if not known:  # counted, not described: a did-you-mean costs a fuzzy match
                    out.add(Problem(UNKNOWN_KEY, False, "", "", "", file=cf.path))
                continue
            where = f"{cf.path}:{entry.line}"
            # a malformed key part that looks like a secret key (``KEY value`` with a space
            # instead of '=') carries the value in the key: shown by its name only
            shown = visible_key(redact.display_key(entry.key))
            details: dict[str, Any] = {"key": shown, "file": cf.path, "line": entry.line}
            if first != entry.line:
                out.add(
                    Problem(
                        DUPLICATE_KEY,
                        False,
                        f"{shown} is set again at {where} (first at line {first}); the last one wins",
                        f"keep one {shown} line",
                        f"{shown} at {where} (first at line {first})",
                        file=cf.path,
                        details=dict(details),
                    )
                )
            if known:
                continue
            if out.totals.get(UNKNOWN_KEY, 0) >= MAX_ITEMS:
                out.add(Problem(UNKNOWN_KEY, False, "", "", "", file=cf.path))
                continue
            suggestion = suggest_key(entry.key)
            details["suggestion"] = suggestion
            if entry.key.startswith("#"):
                hint = "ecs.config has no comments: this line sets a variable literally named " + repr(shown)
                hint += f"; delete the line{' or remove the #' if suggestion else ''}"
            elif shown != entry.key and suggestion:
                hint = f"write {suggestion}=<value>, with '=' right after the key"
            elif suggestion:
                hint = f"did you mean {suggestion}?"
            else:
                hint = "check the spelling against the ECS agent's configuration documentation"
            item = f"{shown} at {where}" + (f" (did you mean {suggestion}?)" if suggestion else "")
            out.add(
                Problem(
                    UNKNOWN_KEY, False, f"unknown key {shown} at {where}", hint, item, file=cf.path, details=details
                )
            )
    out.keys = len(keys)


def _booleans(out: ConfigProblems, files: list[EnvFile]) -> None:
    """Unparsable booleans FAIL; a value only one of SPEC §3's two rules takes as true WARNs
    (``ECS_AGENT_RUN_PRIVILEGED=1`` is off for ecs-init, as for the Go program)."""
    for cf in files:
        for entry in cf.entries:
            own = settings.BY_NAME.get(entry.key)
            if entry.key not in BOOLEAN_KEYS and (own is None or own.kind not in settings.BOOLEAN_KINDS):
                continue
            out.booleans += 1
            where = f"{cf.path}:{entry.line}"
            details = {"key": entry.key, "file": cf.path, "line": entry.line}
            written = f"{entry.key}={entry.value!r}"
            if settings.parse_bool(entry.value) is None:
                reason = (
                    f"{written} at {where} is not a boolean (ecs-init reads it as false, the agent uses its default)"
                )
                out.add(
                    Problem(
                        BOOLEAN,
                        True,
                        reason,
                        "use true or false",
                        f"{written} at {where} is not a boolean",
                        key=entry.key,
                        file=cf.path,
                        details=details,
                    )
                )
                continue
            disagreement = settings.rules_disagree(own, entry.value) if own is not None else None
            if disagreement is not None:
                on = settings.read_flag(own, entry.value)[0] if own is not None else False
                item = f"{written} at {where} is {'on' if on else 'off'} for ecs-init but on for ParseBool readers"
                out.add(
                    Problem(
                        BOOLEAN,
                        False,
                        f"{disagreement} (at {where})",
                        "write true or false",
                        item,
                        key=entry.key,
                        file=cf.path,
                        details=details,
                    )
                )


def _json_values(out: ConfigProblems, files: list[EnvFile]) -> None:
    for cf in files:
        for entry in cf.entries:
            expected = JSON_KEYS.get(entry.key)
            if expected is None or not entry.value.strip():
                continue
            shape, fatal = expected
            try:
                value = json.loads(entry.value)
                why = "" if isinstance(value, dict if shape == "object" else list) else f"not a JSON {shape}"
            except (ValueError, RecursionError) as err:
                why = f"not valid JSON ({err})"
            if not why:
                continue
            where = f"{cf.path}:{entry.line}"
            effect = "the agent refuses to start with it" if fatal else "the agent ignores it"
            out.add(
                Problem(
                    JSON_VALUE,
                    fatal,
                    f"{entry.key} at {where} is {why}: {effect}",
                    f"write a JSON {shape}, as the ECS agent's documentation shows for {entry.key}",
                    f"{entry.key} at {where} is {why} ({effect})",
                    key=entry.key,
                    file=cf.path,
                    details={"key": entry.key, "file": cf.path, "line": entry.line},
                )
            )


def _settings(out: ConfigProblems, cfg: Config) -> None:
    """This program's own numbers and choices, by the settings table's rule (the words ``Config`` logs)."""
    for setting in settings.SETTINGS:
        if setting.kind in settings.BOOLEAN_KINDS:
            continue  # _booleans
        raw = cfg.raw(setting)
        problem = settings.validate(setting, raw)
        if problem is None:
            continue
        origin = cfg.origin(setting)
        out.add(
            Problem(
                SETTING,
                True,
                f"{problem} (from {origin})",
                f"write a value in range ({settings.kind_text(setting)}), or remove it for the default",
                f"{problem} (from {origin})",
                key=setting.name,
                details={"key": setting.name, "value": raw, "source": origin},
            )
        )


def spec_warnings(cfg: Config) -> tuple[dict[str, str], dict[str, Any], list[spec.SpecWarning]]:
    """The labels and log config the spec's builders make of ``cfg``, and what they could not use."""
    warnings: list[spec.SpecWarning] = []
    labels, label_error = spec.parse_labels(cfg.merged.get(settings.AGENT_LABELS.name, ""))
    if label_error:
        warnings.append(spec.SpecWarning(settings.AGENT_LABELS.name, label_error))
    log_config = spec.build_log_config(cfg, warnings)
    return labels, log_config, warnings


def _spec_values(out: ConfigProblems, cfg: Config) -> None:
    for warning in spec_warnings(cfg)[2]:
        origin = cfg.origin(settings.BY_NAME[warning.key])
        where = f" (set in {origin})" if origin else ""
        out.add(Problem(SPEC, warning.replaced, f"{warning.text}{where}", "", warning.text, key=warning.key))
