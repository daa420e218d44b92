"""A new workspace from the templates shipped with mlform, and the JSON Schemas for editors.

`templates/init/` mirrors the new workspace (templates/README.md has the mapping). A folder
that already holds files is refused unless forced, and even then no file is overwritten:
re-running init must never cost anyone their work.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from mlform import __version__
from mlform._resources import resource_dir
from mlform.config.kinds import FOLDERS
from mlform.errors import MlformError
from mlform.loader import WORKSPACE_FILES

SCHEMA_FOLDER = ".schema"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")  # as the schemas' definitions/name


@dataclass(frozen=True, slots=True)
class Scaffolded:
    """What `scaffold` did; paths are relative to `root`."""

    root: Path
    name: str
    created: list[Path]
    kept: list[Path]  # already there (with force): left untouched


def scaffold(
    path: str | Path, *, name: str | None, force: bool, state: str | None = None
) -> Scaffolded:
    """Write a new workspace into `path` (made if missing); `state`: a remote state's
    URL, with the default datastore beside it."""
    root = Path(path)
    where = root.resolve()
    if where.exists() and not where.is_dir():
        raise MlformError(f"{where} is a file; name a folder for the new workspace")
    if not force and where.is_dir() and any(where.iterdir()):
        raise MlformError(
            f"{where} is not empty; pass --force to add the workspace files to it "
            "(files already there are kept, never overwritten)"
        )
    name = _workspace_name(name, where)
    datastore = _datastore_beside(state) if state is not None else None
    files = _render(
        {
            "name": name,
            "state": state,
            "datastore": datastore,
            "version": __version__,
            "yaml_schemas": _editor_schemas(),
            "requirement": mlform_requirement(),
        }
    )
    files.update({f"{SCHEMA_FOLDER}/{n}": data for n, data in _schema_files().items()})
    created, kept = _write(root, files, replace=False)
    return Scaffolded(root, name, created, kept)


def _datastore_beside(state: str) -> str:
    """The default datastore's URL for a remote state's URL: `datastore/` in the same
    container or bucket (s3://bucket/team/state.duckdb → s3://bucket/datastore)."""
    # start-up: remote state URLs only for `init --state`
    from urllib.parse import urlsplit

    from mlform.state import backends

    try:
        backends.from_url(state)
    except backends.BadState as err:
        raise MlformError(f"--state: {err}") from err
    parts = urlsplit(state)
    return f"{parts.scheme}://{parts.netloc}/datastore"


def mlform_requirement() -> str:
    """The requirement line that installs this mlform elsewhere (CI): its git repository and
    commit, or the URL it was installed from; else a line for the user to fill in, since
    mlform is on no package index and a local checkout means nothing to a CI runner."""
    placeholder = f"mlform @ git+https://github.com/YOUR-ORG/mlform@v{__version__}"
    try:
        text = importlib.metadata.distribution("mlform").read_text("direct_url.json")
        origin = json.loads(text or "null")
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return placeholder
    if not isinstance(origin, dict):
        return placeholder
    url = str(origin.get("url", ""))
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") == "git" and not url.startswith("file:"):
        return f"mlform @ git+{url}@{vcs.get('commit_id') or vcs.get('requested_revision')}"
    if "archive_info" in origin and url.startswith(("https://", "http://")):
        return f"mlform @ {url}"
    return placeholder


def schemas() -> dict[str, Path]:
    """Each shipped JSON Schema by the kind it checks (`data` for data.schema.json)."""
    folder = resource_dir("schema")
    return {p.name.removesuffix(".schema.json"): p for p in sorted(folder.glob("*.schema.json"))}


def export_schemas(dest: str | Path) -> list[Path]:
    """Write every schema into `dest`, replacing older copies: they follow mlform's version."""
    created, _ = _write(Path(dest), _schema_files(), replace=True)
    return created


def _schema_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in schemas().values()}


def _editor_schemas() -> dict[str, list[str]]:
    """`yaml.schemas` for the YAML language server: schema file → the files it checks."""
    globs = {"workspace": list(WORKSPACE_FILES)}
    for folder, kind in FOLDERS.items():
        globs[kind] = [f"{folder}/*.yml", f"{folder}/*.yaml"]
    return {
        f"./{SCHEMA_FOLDER}/{path.name}": globs[kind]
        for kind, path in schemas().items()
        if kind in globs
    }


def _render(context: Mapping[str, object]) -> dict[str, bytes]:
    source = resource_dir("templates") / "init"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(source),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )
    env.filters["yaml_str"] = _yaml_str
    files: dict[str, bytes] = {}
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source)
        out = "/".join("." + part[4:] if part.startswith("dot-") else part for part in rel.parts)
        if out.endswith(".j2"):
            text = env.get_template(rel.as_posix()).render(context)
            files[out.removesuffix(".j2")] = text.encode("utf-8")
        else:
            files[out] = path.read_bytes()
    return files


def _write(
    root: Path, files: Mapping[str, bytes], *, replace: bool
) -> tuple[list[Path], list[Path]]:
    created: list[Path] = []
    kept: list[Path] = []
    for rel, data in sorted(files.items()):
        target = root / rel
        if target.exists() and not replace:
            kept.append(Path(rel))
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as err:
            raise MlformError(f"cannot write {target}: {err.strerror or err}") from err
        created.append(Path(rel))
    return created, kept


def _workspace_name(given: str | None, folder: Path) -> str:
    if given is None:
        ascii_name = unicodedata.normalize("NFKD", folder.name).encode("ascii", "ignore").decode()
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).strip("_.-")[:255]
        return name or "workspace"
    if not _NAME.fullmatch(given):
        raise MlformError(
            f"--name {given!r} is not a valid workspace name: start with a letter or digit, "
            "then use only letters, digits, '-', '_' and '.' (at most 255 characters)"
        )
    return given


def _yaml_str(text: str) -> str:
    """`text` as a YAML scalar, quoted only when YAML would read it as a number, bool, …"""
    return text if yaml.safe_load(text) == text else json.dumps(text)
