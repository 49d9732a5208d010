"""Redaction through the real CLI (SPEC §11; issue 13 item 6, issue 14 item 3).

The usual private-registry settings must not mangle `status`, `check`,
`render` or ecs-init.log, a secret as common as ``true`` must not be blanked
out of (and so revealed by) other lines, URL credentials are hidden wherever
a setting is shown, and a malformed auth line is shown by key only.
"""

from __future__ import annotations

import json
import os

import pytest
from helpers import init_log, run_cli, write_config

pytestmark = [pytest.mark.docker]

NO_DOCKER = "unix:///tmp/nonexistent.sock"
CREDENTIAL = "dXNlcjpwYXNzd29yZDEyMw=="
PROXY_PASSWORD = "Pr0xy-Pa55"
CONFIG = (
    "ECS_CLUSTER=ops-cluster\n"
    "ECS_ENGINE_AUTH_TYPE=docker\n"
    'ECS_ENGINE_AUTH_DATA={"https://index.docker.io/v1/":{"username":"ops","password":"hunter2-hunter2"}}\n'
    "ECS_SOME_PASSWORD=true\n"
    f"HTTP_PROXY=http://ops:{PROXY_PASSWORD}@proxy.internal:3128\n"
    f'ECS_ENGINE_AUTH_DATA {{"https://quay.io":{{"auth":"{CREDENTIAL}"}}}}\n'
)
SECRETS = ("hunter2-hunter2", PROXY_PASSWORD, CREDENTIAL, CREDENTIAL.rstrip("="))


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


def test_render_redacts_by_key_and_mangles_nothing(prefix: str) -> None:
    write_config(prefix, CONFIG)
    socket = "unix:///var/run/docker.sock"  # render never contacts it
    shown = run_cli(prefix, "render", "--show-secrets", DOCKER_HOST=socket)
    hidden = run_cli(prefix, "render", DOCKER_HOST=socket)
    assert shown.returncode == 0 and hidden.returncode == 0, hidden.stderr
    _no_secret(hidden.stdout + hidden.stderr)
    out = hidden.stdout
    assert "ECS_ENGINE_AUTH_TYPE=docker" in out
    assert "ECS_SOME_PASSWORD=<redacted>" in out
    assert "/var/run/docker.sock:/var/run/docker.sock" in out and "ECS_UPDATES_ENABLED=true" in out
    assert "HTTP_PROXY=http://ops:<redacted>@proxy.internal:3128" in out
    assert "ECS_ENGINE_AUTH_DATA <redacted>=<redacted>" in out
    # every other 'true' is where it was: the secret's own line is the only difference in 'true's
    assert out.count("true") == shown.stdout.count("true") - 1
    doc = json.loads(run_cli(prefix, "render", "--json", DOCKER_HOST=socket).stdout)
    env = doc["body"]["Env"]
    assert "ECS_ENGINE_AUTH_DATA=<redacted>" in env and "ECS_ENGINE_AUTH_TYPE=docker" in env
    _no_secret(json.dumps(doc))


def test_check_shows_the_malformed_line_by_key_only(prefix: str) -> None:
    write_config(prefix, CONFIG)
    proc = run_cli(prefix, "check", "--json", DOCKER_HOST=NO_DOCKER)
    _no_secret(proc.stdout + proc.stderr)
    doc = json.loads(proc.stdout)
    unknown = [c for c in doc["checks"] if c["name"] == "config.unknown-key"]
    assert [c["key"] for c in unknown] == ["ECS_SOME_PASSWORD", "ECS_ENGINE_AUTH_DATA <redacted>"]
    assert unknown[1]["hint"] == "write ECS_ENGINE_AUTH_DATA=<value>, with '=' right after the key"
    human = run_cli(prefix, "check", DOCKER_HOST=NO_DOCKER)
    _no_secret(human.stdout + human.stderr)
    assert "unknown key ECS_ENGINE_AUTH_DATA <redacted>" in human.stdout
    assert "<redacted>" not in human.stdout.replace("ECS_ENGINE_AUTH_DATA <redacted>", "")


def test_status_and_log_keep_docker_words(prefix: str) -> None:
    """Issue 13: with ECS_ENGINE_AUTH_TYPE=docker, status showed unix:///var/run/<redacted>.sock."""
    write_config(prefix, CONFIG)
    status = run_cli(prefix, "status", "--json", DOCKER_HOST="unix:///var/run/docker-nonexistent.sock")
    assert "unix:///var/run/docker-nonexistent.sock" in status.stdout
    assert "<redacted>" not in status.stdout
    _no_secret(status.stdout + status.stderr)
    # an action that logs to ecs-init.log: stop with Docker unreachable fails in one logged line
    stop = run_cli(prefix, "stop", DOCKER_HOST=NO_DOCKER, ECS_INIT_DOCKER_WAIT_TIMEOUT="1")
    log = init_log(prefix)
    assert "stop" in log and "docker" in log.lower()
    assert "<redacted>" not in log, log
    _no_secret(log + stop.stderr)
    assert os.path.exists(os.path.join(prefix, "var/log/ecs/ecs-init.log"))
