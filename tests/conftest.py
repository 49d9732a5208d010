"""Shared test harness.

Integration tests use the real Docker engine (``docker`` marker) and real
network namespaces (``netns`` marker). Docker tests share one daemon, one
container name (``ecs-agent``), one image tag and port 51678, so each takes
an exclusive host-wide lock (``docker_lock``) for its duration: parallel
pytest runs on one machine queue instead of trampling each other.
"""

from __future__ import annotations

import fcntl
import importlib.util
import itertools
import os
import subprocess
import sys
from typing import Iterator

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

# Reproducible property tests for mutation testing (scripts/mutation.py):
# the same examples on every run, no example database, no time limits.
hypothesis_settings.register_profile(
    "mutation", derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "src"))

_spec = importlib.util.spec_from_file_location("standin_build", os.path.join(ROOT, "standin", "build.py"))
assert _spec and _spec.loader
standin_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin_build)

AGENT_IMAGE = "amazon/amazon-ecs-agent:latest"
AGENT_NAME = "ecs-agent"
LOCK_PATH = "/tmp/ecs-init-tests.docker.lock"


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _root_netns_snapshot() -> dict[str, object]:
    """What tests must never change in the root network namespace."""

    def read(path: str) -> str:
        try:
            with open(path) as fh:
                return fh.read().strip()
        except OSError:
            return ""

    rules = []
    for tool in ("iptables-save", "ip6tables-save"):
        try:
            out = subprocess.run([tool], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        rules += [
            f"{tool}: {line}"
            for line in out.splitlines()
            if any(k in line for k in ("169.254.170.2", "51678", "51679"))
        ]
    return {
        "route_localnet": read("/proc/sys/net/ipv4/conf/all/route_localnet"),
        "docker0": os.path.exists("/sys/class/net/docker0"),
        "ecs_rules": sorted(rules),
        "lo_route": subprocess.run(
            ["ip", "route", "show", "169.254.170.2/32", "dev", "lo"], capture_output=True, text=True
        ).stdout.strip(),
    }


@pytest.fixture(scope="session", autouse=True)
def root_netns_untouched() -> Iterator[None]:
    """Fail the run if any test changed the root namespace's rules, sysctl or docker0."""
    before = _root_netns_snapshot()
    yield
    after = _root_netns_snapshot()
    assert after == before, f"the root network namespace changed during the tests: {before} -> {after}"


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Every stand-in variant as a tarball (see standin/build.py)."""
    out = str(tmp_path_factory.mktemp("standin"))
    standin_build.build_all(out)
    return out


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if not _docker_answers():
        pytest.fail("no Docker daemon answers: run ./scripts/test (it starts one)")


@pytest.fixture
def docker_lock(docker_engine: None) -> Iterator[None]:
    """Exclusive use of the engine's ecs-agent name, image tag and port 51678."""
    with open(LOCK_PATH, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        subprocess.run(["docker", "rm", "-f", AGENT_NAME], capture_output=True)
        try:
            yield
        finally:
            subprocess.run(["docker", "rm", "-f", AGENT_NAME], capture_output=True)
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture
def prefix(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A temporary root prefix (ECS_INIT_PATH_PREFIX) with the SPEC §2 dirs."""
    root = str(tmp_path / "root")
    for d in ("etc/ecs", "var/lib/ecs/data", "var/log/ecs", "var/cache/ecs"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    return root


@pytest.fixture
def netns() -> Iterator[str]:
    """A bare network namespace (loopback up) for running host-changing actions."""
    name = f"ecst{os.getpid() % 100000}{next(_ns_counter)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


_ns_counter = itertools.count()
