"""Event-loop lag, measured from inside the replica: how late a short sleep wakes up.

A loop that some call blocks (a C call, a database call, a big JSON dump) wakes every
sleeper late; the overshoot of a 50 ms sleep is that delay, as every task on the loop felt it.
"""

import math
from collections import deque
from collections.abc import Callable

import anyio
import anyio.abc

SAMPLE_INTERVAL_S = 0.05
# 200 samples of 50 ms: the figures cover about the last 10 s (five heartbeat ticks).
WINDOW_SAMPLES = 200


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class RecentMs:
    """The last `window` figures in milliseconds (a bounded ring); `summary()` reads them."""

    def __init__(self, window: int) -> None:
        self._ms: deque[float] = deque(maxlen=window)

    def record(self, ms: float) -> None:
        self._ms.append(max(0.0, ms))

    def summary(self) -> dict[str, float | int]:
        """p50, p99 and max in milliseconds over the window, and the sample count."""
        ordered = sorted(self._ms)
        return {
            "p50": round(percentile(ordered, 0.50), 3),
            "p99": round(percentile(ordered, 0.99), 3),
            "max": round(ordered[-1] if ordered else 0.0, 3),
            "samples": len(ordered),
        }


class LoopLagMonitor:
    """Samples the loop's lag into a bounded ring buffer; `summary()` reads it."""

    def __init__(
        self,
        *,
        interval_s: float = SAMPLE_INTERVAL_S,
        window: int = WINDOW_SAMPLES,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._lag_ms = RecentMs(window)
        self._on_sample = on_sample  # the metrics' histogram and lag history

    def record(self, lag_ms: float) -> None:
        self._lag_ms.record(lag_ms)
        if self._on_sample is not None:
            self._on_sample(max(0.0, lag_ms))

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Samples until cancelled; started with `tg.start`."""
        task_status.started()
        while True:
            started = anyio.current_time()
            await anyio.sleep(self.interval_s)
            self.record((anyio.current_time() - started - self.interval_s) * 1000)

    def summary(self) -> dict[str, float | int]:
        """p50, p99 and max lag in milliseconds over the window, and the sample count."""
        return self._lag_ms.summary()
