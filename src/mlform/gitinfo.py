"""Where a run's code came from in git: commit, branch, remote and whether it was dirty.

The only module that imports gitpython, and only when asked: the import costs a fraction of
a second and fails outright when git itself is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import git


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
    """
    try:
        # start-up: gitpython, only when a run records its commit
        import git
    except ImportError:  # gitpython refuses to import when no git executable is found
        return NOT_IN_GIT
    folder = path if path.is_dir() else path.parent
    try:
        repo = git.Repo(folder, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return NOT_IN_GIT
    with repo:
        if repo.bare or repo.working_tree_dir is None:
            return NOT_IN_GIT
        try:
            head = repo.head.commit
            commit: str | None = head.hexsha
            author: str | None = f"{head.author.name} <{head.author.email}>"
        except ValueError:  # no commit yet
            commit = author = None
        except git.GitError:  # git went missing after the import
            return NOT_IN_GIT
        branch = None if repo.head.is_detached else repo.head.reference.name
        try:
            # One `git status` covers index, working tree and untracked files; no index
            # refresh, so that a concurrent git command never meets our lock.
            status = repo.git(no_optional_locks=True).status(
                "--porcelain",
                "--untracked-files=normal",
                "--",
                ":/",
                *_excluded(Path(repo.working_tree_dir), ignore),
            )
            dirty: bool | None = bool(status.strip())
        except git.GitError:
            dirty = None
        return GitInfo(
            commit=commit,
            branch=branch,
            remote=_remote(repo),
            dirty=dirty,
            root=str(repo.working_tree_dir),
            author=author,
        )


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


def _remote(repo: git.Repo) -> str | None:
    remotes = list(repo.remotes)
    if not remotes:
        return None
    chosen = next((r for r in remotes if r.name == "origin"), remotes[0])
    try:
        url = chosen.url  # read from the config: no git process
    except AttributeError:  # a remote section without a url
        return None
    return without_credentials(url)


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
