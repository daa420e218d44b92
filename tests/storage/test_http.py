"""Files behind http(s) URLs, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlform.errors import DatastoreError
from mlform.storage import http
from tests.ports import free_port
from tests.storage.conftest import Served


def test_a_file_is_fingerprinted_without_downloading_and_downloaded_whole(
    served: Served, tmp_path: Path
) -> None:
    (served.folder / "iris.csv").write_text("a,b\n1,2\n")
    remote = http.stat(f"{served.url}/iris.csv")
    assert (remote.name, remote.size) == ("iris.csv", 8)
    assert remote.fingerprint.startswith("etag:")  # Last-Modified, as http.server sends
    http.download(f"{served.url}/iris.csv", tmp_path / "got" / "iris.csv")
    assert (tmp_path / "got" / "iris.csv").read_text() == "a,b\n1,2\n"
    assert [p.name for p in (tmp_path / "got").iterdir()] == ["iris.csv"]


def test_a_missing_file_is_not_there(served: Served) -> None:
    with pytest.raises(http.NotThere) as caught:
        http.stat(f"{served.url}/nothing.csv")
    assert str(caught.value) == f"{served.url}/nothing.csv does not exist (the server answered 404)"


def test_an_unreachable_host_says_so() -> None:
    port = free_port()  # nothing listens on it
    with pytest.raises(DatastoreError) as caught:
        http.stat(f"http://127.0.0.1:{port}/x.csv")
    assert str(caught.value) == (
        "cannot reach 127.0.0.1: connection refused; check the URL or your network"
    )
