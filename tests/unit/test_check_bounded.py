"""Issue 14, items 6 and 9 (the pure parts): ``check`` does bounded work whatever the files hold, and
says what lies at each path this program reads or writes."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import stat
import tarfile
import time
import tracemalloc
from typing import Any

import pytest

from ecs_init.agent import config_problems as cp
from ecs_init.core import envfile
from ecs_init.core.config import Config
from ecs_init.core.paths import Paths
from ecs_init.ops import check_config, check_files, check_host

SCHEMA = os.path.join(os.path.dirname(__file__), "..", "..", "src", "ecs_init", "schemas", "check.schema.json")


def _cfg(tmp_path: Any, operator: str) -> Config:
    path = tmp_path / "etc" / "ecs" / "ecs.config"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(operator)
    return Config.load({}, Paths(prefix=str(tmp_path)))


# ---------------------------------------------------------------- unknown and repeated keys


def test_unknown_keys_past_the_first_50_are_counted_not_matched(tmp_path: Any) -> None:
    count = envfile.MAX_CONFIG_LINES - 1
    cfg = _cfg(tmp_path, "".join(f"ECS_UNKNOWN_KEY_{n:06d}=v\n" for n in range(count)) + "ECS_CLUSTER=c")
    started = time.process_time()
    checks = check_config.check_keys(cp.find(cfg))
    spent = time.process_time() - started
    unknown = [c for c in checks if c.name == "config.unknown-key"]
    assert len(unknown) == cp.MAX_ITEMS + 1
    assert all("suggestion" in c.details for c in unknown[:-1])
    assert unknown[-1].reason == f"and {count - 50} more unknown key(s) (only the first 50 are listed)"
    assert spent < 0.5, f"{spent:.2f}s of CPU for {count} unknown keys"


def test_repeated_keys_past_the_first_50_are_counted(tmp_path: Any) -> None:
    found = cp.find(_cfg(tmp_path, "ECS_CLUSTER=a\n" * 300))
    checks = check_config.check_keys(found)
    assert len([c for c in checks if c.name == "config.duplicate-key"]) == cp.MAX_ITEMS
    assert found.totals[cp.DUPLICATE_KEY] == 299
    assert [c.name for c in checks if c.name == "config.unknown-key"] == []


def test_an_unknown_key_set_twice_is_one_unknown_key_and_one_repeat(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, "ECS_CLUSTR=a\nECS_CLUSTR=b\n")
    names = [(c.name, c.details.get("line")) for c in check_config.check_keys(cp.find(cfg))]
    assert names[0] == ("config.duplicate-key", 2) and ("config.unknown-key", 1) in names


def test_lines_without_equals_are_listed_up_to_50(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, "A=1\n" * 200 + "garbage\n" * 120)
    result = check_config.check_config_file(cfg.files[0], "operator", cp.find(cfg))
    assert result.status == "WARN" and result.reason.endswith("250 and 70 more have no '=' and are ignored")
    assert result.details["lines"] == list(range(201, 251))


@pytest.mark.parametrize("line", ["A=\n", "x\n", "#\n"])
def test_a_config_file_over_the_line_cap_is_refused_with_one_line(tmp_path: Any, line: str) -> None:
    cfg = _cfg(tmp_path, line * (envfile.MAX_CONFIG_LINES + 1))
    operator = cfg.files[0]
    assert operator.error == f"has more than {envfile.MAX_CONFIG_LINES} lines"
    assert operator.entries == [] and operator.ignored == []
    result = check_config.check_config_file(operator, "operator", cp.find(cfg))
    assert result.status == "FAIL" and "more than 10000 lines" in result.reason


def test_a_config_file_at_the_line_cap_is_read(tmp_path: Any) -> None:
    cfg = _cfg(tmp_path, "A=1\n" * envfile.MAX_CONFIG_LINES)
    assert cfg.files[0].error == "" and len(cfg.files[0].entries) == envfile.MAX_CONFIG_LINES


# ---------------------------------------------------------------- the tarball scan


def _tar_of_empty_members(path: str, count: int) -> None:
    header = tarfile.TarInfo("m")
    with open(path, "wb") as fh:
        for n in range(count):
            header.name = f"m{n:06d}"
            fh.write(header.tobuf(format=tarfile.USTAR_FORMAT))
        fh.write(b"\0" * 1024)


def test_a_tarball_with_too_many_members_is_refused_after_a_bounded_scan(tmp_path: Any) -> None:
    path = str(tmp_path / "many.tar")
    _tar_of_empty_members(path, 20000)
    tracemalloc.start()
    started = time.process_time()
    try:
        tags, problem = check_host.inspect_archive(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    spent = time.process_time() - started
    assert tags == [] and problem == "has more than 4096 members: not a docker save archive of the agent"
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes"
    assert spent < 1.0, f"{spent:.2f}s of CPU"


def test_a_header_claiming_gigabytes_is_never_read_into_memory(tmp_path: Any) -> None:
    """A pax header says how long it is; tarfile reads it whole. 64 MiB of (sparse) zeros here."""
    path = str(tmp_path / "pax.tar")
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    pax.size = 64 * 1024 * 1024
    with open(path, "wb") as fh:
        fh.write(pax.tobuf(format=tarfile.USTAR_FORMAT))
        fh.truncate(512 + pax.size + 1024)
    tracemalloc.start()
    try:
        tags, problem = check_host.inspect_archive(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tags == [] and "not a readable tar archive" in problem
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"


def test_a_real_docker_save_layout_still_reads(tmp_path: Any) -> None:
    path = str(tmp_path / "agent.tar")
    manifest = [{"Config": "c.json", "RepoTags": ["amazon/amazon-ecs-agent:latest"], "Layers": ["l/layer.tar"]}]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        members = (("c.json", b"{}"), ("l/layer.tar", b"x" * 10), ("manifest.json", json.dumps(manifest).encode()))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert check_host.inspect_archive(path) == (["amazon/amazon-ecs-agent:latest"], "")


def test_a_fifo_tarball_is_refused_without_blocking(tmp_path: Any) -> None:
    path = str(tmp_path / "fifo.tar")
    os.mkfifo(path)
    assert check_host.inspect_archive(path) == ([], "is a FIFO, not a regular file")


# ---------------------------------------------------------------- files.*


def _results(paths: Paths) -> dict[str, Any]:
    return {c.name: c for c in check_files.check_files(paths)}


def test_every_watched_path_passes_when_absent_or_regular(tmp_path: Any) -> None:
    paths = Paths(prefix=str(tmp_path))
    results = _results(paths)
    assert set(results) == {f"files.{w.name}" for w in check_files.watched(paths)}
    assert {c.status for name, c in results.items() if name != "files.os-release"} == {"PASS"}
    os.makedirs(paths.cache_dir)
    with open(paths.cache_state, "w") as fh:
        fh.write("1\n")
    with open(paths.cache_dir + "/ecs-agent-v1.tar", "w") as fh:
        fh.write("x")
    os.symlink("ecs-agent-v1.tar", paths.cache_tarball)  # as the packages install it
    results = _results(paths)
    assert results["files.cache-state"].status == "PASS" and results["files.cache-tarball"].status == "PASS"


@pytest.mark.parametrize(
    "name,make,status,words",
    [
        ("files.events", "fifo", "FAIL", "is a FIFO, not a regular file: status shows no upgrade history"),
        ("files.supervisor-state", "symlink", "FAIL", "never followed: status cannot show the supervisor"),
        ("files.init-log", "symlink", "FAIL", "never followed: this program logs to the console only"),
        ("files.action-lock", "fifo", "FAIL", "pre-start, start, post-stop and reload-cache refuse to run"),
        ("files.desired-image", "symlink", "FAIL", "never followed: an agent self-update (exit 42) is refused"),
        ("files.cache-state", "socket", "FAIL", "is a socket, not a regular file"),
        ("files.ebs-dir", "symlink", "FAIL", "never followed: EBS task attach is off"),
        ("files.ebs-dir", "file", "FAIL", "is a regular file, not a directory"),
        ("files.cache-tarball", "symlink", "WARN", "leads out of"),
        ("files.cache-tarball", "fifo", "FAIL", "is a FIFO, not a regular file"),
        ("files.ecs-config", "symlink", "PASS", "to a regular file (followed)"),
        ("files.ecs-config", "dangling", "WARN", "leads nowhere"),
        ("files.instance-config", "fifo", "FAIL", "is a FIFO, not a regular file: it is ignored"),
        ("files.instance-config", "symlink", "FAIL", "never followed: it is ignored"),
        ("files.supervisor-lock", "symlink", "FAIL", "never followed: start refuses to run"),
        ("files.os-release", "fifo", "FAIL", "is a FIFO, not a regular file: the platform is taken as generic"),
        ("files.os-release", "symlink", "PASS", "to a regular file (followed)"),
    ],
)
def test_special_files_and_symlinks_are_named_with_a_hint(
    tmp_path: Any, name: str, make: str, status: str, words: str
) -> None:
    paths = Paths(prefix=str(tmp_path / "root"))
    (watch,) = [w for w in check_files.watched(paths) if f"files.{w.name}" == name]
    if name == "files.os-release":  # the host's own one unless the prefix holds one
        watch = dataclasses.replace(watch, path=os.path.join(str(tmp_path / "root"), "etc/os-release"))
    os.makedirs(os.path.dirname(watch.path), exist_ok=True)
    outside = tmp_path / "outside"
    outside.write_text("x")
    if make == "fifo":
        os.mkfifo(watch.path)
    elif make == "symlink":
        os.symlink(outside, watch.path)
    elif make == "dangling":
        os.symlink(tmp_path / "nowhere", watch.path)
    elif make == "file":
        open(watch.path, "w").close()
    else:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(watch.path)
        sock.close()
    result = _results(paths)[name]
    assert result.status == status and words in result.reason, result.reason
    if status != "PASS":
        assert result.hint.startswith(f"remove {watch.path}") or result.hint.startswith(("point", "keep"))
    assert result.details["path"] == watch.path
    if make in ("fifo", "socket"):
        assert stat.S_ISFIFO(os.lstat(watch.path).st_mode) or stat.S_ISSOCK(os.lstat(watch.path).st_mode)


def test_files_checks_match_the_schema(tmp_path: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    with open(SCHEMA) as fh:
        schema = json.load(fh)
    paths = Paths(prefix=str(tmp_path))
    os.makedirs(os.path.dirname(paths.events_file))
    os.mkfifo(paths.events_file)
    checks = [c.as_dict() for c in check_files.check_files(paths)]
    doc = {"ok": False, "exit_code": 1, "counts": {"PASS": 0, "WARN": 0, "FAIL": 0, "SKIP": 0}, "duration_seconds": 0}
    jsonschema.validate({**doc, "checks": checks}, schema)
