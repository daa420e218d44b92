"""Online endpoints through the real CLI and real HTTP: the example deployed as a local
process behind its router, keys, errors, drift healed by apply, data capture, traffic
split by weight, and an update whose init() fails while requests keep flowing."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from mlform.state.store import Store
from tests.cli.test_runs import changes
from tests.conftest import EXAMPLE, Ran, stop_endpoints

Cli = Callable[..., Ran]
FLOWERS = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def port_of(root: Path) -> int:
    text = (root / "endpoints" / "iris.yml").read_text()
    match = re.search(r"port: (\d+)", text)
    assert match
    return int(match[1])


def request(
    port: int, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request("POST", "/score", body=body, headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def primary_key(cli: Cli, root: Path) -> str:
    shown = cli("endpoints", "keys", "iris", cwd=root).out
    return shown.splitlines()[0].removeprefix("primary: ")


def test_the_example_endpoint_serves_heals_and_captures(
    cli: Cli, example_with_endpoint: Path
) -> None:
    root = example_with_endpoint
    port = port_of(root)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert (
        f"+ endpoint/iris created: started blue; traffic blue 100%; http://127.0.0.1:{port}/score"
    ) in applied.out
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    (root / "request.json").write_text(json.dumps(FLOWERS))
    invoked = cli("endpoints", "invoke", "iris", "--data", str(root / "request.json"), cwd=root)
    assert (invoked.code, invoked.out) == (0, '["setosa","virginica"]\n')

    key = primary_key(cli, root)
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    status, headers, body = request(port, json.dumps(FLOWERS).encode(), auth)
    assert (status, body) == (200, b'["setosa","virginica"]')
    assert headers["x-mlform-deployment"] == "blue"
    status, headers, body = request(port, json.dumps(FLOWERS).encode())
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"
    assert json.loads(body)["status"] == 401
    status, _, body = request(port, b'{"data": [1, 2', auth)
    assert status == 400
    assert json.loads(body)["error"].startswith("the request body is not valid JSON")
    status, _, body = request(port, b'{"data": "not rows"}', auth)
    assert (status, json.loads(body)) == (
        400,
        {
            "error": "the data is not rows of flowers; send rows of 4 numbers (sepal_length, "
            "sepal_width, petal_length, petal_width), or records with those keys",
            "status": 400,
        },
    )
    status, headers, body = request(port, b'{"data": []}', {**auth, "Content-Type": "text/plain"})
    assert (status, headers["x-mlform-deployment"]) == (415, "blue")
    status, headers, body = request(port, b" " * (11 * 1024 * 1024), auth)
    assert status == 413
    assert "x-mlform-deployment" not in headers  # refused by the router, unread

    # Keys: only their hashes are in the state.
    state = root / ".mlform" / "state.duckdb"
    with Store.open(state, "test", write=False) as store:
        outputs = json.loads(
            store.query("select outputs from resources where address = 'endpoint/iris'")[0][0]
        )
    secrets = cli("endpoints", "keys", "iris", cwd=root).out.split()
    plain = [secrets[1], secrets[3]]
    assert outputs["key_hashes"] == sorted(hashlib.sha256(k.encode()).hexdigest() for k in plain)
    assert not any(k.encode() in state.read_bytes() for k in plain)
    refused = cli("endpoints", "keys", "iris", "--rotate-token-key", cwd=root)
    assert (refused.code, refused.err) == (
        1,
        "error: endpoint iris takes keys (auth_mode: key), so it has no token key to rotate; "
        "`mlform endpoints keys iris --regenerate secondary` renews a key\n",
    )

    # In use: the model it serves cannot be deleted.
    refused = cli("models", "delete", "iris-classifier:1", cwd=root)
    assert refused.code == 1
    assert "used by the active deployment iris/blue (iris-classifier:1)" in refused.err

    # Data capture: the scored requests, as Parquet, readable by DuckDB.
    captured = root / ".mlform" / "datastore" / "captures" / "iris" / "blue"
    files = f"{captured}/*/*.parquet"
    deadline = time.monotonic() + 15
    rows: list[tuple[object, ...]] = []
    while time.monotonic() < deadline:
        if list(captured.glob("*/*.parquet")):
            rows = duckdb.sql(
                f"select inputs, outputs, date from read_parquet('{files}', "
                "hive_partitioning = true) order by ts"
            ).fetchall()
            if len(rows) >= 2:
                break
        time.sleep(0.3)
    assert rows[0][:2] == (
        json.dumps(FLOWERS["data"], separators=(",", ":")),
        '["setosa","virginica"]',
    )

    # Drift: a deployment whose process died is planned again, and apply starts it.
    shown = cli("endpoints", "show", "iris", cwd=root).out
    pid = int(re.search(r"\(pid (\d+)\)", shown)[1])  # type: ignore[index]
    import os
    import signal

    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    plan = cli("plan", cwd=root)
    while "not running" not in plan.out and time.monotonic() < deadline:
        time.sleep(0.2)
        plan = cli("plan", cwd=root)
    assert changes(plan.out) == ["~ endpoint/iris (deployment blue not running)"]
    healed = cli("apply", "--yes", cwd=root)
    assert healed.code == 0, healed.out + healed.err
    assert request(port, json.dumps(FLOWERS).encode(), auth)[0] == 200
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    # Removing the file stops and deletes the endpoint.
    (root / "endpoints" / "iris.yml").unlink()
    gone = cli("apply", "--yes", cwd=root)
    assert "- endpoint/iris destroyed: stopped and deleted (blue)" in gone.out
    try:
        request(port, b"{}")
        raise AssertionError("the endpoint still answers")
    except OSError:
        pass


def test_traffic_splits_by_weight_and_a_failed_update_keeps_the_old_one_serving(
    cli: Cli, example_with_endpoint: Path
) -> None:
    root = example_with_endpoint
    port = port_of(root)
    spec = root / "endpoints" / "iris.yml"
    text = spec.read_text()
    blue = text[text.index("  - name: blue") :]
    green = blue.replace("name: blue", "name: green")
    spec.write_text(text.replace("  blue: 100\n", "  blue: 80\n  green: 20\n") + green)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert "traffic blue 80%, green 20%" in applied.out
    auth = {"Authorization": f"Bearer {primary_key(cli, root)}", "Content-Type": "application/json"}
    body = json.dumps(FLOWERS).encode()

    seen: Counter[str] = Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(1000):
            connection.request("POST", "/score", body=body, headers=auth)
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            seen[response.getheader("x-mlform-deployment") or "?"] += 1
    finally:
        connection.close()
    assert abs(seen["blue"] - 800) <= 50 and abs(seen["green"] - 200) <= 50, seen
    status, headers, _ = request(port, body, {**auth, "azureml-model-deployment": "green"})
    assert (status, headers["x-mlform-deployment"]) == (200, "green")

    # A scoring script whose init() fails: the old instances keep every request answered.
    score = root / "score" / "score.py"
    score.write_text(
        score.read_text().replace(
            "def init():\n", "def init():\n    raise RuntimeError('no model for you')\n"
        )
    )
    failures: list[int] = []
    answered = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                status, _, _ = request(port, body, auth)
            except OSError:
                status = 0
            if status != 200:
                failures.append(status)
            answered += 1

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        update = cli("apply", "--yes", cwd=root)
    finally:
        stop.set()
        thread.join()
    assert update.code == 1
    text = update.out + update.err
    assert (
        "deployment blue: the new instance did not become ready: it exited before it was ready"
        in text
    )
    assert "RuntimeError: no model for you" in text  # its log, shown
    assert failures == [] and answered > 0
    assert request(port, body, auth)[0] == 200

    # auth_mode cannot change in place: replaced, it takes tokens instead of keys.
    score.write_text(score.read_text().replace("    raise RuntimeError('no model for you')\n", ""))
    spec.write_text(spec.read_text().replace("auth_mode: key", "auth_mode: token"))
    plan = cli("plan", cwd=root)
    assert "-/+ endpoint/iris" in plan.out
    assert "auth_mode: 'key' → 'token'; auth_mode cannot change in place" in plan.out
    replaced = cli("apply", "--yes", cwd=root)
    assert replaced.code == 0, replaced.out + replaced.err
    token = cli("endpoints", "token", "iris", cwd=root).out.strip()
    assert token.startswith("mlt1.")
    assert request(port, body, {"Authorization": f"Bearer {token}"})[0] == 200
    old_key = auth["Authorization"]
    assert request(port, body, {"Authorization": old_key})[0] == 401
    invoked = cli("endpoints", "invoke", "iris", "--data", str(root / "request.json"), cwd=root)
    assert (invoked.code, invoked.out) == (0, '["setosa","virginica"]\n')  # with a token


# Azure ML's managed online endpoint sample, as its documentation writes it: an endpoint
# file, a deployment file, a registered model folder and a scoring script that loads the
# model from AZUREML_MODEL_DIR and parses the raw request body itself.
AZURE_SCORE_PY = """\
import json
import logging
import os

import joblib
import numpy


def init():
    global model
    # The registered folder "model" is mounted under AZUREML_MODEL_DIR by its name.
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl")
    model = joblib.load(model_path)
    logging.info("Init complete")


def run(raw_data):
    logging.info("request received")
    data = json.loads(raw_data)["data"]
    data = numpy.array(data)
    result = model.predict(data)
    logging.info("Request processed")
    return result.tolist()
"""

AZURE_ENDPOINT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: {name}
auth_mode: key
"""

AZURE_DEPLOYMENT_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: {name}
endpoint_name: {endpoint}
model: azureml:sklearn-regression:1
code_configuration:
  code: ../{code}/
  scoring_script: score.py
environment: azureml:sklearn-env@latest
instance_type: Standard_DS3_v2
instance_count: 1
"""

AZURE_MODEL_YML = """\
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: sklearn-regression
path: ../model-1/model/
type: custom_model
"""

# Trains the model in the deployment's own environment (its scikit-learn reads it back),
# and prints what it predicts for ROWS.
TRAIN_PY = """\
import json, sys
import joblib, numpy
from sklearn.linear_model import Ridge

rng = numpy.random.default_rng(0)
x = rng.normal(size=(50, 10))
model = Ridge().fit(x, x @ numpy.arange(10.0))
joblib.dump(model, sys.argv[1])
print(json.dumps(model.predict(numpy.array(json.loads(sys.argv[2]))).tolist()))
"""

ROWS = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]


@pytest.fixture
def azure_sample(cli: Cli, tmp_path: Path) -> Iterator[tuple[Path, list[float]]]:
    """A workspace with Azure's sample model registered and its scoring script beside it:
    (root, what the model predicts for ROWS). Endpoints are the test's to declare."""
    root = tmp_path / "azure"
    (root / "environments").mkdir(parents=True)
    (root / "workspace.yml").write_text("name: azure-sample\n")
    shutil.copy(EXAMPLE / "environments" / "sklearn.yml", root / "environments")
    built = cli("apply", "--yes", cwd=root)
    assert built.code == 0, built.out + built.err
    with Store.open(root / ".mlform" / "state.duckdb", "test", write=False) as store:
        ((venv,),) = store.query(
            "select location from asset_versions where kind = 'environment' "
            "and name = 'sklearn-env'"
        )
    model = root / "model-1" / "model" / "sklearn_regression_model.pkl"
    model.parent.mkdir(parents=True)
    trained = subprocess.run(
        [f"{venv}/bin/python", "-c", TRAIN_PY, str(model), json.dumps(ROWS)],
        capture_output=True,
        text=True,
        check=True,
    )
    (root / "model-1" / "onlinescoring").mkdir()
    (root / "model-1" / "onlinescoring" / "score.py").write_text(AZURE_SCORE_PY)
    (root / "models").mkdir()
    (root / "models" / "regression.yml").write_text(AZURE_MODEL_YML)
    (root / "endpoints").mkdir()
    try:
        yield root, json.loads(trained.stdout)
    finally:
        stop_endpoints(root)


def score_uri(cli: Cli, root: Path, name: str) -> tuple[int, dict[str, str]]:
    """The endpoint's port, and headers with its primary key."""
    shown = cli("endpoints", "show", name, cwd=root).out
    port = int(re.search(r"scoring uri: http://127\.0\.0\.1:(\d+)/score", shown)[1])  # type: ignore[index]
    key = cli("endpoints", "keys", name, cwd=root).out.splitlines()[0].removeprefix("primary: ")
    return port, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def test_azures_managed_online_endpoint_sample_scores_unchanged(
    cli: Cli, azure_sample: tuple[Path, list[float]]
) -> None:
    root, expected = azure_sample
    endpoints = root / "endpoints"
    (endpoints / "endpoint.yml").write_text(AZURE_ENDPOINT_YML.format(name="my-endpoint"))
    (endpoints / "blue-deployment.yml").write_text(
        AZURE_DEPLOYMENT_YML.format(
            name="blue", endpoint="my-endpoint", code="model-1/onlinescoring"
        )
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert "+ model/sklearn-regression created: registered sklearn-regression:1" in applied.out

    port, headers = score_uri(cli, root, "my-endpoint")
    status, _, body = request(port, json.dumps({"data": ROWS}).encode(), headers)
    assert (status, json.loads(body)) == (200, expected)
    # run() parses the body itself: what is not its shape is its error, logged.
    status, _, body = request(port, b'{"rows": [[1]]}', headers)
    assert (status, json.loads(body)["error"]) == (
        500,
        "the scoring script raised KeyError; see the deployment's log",
    )
    invoked = root / "sample-request.json"
    invoked.write_text(json.dumps({"data": ROWS}))
    ran = cli("endpoints", "invoke", "my-endpoint", "--data", str(invoked), cwd=root)
    assert (ran.code, json.loads(ran.out)) == (0, expected)


FAILING_SCORE_PY = """\
def init():
    raise RuntimeError("no model for you")


def run(raw_data):
    return raw_data
"""


def test_a_deployment_that_fails_with_nothing_before_it_serves_nothing_and_says_so(
    cli: Cli, azure_sample: tuple[Path, list[float]]
) -> None:
    root, expected = azure_sample
    (root / "broken").mkdir()
    (root / "broken" / "score.py").write_text(FAILING_SCORE_PY)
    endpoints = root / "endpoints"
    (endpoints / "endpoint.yml").write_text(AZURE_ENDPOINT_YML.format(name="my-endpoint"))
    blue = endpoints / "blue-deployment.yml"
    blue.write_text(AZURE_DEPLOYMENT_YML.format(name="blue", endpoint="my-endpoint", code="broken"))

    # The first deployment fails: no router is left behind, and nothing claims to serve.
    failed = cli("apply", "--yes", cwd=root)
    assert failed.code == 1
    text = failed.out + failed.err
    assert (
        "+ endpoint/my-endpoint failed: deployment blue: the new instance did not become "
        "ready: it exited before it was ready; it has no earlier instance, so it serves "
        "nothing\nthe last lines of its log:\n"
    ) in text, text
    # The plan's retry reason is the failure's first line: a whole sentence, no log tail.
    assert changes(cli("plan", cwd=root).out) == [
        "+ endpoint/my-endpoint (last apply failed: deployment blue: the new instance did not "
        "become ready: it exited before it was ready; it has no earlier instance, so it serves "
        "nothing)"
    ]
    assert "RuntimeError: no model for you" in text
    assert "the one serving before keeps its traffic" not in text
    stopped = re.search(
        r"nothing serves endpoint/my-endpoint, so its router on port (\d+) was stopped; fix "
        r"the deployment and apply again",
        text,
    )
    assert stopped, text
    assert not (root / ".mlform" / "endpoints" / "my-endpoint" / "router.json").exists()
    with pytest.raises(ConnectionRefusedError):
        request(int(stopped[1]), b"{}")
    listed = cli("endpoints", "list", cwd=root)
    assert (
        listed.out == "No endpoints yet. Declare one in endpoints/*.yml and run `mlform apply`.\n"
    )

    # Fixed, it serves; a new deployment that fails beside it leaves it serving.
    blue.write_text(
        AZURE_DEPLOYMENT_YML.format(
            name="blue", endpoint="my-endpoint", code="model-1/onlinescoring"
        )
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    (endpoints / "green-deployment.yml").write_text(
        AZURE_DEPLOYMENT_YML.format(name="green", endpoint="my-endpoint", code="broken")
    )
    failed = cli("apply", "--yes", cwd=root)
    assert failed.code == 1
    text = failed.out + failed.err
    assert (
        "~ endpoint/my-endpoint failed: deployment green: the new instance did not become "
        "ready: it exited before it was ready; it has no earlier instance, so it serves "
        "nothing\nthe last lines of its log:\n"
    ) in text
    assert "nothing serves" not in text
    port, headers = score_uri(cli, root, "my-endpoint")
    status, _, body = request(port, json.dumps({"data": ROWS}).encode(), headers)
    assert (status, json.loads(body)) == (200, expected)
    rows = cli("endpoints", "list", cwd=root).out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["my-endpoint"]
    assert rows[0].split()[-1] == "up"
