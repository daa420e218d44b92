"""Which schedules (and monitors, whose triggers are a schedule's) are due at an
instant, from what the state records: the schedules applied (their trigger as applied,
not as the files say now: applying a schedule is what makes it count) and the
occurrence each fired last.

A schedule is due when at least one of its occurrences fell after the later of its last
fire and the instant it counts from (`since`, recorded by its apply), and not after
`now`. However many fell there, it fires once, at the latest of them; the others are
counted as missed (`Fire.missed`), as after downtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mlform.kinds.schedule.spec import trigger_of
from mlform.schedules import triggers
from mlform.state import fires
from mlform.state.fires import Fire
from mlform.state.records import Recorded
from mlform.state.store import Store


def applied(store: Store, kind: str = "schedule") -> list[Recorded]:
    """The schedules (or monitors) the state records as applied, by address."""
    found = [r for r in store.recorded().values() if r.kind == kind and r.status == "applied"]
    return sorted(found, key=lambda r: r.address)


def since(schedule: Recorded) -> datetime:
    return datetime.fromisoformat(str(schedule.outputs["since"]))


def counted_from(before: Recorded | None, trigger: Mapping[str, Any]) -> str:
    """The instant a schedule (or monitor) applied now counts from, as its record keeps
    it: the one recorded before while its trigger stays the same, else now (Azure's
    default start, "the job creation time")."""
    if before is not None and before.outputs.get("since") and before.spec.get("trigger") == trigger:
        return str(before.outputs["since"])
    return datetime.now(UTC).isoformat()


def due(store: Store, now: datetime, kind: str = "schedule") -> list[Fire]:
    """The schedules due at `now`, each with the job it runs (or the monitors, each with
    the deployment it watches)."""
    last = fires.last(store)
    found = []
    for schedule in applied(store, kind):
        start = since(schedule)
        after = max(start, last.get(schedule.address, start))
        trigger = trigger_of(schedule.spec["trigger"])
        count, latest = triggers.latest(trigger, after, now, created=start)
        if latest is not None:
            job = str(schedule.outputs["job" if kind == "schedule" else "target"])
            found.append(Fire(schedule.address, latest, count - 1, job))
    return found
