"""Models from files: a local folder or a remote URL, kept in the default datastore."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import fsspec

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def test_a_remote_model_is_copied_into_the_datastore_by_content(
    cli: Cli, make_workspace: Make, tmp_path: Path
) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/zoo/net/weights.onnx", b"onnx weights")
    fs.pipe("/zoo/net/labels.txt", b"cat\ndog\n")
    root = make_workspace(
        {"workspace.yml": "name: remote\n", "models/net.yml": "name: net\npath: memory://zoo/net\n"}
    )
    try:
        ran = cli("apply", "--yes", cwd=root)
        assert ran.code == 0, ran.out + ran.err
        assert "+ model/net created: registered net:1 (onnx, 2 files, 20 B)" in ran.out
        assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

        fs.pipe("/zoo/net/weights.onnx", b"better onnx weights")
        assert cli("apply", "--yes", cwd=root).code == 0
        got = cli("models", "download", "net:2", str(tmp_path / "got"), cwd=root)
        assert got.code == 0, got.err
        assert (tmp_path / "got" / "weights.onnx").read_bytes() == b"better onnx weights"
        fs.rm("/zoo", recursive=True)  # the copy in the datastore outlives the source
        assert cli("models", "download", "net:1", str(tmp_path / "old"), cwd=root).code == 0
        assert (tmp_path / "old" / "weights.onnx").read_bytes() == b"onnx weights"
    finally:
        if fs.exists("/zoo"):
            fs.rm("/zoo", recursive=True)
