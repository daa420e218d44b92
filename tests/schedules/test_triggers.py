"""When cron and recurrence triggers fire: wall-clock times across DST, Windows zone names,
bounds, intervals counted from the anchor, missed instants, and every problem reported.

Expected instants are worked out by hand. Europe/Berlin is UTC+1 (CET) in winter and UTC+2
(CEST) in summer; in 2026 its clocks go from 02:00 to 03:00 on 29 March at 01:00 UTC, and
from 03:00 back to 02:00 on 25 October at 01:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlform.schedules.triggers import (
    LIMIT,
    Cron,
    Recurrence,
    Trigger,
    latest,
    occurrences,
    problems,
    upcoming,
)
from mlform.schedules.zones import zone

BERLIN = "Europe/Berlin"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def next_after(trigger: Trigger, after: datetime, count: int) -> list[datetime]:
    return upcoming(trigger, after, count, created=CREATED)


# Across DST in Europe/Berlin


def test_a_daily_cron_at_0230_fires_at_the_end_of_the_spring_gap() -> None:
    trigger = Cron("30 2 * * *", time_zone=BERLIN)
    assert next_after(trigger, utc(2026, 3, 27, 12), 4) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: 03:00 CEST, when the gap ends
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_a_daily_cron_at_0230_fires_once_at_the_first_of_the_autumn_pair() -> None:
    trigger = Cron("30 2 * * *", time_zone=BERLIN)
    assert next_after(trigger, utc(2026, 10, 23, 12), 4) == [
        utc(2026, 10, 24, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first of the two; not 01:30 UTC too
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
        utc(2026, 10, 27, 1, 30),
    ]


def test_an_hourly_cron_fires_23_times_on_the_spring_day_the_skipped_hour_once() -> None:
    trigger = Cron("0 * * * *", time_zone=BERLIN)
    assert next_after(trigger, utc(2026, 3, 28, 22, 30), 5) == [
        utc(2026, 3, 28, 23),  # 00:00 CET
        utc(2026, 3, 29, 0),  # 01:00 CET
        utc(2026, 3, 29, 1),  # 02:00 is skipped: 03:00 CEST, and 03:00 itself, once
        utc(2026, 3, 29, 2),  # 04:00 CEST
        utc(2026, 3, 29, 3),
    ]
    # the local day runs from 23:00 UTC to 22:00 UTC: 23 hours
    day = latest(trigger, utc(2026, 3, 28, 22, 59), utc(2026, 3, 29, 21, 59), created=CREATED)
    assert day == (23, utc(2026, 3, 29, 21))


def test_an_hourly_cron_fires_24_times_on_the_autumn_day_not_at_the_repeated_hour() -> None:
    trigger = Cron("0 * * * *", time_zone=BERLIN)
    assert next_after(trigger, utc(2026, 10, 24, 21, 30), 5) == [
        utc(2026, 10, 24, 22),  # 00:00 CEST
        utc(2026, 10, 24, 23),  # 01:00 CEST
        utc(2026, 10, 25, 0),  # 02:00 CEST; the second 02:00 (01:00 UTC) does not fire
        utc(2026, 10, 25, 2),  # 03:00 CET
        utc(2026, 10, 25, 3),
    ]
    # the local day runs from 22:00 UTC to 23:00 UTC the next day: 25 hours, 24 fire
    day = latest(trigger, utc(2026, 10, 24, 21, 59), utc(2026, 10, 25, 22, 59), created=CREATED)
    assert day == (24, utc(2026, 10, 25, 22))


@pytest.mark.parametrize(
    "trigger",
    [
        Recurrence("day", 1, start_time=datetime(2026, 3, 27, 2, 30), time_zone=BERLIN),
        Recurrence(
            "day", 1, hours=(2,), minutes=(30,), start_time=datetime(2026, 3, 27), time_zone=BERLIN
        ),
    ],
    ids=["anchor-time", "schedule"],
)
def test_a_daily_recurrence_at_0230_follows_the_wall_clock_across_both_changes(
    trigger: Recurrence,
) -> None:
    assert next_after(trigger, CREATED, 5) == [
        utc(2026, 3, 27, 1, 30),
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 30, 0, 30),
        utc(2026, 3, 31, 0, 30),
    ]
    assert next_after(trigger, utc(2026, 10, 24), 3) == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]


def test_an_hourly_recurrence_counts_elapsed_hours_25_on_the_autumn_day() -> None:
    trigger = Recurrence("hour", 1, start_time=datetime(2026, 10, 25), time_zone=BERLIN)
    assert next_after(trigger, CREATED, 5) == [
        utc(2026, 10, 24, 22),  # 00:00 CEST, the anchor
        utc(2026, 10, 24, 23),
        utc(2026, 10, 25, 0),  # 02:00 CEST
        utc(2026, 10, 25, 1),  # 02:00 CET: elapsed time fires at both
        utc(2026, 10, 25, 2),
    ]
    day = latest(trigger, utc(2026, 10, 24, 21, 59), utc(2026, 10, 25, 22, 59), created=CREATED)
    assert day == (25, utc(2026, 10, 25, 22))


def test_an_hourly_recurrence_counts_elapsed_hours_23_on_the_spring_day() -> None:
    trigger = Recurrence("hour", 1, start_time=datetime(2026, 3, 29), time_zone=BERLIN)
    day = latest(trigger, utc(2026, 3, 28, 22, 59), utc(2026, 3, 29, 21, 59), created=CREATED)
    assert day == (23, utc(2026, 3, 29, 21))


def test_a_minute_recurrence_steps_over_the_gap_in_elapsed_time() -> None:
    trigger = Recurrence("minute", 15, start_time=datetime(2026, 3, 29, 1, 50), time_zone=BERLIN)
    assert next_after(trigger, CREATED, 3) == [
        utc(2026, 3, 29, 0, 50),  # 01:50 CET
        utc(2026, 3, 29, 1, 5),  # 03:05 CEST
        utc(2026, 3, 29, 1, 20),
    ]


def test_a_start_time_inside_the_gap_starts_when_the_gap_ends() -> None:
    trigger = Recurrence("hour", 2, start_time=datetime(2026, 3, 29, 2, 30), time_zone=BERLIN)
    assert next_after(trigger, CREATED, 2) == [utc(2026, 3, 29, 1), utc(2026, 3, 29, 3)]


# Time zones


@pytest.mark.parametrize(
    ("name", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("UTC", "Etc/UTC"),
        ("Türkiye Standard Time", "Europe/Istanbul"),  # as Azure's list spells it
        ("Europe/Berlin", "Europe/Berlin"),
        ("America/New_York", "America/New_York"),
    ],
)
def test_a_zone_is_a_windows_name_as_azure_writes_it_or_an_iana_name(name: str, iana: str) -> None:
    assert zone(name).key == iana


def test_a_windows_name_fires_as_its_iana_zone() -> None:
    windows = Cron("30 2 * * *", time_zone="W. Europe Standard Time")
    iana = Cron("30 2 * * *", time_zone=BERLIN)
    after = utc(2026, 3, 27)
    assert next_after(windows, after, 20) == next_after(iana, after, 20)


def test_pacific_standard_time_follows_the_us_change_of_8_march_2026() -> None:
    trigger = Cron("0 9 * * *", time_zone="Pacific Standard Time")
    assert next_after(trigger, utc(2026, 3, 7), 2) == [
        utc(2026, 3, 7, 17),  # 09:00 PST, UTC-8
        utc(2026, 3, 8, 16),  # 09:00 PDT, UTC-7
    ]


def test_an_unknown_zone_says_what_to_write_and_the_closest_name() -> None:
    with pytest.raises(ValueError) as caught:
        zone("W Europe Standard Time")
    assert str(caught.value) == (
        "unknown time zone 'W Europe Standard Time': write an IANA name such as "
        "'Europe/Berlin', or a Windows name as Azure ML lists them, such as "
        "'W. Europe Standard Time' (did you mean 'W. Europe Standard Time'?)"
    )


def test_an_unknown_zone_with_nothing_close_only_says_what_to_write() -> None:
    with pytest.raises(ValueError) as caught:
        zone("")
    assert str(caught.value) == (
        "unknown time zone '': write an IANA name such as 'Europe/Berlin', or a Windows "
        "name as Azure ML lists them, such as 'W. Europe Standard Time'"
    )


# Bounds


def test_start_and_end_time_both_count() -> None:
    trigger = Cron(
        "0 * * * *", start_time=datetime(2026, 1, 1, 10), end_time=datetime(2026, 1, 1, 12)
    )
    assert next_after(trigger, utc(2025, 1, 1), 10) == [
        utc(2026, 1, 1, 10),
        utc(2026, 1, 1, 11),
        utc(2026, 1, 1, 12),
    ]


def test_naive_bounds_are_wall_clock_in_the_zone_and_aware_ones_instants() -> None:
    trigger = Cron(
        "0 * * * *",
        start_time=datetime(2026, 7, 1, 10),  # 10:00 CEST, 08:00 UTC
        end_time=datetime(2026, 7, 1, 10, tzinfo=timezone(timedelta(hours=-4))),  # 14:00 UTC
        time_zone=BERLIN,
    )
    assert next_after(trigger, utc(2026, 1, 1), 10) == [
        utc(2026, 7, 1, 8),
        utc(2026, 7, 1, 9),
        utc(2026, 7, 1, 10),
        utc(2026, 7, 1, 11),
        utc(2026, 7, 1, 12),
        utc(2026, 7, 1, 13),
        utc(2026, 7, 1, 14),
    ]


def test_without_start_time_the_schedule_starts_when_it_was_applied() -> None:
    created = utc(2026, 1, 1, 10, 20)
    cron = Cron("0 * * * *")
    assert upcoming(cron, utc(2025, 1, 1), 2, created=created) == [
        utc(2026, 1, 1, 11),
        utc(2026, 1, 1, 12),
    ]
    # a recurrence without a schedule fires when applied, then every interval from there
    recurrence = Recurrence("hour", 6)
    assert upcoming(recurrence, utc(2025, 1, 1), 2, created=created) == [
        utc(2026, 1, 1, 10, 20),
        utc(2026, 1, 1, 16, 20),
    ]


def test_a_start_in_the_past_does_not_replay_the_instants_before_after() -> None:
    trigger = Recurrence("day", 1, hours=(6,), minutes=(0,), start_time=datetime(2020, 1, 1))
    assert next_after(trigger, utc(2026, 5, 5, 12), 2) == [utc(2026, 5, 6, 6), utc(2026, 5, 7, 6)]


def test_instants_stop_at_end_time() -> None:
    trigger = Recurrence("day", 1, start_time=datetime(2026, 1, 1), end_time=datetime(2026, 1, 3))
    assert list(occurrences(trigger, utc(2025, 1, 1), created=CREATED)) == [
        utc(2026, 1, 1),
        utc(2026, 1, 2),
        utc(2026, 1, 3),
    ]


# Intervals, counted from the anchor


def test_every_3_days_counts_from_the_anchor_day_not_from_after() -> None:
    trigger = Recurrence(
        "day", 3, hours=(6,), minutes=(0,), start_time=datetime(2026, 1, 1, 12)
    )  # 06:00 on 1 January is before the start
    assert next_after(trigger, CREATED, 3) == [
        utc(2026, 1, 4, 6),
        utc(2026, 1, 7, 6),
        utc(2026, 1, 10, 6),
    ]
    assert next_after(trigger, utc(2026, 1, 5), 2) == [utc(2026, 1, 7, 6), utc(2026, 1, 10, 6)]


def test_every_2_weeks_on_week_days_counts_weeks_from_the_anchors_monday() -> None:
    # 7 January 2026 is a Wednesday, in the week of Monday 5 January
    trigger = Recurrence(
        "week",
        2,
        hours=(9,),
        minutes=(0,),
        week_days=("monday", "Friday"),
        start_time=datetime(2026, 1, 7),
    )
    assert next_after(trigger, CREATED, 5) == [
        utc(2026, 1, 9, 9),  # Monday 5 January is before the start
        utc(2026, 1, 19, 9),
        utc(2026, 1, 23, 9),
        utc(2026, 2, 2, 9),
        utc(2026, 2, 6, 9),
    ]
    assert next_after(trigger, utc(2026, 1, 24), 1) == [utc(2026, 2, 2, 9)]


def test_a_week_schedule_without_week_days_fires_on_the_anchors_weekday() -> None:
    trigger = Recurrence("week", 1, hours=(10,), minutes=(0,), start_time=datetime(2026, 1, 7, 10))
    assert next_after(trigger, CREATED, 3) == [
        utc(2026, 1, 7, 10),
        utc(2026, 1, 14, 10),
        utc(2026, 1, 21, 10),
    ]


def test_every_2_months_from_the_31st_skips_the_months_without_one() -> None:
    trigger = Recurrence("month", 2, start_time=datetime(2026, 1, 31, 8))
    # January, March, May, July, September (30 days), November (30 days), January
    assert next_after(trigger, CREATED, 5) == [
        utc(2026, 1, 31, 8),
        utc(2026, 3, 31, 8),
        utc(2026, 5, 31, 8),
        utc(2026, 7, 31, 8),
        utc(2027, 1, 31, 8),
    ]


def test_month_days_31_fires_only_in_months_of_31_days() -> None:
    trigger = Recurrence(
        "month", 1, hours=(0,), minutes=(0,), month_days=(31,), start_time=datetime(2026, 1, 1)
    )
    assert next_after(trigger, CREATED, 5) == [
        utc(2026, 1, 31),
        utc(2026, 3, 31),
        utc(2026, 5, 31),
        utc(2026, 7, 31),
        utc(2026, 8, 31),
    ]


def test_a_month_schedule_with_week_days_fires_on_each_of_them() -> None:
    trigger = Recurrence(
        "month", 2, hours=(7,), minutes=(0,), week_days=("monday",), start_time=datetime(2026, 1, 1)
    )
    assert next_after(trigger, CREATED, 6) == [
        utc(2026, 1, 5, 7),
        utc(2026, 1, 12, 7),
        utc(2026, 1, 19, 7),
        utc(2026, 1, 26, 7),
        utc(2026, 3, 2, 7),  # February is skipped
        utc(2026, 3, 9, 7),
    ]


def test_month_days_and_week_days_together_narrow_each_other() -> None:
    # the 1st or 15th when it is a Friday: May 2026, then January 2027
    trigger = Recurrence(
        "month",
        1,
        hours=(0,),
        minutes=(0,),
        week_days=("friday",),
        month_days=(1, 15),
        start_time=datetime(2026, 1, 1),
    )
    assert next_after(trigger, CREATED, 4) == [
        utc(2026, 5, 1),
        utc(2026, 5, 15),
        utc(2027, 1, 1),
        utc(2027, 1, 15),
    ]


def test_a_month_schedule_without_days_fires_on_the_anchors_day() -> None:
    trigger = Recurrence("month", 1, hours=(6, 18), minutes=(0,), start_time=datetime(2026, 1, 10))
    assert next_after(trigger, CREATED, 3) == [
        utc(2026, 1, 10, 6),
        utc(2026, 1, 10, 18),
        utc(2026, 2, 10, 6),
    ]


def test_every_pair_of_hours_and_minutes_fires_in_order() -> None:
    trigger = Recurrence(
        "day", 1, hours=(5, 4, 4), minutes=(30, 0), start_time=datetime(2026, 1, 1)
    )
    assert next_after(trigger, CREATED, 5) == [
        utc(2026, 1, 1, 4, 0),
        utc(2026, 1, 1, 4, 30),
        utc(2026, 1, 1, 5, 0),
        utc(2026, 1, 1, 5, 30),
        utc(2026, 1, 2, 4, 0),
    ]


def test_a_trigger_that_can_never_fire_gives_no_instants() -> None:
    # the 30th every 12 months from February: February has no 30th
    trigger = Recurrence(
        "month", 12, hours=(0,), minutes=(0,), month_days=(30,), start_time=datetime(2026, 2, 1)
    )
    assert list(occurrences(trigger, CREATED, created=CREATED)) == []


# Missed instants


def test_latest_counts_the_missed_instants_and_gives_the_last() -> None:
    trigger = Recurrence("day", 1, hours=(3,), minutes=(0,), start_time=datetime(2026, 1, 1))
    assert latest(trigger, utc(2026, 1, 1, 3), utc(2026, 1, 4, 12), created=CREATED) == (
        3,
        utc(2026, 1, 4, 3),
    )
    assert latest(trigger, utc(2026, 1, 4, 3), utc(2026, 1, 4, 12), created=CREATED) == (0, None)


def test_latest_stops_counting_at_its_limit_yet_finds_the_last_instant() -> None:
    down_a_year = (utc(2026, 1, 1), datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC))
    minutely = Recurrence("minute", 1, start_time=datetime(2026, 1, 1))
    assert latest(minutely, *down_a_year, created=CREATED) == (LIMIT, utc(2026, 12, 31, 23, 59))
    cron = Cron("* * * * *")
    assert latest(cron, *down_a_year, created=CREATED) == (LIMIT, utc(2026, 12, 31, 23, 59))
    nightly = Cron("0 3 * * *")
    assert latest(nightly, utc(2026, 1, 1), utc(2036, 1, 1), created=CREATED) == (
        LIMIT,
        utc(2035, 12, 31, 3),
    )


def test_latest_with_exactly_the_limit_says_the_limit() -> None:
    trigger = Recurrence("minute", 1, start_time=datetime(2026, 1, 1))
    now = utc(2026, 1, 1) + timedelta(minutes=LIMIT)
    assert latest(trigger, utc(2026, 1, 1), now, created=CREATED) == (LIMIT, now)


def test_upcoming_gives_fewer_when_the_end_comes_first() -> None:
    trigger = Cron("0 12 * * *", end_time=datetime(2026, 1, 2, 12))
    assert upcoming(trigger, CREATED, 5, created=CREATED) == [
        utc(2026, 1, 1, 12),
        utc(2026, 1, 2, 12),
    ]


# Long runs stay cheap


def test_ten_years_of_a_daily_schedule() -> None:
    trigger = Recurrence(
        "day", 1, hours=(3,), minutes=(0,), end_time=datetime(2036, 1, 1), time_zone=BERLIN
    )
    assert sum(1 for _ in occurrences(trigger, CREATED, created=CREATED)) == 3652


def test_a_week_of_a_per_minute_cron_across_the_spring_change() -> None:
    # 00:00 on Monday 23 March to 00:00 on Monday 30 March, local: 7 days less the hour
    # skipped, both ends included
    trigger = Cron(
        "* * * * *",
        start_time=datetime(2026, 3, 23),
        end_time=datetime(2026, 3, 30),
        time_zone=BERLIN,
    )
    assert sum(1 for _ in occurrences(trigger, CREATED, created=CREATED)) == 7 * 24 * 60 - 60 + 1


# Problems


def test_a_valid_trigger_has_no_problems() -> None:
    assert problems(Cron("15 16 * * 1", time_zone="Pacific Standard Time")) == []
    assert problems(Recurrence("week", 4, hours=(10,), minutes=(15,), week_days=("monday",))) == []


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (
            Cron("0 * * *"),
            (
                "trigger.expression",
                "'0 * * *' has 4 fields: Azure ML's cron has five, MINUTES HOURS DAYS MONTHS "
                "DAYS-OF-WEEK; write one such as '0 * * * *' (every hour)",
            ),
        ),
        (
            Cron("@hourly"),
            (
                "trigger.expression",
                "'@hourly' has 1 fields: Azure ML's cron has five, MINUTES HOURS DAYS MONTHS "
                "DAYS-OF-WEEK; write one such as '0 * * * *' (every hour)",
            ),
        ),
        (
            Cron("61 * * * *"),
            (
                "trigger.expression",
                "'61 * * * *' is not a cron expression ([61 * * * *] is not acceptable, out "
                "of range): write five fields, MINUTES HOURS DAYS MONTHS DAYS-OF-WEEK, such "
                "as '0 * * * *' (every hour)",
            ),
        ),
        (
            Cron("0 0 30 2 *"),
            (
                "trigger.expression",
                "'0 0 30 2 *' matches no date, so it never fires: check its DAYS and MONTHS "
                "fields (February has no 30th)",
            ),
        ),
        (
            Recurrence("fortnight", 1),
            (
                "trigger.frequency",
                "unknown frequency 'fortnight': write one of minute, hour, day, week, month",
            ),
        ),
        (
            Recurrence("day", 0),
            (
                "trigger.interval",
                "interval 0 is below 1: write how many days apart the runs are, 1 or more",
            ),
        ),
        (
            Recurrence("hour", 1, hours=(4,), minutes=(0,)),
            (
                "trigger.schedule",
                "a schedule applies to frequency day, week or month, not hour: remove "
                "`schedule`, or use frequency: day with its hours and minutes",
            ),
        ),
        (
            Recurrence("day", 1, minutes=(0,)),
            (
                "trigger.schedule.hours",
                "the schedule has no hours, which Azure ML requires: write the hours it fires "
                "at (0 to 23), such as hours: [4]",
            ),
        ),
        (
            Recurrence("day", 1, hours=(4,)),
            (
                "trigger.schedule.minutes",
                "the schedule has no minutes, which Azure ML requires: write the minutes it "
                "fires at (0 to 59), such as minutes: [0]",
            ),
        ),
        (
            Recurrence("day", 1, hours=(24,), minutes=(0,)),
            ("trigger.schedule.hours", "24 is not an hour: write hours from 0 to 23"),
        ),
        (
            Recurrence("day", 1, hours=(0,), minutes=(60,)),
            ("trigger.schedule.minutes", "60 is not a minute: write minutes from 0 to 59"),
        ),
        (
            Recurrence("month", 1, hours=(0,), minutes=(0,), month_days=(0,)),
            (
                "trigger.schedule.month_days",
                "0 is not a day of a month: write month_days from 1 to 31",
            ),
        ),
        (
            Recurrence("week", 1, hours=(0,), minutes=(0,), week_days=("mon",)),
            (
                "trigger.schedule.week_days",
                "'mon' is not a day of the week: write monday, tuesday, wednesday, thursday, "
                "friday, saturday, sunday",
            ),
        ),
        (
            Recurrence("day", 1, hours=(0,), minutes=(0,), week_days=("monday",)),
            (
                "trigger.schedule.week_days",
                "week_days applies to frequency week or month, not day: use frequency: week, "
                "or remove week_days",
            ),
        ),
        (
            Recurrence("week", 1, hours=(0,), minutes=(0,), month_days=(1,)),
            (
                "trigger.schedule.month_days",
                "month_days applies to frequency month, not week: use frequency: month, or "
                "remove month_days",
            ),
        ),
        (
            Cron("0 * * * *", start_time=datetime(2026, 2, 1), end_time=datetime(2026, 1, 1)),
            (
                "trigger.end_time",
                "end_time 2026-01-01T00:00:00 is before start_time 2026-02-01T00:00:00, so the "
                "schedule never fires: move end_time after start_time, or remove it",
            ),
        ),
        (
            Cron("0 * * * *", time_zone="Mars/Olympus_Mons"),
            (
                "trigger.time_zone",
                "unknown time zone 'Mars/Olympus_Mons': write an IANA name such as "
                "'Europe/Berlin', or a Windows name as Azure ML lists them, such as "
                "'W. Europe Standard Time'",
            ),
        ),
    ],
)
def test_each_problem_names_the_field_the_value_and_what_to_write(
    trigger: Trigger, expected: tuple[str, str]
) -> None:
    assert problems(trigger) == [expected]


def test_every_problem_of_a_trigger_is_reported_at_once() -> None:
    trigger = Recurrence("day", 0, hours=(25,), minutes=(0, 99), time_zone="Nowhere")
    assert [path for path, _ in problems(trigger)] == [
        "trigger.interval",
        "trigger.schedule.hours",
        "trigger.schedule.minutes",
        "trigger.time_zone",
    ]


def test_end_before_start_compares_instants_when_one_has_an_offset() -> None:
    trigger = Cron(
        "0 * * * *",
        start_time=datetime(2026, 7, 1, 12),  # 10:00 UTC in Berlin
        end_time=datetime(2026, 7, 1, 11, tzinfo=UTC),
        time_zone=BERLIN,
    )
    assert problems(trigger) == []


def test_occurrences_of_a_trigger_with_problems_raise_the_first() -> None:
    with pytest.raises(ValueError, match=r"^trigger\.interval: interval 0 is below 1"):
        next(occurrences(Recurrence("day", 0), CREATED, created=CREATED))


def test_occurrences_need_aware_times() -> None:
    with pytest.raises(ValueError, match="must be aware"):
        next(occurrences(Cron("0 * * * *"), datetime(2026, 1, 1), created=CREATED))


# Properties over zones with DST, a half-hour one included

ZONES = ["UTC", BERLIN, "America/Los_Angeles", "Australia/Lord_Howe"]
EXPRESSIONS = ["0 * * * *", "30 2 * * *", "*/20 1-3 * * *", "15 2 * * 0", "0 0 L * *"]


@st.composite
def triggers(draw: st.DrawFn) -> Trigger:
    tz = draw(st.sampled_from(ZONES))
    start = draw(st.none() | st.datetimes(datetime(2025, 1, 1), datetime(2027, 1, 1)))
    if draw(st.booleans()):
        return Cron(draw(st.sampled_from(EXPRESSIONS)), start_time=start, time_zone=tz)
    frequency = draw(st.sampled_from(["minute", "hour", "day", "week", "month"]))
    interval = draw(st.integers(1, 5))
    if frequency in ("minute", "hour") or draw(st.booleans()):
        return Recurrence(frequency, interval, start_time=start, time_zone=tz)
    small = st.lists(st.integers(0, 3), min_size=1, max_size=2)
    hours = tuple(draw(small))
    minutes = tuple(draw(st.lists(st.sampled_from([0, 15, 30, 45]), min_size=1, max_size=2)))
    days = st.lists(st.sampled_from(["monday", "wednesday", "sunday"]), max_size=2)
    week_days = tuple(draw(days)) if frequency != "day" else ()
    month_days = (
        tuple(draw(st.lists(st.integers(1, 31), max_size=2))) if frequency == "month" else ()
    )
    return Recurrence(
        frequency, interval, hours, minutes, week_days, month_days, start_time=start, time_zone=tz
    )


@settings(max_examples=60, deadline=None)
@given(
    trigger=triggers(),
    after=st.datetimes(datetime(2025, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)),
)
def test_instants_rise_stay_in_bounds_and_resume_where_they_left_off(
    trigger: Trigger, after: datetime
) -> None:
    found = upcoming(trigger, after, 8, created=CREATED)
    for earlier, later in pairwise(found):
        assert earlier < later
        assert upcoming(trigger, earlier, 1, created=CREATED) == [later]
    tz = zone(trigger.time_zone)
    start = trigger.start_time
    # the earliest instant the start's wall-clock time can stand for
    bound = CREATED if start is None else min(start.replace(tzinfo=tz, fold=f) for f in (0, 1))
    for instant in found:
        assert instant.tzinfo is UTC
        assert instant > after
        assert instant >= bound
