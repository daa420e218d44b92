"""`mlform agent run` against a bare git remote on disk: each pushed commit is applied
within an interval and recorded; a SIGTERM mid-run stops cleanly, and the next start
resumes."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.agent.conftest import AgentProcess, Remote, git
from tests.conftest import Ran

Cli = Callable[..., Ran]
Start = Callable[..., AgentProcess]
INTERVAL = 2.0

WORKSPACE = {
    "workspace.yml": "name: followed\n",
    ".gitignore": ".mlform/\n",
    "src/train.py": """
        import sys, time
        from pathlib import Path

        out = Path(sys.argv[1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.pkl").write_text("version 1")
        print("trained version 1")
        """,
    "runconfigs/train.yml": """
        code: ../src
        command: python train.py ${{outputs.model}}
        outputs:
          model: {}
        register_model:
          name: m
          path: model/model.pkl
        """,
}


def applied(commit: str) -> Callable[[dict[str, object]], bool]:
    return lambda e: e["event"] == "applied" and e.get("commit") == commit


def test_a_pushed_commit_is_applied_within_an_interval_and_recorded(
    remote: Remote, start_agent: Start, cli: Cli
) -> None:
    first = remote.push(WORKSPACE, "a first model")
    agent = start_agent(remote, "--interval", str(INTERVAL))
    agent.wait_for(applied(first), 120)
    assert f"The state reflects commit {first}" in cli("agent", "status", cwd=agent.folder).out

    edited = WORKSPACE["src/train.py"].replace("version 1", "version 2")
    second = remote.push({"src/train.py": edited}, "train differently")
    pushed = agent.wait_for(lambda e: e["event"] == "commit" and e.get("commit") == second, 30)
    agent.wait_for(applied(second), 120)
    assert pushed  # seen at the next tick, not later
    runs = json.loads(cli("runs", "list", "--json", cwd=agent.folder).out)
    assert [r["status"] for r in runs] == ["completed", "completed"]
    status = cli("agent", "status", cwd=agent.folder).out
    assert f"The state reflects commit {second} (applied)" in status
    # With nothing new, the next ticks change nothing.
    agent.wait_for(lambda e: e["event"] == "no_changes", 30)
    metrics = urllib.request.urlopen(f"{agent.url}/metrics", timeout=10).read().decode()
    assert f'mlform_agent_last_sync_info{{commit="{second}",result="no changes"}} 1' in metrics
    assert "mlform_agent_apply_duration_seconds_count 2" in metrics
    health = json.loads(urllib.request.urlopen(f"{agent.url}/healthz", timeout=10).read())
    assert health["status"] == "alive"
    assert agent.stop() == 0
    assert agent.events[-1]["event"] == "stopped"

    shown = json.loads(cli("state", "show", cwd=agent.folder).out)
    assert (shown["commit"], shown["branch"], shown["serial"] > 0) == (second, "main", True)
    plan = cli("plan", cwd=agent.folder)  # at the commit the state reflects: nothing to say
    assert "reflects" not in plan.out
    git("commit", "-q", "--allow-empty", "-m", "local work", cwd=agent.folder)
    plan = cli("plan", cwd=agent.folder)
    assert f"note: this checkout is 1 commit ahead of commit {second[:10]}" in plan.out
    git("reset", "-q", "--hard", first, cwd=agent.folder)
    plan = cli("plan", cwd=agent.folder)
    assert f"note: this checkout is 1 commit behind commit {second[:10]}" in plan.out


def test_the_webhook_fetches_at_once_with_the_secret_only(
    remote: Remote, start_agent: Start
) -> None:
    first = remote.push(WORKSPACE, "a first model")
    agent = start_agent(remote, "--interval", "600", env={"MLFORM_AGENT_SECRET": "s3cret"})
    agent.wait_for(applied(first), 120)
    second = remote.push({"src/train.py": WORKSPACE["src/train.py"] + "# v2\n"}, "again")

    def post(headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"{agent.url}/hooks/git", data=b"{}", method="POST", headers=headers
        )
        try:
            return int(urllib.request.urlopen(request, timeout=10).status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    assert post({}) == 401
    assert post({"Authorization": "Bearer wrong"}) == 401
    assert post({"X-Hub-Signature-256": "sha256=00"}) == 401
    assert post({"Authorization": "Bearer s3cret"}) == 202
    agent.wait_for(applied(second), 120)  # long before the 600 s interval


def test_sigterm_mid_run_stops_cleanly_and_the_next_start_resumes(
    remote: Remote, start_agent: Start, cli: Cli, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    slow = f"""
        import sys, time
        from pathlib import Path

        Path({str(started)!r}).write_text("training")
        until = time.time() + 60
        while time.time() < until and not Path({str(release)!r}).exists():
            time.sleep(0.05)
        out = Path(sys.argv[1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.pkl").write_text("slow")
        """
    commit = remote.push({**WORKSPACE, "src/train.py": slow}, "a slow model")
    agent = start_agent(remote, "--interval", str(INTERVAL))
    agent.wait_for(lambda e: e["event"] == "apply", 120)
    deadline = time.monotonic() + 60
    while not started.exists():  # the script itself says when it trains
        assert time.monotonic() < deadline and agent.process.poll() is None, agent.log()
        time.sleep(0.05)
    assert agent.stop(signal.SIGTERM) == 0  # Ctrl-C's rules: the run is cancelled
    assert agent.events[-1]["event"] == "stopped"
    assert cli("runs", "list", "--status", "completed", "--json", cwd=agent.folder).out == "[]\n"

    release.write_text("go")
    again = start_agent(remote, "--interval", str(INTERVAL))
    again.wait_for(applied(commit), 120)
    runs = json.loads(cli("runs", "list", "--status", "completed", "--json", cwd=agent.folder).out)
    assert len(runs) == 1
