"""Schedules declared in schedules/*.yml: when a runconfig or pipeline runs again by
itself (Azure ML's job schedules, `trigger:` cron or recurrence, `create_job:`).

Applying a schedule records it and runs nothing. What is due is run by `mlform agent`
on each tick and by `mlform schedules run-due` (one pass, for a CI cron job), both
through `Workspace.apply(schedules_at=…)`: under the writer lock, the schedules due at
that instant add their jobs to the plan as reruns, and each occurrence is recorded as
fired once its run is about to start, so two passes never run one occurrence twice.
After downtime the occurrences missed run once, not once each, and the log says how
many were missed.

    spec        ScheduleSpec and its parsing; the trigger it declares
    declaring   reading: the job it names, by path or name
    kind        the kind: plan and apply (recording it)
    due         which schedules are due, and recording them as fired
"""

from mlform.kinds.schedule.declaring import DECLARING

__all__ = ["DECLARING"]
