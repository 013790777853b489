"""Exponential backoff: the delay doubles from `first_s` up to `max_s`, optionally with
jitter, and starts again from `first_s` after a success."""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first_s: float
    max_s: float
    jitter: float = 0.0  # ± this fraction of each delay
    _next_s: float = field(init=False)

    def __post_init__(self) -> None:
        self._next_s = self.first_s

    def next_delay_s(self) -> float:
        """The delay before the next try; each call doubles the one after it (capped)."""
        delay_s = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        if self.jitter:
            delay_s *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return delay_s

    def reset(self) -> None:
        self._next_s = self.first_s
