"""Data assets of every shape: files, folders, tables, on paths, datastores and URLs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import fsspec
import pytest

from tests.conftest import Ran
from tests.ports import free_port
from tests.storage.conftest import Served, served  # noqa: F401  (fixture)

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def changes(out: str) -> list[str]:
    return [
        line.strip() for line in out.splitlines() if line.startswith(("  +", "  ~", "  -", "  >"))
    ]


def test_folder_versions_name_the_changed_files(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: folders\n",
            "data/images.yml": "name: images\ntype: uri_folder\npath: images\n",
            "data/images/a.txt": "a\n",
            "data/images/sub/b.txt": "b\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    (root / "data/images/sub/b.txt").write_text("B\n")
    (root / "data/images/c.txt").write_text("c\n")
    (root / "data/images/a.txt").unlink()
    plan = cli("plan", cwd=root)
    assert changes(plan.out) == [
        "~ data/images  (content changed: sub/b.txt modified, c.txt added, a.txt removed; "
        "version 1 → 2)"
    ]
    assert cli("apply", "--yes", cwd=root).code == 0
    shown = cli("data", "show", "images:2", cwd=root).out
    assert "size:        4 B in 2 file(s)" in shown
    assert "    c.txt  2 B" in shown and "    sub/b.txt  2 B" in shown
    old = cli("data", "show", "images:1", cwd=root).out
    assert "    a.txt  2 B" in old  # the old version's files are still there


def test_identical_content_is_stored_once(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: dedup\n",
            "data/one.yml": "name: one\ntype: uri_file\npath: same.csv\n",
            "data/two.yml": "name: two\ntype: uri_file\npath: copy.csv\n",
            "data/same.csv": "x\n1\n",
            "data/copy.csv": "x\n1\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    blobs = [p for p in (root / ".mlform/datastore/blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_data_on_a_datastore_is_referenced_in_place(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": """
            name: refs
            datastores:
              - name: main
                path: store
                default: true
              - name: raw
                path: file://{raw}
        """,
            "data/a.yml": "name: a\ntype: uri_file\npath: datastore://raw/table.csv\n",
            "data/b.yml": "name: b\ntype: uri_file\npath: azureml://datastores/raw/paths/table.csv\n",
        }
    )
    raw = root / "rawfiles"
    raw.mkdir()
    (raw / "table.csv").write_text("k,v\n1,one\n2,two\n")
    ws = root / "workspace.yml"
    ws.write_text(ws.read_text().replace("{raw}", str(raw)))
    assert cli("validate", cwd=root).code == 0
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    shown = cli("data", "show", "b", cwd=root).out
    assert "stored at:   datastore://raw/table.csv" in shown
    assert not (root / "store" / "blobs").exists()  # nothing was copied
    head = cli("data", "head", "a", cwd=root)
    assert head.out.splitlines()[0] == "schema: k BIGINT, v VARCHAR"
    (raw / "table.csv").write_text("k,v\n1,one\n")
    plan = cli("plan", cwd=root)
    assert "~ data/a  (content changed: table.csv modified; version 1 → 2)" in changes(plan.out)


def test_mltable_is_read_as_a_table(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: tables\n",
            "data/t.yml": "name: t\ntype: mltable\npath: t\n",
            "data/t/MLTable": (
                "paths:\n  - pattern: ./*.txt\n"
                "transformations:\n  - read_delimited:\n      delimiter: ','\n"
            ),
            "data/t/part1.txt": "n\n1\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    head = cli("data", "head", "t", cwd=root)
    assert head.code == 0, head.err
    assert head.out.splitlines()[0] == "schema: n BIGINT"


@pytest.fixture
def memory_bucket() -> Iterator[str]:
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    yield bucket
    fsspec.filesystem("memory").rm(f"/{bucket}", recursive=True)


def test_fsspec_url_data_is_fingerprinted(
    cli: Cli, make_workspace: Make, memory_bucket: str
) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"/{memory_bucket}/in.csv", b"a\n1\n")
    root = make_workspace(
        {
            "workspace.yml": "name: remote\n",
            "data/r.yml": f"name: r\ntype: uri_file\npath: memory://{memory_bucket}/in.csv\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
    fs.pipe(f"/{memory_bucket}/in.csv", b"a\n2\n")
    plan = cli("plan", cwd=root)
    assert "~ data/r  (content changed: in.csv modified; version 1 → 2)" in changes(plan.out)


def test_fsspec_default_datastore_receives_uploads(
    cli: Cli, make_workspace: Make, memory_bucket: str
) -> None:
    root = make_workspace(
        {
            "workspace.yml": f"name: up\ndatastores:\n  - name: cloud\n    path: memory://{memory_bucket}/store\n",
            "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
            "data/x.csv": "c\n3\n",
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    stored = fsspec.filesystem("memory").find(f"/{memory_bucket}/store")
    assert len(stored) == 1 and "/blobs/sha256/" in stored[0]
    assert cli("data", "head", "x", cwd=root).out.splitlines()[0] == "schema: c BIGINT"


def test_missing_fsspec_driver_is_a_validation_error(cli: Cli, make_workspace: Make) -> None:
    # gcsfs is in no extra the tests install (s3fs and adlfs are): gs:// shows the case.
    root = make_workspace(
        {
            "workspace.yml": "name: gs\n",
            "data/x.yml": "name: x\ntype: uri_file\npath: gs://bucket/x.csv\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code == 1
    assert ran.err.splitlines() == [
        "data/x.yml:3:7: error: 'gs://' URLs need an extra package: pip install 'mlform[gcs]'",
        "validation failed: 1 error",
    ]


def test_https_data_is_fingerprinted_by_the_server_and_read_for_runs(
    cli: Cli,
    make_workspace: Make,
    served: Served,  # noqa: F811
) -> None:
    (served.folder / "iris.csv").write_text("sepal,species\n5.1,setosa\n6.7,virginica\n")
    url = f"{served.url}/iris.csv"
    root = make_workspace(
        {
            "workspace.yml": "name: web\n",
            "data/iris.yml": f"name: iris\ntype: uri_file\npath: {url}\n",
            "runconfigs/copy.yml": f"""
            name: copy
            command: >-
              cp ${{{{inputs.asset}}}} ${{{{outputs.out}}}}/asset.csv &&
              cp ${{{{inputs.downloaded}}}} ${{{{outputs.out}}}}/downloaded.csv &&
              echo ${{{{inputs.direct}}}} > ${{{{outputs.out}}}}/direct.txt
            inputs:
              asset:
                type: uri_file
                path: azureml:iris@latest
                mode: ro_mount
              downloaded:
                type: uri_file
                path: {url}
                mode: download
              direct:
                type: uri_file
                path: {url}
                mode: direct
            outputs:
              out:
                type: uri_folder
        """,
        }
    )
    assert cli("validate", cwd=root).code == 0
    plan = cli("plan", cwd=root)
    assert "+ data/iris" in plan.out and "(new: version 1 (1 file, 39 B))" in plan.out
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert f"stored at:   {url}" in cli("data", "show", "iris", cwd=root).out
    head = cli("data", "head", "iris", cwd=root)
    assert head.out.splitlines()[0] == "schema: sepal DOUBLE, species VARCHAR"
    out = next((root / ".mlform" / "runs").glob("copy_*")) / "outputs" / "out"
    assert (out / "asset.csv").read_text() == (served.folder / "iris.csv").read_text()
    assert (out / "downloaded.csv").read_text() == (served.folder / "iris.csv").read_text()
    assert (out / "direct.txt").read_text() == f"{url}\n"
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    (served.folder / "iris.csv").write_text("sepal,species\n5.1,setosa\n")
    os.utime(served.folder / "iris.csv", (1_700_000_000, 1_700_000_000))  # Last-Modified moves
    plan = cli("plan", cwd=root)
    assert changes(plan.out) == [
        "~ data/iris       (content changed: iris.csv modified; version 1 → 2)",
        "> runconfig/copy  (data: iris 1 → 2)",
    ]


def test_an_unreachable_or_missing_url_says_which(
    cli: Cli,
    make_workspace: Make,
    served: Served,  # noqa: F811
) -> None:
    port = free_port()  # nothing listens on it
    root = make_workspace(
        {
            "workspace.yml": "name: web\n",
            "data/far.yml": f"name: far\ntype: uri_file\npath: http://127.0.0.1:{port}/x.csv\n",
        }
    )
    plan = cli("plan", cwd=root)
    assert plan.code == 1
    assert plan.err.splitlines()[-1] == (
        "error: data/far (data/far.yml:1): cannot reach 127.0.0.1: connection refused; "
        "check the URL or your network"
    )
    (root / "data/far.yml").write_text(f"name: far\ntype: uri_file\npath: {served.url}/no.csv\n")
    plan = cli("plan", cwd=root)
    assert plan.err.splitlines()[-1] == (
        f"error: data/far (data/far.yml:1): {served.url}/no.csv does not exist "
        "(the server answered 404)"
    )


def test_an_unreachable_datastore_host_is_not_a_missing_file(
    cli: Cli, make_workspace: Make
) -> None:
    # fsspec's HTTP driver reports a refused connection as FileNotFoundError
    port = free_port()  # nothing listens on it
    root = make_workspace(
        {
            "workspace.yml": f"""
            name: far
            datastores:
              - name: main
                path: store
                default: true
              - name: web
                path: http://127.0.0.1:{port}/files
        """,
            "data/x.yml": "name: x\ntype: uri_file\npath: datastore://web/x.csv\n",
        }
    )
    plan = cli("plan", cwd=root)
    assert plan.err.splitlines()[-1] == (
        "error: data/x (data/x.yml:1): cannot reach 127.0.0.1: connection refused; "
        "check the URL or your network"
    )


def test_every_azure_input_mode_is_accepted(cli: Cli, make_workspace: Make) -> None:
    modes = ["ro_mount", "rw_mount", "download", "direct", "upload", "eval_mount", "eval_download"]
    inputs = "".join(
        f"  {mode}:\n    type: uri_file\n    path: ../data/x.csv\n    mode: {mode}\n"
        for mode in modes
    )
    root = make_workspace(
        {
            "workspace.yml": "name: modes\n",
            "data/x.csv": "a\n1\n",
            "runconfigs/r.yml": f"name: r\ncommand: echo\ninputs:\n{inputs}",
            "runconfigs/bad.yml": (
                "name: bad\ncommand: echo\ninputs:\n"
                "  x:\n    path: ../data/x.csv\n    mode: mount\n"
            ),
        }
    )
    ran = cli("validate", cwd=root)
    assert [line.split(": error: ")[0] for line in ran.err.splitlines()] == [
        "runconfigs/bad.yml:6:11",
        "validation failed: 1 error",
    ]
