"""Capped exponential backoff, the one schedule every retry in fitiq_rt follows.

Attempt n waits `initial * factor**n`, capped at `cap`; with jitter, a point drawn from the upper
part of that step (`jitter=0.5`: its upper half), so a fleet of clients, or two nodes' pushes,
that failed together do not retry in lockstep. Without jitter (`base`), the waits are exact,
which the virtual-clock tests rely on.
"""

from __future__ import annotations

import random

import attrs


@attrs.frozen
class Backoff:
    """Exponential backoff with jitter: attempt n waits in [base*(1-jitter), base], capped."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5

    def base(self, attempt: int) -> float:
        """The step for attempt n (0 first), without jitter."""
        return min(self.cap, self.initial * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The step for attempt n with its jitter drawn from `rng`."""
        return self.base(attempt) * (1.0 - self.jitter * rng.random())
