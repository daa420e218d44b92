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
import hashlib
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

from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

from mlform.errors import MlformError, NotFound
from mlform.hashing import FileEntry, Hasher, tree_digest

if TYPE_CHECKING:
    from mlform.storage import Storage

IGNORE_FILES = (".amlignore", ".gitignore")  # the first one present in a folder is used
BUILT_IN = (".git", ".mlform", "__pycache__")  # folders never snapshotted
BUILT_IN_RULE = "(built in)"

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: same content, same bytes
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
    _walk(root, repo, _parent_rules(root, repo), hasher, files, excluded)
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
        _write_zip(snapshot, archive)
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


# --- ignore rules -----------------------------------------------------------------------
#
# Matched as git does: the folders above a path were decided when the walk entered them
# (an ignored one is not entered), so only the path itself is tested, and in each ignore
# file the last line that matches it decides. A pattern with no slash but a trailing one
# ("*.pyc", "build/") tests the name; any other ("/data/raw/", "docs/*.md") the path from
# the ignore file's folder. pathspec translates each line to a regex; pathspec's own
# GitIgnoreSpec is not used to decide, because it judges a path together with its parent
# folders and ranks file matches above folder ones, which prunes folders git keeps (`*`,
# `!*/`, `!*.py` would drop every subfolder). The combined regexes only answer "could any
# line match?" quickly, so a typical file costs one regex call.


class _Rules:
    """One ignore file, compiled once: pattern i is line i + 1 of the file."""

    __slots__ = (
        "last_first",
        "lines",
        "name",
        "name_rx",
        "name_source",
        "path_prefixes",
        "path_rx",
    )

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.lines = [line.rstrip("\r") for line in text.split("\n")]
        # (index, excludes, regex matching the path itself, tests the name alone)
        self.last_first: list[tuple[int, bool, re.Pattern[str], bool]] = []
        by_name: list[str] = []
        by_path: list[str] = []
        prefixes: list[str] = []
        for index, line in enumerate(self.lines):
            pattern = _pattern(line)
            if pattern.include is None or pattern.regex is None:
                continue
            regex = pattern.regex
            name_only = _by_name(line)
            self.last_first.append((index, pattern.include, _itself(regex), name_only))
            source = _GROUP.sub("(?:", regex.pattern)
            if name_only:
                by_name.append(
                    source[len(_ANY_FOLDER) :] if source.startswith(_ANY_FOLDER) else f".*?{source}"
                )
            else:
                by_path.append(source[1:] if source.startswith("^") else f".*?{source}")
                prefixes.append(_literal_prefix(line) if source.startswith("^") else "")
        self.last_first.reverse()
        self.name_source = _alternatives(by_name)
        self.name_rx = _compile(self.name_source)
        self.path_rx = _compile(_alternatives(by_path))
        self.path_prefixes = tuple(prefixes)

    def paths_can_match(self, rel: str) -> bool:
        """Whether a path pattern can match something in folder `rel` (relative to ours)."""
        return self.path_rx is not None and any(
            rel.startswith(p) if len(rel) >= len(p) else p.startswith(rel)
            for p in self.path_prefixes
        )

    def decide(self, rel: str, tail: str) -> int | None:
        """For `tail` (a name, '/'-ended for a folder) in folder `rel`: None when no line
        matches, -1 when a negation keeps it, else the index of the line excluding it."""
        name_rx, path_rx = self.name_rx, self.path_rx
        path = rel + tail
        if (name_rx is None or name_rx.match(tail) is None) and (
            path_rx is None or path_rx.match(path) is None
        ):
            return None
        for index, excludes, regex, name_only in self.last_first:
            if regex.search(tail if name_only else path) is not None:
                return index if excludes else -1
        return None

    def without(self, index: int) -> _Rules:
        lines = list(self.lines)
        lines[index] = ""
        return _Rules(self.name, "\n".join(lines))


_NOOP = GitIgnoreSpecPattern("")
_GROUP = re.compile(r"\(\?P<\w+>")  # named groups, which cannot repeat in one regex
_ANY_FOLDER = "^(?:.+/)?"  # how pathspec starts a pattern that may match at any depth
_GLOB = re.compile(r"[*?\[\\]")


def _itself(regex: re.Pattern[str]) -> re.Pattern[str]:
    """`regex` made to match a path itself, not only one of its parent folders.

    pathspec's regexes also match what is inside a folder they name: "a/b" becomes
    `^a/b(?:(?P<ps_d>/)|$)`, true of "a/b/c" by its parent. Such a match must end where
    the path does. "foo/**" becomes `^foo/`, true of what is under foo/ but not of foo/
    itself, so something must follow. "*" and "**" become `.`, true of anything.
    """
    source = regex.pattern
    if "ps_d" in regex.groupindex:
        return re.compile(f"(?:{source})\\Z")
    if source.endswith("/"):
        return re.compile(f"(?:{source})(?s:.)")
    return regex


def _pattern(line: str) -> GitIgnoreSpecPattern:
    if line.rstrip().endswith("/**/"):
        # git: the folders inside foo/, not foo/ itself; pathspec makes it foo/
        line = line.rstrip() + "*/"
    try:
        return GitIgnoreSpecPattern(line)
    except ValueError:  # git skips a line it cannot read as a pattern ("!", "/"); so do we
        return _NOOP


def _body(line: str) -> str:
    body = line.rstrip()
    return body[1:] if body.startswith("!") else body


def _by_name(line: str) -> bool:
    """Whether the pattern tests a name at any depth: it has no slash but a trailing one."""
    body = _body(line).rstrip("/")
    while body.startswith("**/"):
        body = body[3:]
    return "/" not in body


def _literal_prefix(line: str) -> str:
    """What every path a slash pattern matches starts with (its text up to a wildcard)."""
    body = _body(line).lstrip("/")
    glob = _GLOB.search(body)
    return body[: glob.start()] if glob else body


def _alternatives(sources: list[str]) -> str | None:
    return "(?s:" + "|".join(f"(?:{s})" for s in sources) + ")" if sources else None


def _compile(source: str | None) -> re.Pattern[str] | None:
    if source is None:
        return None
    try:
        return re.compile(source)
    except re.error:  # never expected; then every path gets the exact test, only slower
        return re.compile("")


# An ignore file in force: (its rules, the current folder relative to the file's folder).
_Active = tuple[tuple[_Rules, str], ...]


def _read_rules(folder: str, names: set[str] | None, shown_as: str) -> _Rules | None:
    for name in IGNORE_FILES:
        if names is not None and name not in names:
            continue
        path = os.path.join(folder, name)
        try:
            with open(path, encoding="utf-8-sig", errors="replace") as f:
                text = f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError as err:
            raise MlformError(f"cannot read {path}: {err}; fix its permissions") from err
        return _Rules(f"{shown_as}{name}", text)
    return None


def _decide(active: _Active, tail: str) -> tuple[_Rules, int] | None:
    """The rule excluding `tail`: the deepest ignore file with a matching line decides."""
    for rules, rel in active:
        index = rules.decide(rel, tail)
        if index is not None:
            return (rules, index) if index >= 0 else None
    return None


def _parent_rules(root: Path, repo: Path) -> _Active:
    """The ignore files of the folders from the repository root down to above `root`.

    A rule that would exclude `root` itself (or a folder on the way to it) is dropped:
    the folder was asked for by name, and git would otherwise hide all of it.
    """
    active: _Active = ()
    chain = root.relative_to(repo).parts
    for depth, name in enumerate(chain):
        shown_as = "".join(f"{part}/" for part in chain[:depth])
        rules = _read_rules(str(repo.joinpath(*chain[:depth])), None, shown_as)
        if rules is not None:
            active = ((rules, ""), *active)
        while (hit := _decide(active, f"{name}/")) is not None:
            active = tuple((r.without(hit[1]) if r is hit[0] else r, rel) for r, rel in active)
        active = tuple((r, f"{rel}{name}/") for r, rel in active)
    return active


# --- the walk ---------------------------------------------------------------------------


def _walk(
    root: Path,
    repo: Path,
    parents: _Active,
    hasher: Hasher,
    files: list[FileEntry],
    excluded: list[Excluded] | None,
) -> None:
    shown_root = "" if root == repo else root.relative_to(repo).as_posix() + "/"
    digest = hasher._digest  # a str key, not a Path per file: trees hold many thousands
    by_name: dict[tuple[_Rules, ...], re.Pattern[str] | None] = {}  # keeps its keys alive
    # Folders are followed through symbolic links; one that leads back to a folder above
    # it would never end, so each stack item carries the (device, inode) of its ancestors.
    stack: list[tuple[str, str, _Active, frozenset[tuple[int, int]]]] = [
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
            rules = _read_rules(folder, names, shown_root + prefix)
            if rules is not None:
                active = ((rules, ""), *active)
        # What could match here: the name patterns of every ignore file in force, as one
        # regex, and the path patterns of those whose literal prefix fits this folder.
        in_force = tuple(r for r, _ in active)
        if in_force not in by_name:
            by_name[in_force] = _compile(
                _alternatives([r.name_source for r, _ in active if r.name_source is not None])
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
                hit = _decide(active, tail)
                if hit is not None:
                    if excluded is not None:
                        rules, index = hit
                        line = rules.lines[index]
                        excluded.append(Excluded(prefix + tail, rules.name, index + 1, line))
                    continue
            if is_file:
                try:
                    st = entry.stat()
                    files.append(FileEntry(prefix + name, st.st_size, digest(entry.path, st)))
                except OSError as err:
                    raise MlformError(f"cannot read {entry.path} for a snapshot: {err}") from err
            else:
                inner = tuple((r, rel + tail) for r, rel in active)
                stack.append((entry.path, prefix + tail, inner, above))


def _by_path(item: FileEntry | Excluded) -> str:
    return item.relpath


# --- zip --------------------------------------------------------------------------------


def _write_zip(snapshot: Snapshot, archive: Path) -> None:
    top = str(snapshot.root)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for entry in snapshot.files:
            path = os.path.join(top, entry.relpath)
            info = zipfile.ZipInfo(entry.relpath, date_time=_EPOCH)
            info.create_system = 3  # unix, so that the mode below is read back
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = entry.size
            try:
                with open(path, "rb") as src:
                    mode = 0o755 if os.fstat(src.fileno()).st_mode & 0o111 else 0o644
                    info.external_attr = (stat.S_IFREG | mode) << 16
                    sha = hashlib.sha256()
                    with zf.open(info, "w") as dst:
                        while chunk := src.read(_CHUNK):
                            sha.update(chunk)
                            dst.write(chunk)
            except OSError as err:
                raise MlformError(f"cannot add {path} to the snapshot: {err}") from err
            if sha.hexdigest() != entry.sha256:
                raise MlformError(
                    f"{path} changed while its snapshot was being stored; run the command again"
                )


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
