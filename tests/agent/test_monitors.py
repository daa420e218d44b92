"""The agent computes a monitor when its trigger is due, with the real clock, over what
a real endpoint captured; a breach runs the monitor's on_breach job with the window that
drifted as its input, and the job's declared state stays as its file says."""

from __future__ import annotations

import csv
import http.client
import json
from collections.abc import Callable
from pathlib import Path

from tests.agent.conftest import AgentProcess, Remote
from tests.agent.test_loop import applied
from tests.conftest import Ran, stop_endpoints
from tests.ports import free_port

Cli = Callable[..., Ran]
Start = Callable[..., AgentProcess]
REFERENCE = [(float(i % 10), "a" if i % 2 else "b") for i in range(200)]


def _workspace(port: int) -> dict[str, str]:
    reference = "x,label\n" + "".join(f"{x},{label}\n" for x, label in REFERENCE)
    return {
        "workspace.yml": "name: watched\n",
        ".gitignore": ".mlform/\n",
        "data/reference.csv": reference,
        "data/reference.yml": "name: reference\ntype: uri_file\npath: reference.csv\n",
        "environments/plain.yml": "name: plain\npip: []\n",
        "models/one.yml": "name: one\npath: ../model/one.txt\ntype: custom_model\n",
        "model/one.txt": "1\n",
        "score/score.py": """
            import json


            def init():
                pass


            def run(raw_data):
                rows = json.loads(raw_data)["data"]
                return ["a" if row[0] > 4 else "b" for row in rows]
            """,
        "endpoints/e.yml": f"""
            name: e
            auth_mode: key
            port: {port}
            deployments:
              - name: blue
                model: azureml:one:1
                code_configuration: {{code: ../score, scoring_script: score.py}}
                environment: azureml:plain@latest
                data_collector: {{sampling_rate: 1.0}}
            """,
        "src/retrain.py": """
            import csv, sys

            with open(sys.argv[1]) as rows:
                seen = list(csv.DictReader(rows))
            print(f"retraining on {len(seen)} rows")
            """,
        "runconfigs/retrain.yml": """
            code: ../src
            command: python retrain.py ${{inputs.recent}}
            inputs:
              recent: {type: uri_file, path: azureml:reference@latest}
            """,
        "monitors/drift.yml": """
            name: drift
            trigger: {type: cron, expression: "* * * * *"}
            create_monitor:
              monitoring_target: {endpoint_deployment_id: azureml:e:blue}
              monitoring_signals:
                drift:
                  type: data_drift
                  reference_data:
                    input_data: {path: azureml:reference@latest, type: uri_file}
                    data_column_names: {target_column: label}
                  features: [x]
              on_breach:
                invoke: ../runconfigs/retrain.yml
                with:
                  recent: ${{monitor.production_data}}
            """,
    }


def _score(port: int, key: str, rows: list[list[float]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/score",
        body=json.dumps({"data": rows}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    assert conn.getresponse().status == 200
    conn.close()


def test_the_agent_computes_a_due_monitor_and_retrains_on_the_drifted_window(
    remote: Remote, start_agent: Start, cli: Cli
) -> None:
    port = free_port()
    commit = remote.push(_workspace(port), "watch the endpoint")
    agent = start_agent(remote, "--interval", "1")
    try:
        agent.wait_for(applied(commit), 180)
        key = cli("endpoints", "keys", "e", cwd=agent.folder).out.splitlines()[0]
        # traffic whose x moved far from the reference's 0..9
        shifted = [[x + 50.0] for x, _ in REFERENCE[:40]]
        _score(port, key.removeprefix("primary: "), shifted)

        # due every minute: computed, breached, and the job run with the window (a run
        # due before the server wrote its capture, each second, finds nothing)
        monitored = agent.wait_for(lambda e: e["event"] == "monitored" and e["breached"], 150)
        assert (monitored["monitor"], monitored["breached"]) == ("monitor/drift", ["drift.x"])
        breach = agent.wait_for(lambda e: e["event"] == "on_breach", 30)
        assert breach["jobs"] == ["runconfig/retrain"]
        agent.wait_for(lambda e: e["event"] == "applied", 120)
        runs = json.loads(cli("runs", "list", "--json", cwd=agent.folder).out)
        retrains = [r for r in runs if r["runconfig"] == "runconfig/retrain"]
        assert len(retrains) == 2  # its first apply, and the breach
        window = Path(retrains[0]["inputs"]["recent"])
        assert window.name == "production.csv"
        with window.open() as rows:
            kept = list(csv.DictReader(rows))
        assert [float(r["x"]) for r in kept] == [x for (x,) in shifted]
        assert {r["prediction"] for r in kept} == {"a"}
        logs = cli("runs", "logs", retrains[0]["id"], cwd=agent.folder).out
        assert "retraining on 40 rows" in logs
        # the declared job is as its file says: the ticks after change nothing
        agent.wait_for(lambda e: e["event"] == "no_changes", 30)
        assert agent.stop() == 0
    finally:
        stop_endpoints(agent.folder)
