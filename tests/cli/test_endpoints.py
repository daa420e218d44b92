"""Online endpoints through the real CLI and real HTTP: the example deployed as a local
process behind its router, keys, errors, drift healed by apply, data capture, traffic
split by weight, and an update whose init() fails while requests keep flowing."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb

from mlform.state.store import Store
from tests.cli.test_runs import changes
from tests.conftest import Ran

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
        connection.request("POST", "/score", body=body, headers=headers or {})
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
        500,
        {
            "error": "the scoring script raised ValueError; see the deployment's log",
            "status": 500,
        },
    )
    assert b"Traceback" not in body
    logs = cli("endpoints", "logs", "iris", "-n", "400", cwd=root).out
    assert "Traceback (most recent call last)" in logs  # logged, never returned
    status, _, body = request(port, b" " * (11 * 1024 * 1024), auth)
    assert status == 413

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
    auth = {"Authorization": f"Bearer {primary_key(cli, root)}"}
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
