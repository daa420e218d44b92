"""`mlform schedules list|show|run-due`: the schedules applied, when each runs next, what
each ran; and one pass that runs what is due (for a CI cron job)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime

from mlform.cli import plans
from mlform.cli.output import Output, add_json_flag
from mlform.config.names import cli_name
from mlform.errors import NotFound
from mlform.state.fires import Fired
from mlform.workspace import Workspace, breach_jobs

UPCOMING = 5  # occurrences `show` lists


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = commands.add_parser("schedules", help="schedules/*.yml: when jobs run by themselves")
    sub = p.add_subparsers(dest="schedules_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="every schedule applied: its next run and its last")
    add_json_flag(q)
    q.set_defaults(run=list_)
    q = sub.add_parser("show", help="one schedule: its next runs and its last ones")
    q.add_argument("name", metavar="NAME", type=cli_name)
    add_json_flag(q)
    q.set_defaults(run=show)
    q = sub.add_parser(
        "run-due",
        help="run the jobs of the schedules due now, once each (with the rest of the plan)",
    )
    q.add_argument(
        "--parallelism", type=int, default=4, metavar="N", help="changes applied at once (4)"
    )
    q.add_argument("--lock-timeout", type=float, default=0.0, metavar="SECONDS")
    q.set_defaults(run=run_due)


@dataclass(frozen=True, slots=True)
class Scheduled:
    name: str
    trigger: str
    time_zone: str
    job: str
    since: datetime
    upcoming: list[datetime]  # in the schedule's time zone
    runs: list[Fired]  # newest first


def scheduled(ws: Workspace, name: str | None = None, count: int = 1) -> list[Scheduled]:
    # start-up: schedules only for `schedules`
    from mlform.kinds.schedule import due
    from mlform.kinds.schedule.spec import trigger_of
    from mlform.schedules import triggers, zones
    from mlform.state import fires

    now = datetime.now(UTC)
    found = []
    with ws.store("schedules") as store:
        for record in due.applied(store):
            if name is not None and record.name != name:
                continue
            trigger = trigger_of(record.spec["trigger"])
            zone = zones.zone(trigger.time_zone)
            since = due.since(record)
            upcoming = triggers.upcoming(trigger, now, count, created=since)
            found.append(
                Scheduled(
                    record.name,
                    str(record.outputs.get("trigger", "")),
                    trigger.time_zone,
                    str(record.outputs["job"]),
                    since,
                    [at.astimezone(zone) for at in upcoming],
                    fires.history(store, record.address),
                )
            )
    return found


def list_(args: argparse.Namespace, out: Output) -> int:
    found = scheduled(Workspace(args.directory))
    if args.json:
        out.json(found)
        return 0
    if not found:
        out.line("No schedules applied. Declare one in schedules/*.yml and run `mlform apply`.")
        return 0
    rows = [
        (
            s.name,
            s.trigger,
            s.job,
            _when(s.upcoming[0]) if s.upcoming else "never (ended)",
            _last(s.runs),
        )
        for s in found
    ]
    out.table(("NAME", "TRIGGER", "JOB", "NEXT", "LAST RUN"), rows)
    return 0


def show(args: argparse.Namespace, out: Output) -> int:
    # start-up: schedules only for `schedules`
    from mlform.schedules import zones

    ws = Workspace(args.directory)
    found = scheduled(ws, args.name, UPCOMING)
    if not found:
        declared = f"schedule/{args.name}" in ws.validate().specs
        raise NotFound(
            f"schedule {args.name} is declared but not applied yet: run `mlform apply`"
            if declared
            else f"no schedule named {args.name} is applied; `mlform schedules list` "
            "shows those that are"
        )
    s = found[0]
    if args.json:
        out.json(s)
        return 0
    out.line(f"schedule/{s.name}")
    out.line(f"  trigger:  {s.trigger}")
    out.line(f"  runs:     {s.job}")
    zone = zones.zone(s.time_zone)
    out.line(f"  counting from {_when(s.since.astimezone(zone))}")
    if s.upcoming:
        out.line(f"  next {len(s.upcoming)} ({s.time_zone}):")
    else:
        out.line("  next: never (its end_time has passed)")
    for at in s.upcoming:
        out.line(f"    {_when(at)}")
    if not s.runs:
        out.line("  last runs: none yet")
        return 0
    out.line("  last runs:")
    rows = [
        (
            f"    {_when(r.fire.occurrence.astimezone(zone))}",
            _when(r.fired_at.astimezone(zone)),
            str(r.fire.missed),
            r.apply_id,
            r.result,
        )
        for r in s.runs
    ]
    out.table(("    OCCURRENCE", "STARTED", "MISSED", "APPLY", "RESULT"), rows)
    return 0


def run_due(args: argparse.Namespace, out: Output) -> int:
    """One pass: the jobs of the schedules due now run, through an apply of the plan
    (everything else it holds included, as `mlform agent` applies it)."""
    # start-up: schedules only for `schedules`
    from mlform.kinds.schedule import due

    now = datetime.now(UTC)
    ws = Workspace(args.directory)
    with ws.store("schedules run-due") as store:
        pending = due.due(store, now)
        watching = due.due(store, now, "monitor")
    code, jobs = _monitors(ws, now, args, out) if watching else (0, {})
    if not pending and watching and not jobs:
        return code
    if not pending and not jobs:
        nearest = [s for s in scheduled(ws) if s.upcoming]
        nearest.sort(key=lambda s: s.upcoming[0])
        after = (
            f"; next: schedule/{nearest[0].name} at {_when(nearest[0].upcoming[0])}"
            if nearest
            else ""
        )
        out.line(f"Nothing is due at {_when(now)}{after}.")
        return 0
    rerun = [job for job, given in jobs.items() if not given]
    args.planfile, args.yes, args.rerun, args.reinit = None, True, rerun, False
    return plans.run_apply(args, out, schedules_at=now, inputs=jobs) or code


def _monitors(
    ws: Workspace, now: datetime, args: argparse.Namespace, out: Output
) -> tuple[int, dict[str, dict[str, str]]]:
    """The monitors due now, computed and recorded: 1 when a signal breached, and the
    jobs their on_breach runs (with the inputs their `with:` gives)."""
    # start-up: monitors only where they run
    from mlform.cli import monitors

    def log(address: str, message: str) -> None:
        out.line(out.dim(f"    {address}: {message}"))

    done = ws.run_monitors(now, log=log, lock_wait=args.lock_timeout)
    return monitors.report(out, done), breach_jobs(done)


def _when(at: datetime) -> str:
    """`2026-03-29 03:00 CEST`, with seconds where there are any."""
    return at.strftime("%Y-%m-%d %H:%M" + (":%S" if at.second else "") + " %Z").strip()


def _last(runs: list[Fired]) -> str:
    if not runs:
        return "-"
    latest = runs[0]
    return f"{_when(latest.fire.occurrence)} ({latest.result})"
