"""Issue 14 under the supervisor, against the real Docker engine and the stand-in agent: `start` never
blocks, follows a link or dies of its own bookkeeping after a failed upgrade (items 1, 2, 5), and a
setting no number can hold is one warning and its default (item 6)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from helpers import init_log, wait_until

# the upgrade harness (fixture and helpers) of the self-update tests
from integration import test_upgrade_rollback as upgrade
from integration.test_upgrade_rollback import (
    V1,
    agent_exit_once,
    assert_failed_upgrade_recovered,
    cache_dir,
    events,
    stage,
    wait_serving,
)

v1_running = upgrade.v1_running  # the fixture, used by name

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET = "root:$6$hostile-secret-hash:19000:0:99999:7:::"


def events_file(prefix: str) -> str:
    return os.path.join(prefix, "var/lib/ecs/ecs-init-events.json")


def _fifo_events_symlinked_locator(prefix: str, tmp_path: Any) -> str:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    os.symlink(secret, os.path.join(cache_dir(prefix), "desired-image"))
    os.unlink(events_file(prefix))  # the fixture's reload-cache recorded one
    os.mkfifo(events_file(prefix))
    return "it is a symlink (not followed)"


def _fifo_locator_deep_events(prefix: str, tmp_path: Any) -> str:
    os.mkfifo(os.path.join(cache_dir(prefix), "desired-image"))
    with open(events_file(prefix), "w") as fh:
        fh.write("[" * 200000 + "]" * 200000)
    return "it is a FIFO, not a regular file"


@pytest.mark.parametrize(
    "plant", [_fifo_events_symlinked_locator, _fifo_locator_deep_events], ids=["fifo-events", "deep-events"]
)
def test_a_failed_upgrade_never_blocks_or_kills_the_supervisor(
    prefix: str, tmp_path: Any, v1_running: dict[str, Any], plant: Any
) -> None:
    expect = plant(prefix, tmp_path)
    since = time.time() - 0.2
    agent_exit_once(prefix, 42)
    # backoff, v1 again, one event in a new events file (the unusable one is replaced)
    assert_failed_upgrade_recovered(prefix, v1_running, expect, since, events_before=())
    log_text = init_log(prefix)
    assert "refusing the desired-image locator" in log_text
    assert "starting a new events file" in log_text
    assert "RecursionError" not in log_text and "hostile-secret" not in log_text
    with open(events_file(prefix)) as fh:
        recorded = fh.read()
    assert "hostile-secret" not in recorded and json.loads(recorded)[-1]["event"] == "upgrade-failed"


@pytest.mark.parametrize(
    "v1_running",
    [{"ECS_INIT_ROLLBACK_FAILURES": "inf", "ECS_INIT_ROLLBACK_WINDOW": "60"}],
    indirect=True,
    ids=["inf"],
)
def test_rollback_failures_inf_is_one_warning_and_the_default(
    prefix: str, standin_dir: str, v1_running: dict[str, Any]
) -> None:
    """ECS_INIT_ROLLBACK_FAILURES=inf made `start` fail with OverflowError; now the default (3) counts."""
    stage(prefix, os.path.join(standin_dir, "ecs-agent-crashloop.tar"), "ecs-agent-v1.107.0.tar")
    agent_exit_once(prefix, 42)
    assert wait_until(lambda: any(e["event"] == "rollback" for e in events(prefix)), 60), init_log(prefix)[-3000:]
    wait_serving(V1, other_than=v1_running["container"])
    log_text = init_log(prefix)
    warnings = [line for line in log_text.splitlines() if "ECS_INIT_ROLLBACK_FAILURES" in line]
    assert len(warnings) == 1, warnings
    assert "level=warn" in warnings[0] and "is not a whole number; using 3" in warnings[0]
    assert "failure 3 of 3" in log_text and "failure 4 of" not in log_text
    assert "OverflowError" not in log_text + v1_running["sup"].text()


@pytest.mark.parametrize("v1_running", [{"ECS_INIT_ROLLBACK_FAILURES": "1e400"}], indirect=True, ids=["1e400"])
def test_rollback_failures_1e400_starts_the_agent_with_one_warning(prefix: str, v1_running: dict[str, Any]) -> None:
    sup = v1_running["sup"]
    assert sup.proc.poll() is None
    text = init_log(prefix)
    warnings = [line for line in text.splitlines() if "ECS_INIT_ROLLBACK_FAILURES" in line]
    assert len(warnings) == 1 and "'1e400' is not a whole number; using 3" in warnings[0], warnings
    assert "OverflowError" not in text + sup.text()
