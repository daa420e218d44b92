"""Captured requests reach a default datastore in Azure Blob Storage (Azurite): the
deployment writes them to an outbox, and the next mlform process that writes the state
moves them there."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, Ran
from tests.stores import Azurite

Cli = Callable[..., Ran]


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
