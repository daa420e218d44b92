"""Asset references and data locations, in every form a YAML file may write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlform.config.refs import (
    AssetRef,
    DatastorePath,
    LocalPath,
    Url,
    parse_asset_ref,
    parse_location,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris", AssetRef("iris")),
        ("iris:3", AssetRef("iris", "3")),
        ("iris@latest", AssetRef("iris")),
        ("azureml:iris:3", AssetRef("iris", "3")),
        ("azureml:iris@latest", AssetRef("iris")),
        ("azureml:iris", AssetRef("iris")),
        ("iris-v2.data_set:2024.1", AssetRef("iris-v2.data_set", "2024.1")),
        ("  iris:3  ", AssetRef("iris", "3")),
    ],
)
def test_asset_references(text: str, expected: AssetRef) -> None:
    assert parse_asset_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "azureml:", "iris:", "iris@", "iris@stable", "iris:3:4", ":3", "-iris", "ir is", "a/b"],
)
def test_not_asset_references(text: str) -> None:
    assert parse_asset_ref(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
            ("sklearn-1.5", None, "environments", "azureml"),
        ),
        (
            "azureml://registries/azureml/environments/sklearn-1.5/versions/3",
            ("sklearn-1.5", "3", "environments", "azureml"),
        ),
        (
            "azureml://registries/shared/models/iris-model/versions/2",
            ("iris-model", "2", "models", "shared"),
        ),
        (
            "azureml:/subscriptions/0000/resourceGroups/rg/providers/"
            "Microsoft.MachineLearningServices/workspaces/ws/environments/train/versions/4",
            ("train", "4", "environments", None),
        ),
    ],
)
def test_azure_ml_asset_uris(text: str, expected: tuple[str, str | None, str, str | None]) -> None:
    ref = parse_asset_ref(text)
    assert ref is not None
    assert (ref.name, ref.version, ref.kind, ref.registry) == expected
    assert ref == AssetRef(expected[0], expected[1])  # resolves as the short form does


@pytest.mark.parametrize(
    "text",
    [
        "azureml://registries/azureml/environments/x/labels/stable",
        "azureml://registries/azureml/environments/x",
        "azureml://registries//environments/x/versions/1",
    ],
)
def test_not_azure_ml_asset_uris(text: str) -> None:
    assert parse_asset_ref(text) is None


def test_asset_reference_prints_as_written_in_files() -> None:
    assert str(AssetRef("iris", "3")) == "iris:3"
    assert str(AssetRef("iris")) == "iris@latest"


BASE = Path("/ws/data")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris.csv", LocalPath(Path("/ws/data/iris.csv"))),
        ("../shared/iris.csv", LocalPath(Path("/ws/shared/iris.csv"))),
        ("./images/", LocalPath(Path("/ws/data/images"))),
        ("/abs/iris.csv", LocalPath(Path("/abs/iris.csv"))),
        ("file:///abs/iris.csv", LocalPath(Path("/abs/iris.csv"))),
        ("file://iris.csv", LocalPath(Path("/ws/data/iris.csv"))),
        ("datastore://lake/raw/iris.csv", DatastorePath("lake", "raw/iris.csv")),
        ("datastore://lake/raw/", DatastorePath("lake", "raw")),
        ("datastore://lake", DatastorePath("lake", "")),
        ("azureml://datastores/lake/paths/raw/iris.csv", DatastorePath("lake", "raw/iris.csv")),
        (
            "azureml://subscriptions/0000/resourcegroups/rg/workspaces/ws"
            "/datastores/lake/paths/raw/iris.csv",
            DatastorePath("lake", "raw/iris.csv"),
        ),
        (
            "azureml://subscriptions/0000/resourceGroups/rg/providers/"
            "Microsoft.MachineLearningServices/workspaces/ws/datastores/lake/paths/x",
            DatastorePath("lake", "x"),
        ),
        ("s3://bucket/iris.csv", Url("s3://bucket/iris.csv", "s3")),
        ("GS://bucket/iris.csv", Url("GS://bucket/iris.csv", "gs")),
        ("az://container/iris.csv", Url("az://container/iris.csv", "az")),
        ("https://example.org/iris.csv", Url("https://example.org/iris.csv", "https")),
        ("azureml://jobs/123/outputs/x", Url("azureml://jobs/123/outputs/x", "azureml")),
        ("datastore:///x.csv", Url("datastore:///x.csv", "datastore")),
    ],
)
def test_locations(text: str, expected: object) -> None:
    assert parse_location(text, BASE) == expected
