"""When a schedule fires: Azure ML's `cron` and `recurrence` triggers, the time zone they
are read in, and the instants they give.

The semantics follow Azure ML's "Schedule machine learning pipeline jobs" and "CLI (v2)
schedule YAML schema" pages where they say something, and are decided here where they do
not:

- Bounds. `start_time` and `end_time` both count: an instant equal to either fires. An
  absent `start_time` is the moment the schedule was applied (`created`): Azure "If
  start_time is omitted, start_time will be equal to the job created time". A start in the
  past does not replay: the first instant asked for is the next one after `after`.
- Time zones. `time_zone` is an IANA name or a Windows name as Azure's list writes them
  ("W. Europe Standard Time"), mapped to IANA by CLDR's windowsZones table; default UTC.
  A naive `start_time`/`end_time` is wall-clock time in that zone, an aware one an instant.
- Wall-clock times across DST, for cron and for day/week/month recurrences alike: a time
  that does not exist (02:30 on the night clocks spring forward) fires once, at the instant
  the gap ends (03:00 local); a time that occurs twice (02:30 on the night clocks fall back)
  fires once, at the first. Two wall times that land on one instant fire once.
- cron: the five fields MINUTES HOURS DAYS MONTHS DAYS-OF-WEEK, matched by croniter
  against wall-clock time in the zone (the DST rules above are applied here, not left to
  croniter). Azure's page says its service ignores DAYS and MONTHS (treats them as `*`),
  "a known limitation"; mlform honours them, as crontab does.
- recurrence without `schedule`: from the anchor (`start_time`, else `created`) every
  `interval` units, the anchor included (Azure: "the first job will run instantly").
  minute and hour are elapsed time (an hourly recurrence fires 25 times on the day clocks
  fall back); day, week and month are the anchor's wall-clock time. A month without the
  anchor's day is skipped, not clamped: Azure "If you set the recurrence as the 31st day
  of every month, in months with less than 31 days, the schedule won't trigger jobs".
- recurrence with `schedule` (frequency day, week or month only, as Azure allows): the
  interval counts days, weeks (starting Monday) or months from the anchor's day, week or
  month; on each selected day it fires at every pair of `hours` x `minutes`, from the anchor
  on. `hours` and `minutes` are required, as Azure's SDK schema requires them. The days:
  a selected day itself; the `week_days` of a selected week (absent: the anchor's
  weekday); in a selected month, the days in `month_days` that are also among `week_days`
  when both are given (each narrows the other, as iCalendar's BYMONTHDAY and BYDAY do, RFC
  5545), every one of either when only one is, the anchor's day of the month when neither.

A cron that matches no date (30 February) is a problem; a recurrence that can never fire
(the 30th every 12 months from February) gives no instants rather than searching forever.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo

from mlform.schedules.zones import zone

FREQUENCIES = ("minute", "hour", "day", "week", "month")
WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
LIMIT = 1000
"""`latest` counts missed instants up to this many; a count of LIMIT reads "LIMIT or more"."""

_CRON_FIELDS = "MINUTES HOURS DAYS MONTHS DAYS-OF-WEEK"
# A month whose pattern gave no day this many times in a row never will: the calendar
# (month lengths and weekdays together) repeats every 400 years, 4800 months.
_BARREN = 4800


@dataclass(frozen=True, slots=True)
class Cron:
    """`type: cron`: fires at the wall-clock times a five-field cron expression matches."""

    expression: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Recurrence:
    """`type: recurrence`: every `interval` minutes, hours, days, weeks or months.

    `hours`, `minutes`, `week_days` and `month_days` are the keys of its `schedule:`, each
    empty when the file leaves it out; the trigger has a schedule when any is given.
    """

    frequency: str
    interval: int
    hours: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    week_days: tuple[str, ...] = ()
    month_days: tuple[int, ...] = ()
    start_time: datetime | None = None
    end_time: datetime | None = None
    time_zone: str = "UTC"


Trigger: TypeAlias = Cron | Recurrence


def problems(trigger: Trigger) -> list[tuple[str, str]]:
    """Everything wrong with `trigger`, each as (field path, message saying what to do)."""
    found = (
        _cron_problems(trigger.expression)
        if isinstance(trigger, Cron)
        else _recurrence_problems(trigger)
    )
    tz: ZoneInfo | None = None
    try:
        tz = zone(trigger.time_zone)
    except ValueError as err:
        found.append(("trigger.time_zone", str(err)))
    start, end = trigger.start_time, trigger.end_time
    if start is not None and end is not None:
        if tz is not None:
            before = _instant(end, tz) < _instant(start, tz)
        else:  # without a zone only times of one kind compare
            before = (start.tzinfo is None) == (end.tzinfo is None) and end < start
        if before:
            found.append(
                (
                    "trigger.end_time",
                    f"end_time {end.isoformat()} is before start_time {start.isoformat()}, "
                    "so the schedule never fires: move end_time after start_time, or remove it",
                )
            )
    return found


def occurrences(trigger: Trigger, after: datetime, *, created: datetime) -> Iterator[datetime]:
    """The instants `trigger` fires at after `after`, in order, as aware UTC datetimes.

    `created` (aware) is when the schedule was applied: the anchor when the trigger has no
    `start_time`. Lazy, and without end when the trigger has no `end_time`. Raises
    `ValueError` for a trigger `problems` finds fault with, or a naive `after`/`created`.
    """
    if after.tzinfo is None or created.tzinfo is None:
        raise ValueError("`after` and `created` must be aware datetimes")
    found = problems(trigger)
    if found:
        raise ValueError(f"{found[0][0]}: {found[0][1]}")
    tz = zone(trigger.time_zone)
    anchor = created if trigger.start_time is None else trigger.start_time
    start = _instant(anchor, tz)
    end = None if trigger.end_time is None else _instant(trigger.end_time, tz)
    lower = max(start, after.astimezone(UTC))
    if isinstance(trigger, Cron):
        instants = _cron(trigger.expression, tz, lower)
    else:
        instants = _recurrence(trigger, tz, anchor, start, lower)
    previous: datetime | None = None
    for instant in instants:
        if end is not None and instant > end:
            return
        if instant < start or instant <= after or instant == previous:
            continue
        previous = instant
        yield instant


def upcoming(trigger: Trigger, now: datetime, count: int, *, created: datetime) -> list[datetime]:
    """The next `count` instants after `now` (fewer when `end_time` comes first)."""
    return list(itertools.islice(occurrences(trigger, now, created=created), count))


def latest(
    trigger: Trigger, after: datetime, now: datetime, *, created: datetime
) -> tuple[int, datetime | None]:
    """How many instants fell in (`after`, `now`], and the last of them.

    A schedule missed while nothing ran is run once, for the last instant; the count says
    how many were missed. It stops at `LIMIT` ("LIMIT or more"), so a per-minute schedule
    down for a year costs as little as one down for a day.
    """
    count, last = 0, None
    for instant in occurrences(trigger, after, created=created):
        if instant > now:
            return count, last
        count, last = count + 1, instant
        if count == LIMIT:
            return count, _last(trigger, instant, now, created)
    return count, last


def _last(trigger: Trigger, known: datetime, now: datetime, created: datetime) -> datetime:
    """The last instant at or before `now`, `known` being one: looked for in windows back
    from `now` that double until one holds an instant."""
    span = timedelta(minutes=1)
    while True:
        since = max(known, now - span)
        last = known
        for instant in occurrences(trigger, since, created=created):
            if instant > now:
                break
            last = instant
        if last > since or since == known:
            return last
        span *= 2


def _instant(moment: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of `moment`: itself if aware, else a wall-clock time in `tz`, the
    first of a time that occurs twice and the end of the gap for one that does not occur."""
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    first = moment.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == moment:
        return first
    # In a gap: fold 0 and fold 1 read it with the offsets before and after the change, so
    # the change lies between the two instants; find its second.
    other = moment.replace(tzinfo=tz, fold=1).astimezone(UTC)
    low = min(first, other).replace(microsecond=0)
    offset = max(first, other).astimezone(tz).utcoffset()
    below, above = 0, int((max(first, other) - low).total_seconds()) + 1
    while above - below > 1:
        middle = (below + above) // 2
        if (low + timedelta(seconds=middle)).astimezone(tz).utcoffset() == offset:
            above = middle
        else:
            below = middle
    return low + timedelta(seconds=above)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _skipped(instant: datetime, tz: ZoneInfo) -> timedelta:
    """The wall-clock time skipped by a gap that ends at `instant` (zero if none does):
    those wall times fire at `instant`, so a search from it starts that much earlier."""
    after = instant.astimezone(tz).utcoffset() or timedelta(0)
    before = (instant - timedelta(seconds=1)).astimezone(tz).utcoffset() or timedelta(0)
    return max(after - before, timedelta(0))


def _cron(expression: str, tz: ZoneInfo, lower: datetime) -> Iterator[datetime]:
    """The instants of `expression`'s wall-clock matches, from about `lower` on."""
    # start-up: croniter only where a cron trigger is read (every apply loads this module)
    from croniter import CroniterBadDateError, croniter

    begin = _wall(lower, tz) - _skipped(lower, tz)
    # croniter gives the matches strictly after its start: start a second before the minute
    matches = croniter(expression, begin.replace(second=0, microsecond=0) - timedelta(seconds=1))
    while True:
        try:
            wall = matches.get_next(datetime)
        except CroniterBadDateError:  # no date matches the days and months: never fires
            return
        yield _instant(wall, tz)


def _recurrence(
    trigger: Recurrence, tz: ZoneInfo, anchor: datetime, start: datetime, lower: datetime
) -> Iterator[datetime]:
    """The instants of a recurrence, from some time before `lower` on."""
    if trigger.frequency in ("minute", "hour"):
        every = trigger.interval
        step = timedelta(minutes=every) if trigger.frequency == "minute" else timedelta(hours=every)
        first = (lower - start) // step
        return (start + k * step for k in itertools.count(first))
    origin = anchor if anchor.tzinfo is None else _wall(anchor, tz)
    begin = (_wall(lower, tz) - _skipped(lower, tz)).date()
    walls = _walls(trigger, origin, begin)
    return (_instant(wall, tz) for wall in walls)


def _walls(trigger: Recurrence, origin: datetime, begin: date) -> Iterator[datetime]:
    """The wall-clock times a day, week or month recurrence fires at, in order, from the
    period two before the one holding `begin`."""
    times = (
        [time(h, m) for h in sorted(set(trigger.hours)) for m in sorted(set(trigger.minutes))]
        if _scheduled(trigger)
        else [origin.time()]
    )
    barren = 0
    for day_list in _days(trigger, origin.date(), begin):
        barren = 0 if day_list else barren + 1
        if barren > _BARREN:
            return
        for day in day_list:
            for moment in times:
                yield datetime.combine(day, moment)


def _days(trigger: Recurrence, origin: date, begin: date) -> Iterator[list[date]]:
    """The days each selected period fires on, period by period from two before `begin`'s."""
    every = trigger.interval
    if trigger.frequency == "day":
        first = max(0, (begin - origin).days // every - 2)
        for k in itertools.count(first):
            yield [origin + timedelta(days=k * every)]
    elif trigger.frequency == "week":
        monday = origin - timedelta(days=origin.weekday())
        wanted = _weekdays(trigger, origin)
        first = max(0, (begin - monday).days // (7 * every) - 2)
        for k in itertools.count(first):
            week = monday + timedelta(weeks=k * every)
            yield [week + timedelta(days=d) for d in sorted(wanted)]
    else:
        month0 = origin.year * 12 + origin.month - 1
        first = max(0, (begin.year * 12 + begin.month - 1 - month0) // every - 2)
        for k in itertools.count(first):
            year, month = divmod(month0 + k * every, 12)
            yield _month_days(trigger, origin, year, month + 1)


def _scheduled(trigger: Recurrence) -> bool:
    return bool(trigger.hours or trigger.minutes or trigger.week_days or trigger.month_days)


def _weekdays(trigger: Recurrence, origin: date) -> set[int]:
    if not trigger.week_days:
        return {origin.weekday()}
    return {WEEK_DAYS.index(name.lower()) for name in trigger.week_days}


def _month_days(trigger: Recurrence, origin: date, year: int, month: int) -> list[date]:
    length = calendar.monthrange(year, month)[1]
    if not (trigger.week_days or trigger.month_days):
        return [date(year, month, origin.day)] if origin.day <= length else []
    numbers = set(trigger.month_days) if trigger.month_days else set(range(1, length + 1))
    days = [date(year, month, n) for n in sorted(numbers) if n <= length]
    if trigger.week_days:
        weekdays = _weekdays(trigger, origin)
        days = [day for day in days if day.weekday() in weekdays]
    return days


def _cron_problems(expression: str) -> list[tuple[str, str]]:
    # start-up: croniter only where a cron trigger is read (every apply loads this module)
    from croniter import CroniterBadDateError, croniter

    where = "trigger.expression"
    fields = len(expression.split())
    if fields != 5:
        return [
            (
                where,
                f"{expression!r} has {fields} fields: Azure ML's cron has five, "
                f"{_CRON_FIELDS}; write one such as '0 * * * *' (every hour)",
            )
        ]
    try:
        matches = croniter(expression, datetime(2000, 1, 1))
    except (ValueError, TypeError) as err:  # croniter's errors derive from these two
        return [
            (
                where,
                f"{expression!r} is not a cron expression ({err}): write five fields, "
                f"{_CRON_FIELDS}, such as '0 * * * *' (every hour)",
            )
        ]
    try:
        matches.get_next(datetime)
    except CroniterBadDateError:
        return [
            (
                where,
                f"{expression!r} matches no date, so it never fires: "
                "check its DAYS and MONTHS fields (February has no 30th)",
            )
        ]
    return []


def _recurrence_problems(trigger: Recurrence) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    frequency = trigger.frequency
    if frequency not in FREQUENCIES:
        found.append(
            (
                "trigger.frequency",
                f"unknown frequency {frequency!r}: write one of {', '.join(FREQUENCIES)}",
            )
        )
    if trigger.interval < 1:
        unit = f"{frequency}s" if frequency in FREQUENCIES else "units"
        found.append(
            (
                "trigger.interval",
                f"interval {trigger.interval} is below 1: "
                f"write how many {unit} apart the runs are, 1 or more",
            )
        )
    if not _scheduled(trigger):
        return found
    if frequency in ("minute", "hour"):
        found.append(
            (
                "trigger.schedule",
                f"a schedule applies to frequency day, week or month, not {frequency}: "
                "remove `schedule`, or use frequency: day with its hours and minutes",
            )
        )
    found += _numbers("hours", trigger.hours, 23, "an hour", example=4)
    found += _numbers("minutes", trigger.minutes, 59, "a minute", example=0)
    found += _numbers("month_days", trigger.month_days, 31, "a day of a month", low=1)
    for name in trigger.week_days:
        if name.lower() not in WEEK_DAYS:
            found.append(
                (
                    "trigger.schedule.week_days",
                    f"{name!r} is not a day of the week: write {', '.join(WEEK_DAYS)}",
                )
            )
    if trigger.week_days and frequency == "day":
        found.append(
            (
                "trigger.schedule.week_days",
                "week_days applies to frequency week or month, not day: "
                "use frequency: week, or remove week_days",
            )
        )
    if trigger.month_days and frequency in ("day", "week"):
        found.append(
            (
                "trigger.schedule.month_days",
                f"month_days applies to frequency month, not {frequency}: "
                "use frequency: month, or remove month_days",
            )
        )
    return found


def _numbers(
    key: str,
    values: tuple[int, ...],
    high: int,
    what: str,
    *,
    low: int = 0,
    example: int | None = None,
) -> list[tuple[str, str]]:
    """Problems with one list of a schedule; `example` makes the list required."""
    where = f"trigger.schedule.{key}"
    if example is not None and not values:
        return [
            (
                where,
                f"the schedule has no {key}, which Azure ML requires: "
                f"write the {key} it fires at ({low} to {high}), such as {key}: [{example}]",
            )
        ]
    return [
        (where, f"{value} is not {what}: write {key} from {low} to {high}")
        for value in values
        if not low <= value <= high
    ]
