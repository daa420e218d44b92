"""How YAML files point at things: asset references and data locations.

Asset references follow Azure ML: `name`, `name:version`, `name@latest`, each optionally
prefixed `azureml:`, and the URIs Azure ML writes for an asset:
`azureml://registries/<registry>/environments/<name>/versions/<n>` (or `/labels/latest`)
and `azureml:/subscriptions/…/workspaces/<ws>/environments/<name>/versions/<n>`. A URI
names its kind (environments, models, data); mlform resolves it to the asset of that name
declared in this workspace, as it fetches nothing from Azure.

Locations are local paths (relative to the YAML file),
`datastore://<name>/<path>`, Azure's `azureml://datastores/<name>/paths/<path>` (also in
its long form, with subscription, resource group and workspace in front), or an fsspec
URL.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_ASSET = re.compile(rf"^(?:azureml:)?(?P<name>{_NAME})(?::(?P<version>{_NAME})|@(?P<label>\w+))?$")
_ASSET_URI = re.compile(
    r"^azureml:(?://registries/(?P<registry>[^/]+)|/?/subscriptions/[^/]+/resource[gG]roups/"
    r"[^/]+/(?:providers/Microsoft\.MachineLearningServices/)?workspaces/[^/]+)"
    rf"/(?P<kind>[a-z]+)/(?P<name>{_NAME})/(?:versions/(?P<version>{_NAME})|labels/(?P<label>\w+))/?$"
)
_AZUREML_DATASTORE = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/"
    r"(?:providers/Microsoft\.MachineLearningServices/)?workspaces/[^/]+/)?"
    r"datastores/(?P<store>[^/]+)/paths/(?P<path>.*)$"
)
_DATASTORE = re.compile(r"^datastore://(?P<store>[^/]+)/?(?P<path>.*)$")
_URL = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]+)://")


@dataclass(frozen=True, slots=True)
class AssetRef:
    name: str
    version: str | None = None  # None means latest
    # Written as an Azure ML URI: the kind it names (environments, models, data) and the
    # registry it points into; neither changes what it resolves to here.
    kind: str | None = field(default=None, compare=False)
    registry: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else f"{self.name}@latest"


def parse_asset_ref(text: str) -> AssetRef | None:
    """`azureml:iris:2` → AssetRef('iris', '2'); None when `text` is not a reference."""
    uri = _ASSET_URI.match(text.strip())
    if uri:
        if uri["label"] and uri["label"] != "latest":
            return None
        return AssetRef(uri["name"], uri["version"], uri["kind"], uri["registry"])
    match = _ASSET.match(text.strip())
    if not match:
        return None
    if match["label"] and match["label"] != "latest":
        return None
    return AssetRef(match["name"], match["version"])


@dataclass(frozen=True, slots=True)
class LocalPath:
    path: Path


@dataclass(frozen=True, slots=True)
class DatastorePath:
    datastore: str
    path: str


@dataclass(frozen=True, slots=True)
class Url:
    url: str
    scheme: str


Location = LocalPath | DatastorePath | Url


def parse_location(text: str, base: Path) -> Location:
    """Where a `path:` points, with relative local paths resolved against `base`.

    Local paths are normalised, not resolved: resolving follows symlinks with a system
    call per path component, which a workspace of thousands of files would feel.
    """
    for pattern in (_DATASTORE, _AZUREML_DATASTORE):
        match = pattern.match(text)
        if match:
            return DatastorePath(match["store"], match["path"].strip("/"))
    match = _URL.match(text)
    if match:
        scheme = match["scheme"].lower()
        if scheme == "file":
            return LocalPath(local_path(base, text[len("file://") :]))
        return Url(text, scheme)
    return LocalPath(local_path(base, text))


def local_path(base: Path, text: str) -> Path:
    """`text` as a normalised path, relative to `base` unless it is absolute."""
    return Path(os.path.normpath(os.path.join(base, text)))
