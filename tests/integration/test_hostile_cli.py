"""Issue 14 through the real CLI: hostile files never hang an action, are never followed, and nothing in
them reaches the terminal raw; ``check`` stays bounded on any input.

Every run has a timeout (a regression fails instead of hanging the suite);
Docker is unreachable here (``NO_DOCKER``), so the operator commands answer
at once. The supervisor cases are in ``test_hostile_start.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import jsonschema
import pytest
from helpers import cli_argv, cli_env, run_cli, write_config

NO_DOCKER = "unix:///tmp/nonexistent.sock"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS = os.path.join(ROOT, "src", "ecs_init", "schemas")
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
TIMEOUT = 30


def run(prefix: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    extra.setdefault("DOCKER_HOST", NO_DOCKER)
    started = time.monotonic()
    proc = run_cli(prefix, *args, timeout=TIMEOUT, **extra)
    assert time.monotonic() - started < 15, f"{args} took {time.monotonic() - started:.1f}s"
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr, proc.stderr
    return proc


def schema(name: str) -> dict[str, Any]:
    with open(os.path.join(SCHEMAS, f"{name}.schema.json")) as fh:
        return json.load(fh)  # type: ignore[no-any-return]


def lib(prefix: str, *parts: str) -> str:
    return os.path.join(prefix, "var/lib/ecs", *parts)


def run_dir(prefix: str) -> str:
    path = os.path.join(prefix, "var/run/ecs-init")
    os.makedirs(path, exist_ok=True)
    return path


def cache(prefix: str, name: str) -> str:
    return os.path.join(prefix, "var/cache/ecs", name)


# ---------------------------------------------------------------- FIFOs and symlinks (items 1, 2)


def test_status_never_blocks_on_fifos_and_never_echoes_a_symlinked_locator(prefix: str, tmp_path: Any) -> None:
    os.mkfifo(lib(prefix, "ecs-init-events.json"))
    os.mkfifo(os.path.join(run_dir(prefix), "supervisor.json"))
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash-of-root:19000:0:99999:7:::\n")
    os.symlink(secret, cache(prefix, "desired-image"))
    proc = run(prefix, "status")
    assert proc.returncode == 1, proc.stderr  # Docker does not answer: cannot tell
    out = proc.stdout
    assert "supervisor.json is a FIFO, not a regular file" in out
    assert "ecs-init-events.json is a FIFO, not a regular file" in out
    assert "desired image: REFUSED" in out and "it is a symlink (not followed)" in out
    assert "secret-hash" not in out + proc.stderr
    doc = json.loads(run(prefix, "status", "--json").stdout)
    jsonschema.validate(doc, schema("status"))
    assert doc["cache"]["desired_image"] is None and "symlink" in doc["cache"]["desired_image_error"]


def test_a_fifo_at_the_lock_file_fails_reload_cache_at_once(prefix: str) -> None:
    os.mkfifo(os.path.join(run_dir(prefix), "ecs-init.lock"))
    proc = run(prefix, "reload-cache", ECS_INIT_LOCK_TIMEOUT="60")
    assert proc.returncode == 255
    errors = [line for line in proc.stderr.splitlines() if line.startswith("level=error")]
    assert len(errors) == 1 and "refusing the lock file" in errors[0] and "a FIFO, not a regular file" in errors[0]


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_an_unusable_log_file_is_one_warning_and_the_action_goes_on(prefix: str, tmp_path: Any, kind: str) -> None:
    log_file = os.path.join(prefix, "var/log/ecs/ecs-init.log")
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0::/root:/bin/sh\n")
    if kind == "fifo":
        os.mkfifo(log_file)
    else:
        os.symlink(target, log_file)
    proc = run(prefix, "stop")  # logs its start and its failure (Docker does not answer)
    assert proc.returncode == 255
    warnings = [line for line in proc.stderr.splitlines() if "cannot use the log file" in line]
    assert len(warnings) == 1 and "logging to the console only" in warnings[0], proc.stderr
    assert "level=error" in proc.stderr  # the action's own failure still reaches the console
    assert target.read_text() == "root:x:0:0::/root:/bin/sh\n"


def test_render_reports_ebs_off_for_a_symlinked_ebs_dir(prefix: str, tmp_path: Any) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.makedirs(os.path.join(prefix, "mnt/ecs"))
    os.symlink(elsewhere, os.path.join(prefix, "mnt/ecs/ebs"))
    doc = json.loads(run(prefix, "render", "--json").stdout)
    assert "ECS_EBSTA_SUPPORTED=false" in doc["body"]["Env"]


# ---------------------------------------------------------------- malformed state (item 5)


@pytest.mark.parametrize(
    "text,broken",
    [
        ('{"pid":1,"started_at":1e20}', "started_at 1e+20 is not a time"),
        ('{"pid":1,"started_at":NaN,"updated_at":Infinity}', "started_at 'NaN' is not a time"),
        ('{"pid":1e23}', "pid 1e+23 is not a process ID"),
        ('{"pid":100000000000000000000000,"restarts":-3}', "restarts -3 is not a count"),
        ("NaN", "does not hold a JSON object"),
        ("[" * 100000, "is nested more than 32 deep"),
    ],
)
def test_status_prints_what_it_can_and_marks_the_broken_part(prefix: str, text: str, broken: str) -> None:
    with open(os.path.join(run_dir(prefix), "supervisor.json"), "w") as fh:
        fh.write(text)
    proc = run(prefix, "status")
    assert proc.returncode == 1, proc.stderr  # the verdict is Docker's (unreachable), never 255
    assert "Supervisor (amazon-ecs-init start)" in proc.stdout and "Host network" in proc.stdout
    (marked,) = [line for line in proc.stdout.splitlines() if line.startswith("  BROKEN:")]
    assert broken in marked and "no state file" not in proc.stdout
    doc = json.loads(run(prefix, "status", "--json").stdout)
    jsonschema.validate(doc, schema("status"))
    assert broken in doc["supervisor"]["error"]


# ---------------------------------------------------------------- terminal escapes (item 7)


def test_no_human_output_carries_a_raw_control_character(prefix: str) -> None:
    esc = "\x1b]0;owned\x07\x1b[2J\x9b31m"
    with open(cache(prefix, "desired-image"), "w") as fh:
        fh.write(f"ecs-agent-{esc}.tar\n")
    with open(lib(prefix, "ecs-init-events.json"), "w") as fh:
        json.dump([{"event": "upgrade-failed", "time": "t", "reason": esc}], fh)
    with open(os.path.join(run_dir(prefix), "supervisor.json"), "w") as fh:
        json.dump({"pid": 1, "state": esc, "upgrade": {"previous_image": esc, "new_image": esc}}, fh)
    write_config(prefix, f"ECS_CLUSTER=c{esc}\nECS_CLUSTR{esc}=x\nECS_LOG_DRIVER={esc}\n")
    outputs = {}
    for args in (("status",), ("check",), ("render",), ("collect", "--output", os.path.join(prefix, "b.tgz"))):
        proc = run(prefix, *args)
        outputs[args[0]] = proc.stdout
        assert not RAW_CONTROL.search(proc.stdout), (args, proc.stdout)
        assert not RAW_CONTROL.search(proc.stderr.replace("\n", "")), (args, proc.stderr)
    assert "ecs-agent-\\x1b]0;owned\\x07\\x1b[2J\\x9b31m.tar" in outputs["status"]
    assert "ECS_CLUSTR\\x1b]0;owned" in outputs["check"]
    assert "ECS_CLUSTER=c\\x1b]0;owned" in outputs["render"]


def test_every_operator_command_prints_through_the_one_helper() -> None:
    """status, check, check --network, render and collect write to stdout only via report.write_report."""
    ops = os.path.join(ROOT, "src", "ecs_init", "ops")
    writers = []
    for name in sorted(os.listdir(ops)):
        if name.endswith(".py") and name != "report.py":
            with open(os.path.join(ops, name)) as fh:
                source = fh.read()
            if "sys.stdout" in source or re.search(r"\bprint\(", source):
                writers.append(name)
    assert writers == []


# ---------------------------------------------------------------- bounded check (item 9)


# Measured from a small parent: a child forked from pytest itself would report pytest's RSS as its peak
# (until exec it shares pytest's memory, and Linux counts that in the child's peak).
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stderr=subprocess.DEVNULL).returncode\n"
    "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(f'RUSAGE {use.ru_utime + use.ru_stime} {use.ru_maxrss}\\n')\n"
    "sys.exit(code)\n"
)


def measured(prefix: str, *args: str) -> tuple[int, str, float, float]:
    """(exit code, stdout, CPU seconds, peak RSS in MiB) of one CLI run."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *cli_argv(*args)],
        env=cli_env(prefix, DOCKER_HOST=NO_DOCKER),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("RUSAGE ")]
    _, cpu, rss_kib = line.split()
    return proc.returncode, proc.stdout, float(cpu), int(rss_kib) / 1024


def _unknown_keys(count: int, width: int) -> str:
    return "".join(f"ECS_UNKNOWN_KEY_{n:0{width}d}=v{n % 10}\n" for n in range(count))


def _many_members(path: str, count: int) -> None:
    import tarfile

    header = tarfile.TarInfo("m")
    with open(path, "wb") as fh:
        for n in range(count):
            header.name = f"m{n:06d}"
            fh.write(header.tobuf(format=tarfile.USTAR_FORMAT))
        fh.write(b"\0" * 1024)


@pytest.mark.parametrize("case", ["37k-unknown-keys-1MB", "349k-lines-1MB", "9999-unknown-keys", "150k-tar-members"])
def test_check_stays_under_1s_and_40MB(prefix: str, case: str) -> None:
    if case == "37k-unknown-keys-1MB":
        text = _unknown_keys(37500, 6)
        assert 0.9e6 < len(text) < 1024 * 1024
        write_config(prefix, text)
    elif case == "349k-lines-1MB":
        write_config(prefix, "A=\n" * (1024 * 1024 // 3))  # the most entries 1 MiB can hold
    elif case == "9999-unknown-keys":
        write_config(prefix, _unknown_keys(9999, 4))
    else:
        _many_members(cache(prefix, "ecs-agent.tar"), 150000)
        with open(cache(prefix, "state"), "w") as fh:
            fh.write("2")
    code, out, cpu, rss = measured(prefix, "check")
    print(f"check, {case}: {cpu:.2f}s CPU, {rss:.1f} MiB peak RSS")
    assert code == 1
    assert cpu < 1.0, f"{cpu:.2f}s of CPU"
    assert rss < 40, f"{rss:.1f} MiB peak RSS"
    if case in ("37k-unknown-keys-1MB", "349k-lines-1MB"):
        assert "has more than 10000 lines" in out
    elif case == "9999-unknown-keys":
        assert out.count("unknown key ECS_UNKNOWN_KEY_") == 50
        assert "and 9949 more unknown key(s) (only the first 50 are listed)" in out
    else:
        assert "has more than 4096 members" in out


def test_check_names_each_special_file(prefix: str, tmp_path: Any) -> None:
    os.mkfifo(lib(prefix, "ecs-init-events.json"))
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink(target, os.path.join(prefix, "var/log/ecs/ecs-init.log"))
    proc = run(prefix, "check", "--json")
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema("check"))
    found = {c["name"]: c for c in doc["checks"] if c["name"].startswith("files.")}
    assert found["files.events"]["status"] == "FAIL" and found["files.events"]["kind"] == "a FIFO"
    assert found["files.init-log"]["status"] == "FAIL" and "never followed" in found["files.init-log"]["reason"]
    assert found["files.supervisor-state"]["status"] == "PASS"
    assert target.read_text() == "root:x:0:0::/root:/bin/sh\n"  # check is read-only: nothing written through
