"""A small model of how systemd runs a Type=simple/notify service's commands.

Used by tests to run a unit file's ``ExecStartPre=``/``ExecStart=``/
``ExecStop=``/``ExecStopPost=`` lines the way systemd would, without systemd:

* unit parsing: sections, ``#``/``;`` comments, backslash continuation lines,
  repeated keys accumulate in order, an empty assignment resets the list;
* ``EnvironmentFile=``: read just before *each* command runs (so a file
  written by ``ExecStartPre=`` is seen by ``ExecStart=``), in the order listed,
  later files override earlier ones, a ``-`` prefix makes a missing file
  harmless (without it the command fails), parsed with systemd's env-file
  grammar (comments, ``KEY=VALUE``, single/double quotes, backslash escapes
  and continuations, trailing whitespace trimmed, invalid names ignored);
* command lines: ``-``/``@``/``+``/``!``/``:`` prefixes (``-`` = failure
  ignored), quoting, ``$VAR``/``${VAR}`` expansion from the environment;
* order: ExecStartPre (each must succeed) -> ExecStart (the main process) ->
  ExecStop (only when the start succeeded; also after the main process exited
  on its own) -> ExecStopPost (always), with ``$SERVICE_RESULT``,
  ``$EXIT_CODE``, ``$EXIT_STATUS`` set for the stop commands and ``$MAINPID``
  for ExecStop while the main process runs;
* the restart decision of ``Restart=`` with ``RestartPreventExitStatus=``,
  ``RestartForceExitStatus=`` and ``SuccessExitStatus=``.

Paths named in the unit can be mapped (``path_map``) so a test can point
``/usr/libexec/amazon-ecs-init`` at a fake program and the env files at a
temporary root.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

# ----------------------------------------------------------------- unit file


@dataclass
class Unit:
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        return list(self.sections.get(section, {}).get(key, []))

    def value(self, section: str, key: str, default: str | None = None) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else default

    def words(self, section: str, key: str) -> list[str]:
        """All whitespace-separated words of every assignment (After=a b, After=c)."""
        return [w for v in self.values(section, key) for w in v.split()]


def parse_unit_text(text: str) -> Unit:
    unit = Unit()
    section: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        while line.endswith("\\") and i < len(lines):
            nxt = lines[i].strip()
            i += 1
            if nxt and nxt[0] in "#;":  # comment lines inside a continuation are skipped
                continue
            line = line[:-1] + " " + nxt
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.sections.setdefault(section, {})
            continue
        if section is None or "=" not in line:
            raise ValueError(f"not a unit file line: {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        entries = unit.sections[section].setdefault(key, [])
        if value == "":
            entries.clear()
        else:
            entries.append(value)
    return unit


def parse_unit(path: str) -> Unit:
    with open(path) as fh:
        return parse_unit_text(fh.read())


# ----------------------------------------------------------- EnvironmentFile

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DQ_ESCAPABLE = '"\\`$'


def parse_env_file_text(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile= grammar (src/basic/env-file.c), as a state machine."""
    result: dict[str, str] = {}
    state = "pre_key"
    key = ""
    value: list[str] = []
    # index just past the last non-whitespace or quoted char of value (for trimming)
    keep = 0

    def commit() -> None:
        name = key.strip()
        if _NAME.match(name):
            result[name] = "".join(value[:keep])

    text += "\n"
    i = 0
    while i < len(text):
        c = text[i]
        i += 1
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif not c.isspace():
                state, key = "key", c
        elif state == "key":
            if c == "\n":
                state = "pre_key"  # a line without '=' is ignored
            elif c == "=":
                state, value, keep = "pre_value", [], 0
            else:
                key += c
        elif state == "pre_value":
            if c == "\n":
                commit()
                state = "pre_key"
            elif c == '"':
                state = "dq"
            elif c == "'":
                state = "sq"
            elif c == "\\":
                state = "value_escape"
            elif not c.isspace():
                value.append(c)
                keep = len(value)
                state = "value"
        elif state == "value":
            if c == "\n":
                commit()
                state = "pre_key"
            elif c == "\\":
                state = "value_escape"
            elif c == '"':
                state = "dq"
            elif c == "'":
                state = "sq"
            else:
                value.append(c)
                if not c.isspace():
                    keep = len(value)
        elif state == "value_escape":
            state = "value"
            if c != "\n":  # backslash-newline continues the line
                value.append(c)
                keep = len(value)
        elif state == "sq":
            if c == "'":
                state = "value"
                keep = len(value)
            else:
                value.append(c)
        elif state == "dq":
            if c == '"':
                state = "value"
                keep = len(value)
            elif c == "\\":
                state = "dq_escape"
            else:
                value.append(c)
        elif state == "dq_escape":
            state = "dq"
            if c in _DQ_ESCAPABLE:
                value.append(c)
            elif c != "\n":
                value.extend(("\\", c))
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c == "\n":
                state = "pre_key"
        elif state == "comment_escape":
            state = "comment"
    return result


class MissingEnvironmentFile(Exception):
    pass


def load_environment_files(specs: list[str], path_map: Callable[[str], str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in specs:
        for item in spec.split():
            optional = item.startswith("-")
            path = path_map(item[1:] if optional else item)
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    env.update(parse_env_file_text(fh.read()))
            except FileNotFoundError:
                if not optional:
                    raise MissingEnvironmentFile(path)
    return env


# -------------------------------------------------------------- command lines


@dataclass
class Command:
    argv: list[str]
    ignore_failure: bool


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def parse_command(line: str, env: Mapping[str, str], path_map: Callable[[str], str]) -> Command:
    ignore = False
    while line and line[0] in "-@+!:":
        if line[0] == "-":
            ignore = True
        line = line[1:]
    words = shlex.split(line)
    out: list[str] = []
    for word in words:
        if word.startswith("$") and _VAR.fullmatch(word):
            # "$VAR" alone splits into words; "${VAR}" is one word
            name = word[2:-1] if word.startswith("${") else word[1:]
            value = env.get(name, "")
            out.extend(value.split() if not word.startswith("${") else [value])
        else:
            out.append(_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), word))
    if not out or not out[0].startswith("/"):
        raise ValueError(f"systemd needs an absolute executable path: {line!r}")
    out[0] = path_map(out[0])
    return Command(out, ignore)


# ------------------------------------------------------------ restart policy

_CLEAN_SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE}


def _status_set(unit: Unit, key: str) -> set[int]:
    codes: set[int] = set()
    for word in unit.words("Service", key):
        if word.isdigit():
            codes.add(int(word))
    return codes


def is_success(unit: Unit, exit_status: int | None, signum: int | None) -> bool:
    if signum is not None:
        return signum in _CLEAN_SIGNALS
    return exit_status == 0 or exit_status in _status_set(unit, "SuccessExitStatus")


def should_restart(
    unit: Unit,
    exit_status: int | None = None,
    signum: int | None = None,
    stopped_by_operator: bool = False,
) -> bool:
    """systemd's decision after the main process of a running service ended."""
    if stopped_by_operator:
        return False
    if exit_status is not None and exit_status in _status_set(unit, "RestartPreventExitStatus"):
        return False
    if exit_status is not None and exit_status in _status_set(unit, "RestartForceExitStatus"):
        return True
    policy = unit.value("Service", "Restart", "no")
    success = is_success(unit, exit_status, signum)
    if policy == "always":
        return True
    if policy == "on-success":
        return success
    if policy == "on-failure":
        return not success
    if policy == "on-abnormal":
        return signum is not None and not success
    if policy == "on-abort":
        return signum is not None and signum not in _CLEAN_SIGNALS
    return False


# ------------------------------------------------------------------- running


@dataclass
class Step:
    phase: str  # ExecStartPre, ExecStart, ExecStop, ExecStopPost
    argv: list[str]
    returncode: int


@dataclass
class Run:
    steps: list[Step] = field(default_factory=list)
    result: str = "success"  # systemd's $SERVICE_RESULT
    main_status: int | None = None
    main_signal: int | None = None
    restart: bool = False

    def phases(self) -> list[str]:
        return [s.phase for s in self.steps]


class ServiceRunner:
    """Run one start/stop cycle of a unit's commands as systemd would."""

    def __init__(
        self,
        unit: Unit,
        path_map: Mapping[str, str] | None = None,
        root: str = "",
        base_env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        wrapper: Sequence[str] = (),
    ):
        self.unit = unit
        self.map = dict(path_map or {})
        self.root = root
        self.base_env = dict(base_env or {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"})
        self.timeout = timeout
        # prepended to every command (e.g. ["ip", "netns", "exec", NAME])
        self.wrapper = list(wrapper)

    def path(self, p: str) -> str:
        if p in self.map:
            return self.map[p]
        return self.root + p if self.root and p.startswith("/") else p

    def environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = dict(self.base_env)
        for line in self.unit.values("Service", "Environment"):
            for word in shlex.split(line):
                if "=" in word:
                    k, v = word.split("=", 1)
                    env[k] = v
        env.update(load_environment_files(self.unit.values("Service", "EnvironmentFile"), self.path))
        env.update(extra)
        return env

    def _command(self, phase: str, line: str, extra: Mapping[str, str]) -> tuple[Command, dict[str, str]]:
        env = self.environment(extra)
        cmd = parse_command(line, env, self.path)
        cmd.argv[:0] = self.wrapper
        return cmd, env

    def _run_sync(self, run: Run, phase: str, extra: Mapping[str, str]) -> bool:
        for line in self.unit.values("Service", phase):
            try:
                cmd, env = self._command(phase, line, extra)
            except MissingEnvironmentFile:
                run.steps.append(Step(phase, [line], 254))
                return False
            rc = subprocess.run(cmd.argv, env=env, timeout=self.timeout).returncode
            run.steps.append(Step(phase, cmd.argv, rc))
            if rc != 0 and not cmd.ignore_failure:
                return False
        return True

    def cycle(self, stop_after: float | None = None, before_stop: Callable[[], None] | None = None) -> Run:
        """Start the service; stop it after ``stop_after`` s (None: wait for the main process).

        ``before_stop`` is called while the main process still runs, just
        before the operator's stop (e.g. to probe the running service).
        """
        run = Run()
        started = self._run_sync(run, "ExecStartPre", {})
        main: subprocess.Popen[bytes] | None = None
        operator_stop = False
        if not started:
            run.result = "exit-code"
        else:
            lines = self.unit.values("Service", "ExecStart")
            if len(lines) != 1:
                raise ValueError("Type=simple/notify services need exactly one ExecStart=")
            try:
                cmd, env = self._command("ExecStart", lines[0], {})
            except MissingEnvironmentFile:
                run.steps.append(Step("ExecStart", [lines[0]], 254))
                run.result = "resources"
                started = False
            else:
                main = subprocess.Popen(cmd.argv, env=env)
                main_step = Step("ExecStart", cmd.argv, 0)
                run.steps.append(main_step)
                try:
                    main.wait(timeout=stop_after)
                except subprocess.TimeoutExpired:
                    operator_stop = True
                    if before_stop:
                        before_stop()
                    # ExecStop runs while the main process is alive; then systemd
                    # sends SIGTERM (KillMode=control-group) to what is left.
                    self._run_sync(run, "ExecStop", {"MAINPID": str(main.pid)})
                    if main.poll() is None:
                        main.send_signal(signal.SIGTERM)
                    deadline = time.monotonic() + self.timeout
                    while main.poll() is None and time.monotonic() < deadline:
                        time.sleep(0.05)
                    if main.poll() is None:
                        main.kill()
                        main.wait()
                rc = main.returncode
                main_step.returncode = rc
                if rc < 0:
                    run.main_signal = -rc
                else:
                    run.main_status = rc
                if not is_success(self.unit, run.main_status, run.main_signal):
                    run.result = "signal" if run.main_signal else "exit-code"
                if not operator_stop:
                    # the main process ended on its own: systemd still runs ExecStop
                    self._run_sync(run, "ExecStop", self._exit_env(run))
        self._run_sync(run, "ExecStopPost", self._exit_env(run))
        if started and main is not None:
            run.restart = should_restart(self.unit, run.main_status, run.main_signal, operator_stop)
        else:
            # a failed start counts as a failure for Restart=on-failure
            run.restart = not operator_stop and self.unit.value("Service", "Restart", "no") in ("on-failure", "always")
        return run

    @staticmethod
    def _exit_env(run: Run) -> dict[str, str]:
        env = {"SERVICE_RESULT": run.result}
        if run.main_signal is not None:
            env.update(EXIT_CODE="killed", EXIT_STATUS=signal.Signals(run.main_signal).name[3:])
        elif run.main_status is not None:
            env.update(EXIT_CODE="exited", EXIT_STATUS=str(run.main_status))
        return env
