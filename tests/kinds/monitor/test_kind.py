"""Monitors declared in monitors/*.yml (Azure ML's monitor YAML) over the example's real
endpoint: unshifted traffic breaches nothing; traffic with one feature moved by 2σ
breaches data drift on exactly that feature, against the training data found through
the model's lineage; each run is recorded as a run with its metrics. A breach sends the
email (to a real SMTP server) and the signed webhook (to a real HTTP receiver), and its
on_breach retrains: the training job runs, and its gate decides the registration."""

from __future__ import annotations

import csv
import http.client
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.test_endpoints import port_of, primary_key
from tests.conftest import Ran
from tests.monitoring.test_alerts import SECRET, Inbox, Receiver, _smtp_server

Cli = Callable[..., Ran]

MONITOR = """
    $schema: http://azureml/sdk-2-0/Schedule.json
    name: iris-drift
    display_name: Iris drift
    trigger:
      type: recurrence
      frequency: day
      interval: 1
      schedule: {hours: 3, minutes: 15}
    create_monitor:
      compute: {instance_type: standard_e4s_v3, runtime_version: "3.3"}
      monitoring_target:
        ml_task: classification
        endpoint_deployment_id: azureml:iris:blue
      monitoring_signals:
        drift:
          type: data_drift
          reference_data:          # the data: what the model was trained on (lineage)
            data_context: training
            data_column_names: {target_column: species}
          features: all_features
      on_breach:
        invoke: ../runconfigs/train.yml
        with:
          recent: ${{monitor.production_data}}
          C: 1.0
      alert_notification:
        emails: [ml-team@example.com]
        webhooks:
          - url: http://127.0.0.1:RECEIVER/hook
            secret: ${{secrets.HOOK_SECRET}}
    """
# The example's training, reading recent data too (declared: the training data; after a
# breach: the window that drifted). C = 1.0, from the monitor, scores 1.0 on the held-out
# flowers, above the 0.978 of the declared C = 0.1, so the gate registers that model.
RETRAIN = """
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
name: train
experiment_name: iris-classifier
code: ../src
command: >-
  python retrain.py --data ${{inputs.training_data}} --recent ${{inputs.recent}}
  --C ${{inputs.C}} --model-dir ${{outputs.model}}
inputs:
  training_data: {type: uri_file, path: azureml:iris@latest}
  recent: {type: uri_file, path: azureml:iris@latest}
  C: 0.1
outputs:
  model: {type: uri_folder}
environment: azureml:sklearn-env@latest
register_model:
  name: iris-classifier
  path: model
  when: accuracy >= 0.9 and accuracy > latest
"""
RETRAIN_SCRIPT = """
import argparse, pickle
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

import mlform

parser = argparse.ArgumentParser()
for flag in ("--data", "--recent", "--C", "--model-dir"):
    parser.add_argument(flag, required=True)
args = parser.parse_args()
run = mlform.get_run()
recent = pd.read_csv(args.recent)
run.log("recent_rows", len(recent))
if "prediction" in recent.columns:  # the window's captured rows, with what was answered
    run.log("recent_petal_length", float(recent["petal_length"].mean()))
frame = pd.read_csv(args.data)
x, y = frame.drop(columns="species"), frame["species"]
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.3, random_state=0, stratify=y
)
model = LogisticRegression(C=float(args.C), max_iter=200).fit(x_train, y_train)
run.log("accuracy", accuracy_score(y_test, model.predict(x_test)))
out = Path(args.model_dir)
out.mkdir(parents=True, exist_ok=True)
(out / "model.pkl").write_bytes(pickle.dumps(model))
"""
ALERTS = """
alerts:
  smtp: {host: 127.0.0.1, port: SMTP, from: mlform@example.com}
secrets:
  - name: HOOK_SECRET
    env: MONITOR_HOOK_SECRET
"""


def flowers(root: Path) -> list[list[float]]:
    with (root / "data" / "iris.csv").open() as rows:
        return [[float(v) for v in row[:4]] for row in list(csv.reader(rows))[1:]]


def score(port: int, key: str, rows: list[list[float]]) -> None:
    for start in range(0, len(rows), 25):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"data": rows[start : start + 25]})
        conn.request(
            "POST",
            "/score",
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        assert conn.getresponse().status == 200
        conn.close()


def captured(root: Path, rows: int) -> None:
    """Wait until the deployment's capture holds `rows` rows (it writes every second)."""
    import duckdb

    folder = root / ".mlform" / "datastore" / "captures" / "iris" / "blue"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if list(folder.glob("*/*.parquet")):
            found = duckdb.sql(
                f"select sum(json_array_length(inputs)) from read_parquet('{folder}/*/*.parquet')"
            ).fetchall()
            if found[0][0] is not None and found[0][0] >= rows:
                return
        time.sleep(0.2)
    raise AssertionError(f"the capture did not reach {rows} rows")


@pytest.fixture
def alerted(
    example_with_endpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Inbox, Receiver]]:
    """The example with the monitor, a real SMTP server and a real webhook receiver."""
    monkeypatch.setenv("MONITOR_HOOK_SECRET", SECRET)
    root = example_with_endpoint
    receiver = Receiver()
    try:
        for box, port in _smtp_server(Inbox()):
            with (root / "workspace.yml").open("a") as ws:
                ws.write(ALERTS.replace("SMTP", str(port)))
            (root / "monitors").mkdir()
            monitor = MONITOR.replace("\n    ", "\n").replace("RECEIVER", str(receiver.port))
            (root / "monitors" / "iris-drift.yml").write_text(monitor)
            (root / "runconfigs" / "train.yml").write_text(RETRAIN)
            (root / "src" / "retrain.py").write_text(RETRAIN_SCRIPT)
            yield root, box, receiver
    finally:
        receiver.close()


def test_a_monitor_finds_drift_on_exactly_the_shifted_feature(
    cli: Cli, alerted: tuple[Path, Inbox, Receiver]
) -> None:
    root, inbox, receiver = alerted
    planned = cli("plan", cwd=root)
    assert any(
        " ".join(line.split())
        == "+ monitor/iris-drift (new: drift of iris:blue, every day at 03:15 (UTC))"
        for line in planned.out.splitlines()
    ), planned.out
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    port, key = port_of(root), primary_key(cli, root)
    rows = flowers(root)

    # Traffic like the training data: nothing breaches.
    score(port, key, rows)
    captured(root, len(rows))
    calm = cli("monitors", "run", "iris-drift", cwd=root)
    assert calm.code == 0, calm.out + calm.err
    assert "BREACHED" not in calm.out
    assert (inbox.envelopes, receiver.received) == ([], [])  # nothing to tell

    # petal_length moved by 2σ: data drift on that feature, and on no other.
    sigma = statistics.pstdev(r[2] for r in rows)
    shifted = [[r[0], r[1], r[2] + 2 * sigma, r[3]] for r in rows]
    score(port, key, shifted)
    captured(root, 2 * len(rows))
    drifted = cli("monitors", "run", "iris-drift", cwd=root)
    assert drifted.code == 1, drifted.out + drifted.err
    breached = [line.split() for line in drifted.out.splitlines() if "BREACHED" in line]
    assert [(b[0], b[1]) for b in breached] == [("drift", "petal_length")], drifted.out

    # Told: the email through the SMTP server, the webhook signed with the secret.
    mail = inbox.message()
    assert mail["To"] == "ml-team@example.com"
    assert "data drift" in mail["Subject"] and "iris" in mail["Subject"]
    (hook,) = receiver.received
    assert hook.signed
    document = json.loads(hook.body)
    (signal,) = document["signals"]
    assert [b["feature"] for b in signal["breaches"]] == ["petal_length"]
    assert SECRET not in drifted.out + drifted.err
    # on_breach retrains on the window that drifted, with C = 1.0: better than the
    # model served, so its gate registers it, and blue (iris-classifier@latest) rolls out
    assert "breached: runconfig/train runs (on_breach, with recent=" in drifted.out
    retrained = [
        r
        for r in json.loads(cli("runs", "list", "--json", cwd=root).out)
        if r["experiment"] == "iris-classifier"
    ]
    assert len(retrained) == 2, retrained  # its first apply, and the breach
    run = json.loads(cli("runs", "show", retrained[0]["id"], "--json", cwd=root).out)
    window = run["inputs"]["recent"]
    assert window.endswith("production.csv") and "iris-drift" in window, run["inputs"]
    metrics = run["metrics"]
    assert metrics["recent_rows"] == len(rows)  # the breached window: the shifted burst
    assert metrics["recent_petal_length"] > statistics.mean(r[2] for r in rows) + sigma
    assert metrics["accuracy"] == 1.0
    versions = json.loads(cli("models", "list", "--json", cwd=root).out)
    assert sorted(v["version"] for v in versions if v["name"] == "iris-classifier") == ["1", "2"]
    shown = json.loads(cli("endpoints", "show", "iris", "--json", cwd=root).out)
    assert [(d["model"], d["up"]) for d in shown["deployments"]] == [("iris-classifier:2", True)]
    score(port, key, rows[:5])  # the rolled-out deployment answers
    # the job's declared state is as its file says: nothing to do until the next change
    again = cli("plan", cwd=root)
    assert "No changes" in again.out, again.out

    shown = cli("monitors", "show", "iris-drift", cwd=root)
    assert shown.code == 0
    assert "HISTORY" in shown.out  # two runs: a sparkline per value
    listed = cli("monitors", "list", cwd=root).out
    assert "drift.petal_length" in listed
    runs = json.loads(cli("runs", "list", "--json", cwd=root).out)
    monitor_runs = [r for r in runs if r["experiment"] == "monitors"]
    assert len(monitor_runs) == 2
    metrics = cli("runs", "metrics", monitor_runs[0]["id"], cwd=root).out
    assert "drift.petal_length.normalized_wasserstein_distance" in metrics


def test_what_is_wrong_in_a_monitor_is_said_where_it_is_written(
    cli: Cli, example_with_endpoint: Path
) -> None:
    root = example_with_endpoint
    (root / "monitors").mkdir()
    plain = MONITOR[: MONITOR.index("      on_breach:")]  # no secrets, no webhooks
    bad = {
        "no-deployment.yml": plain.replace("azureml:iris:blue", "azureml:iris:green"),
        "no-endpoint.yml": plain.replace("azureml:iris:blue", "azureml:fraud:main"),
        "not-a-target.yml": plain.replace("azureml:iris:blue", "iris"),
        "custom.yml": plain.replace("type: data_drift", "type: feature_attribution_drift"),
        "bad-with.yml": plain
        + "      on_breach:\n        invoke: ../runconfigs/train.yml\n        with:\n"
        + "          nope: 1\n          training_data: 5\n          C: ${{monitor.nope}}\n",
        "bad-with-2.yml": plain
        + "      on_breach:\n        invoke: ../runconfigs/train.yml\n        with:\n"
        + "          C: ${{monitor.production_data}}\n",
        "no-data.yml": plain.replace(
            "data_context: training",
            "data_context: training\n"
            "            input_data: {path: azureml:credit:1, type: mltable}",
        ),
    }
    for name, text in bad.items():
        body = text.replace("\n    ", "\n").replace("name: iris-drift", f"name: {name[:-4]}")
        (root / "monitors" / name).write_text(body)
    (root / "schedules").mkdir()
    (root / "schedules" / "drift.yml").write_text(plain.replace("\n    ", "\n"))
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    errors = ran.err.splitlines()[:-1]
    by_file = {line.split(":")[0]: line for line in errors}
    with_errors = sorted(
        (line.split(":")[0], line.partition(": error: ")[2])
        for line in errors
        if line.startswith("monitors/bad-with")
    )
    assert with_errors == [
        (
            "monitors/bad-with-2.yml",
            "input C of runconfig/train is a value, not data: give it a value, or "
            "${{monitor.window_start}}, ${{monitor.window_end}} or ${{monitor.run_id}}",
        ),
        (
            "monitors/bad-with.yml",
            "input training_data of runconfig/train is data: give it ${{monitor.production_data}}",
        ),
        (
            "monitors/bad-with.yml",
            "runconfig/train has no input nope (its inputs: C, training_data); declare it there",
        ),
        (
            "monitors/bad-with.yml",
            "unknown ${{monitor.nope}}; a monitor gives ${{monitor.production_data}} (the "
            "window's captured rows that breached, as a CSV file), ${{monitor.window_start}} "
            "(the window's start, ISO 8601 in UTC), ${{monitor.window_end}} (the window's "
            "end, ISO 8601 in UTC), ${{monitor.run_id}} (the monitor run's id)",
        ),
    ], ran.err
    assert by_file["monitors/no-deployment.yml"].endswith(
        "error: endpoint iris has no deployment named green (its deployments: blue)"
    )
    assert by_file["monitors/no-endpoint.yml"].endswith(
        "error: unknown endpoint 'fraud' (a monitor's endpoint_deployment_id can use: iris); "
        "declare it in endpoints/fraud.yml"
    )
    assert by_file["monitors/not-a-target.yml"].endswith(
        "error: 'iris' is not an endpoint and deployment; write azureml:ENDPOINT:DEPLOYMENT"
    )
    assert by_file["monitors/custom.yml"].endswith(
        "error: feature_attribution_drift signals are not supported yet; mlform computes "
        "data_drift, prediction_drift, data_quality, model_performance"
    )
    assert "credit" in by_file["monitors/no-data.yml"]
    assert by_file["schedules/drift.yml"].endswith(
        "error: this file is a monitor (it has create_monitor:), but schedules/ holds "
        "schedule declarations; move it to monitors/"
    )
