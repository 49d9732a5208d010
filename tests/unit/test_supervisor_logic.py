from __future__ import annotations

import random

import pytest

from ecs_init.agent.policy import EXIT_CONTAINER_GONE, EXIT_DOCKER_LOST, EXIT_HEALED, EXIT_START_FAILED, describe_exit
from ecs_init.agent.supervisor import Next, decide
from ecs_init.core.backoff import Backoff


@pytest.mark.parametrize(
    "code,step",
    [
        (0, Next.STOP),
        (5, Next.TERMINAL),
        (42, Next.UPGRADE),
        (2, Next.RESTART),
        (1, Next.RESTART),
        (137, Next.RESTART),
        (-1, Next.RESTART),
    ],
)
def test_exit_code_table(code: int, step: Next) -> None:
    assert decide(code) is step


def test_backoff_doubles_to_cap_with_ten_percent_jitter() -> None:
    backoff = Backoff(0.5, 15.0, 0.1, rng=random.Random(7))
    delays = [backoff.next() for _ in range(9)]
    bases = [0.5, 1, 2, 4, 8, 15, 15, 15, 15]
    for delay, base in zip(delays, bases):
        assert base * 0.9 <= delay <= base * 1.1
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jitter varies
    backoff.reset()
    assert 0.45 <= backoff.next() <= 0.55


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (EXIT_DOCKER_LOST, "the agent container was lost with the Docker daemon"),
        (EXIT_START_FAILED, "the agent container could not be started"),
        (EXIT_CONTAINER_GONE, "the agent container disappeared"),
        (EXIT_HEALED, "the agent was stopped by the health monitor"),
        (1, "agent exited with code 1"),
        (137, "agent exited with code 137"),
    ],
)
def test_how_the_log_tells_each_exit(code: int, text: str) -> None:
    """The supervisor's one line per exit begins with this: each cause in its own words."""
    assert describe_exit(code) == text
