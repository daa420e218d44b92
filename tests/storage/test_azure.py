"""Azure ML's storage URLs (wasbs://, abfss://) read through adlfs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mlform.config.schemes import protocol_problem
from mlform.storage import filesystem
from mlform.storage.azure import translate
from tests.conftest import Ran
from tests.storage.conftest import AZURITE_ACCOUNT, Azurite

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "wasbs://data@myaccount.blob.core.windows.net/iris/iris.csv",
            ("abfs://data/iris/iris.csv", {"account_name": "myaccount"}),
        ),
        (
            "wasb://data@myaccount.blob.core.windows.net/iris/",
            ("abfs://data/iris", {"account_name": "myaccount"}),
        ),
        (
            "abfss://lake@myaccount.dfs.core.windows.net/raw/2024/sales.parquet",
            ("abfs://lake/raw/2024/sales.parquet", {"account_name": "myaccount"}),
        ),
        (
            "abfs://lake@myaccount.dfs.core.windows.net",
            ("abfs://lake", {"account_name": "myaccount"}),
        ),
        (
            "wasbs://data@myaccount.blob.core.chinacloudapi.cn/x.csv",
            (
                "abfs://data/x.csv",
                {
                    "account_name": "myaccount",
                    "account_host": "myaccount.blob.core.chinacloudapi.cn",
                },
            ),
        ),
        ("abfss://lake/raw/x.csv", ("abfs://lake/raw/x.csv", {})),
        ("az://container/x.csv", ("az://container/x.csv", {})),
        ("s3://bucket/x.csv", ("s3://bucket/x.csv", {})),
    ],
)
def test_azure_urls_become_adlfs_urls_with_the_account(
    url: str, expected: tuple[str, dict[str, str]]
) -> None:
    assert translate(url) == expected


def test_wasbs_and_abfss_open_the_adlfs_filesystem_of_their_account() -> None:
    pytest.importorskip("adlfs")
    for url, path in [
        ("wasbs://data@myaccount.blob.core.windows.net/iris/iris.csv", "data/iris/iris.csv"),
        ("abfss://lake@myaccount.dfs.core.windows.net/raw/x.parquet", "lake/raw/x.parquet"),
    ]:
        fs, root = filesystem(url, {})
        assert (type(fs).__name__, fs.account_name, root) == (
            "AzureBlobFileSystem",
            "myaccount",
            path,
        )


def test_storage_options_override_what_the_url_implies() -> None:
    pytest.importorskip("adlfs")
    fs, _ = filesystem(
        "wasbs://data@myaccount.blob.core.windows.net/x.csv", {"account_name": "other"}
    )
    assert fs.account_name == "other"


def test_azure_and_http_schemes_are_known() -> None:
    pytest.importorskip("adlfs")
    assert [protocol_problem(s) for s in ("wasbs", "wasb", "abfss", "abfs", "https", "http")] == [
        None
    ] * 6


def test_wasbs_and_abfss_data_are_read_from_azure_storage(
    cli: Cli,
    make_workspace: Make,
    azurite: Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import adlfs

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    container = f"data{uuid.uuid4().hex[:8]}"
    fs = adlfs.AzureBlobFileSystem(connection_string=azurite.connection_string)
    fs.mkdir(container)
    fs.pipe(f"{container}/iris/iris.csv", b"sepal,species\n5.1,setosa\n")
    fs.pipe(f"{container}/iris/more/extra.csv", b"sepal,species\n6.7,virginica\n")
    blob = f"wasbs://{container}@{AZURITE_ACCOUNT}.blob.core.windows.net/iris/iris.csv"
    lake = f"abfss://{container}@{AZURITE_ACCOUNT}.dfs.core.windows.net/iris"
    root = make_workspace(
        {
            "workspace.yml": "name: azure\n",
            "data/iris.yml": f"name: iris\ntype: uri_file\npath: {blob}\n",
            "data/lake.yml": f"name: lake\ntype: uri_folder\npath: {lake}\n",
            "runconfigs/count.yml": f"""
            name: count
            command: cat ${{{{inputs.lake}}}}/more/extra.csv > ${{{{outputs.out}}}}/seen.csv
            inputs:
              lake:
                type: uri_folder
                path: {lake}
                mode: download
            outputs:
              out:
                type: uri_folder
        """,
        }
    )
    assert cli("validate", cwd=root).code == 0
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert "+ data/iris created: version 1" in applied.out
    shown = cli("data", "show", "lake", cwd=root).out
    assert f"stored at:   {lake}" in shown
    assert "    iris.csv  " in shown and "    more/extra.csv  " in shown
    head = cli("data", "head", "iris", cwd=root)
    assert head.out.splitlines()[0] == "schema: sepal DOUBLE, species VARCHAR", head.err
    out = next((root / ".mlform" / "runs").glob("count_*")) / "outputs" / "out"
    assert (out / "seen.csv").read_text() == "sepal,species\n6.7,virginica\n"
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
    fs.pipe(f"{container}/iris/iris.csv", b"sepal,species\n4.9,setosa\n")
    plan = cli("plan", cwd=root)
    assert "~ data/iris  (content changed: iris.csv modified; version 1 → 2)" in plan.out
