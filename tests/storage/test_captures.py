"""Captured requests reach a default datastore in Azure Blob Storage (Azurite): the
deployment writes them to an outbox, and the next mlform process that writes the state
moves them there, where a monitor reads them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, Ran
from tests.stores import Azurite

Cli = Callable[..., Ran]

MONITOR = """\
name: quality
trigger: {type: cron, expression: "15 3 * * *"}
create_monitor:
  monitoring_target: {endpoint_deployment_id: azureml:iris:blue}
  monitoring_signals:
    quality:
      type: data_quality
      reference_data: {data_context: training, data_column_names: {target_column: species}}
"""


def test_captures_go_to_a_datastore_in_the_cloud(
    example_with_endpoint: Path, azurite: Azurite, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import adlfs
    import pyarrow.parquet

    root = example_with_endpoint
    container = f"c{uuid.uuid4().hex[:12]}"
    fs = adlfs.AzureBlobFileSystem(connection_string=azurite.connection_string)
    fs.mkdir(container)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    ws = root / "workspace.yml"
    ws.write_text(
        ws.read_text().replace("path: .mlform/datastore", f"path: az://{container}/datastore")
    )
    (root / "monitors").mkdir()
    (root / "monitors" / "quality.yml").write_text(MONITOR)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied
    invoked = cli("endpoints", "invoke", "iris", "--data", str(EXAMPLE / "request.json"), cwd=root)
    assert invoked.code == 0, invoked
    outbox = root / ".mlform" / "captures-outbox" / "captures" / "iris" / "blue"
    deadline = time.monotonic() + 60
    while not list(outbox.glob("*/part-*.parquet")):  # the server flushes every second
        assert time.monotonic() < deadline, "nothing was captured"
        time.sleep(0.2)
    assert cli("apply", "--yes", cwd=root).code == 0  # a writer: it empties the outbox
    assert not list(outbox.glob("*/part-*.parquet"))
    kept = fs.glob(f"{container}/datastore/captures/iris/blue/date=*/part-*.parquet")
    assert kept
    with fs.open(kept[0], "rb") as handle:
        table = pyarrow.parquet.read_table(handle)
    assert table.column("outputs").to_pylist() == ['["setosa","virginica"]']

    # The monitor reads them there (the local outbox is empty, and no local datastore).
    assert not (root / ".mlform" / "datastore").exists()
    ran = cli("monitors", "run", "quality", cwd=root)
    assert ran.code == 0, ran.out + ran.err
    shown = json.loads(cli("monitors", "show", "quality", "--json", cwd=root).out)[0]
    nulls = {v["feature"]: v["value"] for v in shown["values"] if v["metric"] == "null_value_rate"}
    assert nulls == dict.fromkeys(["sepal_length", "sepal_width", "petal_length", "petal_width"], 0)
    assert not [v for v in shown["values"] if v["note"]], shown["values"]
