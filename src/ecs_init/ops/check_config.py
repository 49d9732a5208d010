"""``check``'s configuration checks: the env files, their keys, booleans, JSON values, this program's
settings, and the values the container spec could not use.

The problems come from ``agent.config_problems.find``, the one producer ``render`` shows and
``pre-start``/``start`` log; here they become named checks (and a PASS where a class has none).
"""

from __future__ import annotations

from ecs_init.agent import config_problems as cp
from ecs_init.agent import spec
from ecs_init.agent.config_problems import ConfigProblems, Problem
from ecs_init.core import settings
from ecs_init.core.config import Config
from ecs_init.core.envfile import EnvFile
from ecs_init.ops.report import FAIL, PASS, WARN, Check


def config_checks(cfg: Config) -> list[Check]:
    """Every configuration check, on the files as ``cfg`` read them."""
    found = cp.find(cfg)
    cfg.mark_reported(found.setting_names())  # reported here: not logged again while checking
    operator, instance = (
        cfg.files if len(cfg.files) == 2 else (EnvFile(cfg.paths.ecs_config), EnvFile(cfg.paths.instance_config))
    )
    checks = [check_config_file(operator, "operator", found), check_config_file(instance, "instance", found)]
    checks += check_keys(found)
    checks += check_booleans(found)
    checks += check_json(found)
    checks += check_settings(found)
    checks += check_spec_values(cfg, found)
    return checks


def _check(name: str, problem: Problem) -> Check:
    return Check(name, FAIL if problem.fail else WARN, problem.reason, problem.hint, dict(problem.details))


def check_config_file(cf: EnvFile, label: str, found: ConfigProblems) -> Check:
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
    for kind in (cp.FILE, cp.NOT_TEXT):
        for problem in found.of(kind, cf.path):
            return Check(name, FAIL, problem.reason, problem.hint, {"file": cf.path})
    malformed = found.of(cp.MALFORMED, cf.path)
    if malformed:
        lines = [int(p.details["line"]) for p in malformed]
        more = len(cf.ignored) - len(lines)
        numbers = ", ".join(str(n) for n in lines) + (f" and {more} more" if more > 0 else "")
        return Check(
            name,
            WARN,
            f"{cf.path}: line(s) {numbers} have no '=' and are ignored",
            "write one KEY=VALUE per line",
            {"file": cf.path, "lines": lines},
        )
    return Check(name, PASS, f"{cf.path}: {len(cf.entries)} setting(s)", "", {"file": cf.path})


def check_keys(found: ConfigProblems) -> list[Check]:
    out = [_check("config.duplicate-key", p) for p in found.of(cp.DUPLICATE_KEY)]
    unknown = found.of(cp.UNKNOWN_KEY)
    out += [_check("config.unknown-key", p) for p in unknown]
    total = found.totals.get(cp.UNKNOWN_KEY, 0)
    if total > len(unknown):
        out.append(
            Check(
                "config.unknown-key",
                WARN,
                f"and {total - len(unknown)} more unknown key(s) (only the first {len(unknown)} are listed)",
                "check the spelling against the ECS agent's configuration documentation",
            )
        )
    if not total:
        out.insert(0, Check("config.keys", PASS, f"all {found.keys} key(s) are known"))
    return out


def check_booleans(found: ConfigProblems) -> list[Check]:
    """FAIL a boolean no rule can read; WARN a value only one of SPEC §3's two rules takes as true
    (``ECS_AGENT_RUN_PRIVILEGED=1`` is off for ecs-init, as for the Go program)."""
    out = [_check("config.boolean", p) for p in found.of(cp.BOOLEAN)]
    return out or [Check("config.boolean", PASS, f"{found.booleans} boolean setting(s) parse")]


def check_json(found: ConfigProblems) -> list[Check]:
    """The agent's JSON-valued keys (an invalid object in three of them stops the agent)."""
    return [_check("config.json", p) for p in found.of(cp.JSON_VALUE)] or [
        Check("config.json", PASS, "the agent's JSON values parse")
    ]


def check_settings(found: ConfigProblems) -> list[Check]:
    """This program's own numbers and choices: a value it would replace by the default FAILs
    (the same words ``start`` logs)."""
    return [_check("config.setting", p) for p in found.of(cp.SETTING)] or [
        Check("config.setting", PASS, "this program's own settings are in range")
    ]


_SPEC_CHECKS = (
    (
        settings.AGENT_LABELS,
        "config.agent-labels",
        'write a JSON object of strings, e.g. ECS_AGENT_LABELS={"team":"infra"}',
    ),
    (settings.LOG_DRIVER, "config.log-driver", "use one of " + ", ".join(spec.SUPPORTED_LOG_DRIVERS)),
    (settings.LOG_OPTS, "config.log-opts", 'write a JSON object of strings, e.g. ECS_LOG_OPTS={"max-size":"50m"}'),
)


def check_spec_values(cfg: Config, found: ConfigProblems) -> list[Check]:
    """What the container spec's own builders (as ``start`` runs them) could not use as written."""
    labels, log_config, _ = cp.spec_warnings(cfg)
    out = []
    for setting, name, hint in _SPEC_CHECKS:
        problems = [p for p in found.of(cp.SPEC) if p.key == setting.name]
        out += [Check(name, FAIL if p.fail else WARN, p.reason, hint) for p in problems]
        if problems:
            continue
        if setting is settings.AGENT_LABELS:
            text = f"ECS_AGENT_LABELS: {len(labels)} label(s)" if labels else "ECS_AGENT_LABELS is not set"
        elif setting is settings.LOG_DRIVER:
            text = f"log driver {log_config['Type']}"
        else:
            text = f"log options: {', '.join(sorted(log_config['Config'])) or 'none'}"
        out.append(Check(name, PASS, text))
    return out
