"""When a schedule fires: its cron expression (cronsim), an `@every` interval, or an alias,
in an IANA timezone, and which ticks are due after a given moment. Pure functions of the
times they are given: the one clock is the caller's.

Cron expressions are parsed and evaluated by cronsim (five fields, or six with seconds
first; DST as Debian's cron: a time skipped by a spring-forward fires at the first moment
after it, a time repeated by a fall-back fires once, a wildcard hour fires every hour).
`@every <duration>` ticks at whole multiples of the duration since the Unix epoch, so every
replica computes the same ticks without talking to any other.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

# The usual aliases of cron(8), each the expression it stands for.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY = re.compile(r"@every\s+((?:\d+[hms])+)")
_EVERY_PART = re.compile(r"(\d+)([hms])")
_UNIT_S = {"h": 3600, "m": 60, "s": 1}
MAX_EVERY_S = 366 * 24 * 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CadenceError(ValueError):
    """A cron expression or timezone that cannot be used; the message says which and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@cache
def zone_names() -> frozenset[str]:
    """Every IANA name of the zone database (read from disk once: warm it off the loop)."""
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA timezone `name`; CadenceError("timezone", ...) for any other text (a
    folder of the zone database such as "America" too, which is no zone)."""
    if name not in zone_names():
        raise CadenceError("timezone", f"{name!r} is not an IANA timezone name")
    return ZoneInfo(name)


def every_seconds(expression: str) -> int | None:
    """The interval of `@every 1h30m` in seconds; None when `expression` is no `@every`."""
    if not expression.startswith("@every"):
        return None
    match = _EVERY.fullmatch(expression.strip())
    if match is None:
        raise CadenceError("cron", "@every takes a duration such as 30s, 5m or 1h30m")
    seconds = sum(int(n) * _UNIT_S[unit] for n, unit in _EVERY_PART.findall(match.group(1)))
    if not 1 <= seconds <= MAX_EVERY_S:
        raise CadenceError("cron", f"@every must be 1 s to {MAX_EVERY_S} s")
    return seconds


@dataclass(frozen=True)
class Cadence:
    """The ticks of one schedule: `cron` in `timezone`."""

    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        if every_seconds(self.cron) is None:
            self._cron_iter(EPOCH, reverse=False)  # raises CadenceError when it cannot parse

    @property
    def _expression(self) -> str:
        return ALIASES.get(self.cron.strip().lower(), self.cron.strip())

    def _cron_iter(self, start: datetime, *, reverse: bool) -> Iterator[datetime]:
        fields = self._expression.split()
        if len(fields) not in (5, 6):
            raise CadenceError("cron", "five fields, six with seconds first, @every or an alias")
        try:
            return CronSim(self._expression, start.astimezone(zone(self.timezone)), reverse)
        except CronSimError as exc:
            raise CadenceError("cron", f"{self.cron!r}: {exc}") from exc

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment` (UTC)."""
        period_s = every_seconds(self.cron)
        if period_s is not None:
            elapsed_s = int((moment - EPOCH).total_seconds() // period_s) + 1
            return EPOCH + timedelta(seconds=elapsed_s * period_s)
        start = moment.replace(microsecond=0)
        tick = next(self._cron_iter(start, reverse=False))
        return tick.astimezone(UTC)

    def ticks_from(self, first: datetime, count: int) -> list[datetime]:
        """`count` ticks: `first` (a tick) and the ones after it, oldest first."""
        ticks = [first]
        while len(ticks) < count:
            ticks.append(self.next_after(ticks[-1]))
        return ticks[:count]

    def latest_until(self, moment: datetime) -> datetime | None:
        """The last tick at or before `moment` (UTC); None if there is none (a date that
        never comes again, such as 30 February)."""
        period_s = every_seconds(self.cron)
        if period_s is not None:
            elapsed_s = int((moment - EPOCH).total_seconds() // period_s)
            return EPOCH + timedelta(seconds=elapsed_s * period_s)
        # cronsim walks back from the second after, so a tick at `moment` itself counts
        start = moment.replace(microsecond=0) + timedelta(seconds=1)
        tick = next(self._cron_iter(start, reverse=True), None)
        return None if tick is None else tick.astimezone(UTC)

    def due(
        self, *, since: datetime, watching_since: datetime, now: datetime, catchup_s: float
    ) -> "Due":
        """What to fire at `now`, given that every tick up to `since` was dealt with (fired or
        skipped) and that the caller has watched the clock since `watching_since`.

        A tick after `watching_since` is on time: the latest such tick fires (ticks that a
        stalled caller let pass collapse into it). A tick before it came while the caller
        was not watching; if no one dealt with it, it was missed (the service was down): the
        oldest missed tick at most `catchup_s` old fires once as the catch-up, and every
        other missed tick is skipped.
        """
        fire: list[datetime] = []
        dealt = since
        newest_missed = self.latest_until(min(now, watching_since))
        if catchup_s > 0 and newest_missed is not None and newest_missed > since:
            window_start = max(since, now - timedelta(seconds=catchup_s))
            oldest_young = self.next_after(window_start)
            if oldest_young <= newest_missed:
                fire.append(oldest_young)
                dealt = newest_missed
        latest = self.latest_until(now)
        if latest is not None and latest > max(since, watching_since):
            fire.append(latest)
            dealt = latest
        return Due(fire, dealt)


@dataclass(frozen=True)
class Due:
    """The ticks to fire now, oldest first, and the latest tick that firing them deals
    with (the schedule's `last_tick_at` after it; unchanged when nothing fires)."""

    ticks: list[datetime]
    dealt_until: datetime
