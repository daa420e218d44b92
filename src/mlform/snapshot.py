"""Source snapshots: the `code` folder as a run saw it, filtered, hashed and zipped once.

Which files are left out follows git and Azure ML: each folder's `.amlignore`, or its
`.gitignore` when it has no `.amlignore`, with patterns relative to that folder, deeper
files overriding shallower ones and the last matching line of a file deciding. Ignore files
of the folders above the snapshot root count too, up to the repository root. An ignored
folder is never entered, so a `.venv/` costs one check.

Files are hashed through a `Hasher`, whose stat cache makes re-checking an unchanged tree a
walk of `stat` calls. A snapshot is stored as `snapshots/<digest>.zip`, so identical trees
are stored once; its zip is deterministic (sorted, fixed timestamps, normalised modes).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mlform.archive import write_zip
from mlform.errors import MlformError, NotFound
from mlform.hashing import FileEntry, Hasher, tree_digest
from mlform.ignore import (
    IGNORE_FILES,
    Active,
    Rules,
    alternatives,
    compile_alternatives,
    decide,
    parent_rules,
    read_rules,
)

if TYPE_CHECKING:
    import zipfile

    from mlform.storage import Storage

# zipfile, tempfile, shutil and concurrent.futures are imported where they are used: a
# no-change `mlform plan` only scans, and importing them would be a fifth of its check.

BUILT_IN = (".git", ".mlform", "__pycache__")  # folders never snapshotted
BUILT_IN_RULE = "(built in)"

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Excluded:
    """A file or folder (ending in '/') left out, and the rule that left it out."""

    relpath: str
    rule_file: str
    line: int
    pattern: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    root: Path
    digest: str
    files: tuple[FileEntry, ...]
    excluded: tuple[Excluded, ...]

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)


def key(digest: str) -> str:
    return f"snapshots/{digest}.zip"


def _find_repo(path: Path) -> Path | None:
    """The nearest folder at or above `path` holding `.git`."""
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def scan(
    root: Path, hasher: Hasher, *, repo_root: Path | None = None, explain: bool = False
) -> Snapshot:
    """The files of `root` that a snapshot holds; with `explain`, also what it leaves out."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise MlformError(f"code folder {root} does not exist or is not a folder")
    repo = Path(os.path.abspath(repo_root)) if repo_root is not None else _find_repo(root)
    if repo is None or not root.is_relative_to(repo):
        repo = root
    files: list[FileEntry] = []
    excluded: list[Excluded] | None = [] if explain else None
    _walk(root, repo, parent_rules(root, repo), hasher, files, excluded, _boundary(root, repo))
    files.sort(key=_by_path)
    return Snapshot(
        root=root,
        digest=tree_digest(files),
        files=tuple(files),
        excluded=tuple(sorted(excluded, key=_by_path)) if excluded is not None else (),
    )


def store(snapshot: Snapshot, storage: Storage) -> str:
    """Zip the snapshot into `storage` unless an identical one is there; return its key."""
    name = key(snapshot.digest)
    if storage.exists(name):
        return name
    with tempfile.TemporaryDirectory(prefix="mlform-snapshot-") as tmp:
        archive = Path(tmp) / "snapshot.zip"
        write_zip(snapshot.root, snapshot.files, archive)
        storage.put(archive, name)
    return name


def extract(storage: Storage, key: str, dest: Path) -> None:
    """Restore a stored snapshot into `dest`, executable bits included."""
    if not storage.exists(key):
        raise NotFound(f"snapshot {key} is not in {storage.url}")
    local = storage.local_path(key)
    with (
        local.open("rb") if local is not None else storage.open(key) as handle,
        _open_zip(handle, key) as archive,
    ):
        members = archive.infolist()
        for info in members:
            _check_member(info, key)
        dest.mkdir(parents=True, exist_ok=True)
        top = os.path.realpath(dest)
        checked = {top}  # folders made and known to lie inside dest
        for info in members:
            target = os.path.join(top, *info.filename.rstrip("/").split("/"))
            folder = target if info.is_dir() else os.path.dirname(target)
            if folder not in checked:
                os.makedirs(folder, exist_ok=True)
                if os.path.commonpath([os.path.realpath(folder), top]) != top:
                    raise MlformError(
                        f"snapshot {key}: {info.filename} would be written outside {dest} "
                        "through a symbolic link there; extract into an empty folder"
                    )
                checked.add(folder)
            if info.is_dir():
                continue
            mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISLNK(os.lstat(target).st_mode):
                    os.unlink(target)
            with archive.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
                os.fchmod(dst.fileno(), mode)


# --- the walk ---------------------------------------------------------------------------


def _walk(
    root: Path,
    repo: Path,
    parents: Active,
    hasher: Hasher,
    files: list[FileEntry],
    excluded: list[Excluded] | None,
    boundary: str,
) -> None:
    shown_root = "" if root == repo else root.relative_to(repo).as_posix() + "/"
    digest = hasher._digest  # a str key, not a Path per file: trees hold many thousands
    by_name: dict[tuple[Rules, ...], re.Pattern[str] | None] = {}  # keeps its keys alive
    # Folders are followed through symbolic links; one that leads back to a folder above
    # it would never end, so each stack item carries the (device, inode) of its ancestors.
    stack: list[tuple[str, str, Active, frozenset[tuple[int, int]]]] = [
        (str(root), "", parents, frozenset())
    ]
    while stack:
        folder, prefix, active, above = stack.pop()
        try:
            st = os.stat(folder)
            here = (st.st_dev, st.st_ino)
            if here in above:
                continue
            above = above | {here}
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as err:
            raise MlformError(f"cannot read {folder} for a snapshot: {err}") from err
        names = {e.name for e in entries}
        if not names.isdisjoint(IGNORE_FILES):
            rules = read_rules(folder, names, shown_root + prefix)
            if rules is not None:
                active = ((rules, ""), *active)
        # What could match here: the name patterns of every ignore file in force, as one
        # regex, and the path patterns of those whose literal prefix fits this folder.
        in_force = tuple(r for r, _ in active)
        if in_force not in by_name:
            by_name[in_force] = compile_alternatives(
                alternatives([r.name_source for r, _ in active if r.name_source is not None])
            )
        name_rx = by_name[in_force]
        by_path = [(r.path_rx, rel) for r, rel in active if r.paths_can_match(rel)]
        for entry in entries:
            name = entry.name
            if entry.is_dir():
                if name in BUILT_IN:
                    if excluded is not None:
                        excluded.append(Excluded(f"{prefix}{name}/", BUILT_IN_RULE, 0, f"{name}/"))
                    continue
                tail, is_file = name + "/", False
            elif entry.is_file():
                tail, is_file = name, True
            else:  # a broken link, a socket, a fifo: nothing to snapshot
                continue
            if (name_rx is not None and name_rx.match(tail) is not None) or (
                by_path
                and any(rx is not None and rx.match(rel + tail) is not None for rx, rel in by_path)
            ):
                hit = decide(active, tail)
                if hit is not None:
                    if excluded is not None:
                        rules, index = hit
                        line = rules.lines[index]
                        excluded.append(Excluded(prefix + tail, rules.name, index + 1, line))
                    continue
            if entry.is_symlink():
                _check_link(root, entry.path, prefix + name, boundary)
            if is_file:
                try:
                    st = entry.stat()
                    files.append(FileEntry(prefix + name, st.st_size, digest(entry.path, st)))
                except OSError as err:
                    raise MlformError(f"cannot read {entry.path} for a snapshot: {err}") from err
            else:
                inner = tuple((r, rel + tail) for r, rel in active)
                stack.append((entry.path, prefix + tail, inner, above))


def _boundary(root: Path, repo: Path) -> str:
    """The folder a snapshot's symbolic links may lead into: the git repository, else the
    workspace (the folder above holding workspace.yml), else the code folder itself. A
    repository at the home folder or at `/` (dotfiles) would let every file through."""
    home = os.path.realpath(os.path.expanduser("~"))
    if repo != root and os.path.realpath(repo) not in (home, os.sep):
        return os.path.realpath(repo)
    for folder in (root, *root.parents):
        if any((folder / name).is_file() for name in ("workspace.yml", "workspace.yaml")):
            return os.path.realpath(folder)
    return os.path.realpath(root)


def _check_link(root: Path, path: str, relpath: str, boundary: str) -> None:
    """A link leading outside would zip host files (an `etc -> /etc`) into the snapshot:
    refused rather than skipped, so the code a run sees is the code the folder shows."""
    target = os.path.realpath(path)
    if target == boundary or target.startswith(boundary.rstrip(os.sep) + os.sep):
        return
    raise MlformError(
        f"code folder {root}: {relpath} is a symbolic link to {target}, outside {boundary}; "
        f"move what it points at into {boundary}, or add {relpath} to the code folder's "
        ".amlignore to leave the link out of the snapshot"
    )


def _by_path(item: FileEntry | Excluded) -> str:
    return item.relpath


@contextlib.contextmanager
def _open_zip(handle: BinaryIO, key: str) -> Iterator[zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(handle)
    except zipfile.BadZipFile as err:
        raise MlformError(f"snapshot {key} is not a readable zip file: {err}") from err
    with archive:
        yield archive


def _check_member(info: zipfile.ZipInfo, key: str) -> None:
    name = info.filename
    parts = name.rstrip("/").split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or ":" in parts[0]
        or any(part in ("", ".", "..") for part in parts)
        or stat.S_ISLNK(info.external_attr >> 16)
    ):
        raise MlformError(
            f"snapshot {key} holds an unsafe entry {name!r} (absolute, '..', or a link); "
            "it was not extracted"
        )
