"""Where a run's code came from in git: commit, branch, remote and whether it was dirty.

The only module that imports gitpython, and only to clone, fetch and compare (the agent's
checkout): the import costs a fraction of a second and fails outright when git itself is
not installed. What a run records is asked of git directly.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class GitInfo:
    commit: str | None
    branch: str | None  # None when HEAD is detached
    remote: str | None  # origin's URL (else the first remote's), without credentials
    dirty: bool | None  # tracked files changed, or untracked files that are not ignored
    root: str | None  # the repository's working tree
    author: str | None = None  # of the commit: `Name <email>`


NOT_IN_GIT = GitInfo(commit=None, branch=None, remote=None, dirty=None, root=None)


def describe(path: Path, ignore: Sequence[Path] = ()) -> GitInfo:
    """The git state of the repository holding `path`; all None outside git or without git.

    Changes under the `ignore` folders (mlform's own state and caches, written by every
    apply) do not make the work tree dirty, whether or not the user's .gitignore lists them.
    Asked of git itself, in four short commands (every apply asks, and gitpython alone
    takes longer to import).
    """
    folder = path if path.is_dir() else path.parent
    if not _in_work_tree(folder):
        return NOT_IN_GIT
    top = _git(folder, "rev-parse", "--show-toplevel")  # fails in a bare repository
    if not top:
        return NOT_IN_GIT
    root = Path(top.strip())
    commit = author = None
    last = _git(
        root, "log", "-1", "--no-show-signature", "--format=%H%x00%an%x00%ae"
    )  # fails before a commit
    if last and last.count("\0") == 2:
        commit, name, email = last.strip("\n").split("\0")
        author = f"{name} <{email}>"
    # One `git status` covers index, working tree and untracked files, and names the
    # branch; no index refresh, so that a concurrent git command never meets our lock.
    status = _git(
        root,
        "--no-optional-locks",
        "status",
        "--porcelain=v2",
        "--branch",
        "--untracked-files=normal",
        "--",
        ":/",
        *_excluded(root, ignore),
    )
    branch = dirty = None
    if status is not None:
        lines = status.splitlines()
        head = next((ln.split(" ", 2)[2] for ln in lines if ln.startswith("# branch.head ")), None)
        branch = None if head in (None, "(detached)") else head
        dirty = any(not ln.startswith("#") for ln in lines)
    return GitInfo(
        commit=commit,
        branch=branch,
        remote=_remote(root),
        dirty=dirty,
        root=str(root),
        author=author,
    )


def _git(folder: Path, *args: str) -> str | None:
    """What `git ARGS` in `folder` prints; None if it fails or git is not installed."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _in_work_tree(folder: Path) -> bool:
    """Whether `folder` may be in a work tree: a `.git` (folder, or file of a worktree or
    submodule) in it or above, or GIT_DIR set, as git looks for one: from the folder's
    real path, symlinks followed. Saves starting git where there is none."""
    if os.environ.get("GIT_DIR"):
        return True
    real = folder.resolve()
    return any((parent / ".git").exists() for parent in (real, *real.parents))


def _excluded(root: Path, ignore: Sequence[Path]) -> list[str]:
    """Pathspecs leaving out each `ignore` folder that lies inside the work tree at `root`."""
    specs = []
    for folder in ignore:
        try:
            relative = folder.resolve().relative_to(root.resolve())
        except ValueError:  # outside this repository: git does not see it anyway
            continue
        if relative.parts:
            specs.append(f":(top,exclude){relative.as_posix()}")
    return specs


def _remote(root: Path) -> str | None:
    """origin's URL, else the first remote's (in the order of the config), credentials
    left out."""
    listed = _git(root, "config", "--get-regexp", r"^remote\..*\.url$") or ""
    urls: dict[str, str] = {}
    for line in listed.splitlines():
        key, _, url = line.partition(" ")
        urls.setdefault(key.removeprefix("remote.").removesuffix(".url"), url)
    chosen = urls.get("origin", next(iter(urls.values()), None))
    return without_credentials(chosen) if chosen else None


def without_credentials(url: str) -> str:
    """`url` minus a user:token part, which must not end up in the state or a plan."""
    parts = urlsplit(url)
    if not parts.scheme or parts.hostname is None or "@" not in parts.netloc:
        return url  # scp-like (git@host:org/repo) or a local path: nothing secret
    if parts.scheme not in ("http", "https") and parts.password is None:
        return url  # ssh://git@host/…: the user name is part of the address
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=host))


def follow(source: str, branch: str, folder: Path) -> str:
    """Clone `source` into `folder` (or fetch, if done before), move the working tree to
    the head of `branch`, and return that commit. Untracked files are removed; ignored
    ones (`.mlform/`) are kept. ValueError, with git's own last line, if it fails."""
    import git

    try:
        if not (folder / ".git").exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.clone_from(source, folder, branch=branch)
        else:
            repo = git.Repo(folder)
            repo.remotes.origin.fetch(branch)
        head = repo.commit(f"origin/{branch}").hexsha
        repo.git.checkout("--detach", "--force", head)
        repo.git.clean("-fd")
    except (git.GitCommandError, git.InvalidGitRepositoryError, ValueError) as err:
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise ValueError(lines[-1].strip()) from err
    return str(head)


def relation(path: Path, commit: str) -> tuple[int, int] | None:
    """(ahead, behind): how many commits the checkout at `path` has that `commit` has not,
    and the reverse; None outside git, or when the checkout does not have `commit`."""
    import git

    try:
        repo = git.Repo(path, search_parent_directories=True)
        counts = repo.git.rev_list("--left-right", "--count", f"HEAD...{commit}")
    except (git.GitCommandError, git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None
    ahead, behind = (int(n) for n in counts.split())
    return ahead, behind
