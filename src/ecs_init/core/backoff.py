"""Exponential backoff with jitter (the agent restart policy, the wait for Docker)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import random


class Backoff:
    """``start`` doubling up to ``cap``, each delay +/- ``jitter`` (a fraction) at random."""

    def __init__(self, start: float, cap: float, jitter: float, rng: Optional[random.Random] = None):
        self.start = start
        self.cap = cap
        self.jitter = jitter
        self.current = start
        if rng is None:
            import random  # here: `stop` reaches a live daemon without ever backing off

            rng = random.Random()
        self.rng = rng

    def next(self) -> float:
        base = self.current
        self.current = min(self.current * 2, self.cap)
        spread = base * self.jitter
        return max(0.0, base + self.rng.uniform(-spread, spread))

    def reset(self) -> None:
        self.current = self.start
