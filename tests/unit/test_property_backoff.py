"""The restart backoff: 0.5 s doubling to 15 s, ±10 % jitter, reset (SPEC §5)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ecs_init.agent.policy import BACKOFF_CAP, BACKOFF_JITTER, BACKOFF_START
from ecs_init.core import settings
from ecs_init.core.backoff import Backoff

DEFAULT_BACKOFF_RESET = settings.BACKOFF_RESET_SECONDS.default_number

NOMINAL = [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]


def supervisor_backoff(seed: int) -> Backoff:
    return Backoff(BACKOFF_START, BACKOFF_CAP, BACKOFF_JITTER, rng=random.Random(seed))


def test_constants_match_the_spec() -> None:
    assert (BACKOFF_START, BACKOFF_CAP, BACKOFF_JITTER) == (0.5, 15.0, 0.1)
    assert DEFAULT_BACKOFF_RESET == 60.0


def test_seeded_sequence_is_reproducible_and_within_jitter() -> None:
    first = [supervisor_backoff(7).next() for _ in range(1)]
    one = supervisor_backoff(7)
    two = supervisor_backoff(7)
    a = [one.next() for _ in NOMINAL]
    b = [two.next() for _ in NOMINAL]
    assert a == b and a[0] == first[0]
    for delay, nominal in zip(a, NOMINAL):
        assert nominal * 0.9 <= delay <= nominal * 1.1
    assert a != [supervisor_backoff(8).next() for _ in NOMINAL]  # the jitter is real


@given(seed=st.integers(0, 2**32), length=st.integers(1, 30))
def test_any_seed_follows_the_doubling_and_cap(seed: int, length: int) -> None:
    backoff = supervisor_backoff(seed)
    for i in range(length):
        nominal = min(BACKOFF_START * 2**i, BACKOFF_CAP)
        delay = backoff.next()
        assert nominal * (1 - BACKOFF_JITTER) <= delay <= nominal * (1 + BACKOFF_JITTER)


@given(seed=st.integers(0, 2**32), before=st.integers(0, 20))
def test_reset_starts_again_at_half_a_second(seed: int, before: int) -> None:
    backoff = supervisor_backoff(seed)
    for _ in range(before):
        backoff.next()
    backoff.reset()
    assert 0.45 <= backoff.next() <= 0.55
    assert 0.9 <= backoff.next() <= 1.1


def test_jitter_spreads_both_ways() -> None:
    rng = random.Random(1234)
    delays = [Backoff(BACKOFF_START, BACKOFF_CAP, BACKOFF_JITTER, rng=rng).next() for _ in range(400)]
    assert min(delays) < 0.47 and max(delays) > 0.53
    assert abs(sum(delays) / len(delays) - 0.5) < 0.01
