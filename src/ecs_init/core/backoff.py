"""Exponential backoff with jitter (the agent restart policy, the wait for Docker)."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    import random
    from typing import Optional


class Backoff:
    """``start`` doubling up to ``cap``, each delay +/- ``jitter`` (a fraction) at random."""

    def __init__(self, start: float, cap: float, jitter: float, rng: Optional[random.Random] = None):
        self.start = start
        self.cap = cap
        self.jitter = jitter
        self.current = start
        self.rng = rng  # made at the first delay: `stop` and a healthy `start` never back off

    def next(self) -> float:
        if self.rng is None:
            import random

            self.rng = random.Random()
        base = self.current
        self.current = min(self.current * 2, self.cap)
        spread = base * self.jitter
        return max(0.0, base + self.rng.uniform(-spread, spread))

    def reset(self) -> None:
        self.current = self.start
