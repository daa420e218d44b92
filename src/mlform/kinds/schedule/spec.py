"""A schedule as `schedules/*.yml` declares it (Azure ML's schedule YAML), and the
trigger it declares.

`create_job:` names the job as Azure writes it: a file (`./train-pipeline.yml`, relative
to the schedule's file), a name (`azureml:train` or `train`), or a mapping whose `job:`
is either. A mapping's overrides of the job (inputs, settings, compute …) are not run
yet: a variant of a job is a runconfig or pipeline of its own, which git then shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from mlform.config.specs import Source, Spec, common
from mlform.config.yamlfile import JsonPath
from mlform.errors import Problem
from mlform.schedules import triggers
from mlform.schedules.triggers import Cron, Recurrence, Trigger

# `create_job:` keys that change the job it runs: refused, with what to do instead
OVERRIDES = ("inputs", "outputs", "settings", "compute", "environment_variables")


@dataclass(frozen=True, slots=True)
class ScheduleSpec(Spec):
    """When `job` (a runconfig's or pipeline's address, once resolved) runs again."""

    kind: ClassVar[str] = "schedule"
    job: str = ""  # as written: a path or a name
    job_where: tuple[str, ...] = ("create_job",)
    target: str | None = None  # the address of the runconfig or pipeline it runs

    @property
    def trigger(self) -> Trigger:
        """The trigger declared (valid once `problems` is empty)."""
        return trigger_of(self.body["trigger"])

    def problems(self) -> list[Problem]:
        problems: list[Problem] = []
        body = self.body["trigger"]
        for key in ("start_time", "end_time"):
            if key in body and _time(body[key]) is None:
                problems.append(
                    self.source.problem(
                        ["trigger", key],
                        f"'{body[key]}' is not an ISO 8601 date and time; write it as "
                        "2026-03-29T02:30:00 (wall clock in time_zone) or with an offset "
                        "(2026-03-29T02:30:00+02:00)",
                    )
                )
        if not problems:  # the trigger's own checks need its times
            for field, message in triggers.problems(self.trigger):
                problems.append(self.source.problem(field.split("."), message))
        create = self.body["create_job"]
        if isinstance(create, Mapping):
            for key in OVERRIDES:
                if key in create:
                    problems.append(
                        self.source.problem(
                            ["create_job", key],
                            f"a schedule that changes its job's {key} is not supported yet; "
                            f"declare that variant as a runconfig or pipeline of its own and "
                            "schedule it",
                            key=True,
                        )
                    )
        return problems


def parse(body: Mapping[str, Any], source: Source) -> ScheduleSpec:
    create = body["create_job"]
    where: tuple[str, ...] = ("create_job",)
    if isinstance(create, Mapping):
        job, where = str(create["job"]), ("create_job", "job")
    else:
        job = str(create)
    return ScheduleSpec(**common(body), source=source, job=job, job_where=where)


def trigger_of(body: Mapping[str, Any]) -> Trigger:
    """The trigger a schema-valid `trigger:` mapping declares."""
    zone = str(body.get("time_zone", "UTC"))
    start, end = _time(body.get("start_time")), _time(body.get("end_time"))
    if body["type"] == "cron":
        return Cron(
            expression=str(body["expression"]),
            time_zone=zone,
            start_time=start,
            end_time=end,
        )
    pattern = body.get("schedule") or {}
    return Recurrence(
        frequency=str(body["frequency"]),
        interval=int(body["interval"]),
        hours=_numbers(pattern.get("hours")),
        minutes=_numbers(pattern.get("minutes")),
        week_days=tuple(d.lower() for d in _listed(pattern.get("week_days"))),
        month_days=_numbers(pattern.get("month_days")),
        time_zone=zone,
        start_time=start,
        end_time=end,
    )


def describe(trigger: Trigger) -> str:
    """The trigger in a few words: `cron 0 2 * * * (Europe/Berlin)`,
    `every 2 weeks on monday at 10:15 (UTC)`."""
    zone = trigger.time_zone
    if isinstance(trigger, Cron):
        return f"cron {trigger.expression} ({zone})"
    unit = (
        trigger.frequency if trigger.interval == 1 else f"{trigger.interval} {trigger.frequency}s"
    )
    text = f"every {unit}"
    days = [*trigger.week_days, *(f"day {d}" for d in trigger.month_days)]
    if days:
        text += " on " + ", ".join(days)
    if trigger.hours or trigger.minutes:
        hours = trigger.hours or (None,)
        minutes = trigger.minutes or (0,)
        times = [
            f"{h:02d}:{m:02d}" if h is not None else f"minute {m}" for h in hours for m in minutes
        ]
        text += " at " + ", ".join(times)
    return f"{text} ({zone})"


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as one
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _numbers(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in _listed(value))


def job_path(spec: ScheduleSpec) -> JsonPath:
    return list(spec.job_where)
