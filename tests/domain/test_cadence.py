"""When schedules fire: cron through cronsim (seconds, aliases, DST, timezones), @every on
epoch multiples, and which ticks a look at a given moment fires. Pure functions, so the
clock here is plain datetimes."""

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.cadence import Cadence, CadenceError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def ticks(cadence: Cadence, start: datetime, count: int) -> list[datetime]:
    found = []
    for _ in range(count):
        start = cadence.next_after(start)
        found.append(start)
    return found


def test_six_fields_put_seconds_first() -> None:
    cadence = Cadence("*/15 * * * * *")
    assert ticks(cadence, utc(2026, 3, 1, 12, 0, 7), 3) == [
        utc(2026, 3, 1, 12, 0, 15),
        utc(2026, 3, 1, 12, 0, 30),
        utc(2026, 3, 1, 12, 0, 45),
    ]
    assert Cadence("30 0 9 * * *").next_after(utc(2026, 3, 1, 9, 0, 30)) == utc(
        2026, 3, 2, 9, 0, 30
    )


def test_the_aliases_are_their_cron_expressions() -> None:
    moment = utc(2026, 3, 1, 12, 34, 56)
    assert Cadence("@hourly").next_after(moment) == utc(2026, 3, 1, 13)
    assert Cadence("@daily").next_after(moment) == utc(2026, 3, 2)
    assert Cadence("@daily", "Europe/Berlin").next_after(moment) == utc(2026, 3, 1, 23)


def test_every_ticks_on_multiples_of_its_interval_since_the_epoch() -> None:
    moment = utc(2026, 3, 1, 12, 34, 56, 500000)
    assert Cadence("@every 30s").next_after(moment) == utc(2026, 3, 1, 12, 35)
    assert Cadence("@every 5m").latest_until(moment) == utc(2026, 3, 1, 12, 30)
    assert Cadence("@every 1h30m").next_after(utc(2026, 3, 1, 0, 0)) == utc(2026, 3, 1, 1, 30)
    # any replica, whenever it started, computes the same ticks
    assert Cadence("@every 7s").latest_until(moment).timestamp() % 7 == 0


def test_a_tick_at_the_moment_itself_is_the_latest_and_not_the_next() -> None:
    cadence = Cadence("0 12 * * *")
    assert cadence.latest_until(utc(2026, 3, 1, 12)) == utc(2026, 3, 1, 12)
    assert cadence.latest_until(utc(2026, 3, 1, 11, 59, 59)) == utc(2026, 2, 28, 12)
    assert cadence.next_after(utc(2026, 3, 1, 12)) == utc(2026, 3, 2, 12)


def test_a_local_time_skipped_by_spring_forward_fires_once_just_after() -> None:
    # 2026-03-29 in Berlin: 02:00 becomes 03:00, so 02:30 never happens that day
    cadence = Cadence("30 2 * * *", "Europe/Berlin")
    fired = ticks(cadence, datetime(2026, 3, 28, 12, tzinfo=BERLIN), 3)
    local = [tick.astimezone(BERLIN) for tick in fired]
    assert [t.date().day for t in local] == [29, 30, 31]
    assert local[0].hour == 3
    assert local[0].utcoffset() == timedelta(hours=2)
    assert [(t.hour, t.minute) for t in local[1:]] == [(2, 30), (2, 30)]


def test_a_local_time_repeated_by_fall_back_fires_once() -> None:
    # 2026-11-01 in New York: 01:00-02:00 happens twice
    cadence = Cadence("30 1 * * *", "America/New_York")
    fired = ticks(cadence, datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), 2)
    assert [tick.astimezone(NEW_YORK).day for tick in fired] == [1, 2]
    assert fired[1] - fired[0] == timedelta(hours=25)  # the day after has one hour more


def test_an_hourly_schedule_keeps_firing_every_real_hour_over_fall_back() -> None:
    cadence = Cadence("0 * * * *", "America/New_York")
    fired = ticks(cadence, datetime(2026, 11, 1, 0, 10, tzinfo=NEW_YORK), 4)
    assert [b - a for a, b in itertools.pairwise(fired)] == [timedelta(hours=1)] * 3


def test_the_same_cron_in_two_timezones_fires_at_their_own_local_time() -> None:
    moment = utc(2026, 7, 1)
    assert Cadence("0 9 * * *", "UTC").next_after(moment) == utc(2026, 7, 1, 9)
    assert Cadence("0 9 * * *", "Asia/Tokyo").next_after(moment) == utc(2026, 7, 2, 0)
    assert Cadence("0 9 * * *", "America/New_York").next_after(moment) == utc(2026, 7, 1, 13)
    # and in winter New York is an hour further from UTC
    assert Cadence("0 9 * * *", "America/New_York").next_after(utc(2026, 1, 1)) == utc(
        2026, 1, 1, 14
    )


@pytest.mark.parametrize(
    ("cron", "timezone", "field"),
    [
        ("61 * * * *", "UTC", "cron"),
        ("* * * *", "UTC", "cron"),
        ("* * * * * * *", "UTC", "cron"),
        ("0 0 30 2 *", "UTC", "cron"),
        ("@every", "UTC", "cron"),
        ("@every 0s", "UTC", "cron"),
        ("@every 10d", "UTC", "cron"),
        ("@sometimes", "UTC", "cron"),
        ("* * * * *", "Europe/Atlantis", "timezone"),
        ("* * * * *", "", "timezone"),
        ("* * * * *", "America", "timezone"),
    ],
)
def test_a_bad_cron_or_timezone_names_its_field(cron: str, timezone: str, field: str) -> None:
    with pytest.raises(CadenceError) as caught:
        Cadence(cron, timezone)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


# ----- which ticks a look fires -----------------------------------------------------------

EVERY_SECOND = Cadence("@every 1s")
START = utc(2026, 3, 1, 12)


def test_a_replica_watching_fires_the_tick_that_just_came() -> None:
    due = EVERY_SECOND.due(
        since=START, watching_since=START, now=START + timedelta(seconds=1.01), catchup_s=0
    )
    assert due.ticks == [START + timedelta(seconds=1)]
    assert due.dealt_until == START + timedelta(seconds=1)


def test_a_tick_already_dealt_with_is_not_fired_again() -> None:
    due = EVERY_SECOND.due(
        since=START + timedelta(seconds=1),
        watching_since=START,
        now=START + timedelta(seconds=1.5),
        catchup_s=60,
    )
    assert due.ticks == []


def test_a_stalled_replica_fires_only_the_latest_of_the_ticks_it_let_pass() -> None:
    due = EVERY_SECOND.due(
        since=START, watching_since=START, now=START + timedelta(seconds=4.2), catchup_s=0
    )
    assert due.ticks == [START + timedelta(seconds=4)]


def test_after_downtime_without_catch_up_only_the_ticks_from_now_on_fire() -> None:
    restarted = START + timedelta(seconds=5.5)  # the last tick dealt with was START
    due = EVERY_SECOND.due(since=START, watching_since=restarted, now=restarted, catchup_s=0)
    assert due.ticks == []
    later = EVERY_SECOND.due(
        since=START, watching_since=restarted, now=restarted + timedelta(seconds=0.6), catchup_s=0
    )
    assert later.ticks == [START + timedelta(seconds=6)]


def test_after_downtime_the_oldest_young_missed_tick_fires_once() -> None:
    restarted = START + timedelta(seconds=5.5)
    due = EVERY_SECOND.due(since=START, watching_since=restarted, now=restarted, catchup_s=60)
    assert due.ticks == [START + timedelta(seconds=1)]  # one catch-up, not five
    assert due.dealt_until == START + timedelta(seconds=5)  # the other four are skipped


def test_missed_ticks_older_than_catchup_s_are_skipped() -> None:
    restarted = START + timedelta(seconds=5.5)
    due = EVERY_SECOND.due(since=START, watching_since=restarted, now=restarted, catchup_s=2)
    assert due.ticks == [START + timedelta(seconds=4)]  # 1.5 s old; 2, 3 are older than 2 s
    hourly = Cadence("@hourly").due(
        since=START,
        watching_since=START + timedelta(hours=3, minutes=10),
        now=START + timedelta(hours=3, minutes=10),
        catchup_s=300,
    )
    assert hourly.ticks == []  # the 15:00 tick is 10 minutes old


def test_ticks_from_counts_on_from_a_tick() -> None:
    first = utc(2026, 3, 28, 1, 30)  # 02:30 in Berlin; 29 March has no 02:30 there
    ticks = Cadence("30 2 * * *", "Europe/Berlin").ticks_from(first, 3)
    assert ticks == [first, utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    assert Cadence("@every 1h").ticks_from(utc(2026, 1, 1), 2) == [
        utc(2026, 1, 1),
        utc(2026, 1, 1, 1),
    ]
    assert Cadence("@hourly").ticks_from(utc(2026, 1, 1), 0) == []
