"""The agent heals a deployment that died, within an interval, and holds an endpoint
change under `require_approval` until `mlform agent approve`."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.conftest import AgentProcess, Remote
from tests.cli.test_endpoints import primary_key
from tests.conftest import EXAMPLE, SWEEP, Ran, stop_endpoints
from tests.ports import free_port

Cli = Callable[..., Ran]
Start = Callable[..., AgentProcess]
INTERVAL = 2.0


# no image (a Docker build) and no pipeline, nor what names the pipeline
EXCLUDED = (".mlform", "images", "pipelines", "monitors", "schedules")


def example_files(port: int) -> dict[str, str]:
    """The iris example, its endpoint on `port`, as files to commit."""
    files = {}
    for path in EXAMPLE.rglob("*"):
        rel = path.relative_to(EXAMPLE)
        if path.is_file() and rel.parts[0] not in EXCLUDED and rel.name != SWEEP:
            files[rel.as_posix()] = path.read_text()
    files["endpoints/iris.yml"] = files["endpoints/iris.yml"].replace("port: 5080", f"port: {port}")
    files[".gitignore"] = ".mlform/\n"
    return files


@pytest.fixture
def agent_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "agent"
    yield folder
    if folder.exists():
        stop_endpoints(folder)


def score(port: int, key: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/score",
        data=(EXAMPLE / "request.json").read_bytes(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    return int(urllib.request.urlopen(request, timeout=30).status)


def test_a_dead_deployment_is_healed_and_an_endpoint_change_waits_for_approval(
    remote: Remote, start_agent: Start, cli: Cli, agent_folder: Path
) -> None:
    port = free_port()
    files = example_files(port)
    first = remote.push(files, "the iris system")
    agent = start_agent(remote, "--interval", str(INTERVAL))
    agent.wait_for(lambda e: e["event"] == "applied" and e.get("commit") == first, 600)
    key = primary_key(cli, agent_folder)
    assert score(port, key) == 200

    # A deployment's process dies: the next ticks see the drift and start it again.
    shown = cli("endpoints", "show", "iris", cwd=agent_folder).out
    os.killpg(int(re.search(r"\(pid (\d+)\)", shown)[1]), signal.SIGKILL)  # type: ignore[index]
    drift = agent.wait_for(lambda e: e["event"] == "drift", 30)
    assert drift["changes"] == ["endpoint/iris"]
    agent.wait_for(lambda e: e["event"] == "applied" and e.get("commit") == first, 120)
    assert score(port, key) == 200

    # Endpoints now wait for approval; a change to one is held, whole.
    workspace = files["workspace.yml"] + "\nagent:\n  require_approval: [endpoint]\n"
    endpoint = files["endpoints/iris.yml"].replace(
        "max_concurrent_requests_per_instance: 16", "max_concurrent_requests_per_instance: 8"
    )
    second = remote.push(
        {"workspace.yml": workspace, "endpoints/iris.yml": endpoint}, "fewer requests at once"
    )
    held = agent.wait_for(lambda e: e["event"] == "waiting_for_approval", 60)
    assert held["commit"] == second and held["held"] == ["endpoint/iris"]
    status = cli("agent", "status", cwd=agent_folder).out
    assert f"The state reflects commit {first}" in status
    assert f"Waiting for approval: commit {second[:10]}" in status
    approved = cli("agent", "approve", cwd=agent_folder)
    assert approved.code == 0, approved
    assert f"Approved the plan for commit {second[:10]}" in approved.out
    agent.wait_for(lambda e: e["event"] == "applied" and e.get("commit") == second, 120)
    assert f"The state reflects commit {second}" in cli("agent", "status", cwd=agent_folder).out
    assert cli("agent", "approve", cwd=agent_folder).code != 0  # nothing waits now
    assert agent.stop() == 0
