"""A model performance signal (Azure ML's `model_performance`) over the example's real
endpoint: what the deployment answered, as its capture recorded it, paired with ground
truth registered later as a data asset and joined on the request id the client sent
(`x-request-id`; `<id>/<row>` for each row of a request of several), so that accuracy,
precision and recall are those of the answers the clients got."""

from __future__ import annotations

import csv
import http.client
import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.test_endpoints import port_of, primary_key
from tests.conftest import Ran
from tests.kinds.monitor.test_kind import captured

Cli = Callable[..., Ran]

MONITOR = """\
$schema: http://azureml/sdk-2-0/Schedule.json
name: iris-performance
trigger: {type: recurrence, frequency: day, interval: 7, schedule: {hours: 10, minutes: 15}}
create_monitor:
  monitoring_target:
    ml_task: classification
    endpoint_deployment_id: azureml:iris:blue
  monitoring_signals:
    iris_performance:
      type: model_performance
      production_data:
        data_column_names: {prediction: species, correlation_id: correlation_id}
      reference_data:
        input_data: {path: azureml:iris-truth@latest, type: uri_file}
        data_column_names: {actual: species, correlation_id: correlation_id}
        data_context: actuals
      alert_enabled: true
      metric_thresholds:
        tabular_classification: {accuracy: 0.999, precision: 0.0}
"""
TRUTH = """\
$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
name: iris-truth
type: uri_file
path: truth.csv
"""


def _flowers(root: Path) -> list[tuple[list[float], str]]:
    with (root / "data" / "iris.csv").open() as rows:
        return [([float(v) for v in row[:4]], row[4]) for row in list(csv.reader(rows))[1:]]


def _score(port: int, key: str, rows: list[list[float]], request_id: str) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/score",
        body=json.dumps({"data": rows}),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {key}",
            "x-request-id": request_id,
        },
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("x-request-id") == request_id
    answer: list[str] = json.loads(response.read())
    conn.close()
    return answer


def _macro(pairs: list[tuple[str, str]]) -> tuple[float, float, float]:
    """Accuracy and macro precision and recall, as scikit-learn's zero_division=0."""
    classes = sorted({p for p, _ in pairs} | {t for _, t in pairs})
    hits = sum(p == t for p, t in pairs)
    precision = recall = 0.0
    for c in classes:
        tp = sum(p == t == c for p, t in pairs)
        predicted = sum(p == c for p, _ in pairs)
        actual = sum(t == c for _, t in pairs)
        precision += tp / predicted if predicted else 0.0
        recall += tp / actual if actual else 0.0
    return hits / len(pairs), precision / len(classes), recall / len(classes)


def test_performance_joins_what_the_clients_got_with_the_ground_truth(
    cli: Cli, example_with_endpoint: Path
) -> None:
    root = example_with_endpoint
    flowers = _flowers(root)
    singles, batch = flowers[::5][:30], flowers[1:12]
    # The ground truth, as an application collects it: by the ids it sent. Four
    # answers are marked wrong whatever the model says, and one id was never scored.
    truth = [(f"t-{i}", species) for i, (_, species) in enumerate(singles)]
    truth[:4] = [(i, "not-a-species") for i, _ in truth[:4]]
    truth += [(f"batch/{i}", species) for i, (_, species) in enumerate(batch)]
    truth.append(("never-scored", "setosa"))
    with (root / "data" / "truth.csv").open("w", newline="") as out:
        csv.writer(out).writerows([("correlation_id", "species"), *truth])
    (root / "data" / "truth.yml").write_text(TRUTH)
    (root / "monitors").mkdir()
    (root / "monitors" / "iris-performance.yml").write_text(MONITOR)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err

    port, key = port_of(root), primary_key(cli, root)
    answers: dict[str, str] = {}
    for i, (row, _) in enumerate(singles):
        (answers[f"t-{i}"],) = _score(port, key, [row], f"t-{i}")
    for i, answer in enumerate(_score(port, key, [r for r, _ in batch], "batch")):
        answers[f"batch/{i}"] = answer
    captured(root, len(singles) + len(batch))

    ran = cli("monitors", "run", "iris-performance", cwd=root)
    pairs = [(answers[i], actual) for i, actual in truth if i in answers]
    accuracy, precision, recall = _macro(pairs)
    assert accuracy < 0.999  # four answers can never match
    assert ran.code == 1, ran.out + ran.err  # accuracy breached its threshold
    shown = json.loads(cli("monitors", "show", "iris-performance", "--json", cwd=root).out)
    values = {v["metric"]: v for v in shown[0]["values"]}
    assert set(values) == {"accuracy", "precision", "recall"}
    assert abs(values["accuracy"]["value"] - accuracy) < 1e-12
    assert abs(values["precision"]["value"] - precision) < 1e-12
    assert abs(values["recall"]["value"] - recall) < 1e-12
    assert [m for m, v in values.items() if v["breached"]] == ["accuracy"]
    assert values["recall"]["threshold"] is None  # shown, never breached
    breached = [line.split() for line in ran.out.splitlines() if "BREACHED" in line]
    assert [(b[0], b[1], b[2]) for b in breached] == [("iris_performance", "-", "accuracy")]
    run_id = shown[0]["run_id"]
    metrics = cli("runs", "metrics", run_id, cwd=root).out
    assert "iris_performance.accuracy" in metrics


def test_a_performance_signal_without_its_ground_truth_is_refused_where_written(
    cli: Cli, example_with_endpoint: Path
) -> None:
    root = example_with_endpoint
    (root / "monitors").mkdir()
    no_truth = MONITOR.replace(
        "        input_data: {path: azureml:iris-truth@latest, type: uri_file}\n", ""
    ).replace("actual: species, ", "")
    (root / "monitors" / "no-truth.yml").write_text(no_truth.replace("iris-performance", "a"))
    two_tasks = MONITOR.replace(
        "tabular_classification: {accuracy: 0.999, precision: 0.0}",
        "tabular_classification: {accuracy: 0.9}\n        tabular_regression: "
        "{mean_absolute_error: 0.5}",
    )
    (root / "monitors" / "two-tasks.yml").write_text(two_tasks.replace("iris-performance", "b"))
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    errors = ran.err.splitlines()
    assert any(
        line.startswith("monitors/no-truth.yml:")
        and "needs its ground truth: name the data asset under reference_data.input_data.path"
        in line
        for line in errors
    ), ran.err
    assert any(
        line.startswith("monitors/no-truth.yml:")
        and "write reference_data.data_column_names.actual" in line
        for line in errors
    ), ran.err
    assert any(
        line.startswith("monitors/two-tasks.yml:") and "measures one task" in line
        for line in errors
    ), ran.err
