"""Azure ML's storage URLs (wasbs://, abfss://) read through adlfs."""

from __future__ import annotations

import pytest

from mlform.storage import filesystem, protocol_problem
from mlform.storage.azure import translate


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
