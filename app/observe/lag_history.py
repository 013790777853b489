"""The event loop's lag over the last ten minutes, one point per second (/debug/lag)."""

import time
from collections import deque
from dataclasses import dataclass

HISTORY_S = 600


@dataclass(slots=True)
class LagSecond:
    at_s: int  # unix second
    max_ms: float
    samples: int


class LagHistory:
    """Worst lag of each second, for the last HISTORY_S seconds."""

    def __init__(self, *, seconds: int = HISTORY_S) -> None:
        self._seconds: deque[LagSecond] = deque(maxlen=seconds)

    def record(self, lag_ms: float, *, now_s: float | None = None) -> None:
        second = int(time.time() if now_s is None else now_s)
        last = self._seconds[-1] if self._seconds else None
        if last is not None and last.at_s == second:
            last.max_ms = max(last.max_ms, lag_ms)
            last.samples += 1
        else:
            self._seconds.append(LagSecond(second, max(0.0, lag_ms), 1))

    def points(self) -> list[dict[str, float | int]]:
        return [
            {"at": point.at_s, "max_ms": round(point.max_ms, 3), "samples": point.samples}
            for point in self._seconds
        ]
