"""Bar charts drawn on the server as SVG: numbers in, rectangles out, no script."""

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 120
LABEL_EVERY = 15  # minutes between two axis labels


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: list[Bar]
    peak: int
    ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(title: str, labels: list[str], values: list[int]) -> Chart:
    """One bar per label, scaled to the largest value (an empty chart stays flat)."""
    peak = max(values, default=0)
    slot = WIDTH / max(1, len(values))
    bars = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = 0.0 if peak == 0 else HEIGHT * value / peak
        bars.append(
            Bar(index * slot + 1, HEIGHT - height, max(1.0, slot - 2), height, value, label)
        )
    ticks = [
        (index * slot, label[-5:]) for index, label in enumerate(labels) if index % LABEL_EVERY == 0
    ]
    return Chart(title, bars, peak, ticks)
