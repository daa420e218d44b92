"""Typed, immutable specs built from validated YAML, one class per kind.

A spec knows what the user declared and where; it does no I/O beyond resolving paths.
What a spec costs to digest and how it is applied lives in `mlform.kinds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.refs import (
    AssetRef,
    DatastorePath,
    LocalPath,
    Location,
    Url,
    parse_asset_ref,
    parse_location,
)
from mlform.config.yamlfile import Document, JsonPath
from mlform.errors import Problem

# Keys that describe a resource without changing what it is: editing them updates the
# record in place and never registers a new version.
METADATA_KEYS = frozenset({"description", "tags", "display_name", "protect", "depends_on"})

HERE = LocalPath(Path())


@dataclass(frozen=True, slots=True)
class Source:
    """Where a spec was declared: a document and the path of the spec inside it."""

    doc: Document
    where: tuple[str | int, ...] = ()

    def problem(
        self, sub: JsonPath = (), message: str = "", *, key: bool = False, severity: str = "error"
    ) -> Problem:
        return self.doc.problem([*self.where, *sub], message, key=key, severity=severity)

    @property
    def file(self) -> str:
        return self.doc.display

    def at(self, sub: JsonPath = ()) -> str:
        """Where `sub` is written, as file:line:col."""
        line, col = self.doc.locate([*self.where, *sub])
        return f"{self.doc.display}:{line}:{col}"

    def __str__(self) -> str:
        line, _ = self.doc.locate(self.where)
        return f"{self.doc.display}:{line}"


@dataclass(frozen=True, slots=True)
class Spec:
    kind: ClassVar[str]
    part_of: ClassVar[str | None] = None  # the kind whose resources it is part of
    name: str
    source: Source = field(compare=False)
    body: Mapping[str, Any]  # the mapping as written, without $schema
    protect: bool = False
    depends_on: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def owner(self) -> tuple[str, JsonPath] | None:
        """For a part declared in a file of its own (a deployment): the name of what it is
        part of, and where the file writes it. None for a resource."""
        return None


@dataclass(frozen=True, slots=True)
class DatastoreSpec(Spec):
    kind: ClassVar[str] = "datastore"
    location: LocalPath | Url = HERE
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False


@dataclass(frozen=True, slots=True)
class DataInput:
    """A runconfig input that is data: a registered asset or a path."""

    type: str
    asset: AssetRef | None = None  # azureml:iris:2, iris@latest
    location: Location | None = None  # a path, resolved like a data asset's
    mode: str = "ro_mount"  # Azure ML's input modes; `direct` hands the run the URL itself


@dataclass(frozen=True, slots=True)
class RegisterModel:
    """A runconfig's `register_model:`: which output becomes a model version, and when."""

    name: str
    path: str  # inside the run's outputs folder
    type: str | None = None  # None: detected from the files
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    when: tuple[str, ...] = ()  # conditions, all of which must hold


IMPLICIT_DATASTORE = "workspaceblobstore"  # Azure ML's name, so azureml:// paths keep working

IMPLICIT_DATASTORE_PATH = ".mlform/datastore"


def common(body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every spec has, read from its validated document."""
    return {
        "name": str(body["name"]),
        "body": {k: v for k, v in body.items() if k != "$schema"},
        "protect": bool(body.get("protect", False)),
        "depends_on": tuple(body.get("depends_on", ())),
    }


def version_of(body: Mapping[str, Any]) -> str | None:
    """A version fixed in the file, as text (Azure ML's YAML may write it as a number)."""
    value = body.get("version")
    return None if value is None else str(value)


def datastore(body: Mapping[str, Any], source: Source, root: Path) -> DatastoreSpec:
    options = dict(body.get("storage_options") or {})
    if body.get("type") == "azure_blob":
        location: LocalPath | Url = Url(f"az://{body.get('container_name', '')}", "az")
        options.setdefault("account_name", body.get("account_name"))
    else:
        parsed = parse_location(str(body.get("path", IMPLICIT_DATASTORE_PATH)), root)
        location = parsed if isinstance(parsed, LocalPath | Url) else LocalPath(root)
    return DatastoreSpec(
        **common(body),
        source=source,
        location=location,
        storage_options=options,
        default=bool(body.get("default", False)),
    )


def in_place(definition: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An inline definition under its anonymous name: a name or version written in it is
    ignored, as Azure ML ignores it."""
    return {**{k: v for k, v in definition.items() if k != "version"}, "name": name}


def parse_inputs(body: Mapping[str, Any], base: Path) -> dict[str, DataInput | str]:
    inputs: dict[str, DataInput | str] = {}
    for key, value in (body.get("inputs") or {}).items():
        if isinstance(value, dict) and "path" in value:
            path = str(value["path"])
            kind = str(value.get("type", "uri_folder"))
            ref = _data_ref(path)
            mode = str(value.get("mode", "ro_mount"))
            inputs[str(key)] = (
                DataInput(kind, asset=ref, mode=mode)
                if ref
                else DataInput(kind, location=parse_location(path, base), mode=mode)
            )
        elif isinstance(value, dict):
            inputs[str(key)] = env_text(value.get("value"))
        elif isinstance(value, str) and value.startswith("azureml:") and _data_ref(value):
            inputs[str(key)] = DataInput("uri_folder", asset=_data_ref(value))
        else:
            inputs[str(key)] = env_text(value)
    return inputs


def parse_register(body: Any) -> RegisterModel | None:
    if not isinstance(body, Mapping) or "name" not in body or "path" not in body:
        return None
    when = body.get("when") or ()
    return RegisterModel(
        name=str(body["name"]),
        path=str(body["path"]),
        type=body.get("type"),
        description=body.get("description"),
        tags={str(k): env_text(v) for k, v in (body.get("tags") or {}).items()},
        when=(when,) if isinstance(when, str) else tuple(str(w) for w in when),
    )


def _data_ref(path: str) -> AssetRef | None:
    """`azureml:iris:2`, `iris@latest` or `iris:2` in an input's path; a path without a
    prefix or version (`data/iris.csv`, `./x`) stays a path."""
    if "/" in path:
        return None
    if path.startswith("azureml:") or "@" in path or ":" in path:
        return parse_asset_ref(path)
    return None


def env_text(value: Any) -> str:
    """An environment variable's value as the process sees it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


__all__ = [
    "DataInput",
    "DatastorePath",
    "DatastoreSpec",
    "LocalPath",
    "RegisterModel",
    "Source",
    "Spec",
    "Url",
]
