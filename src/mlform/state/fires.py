"""The occurrences of schedules that ran their jobs (table `schedule_fires`, migration
0012_schedule_fires): which one each schedule fired last, and the history `schedules
show` prints with the outcome of the apply that ran each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mlform.state.store import Store


@dataclass(frozen=True, slots=True)
class Fire:
    schedule: str  # the schedule's address
    occurrence: datetime  # the latest occurrence it was due at
    missed: int  # earlier occurrences since its last fire, run with this one
    job: str  # the address of the runconfig or pipeline it ran (a monitor's: what it watches)


@dataclass(frozen=True, slots=True)
class Fired:
    fire: Fire
    fired_at: datetime
    apply_id: str  # the apply that ran the job (a monitor's: its run)
    result: str  # the apply's status: succeeded | failed | interrupted | running


def last(store: Store) -> dict[str, datetime]:
    """Each schedule's latest fired occurrence."""
    rows = store.query("select schedule, max(occurrence) from schedule_fires group by schedule")
    return {schedule: at for schedule, at in rows}


def record(store: Store, fires: Sequence[Fire], apply_id: str) -> None:
    """`fires` ran in apply `apply_id`: their occurrences are not due again."""
    if not fires:
        return
    with store.transaction(bump=False) as con:
        for fire in fires:
            con.execute(
                "insert into schedule_fires values (?, ?, ?, ?, now(), ?)",
                [fire.schedule, fire.occurrence, fire.missed, fire.job, apply_id],
            )


def history(store: Store, schedule: str, limit: int = 10) -> list[Fired]:
    """The latest fires of `schedule`, newest first, each with its apply's outcome."""
    rows = store.query(
        "select f.schedule, f.occurrence, f.missed, f.job, f.fired_at, f.apply_id, "
        "coalesce(a.status, r.status, 'running') from schedule_fires f "
        "left join applies a on a.id = f.apply_id left join runs r on r.id = f.apply_id "
        "where f.schedule = ? order by f.occurrence desc limit ?",
        [schedule, limit],
    )
    return [Fired(Fire(*row[:4]), row[4], row[5], row[6]) for row in rows]
