"""The agent runs a schedule's job when it is due, with the real clock: not before its
first occurrence, then once per occurrence, and records each as fired."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.agent.conftest import AgentProcess, Remote
from tests.agent.test_loop import WORKSPACE, applied
from tests.conftest import Ran

Cli = Callable[..., Ran]
Start = Callable[..., AgentProcess]
LEAD = 20  # seconds from the push to the first occurrence: the first apply trains once


def test_the_agent_runs_a_due_schedule_once_per_occurrence(
    remote: Remote, start_agent: Start, cli: Cli
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD)
    schedule = f"""
        $schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
        name: retrain
        trigger:
          type: recurrence
          frequency: hour
          interval: 1
          start_time: "{start.isoformat()}"
        create_job: ../runconfigs/train.yml
        """
    commit = remote.push({**WORKSPACE, "schedules/retrain.yml": schedule}, "retrain hourly")
    agent = start_agent(remote, "--interval", "1")
    agent.wait_for(applied(commit), 120)
    assert datetime.now(UTC) < start, "the first apply took longer than this test allows"
    first = json.loads(cli("runs", "list", "--json", cwd=agent.folder).out)
    assert len(first) == 1  # the job's first run; the schedule ran nothing yet

    fired = agent.wait_for(lambda e: e["event"] == "scheduled", LEAD + 120)
    assert datetime.fromisoformat(fired["ts"]) >= start  # not before it was due
    assert (fired["schedule"], fired["job"], fired["missed"]) == (
        "schedule/retrain",
        "runconfig/train",
        0,
    )
    assert datetime.fromisoformat(fired["occurrence"]) == start
    agent.wait_for(lambda e: e["event"] == "applied", 120)
    runs = json.loads(cli("runs", "list", "--json", cwd=agent.folder).out)
    assert [r["status"] for r in runs] == ["completed", "completed"]
    # the next occurrence is an hour away: the ticks after change nothing
    agent.wait_for(lambda e: e["event"] == "no_changes", 30)
    assert not [e for e in agent.events[agent.cursor :] if e["event"] == "scheduled"]
    shown = cli("schedules", "show", "retrain", cwd=agent.folder).out
    assert shown.splitlines()[-1].split()[-1] == "succeeded"
    assert agent.stop() == 0
