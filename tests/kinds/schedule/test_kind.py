"""Schedules declared in schedules/*.yml (Azure ML's schedule YAML): planned and applied
as resources that run nothing themselves; `mlform schedules run-due` runs a job when its
schedule is due and not before, once per pass however many occurrences were missed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from mlform.kinds.schedule import due
from mlform.state.store import Store
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

TRAIN = """
    $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
    code: ../src
    command: python train.py
    """
TRAIN_PY = """
    from pathlib import Path

    runs = Path(__file__).parent.parent / "runs.txt"
    with runs.open("a") as out:
        out.write("trained\\n")
    print("trained")
    """
NIGHTLY = """
    $schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
    name: nightly
    display_name: Nightly retraining
    trigger:
      type: cron
      expression: "0 2 * * *"
      time_zone: W. Europe Standard Time
    create_job: ../runconfigs/train.yml
    """


def workspace(make: Make, schedule: str, **more: str) -> Path:
    return make(
        {
            "workspace.yml": "name: scheduled\n",
            "src/train.py": TRAIN_PY,
            "runconfigs/train.yml": TRAIN,
            "schedules/nightly.yml": schedule,
            **more,
        }
    )


def runs(cli: Cli, root: Path) -> int:
    """How many runs of the job completed."""
    found = json.loads(cli("runs", "list", "--json", cwd=root).out)
    return sum(1 for run in found if run["status"] == "completed")


def test_a_schedule_is_planned_and_recorded_and_runs_nothing_itself(
    cli: Cli, make_workspace: Make
) -> None:
    root = workspace(make_workspace, NIGHTLY)
    planned = cli("plan", cwd=root)
    assert planned.code == 0, planned.err
    assert (
        "+ schedule/nightly (new: cron 0 2 * * * (W. Europe Standard Time) → runconfig/train)"
        in [" ".join(line.split()) for line in planned.out.splitlines()]
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert runs(cli, root) == 1  # the job's first run (no run yet), not the schedule's
    assert cli("plan", cwd=root).out.startswith("No changes")

    listed = cli("schedules", "list", cwd=root)
    header, row = listed.out.splitlines()
    assert header.split() == ["NAME", "TRIGGER", "JOB", "NEXT", "LAST", "RUN"]
    assert row.startswith("nightly  cron 0 2 * * * (W. Europe Standard Time)  runconfig/train  ")
    assert row.endswith((" 02:00 CET  -", " 02:00 CEST  -"))
    shown = cli("schedules", "show", "nightly", cwd=root).out.splitlines()
    nexts = shown[shown.index("  next 5 (W. Europe Standard Time):") + 1 :][:5]
    days = [datetime.strptime(line.split()[0], "%Y-%m-%d").date() for line in nexts]
    assert [b - a for a, b in pairwise(days)] == [timedelta(days=1)] * 4
    assert all(line.split()[1] == "02:00" for line in nexts)
    assert "  last runs: none yet" in shown
    listed_json = json.loads(cli("schedules", "list", "--json", cwd=root).out)
    assert [(s["name"], s["job"], s["runs"]) for s in listed_json] == [
        ("nightly", "runconfig/train", [])
    ]

    # Not due: a pass runs nothing, and says when the next is.
    passed = cli("schedules", "run-due", cwd=root)
    assert passed.code == 0, passed.err
    assert passed.out.startswith("Nothing is due at ")
    assert "; next: schedule/nightly at " in passed.out
    assert runs(cli, root) == 1

    # Editing only its description updates it in place, and keeps the instant it counts from.
    with Store.open(root / ".mlform/state.duckdb", "test", write=False) as store:
        before = due.since(due.applied(store)[0])
    (root / "schedules/nightly.yml").write_text(
        NIGHTLY.replace("\n    ", "\n").replace("name: nightly", "name: nightly\ndescription: x")
    )
    assert "  ~ schedule/nightly" in cli("plan", cwd=root).out
    assert cli("apply", "--yes", cwd=root).code == 0
    with Store.open(root / ".mlform/state.duckdb", "test", write=False) as store:
        assert due.since(due.applied(store)[0]) == before


def test_run_due_runs_the_job_when_due_and_not_before(cli: Cli, make_workspace: Make) -> None:
    # Real time: the first occurrence a few seconds after the apply, then every minute.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    every_minute = f"""
        name: nightly
        trigger:
          type: recurrence
          frequency: minute
          interval: 1
          start_time: "{start.isoformat()}"
        create_job: train
        """
    root = workspace(make_workspace, every_minute)
    assert cli("apply", "--yes", cwd=root).code == 0
    assert runs(cli, root) == 1
    early = cli("schedules", "run-due", cwd=root)
    assert datetime.now(UTC) < start, "the machine was too slow for this test's timing"
    assert early.out.startswith("Nothing is due"), early.out + early.err
    assert runs(cli, root) == 1

    time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 0.5)
    ran = cli("schedules", "run-due", cwd=root)
    assert ran.code == 0, ran.out + ran.err
    assert f"    schedule/nightly: due at {start.isoformat()}: runs runconfig/train" in ran.out
    assert "  > runconfig/train  (--rerun)" in ran.out
    assert runs(cli, root) == 2
    again = cli("schedules", "run-due", cwd=root)
    assert again.out.startswith("Nothing is due"), again.out
    assert runs(cli, root) == 2

    shown = cli("schedules", "show", "nightly", cwd=root).out
    assert "  last runs:" in shown
    last = shown.splitlines()[-1].split()
    assert (last[-3], last[-1]) == ("0", "succeeded")  # none missed; the apply succeeded


def test_missed_occurrences_run_once(cli: Cli, make_workspace: Make) -> None:
    root = workspace(make_workspace, NIGHTLY.replace('"0 2 * * *"', '"*/5 * * * *"'))
    assert cli("apply", "--yes", cwd=root).code == 0
    with Store.open(root / ".mlform/state.duckdb", "test", write=False) as store:
        since = due.since(due.applied(store)[0])
        # (the clock injected: an hour of downtime after the apply)
        fires = due.due(store, since + timedelta(hours=1))
    assert len(fires) == 1
    fire = fires[0]
    assert (fire.schedule, fire.job, fire.missed) == ("schedule/nightly", "runconfig/train", 11)
    assert since + timedelta(minutes=55) < fire.occurrence <= since + timedelta(hours=1)


def test_what_is_wrong_in_a_schedule_is_said_where_it_is_written(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: scheduled\n",
            "src/train.py": TRAIN_PY,
            "runconfigs/train.yml": TRAIN,
            "schedules/bad-cron.yml": """
                name: bad-cron
                trigger:
                  type: cron
                  expression: "61 * * * *"
                create_job: train
                """,
            "schedules/bad-zone.yml": """
                name: bad-zone
                trigger:
                  type: recurrence
                  frequency: day
                  interval: 1
                  time_zone: Mars Standard Time
                create_job: ../runconfigs/train.yml
                """,
            "schedules/no-job.yml": """
                name: no-job
                trigger: {type: cron, expression: "0 * * * *"}
                create_job: azureml:retrain
                """,
            "schedules/no-file.yml": """
                name: no-file
                trigger: {type: cron, expression: "0 * * * *"}
                create_job:
                  type: pipeline
                  job: ../pipelines/retrain.yml
                """,
            "schedules/override.yml": """
                name: override
                trigger: {type: cron, expression: "0 * * * *", start_time: "tomorrow"}
                create_job:
                  job: train
                  inputs: {n: 3}
                """,
            "runconfigs/weekly.yml": """
                name: weekly
                trigger: {type: recurrence, frequency: week, interval: 1}
                create_job: ./train.yml
                """,
            "schedules/monitor.yml": """
                name: drift
                trigger: {type: cron, expression: "0 * * * *"}
                create_monitor:
                  compute: {instance_type: standard_e4s_v3, runtime_version: "3.3"}
                """,
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    lines = ran.err.splitlines()
    by_file = {line.split(":")[0]: line for line in lines[:-1]}
    assert set(by_file) == {
        "schedules/bad-cron.yml",
        "schedules/bad-zone.yml",
        "schedules/no-job.yml",
        "schedules/no-file.yml",
        "schedules/override.yml",
        "schedules/monitor.yml",
        "runconfigs/weekly.yml",
    }, ran.err
    assert by_file["runconfigs/weekly.yml"] == (
        "runconfigs/weekly.yml:3:1: error: this file is a schedule (it has trigger: and "
        "create_job:), but runconfigs/ holds runconfig declarations; move it to schedules/"
    )
    assert by_file["schedules/bad-cron.yml"].startswith("schedules/bad-cron.yml:4:15: error: ")
    assert "61" in by_file["schedules/bad-cron.yml"]
    assert by_file["schedules/bad-zone.yml"].startswith("schedules/bad-zone.yml:6:14: error: ")
    assert "Mars Standard Time" in by_file["schedules/bad-zone.yml"]
    assert by_file["schedules/no-job.yml"] == (
        "schedules/no-job.yml:3:13: error: no runconfig or pipeline is named 'retrain' "
        "(declared: runconfig/train, runconfig/weekly)"
    )
    assert by_file["schedules/no-file.yml"].startswith(
        "schedules/no-file.yml:5:8: error: '../pipelines/retrain.yml' does not exist"
    )
    override = [line for line in lines if line.startswith("schedules/override.yml")]
    assert override == [
        "schedules/override.yml:2:60: error: 'tomorrow' is not an ISO 8601 date and time; "
        "write it as 2026-03-29T02:30:00 (wall clock in time_zone) or with an offset "
        "(2026-03-29T02:30:00+02:00)",
        "schedules/override.yml:5:3: error: a schedule that changes its job's inputs is not "
        "supported yet; declare that variant as a runconfig or pipeline of its own and "
        "schedule it",
    ]
    assert by_file["schedules/monitor.yml"] == (
        "schedules/monitor.yml:3:1: error: this file is a monitor (it has create_monitor:), "
        "but schedules/ holds schedule declarations; move it to monitors/"
    )
