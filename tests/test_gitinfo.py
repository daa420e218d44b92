"""Git info of real repositories: commit, branch, remote, the dirty flag and the author."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlform.gitinfo import NOT_IN_GIT, GitInfo, describe, without_credentials


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    settings = ["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    done = subprocess.run(
        ["git", *identity, *settings, *args], cwd=repo, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / ".gitignore").write_text("outputs/\n")
    (root / "src").mkdir()
    (root / "src" / "train.py").write_text("print('train')\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    git(root, "remote", "add", "origin", "https://example.com/team/ml.git")
    return root


def test_a_clean_repository(repo: Path) -> None:
    assert describe(repo / "src") == GitInfo(
        commit=git(repo, "rev-parse", "HEAD"),
        branch="main",
        remote="https://example.com/team/ml.git",
        dirty=False,
        root=str(repo),
        author="Test <test@example.com>",
    )


def test_editing_a_tracked_file_makes_it_dirty(repo: Path) -> None:
    (repo / "src" / "train.py").write_text("print('changed')\n")
    assert describe(repo / "src" / "train.py").dirty is True


def test_an_untracked_file_makes_it_dirty_an_ignored_one_does_not(repo: Path) -> None:
    (repo / "outputs").mkdir()
    (repo / "outputs" / "model.pkl").write_text("weights")
    assert describe(repo).dirty is False
    (repo / "src" / "new.py").write_text("")
    assert describe(repo).dirty is True


def test_a_staged_change_makes_it_dirty(repo: Path) -> None:
    (repo / "src" / "train.py").write_text("print('staged')\n")
    git(repo, "add", "src/train.py")
    assert describe(repo).dirty is True


def test_a_detached_head_has_no_branch(repo: Path) -> None:
    (repo / "src" / "train.py").write_text("print('second')\n")
    git(repo, "commit", "-q", "-am", "second")
    first = git(repo, "rev-parse", "HEAD~1")
    git(repo, "checkout", "-q", "--detach", first)
    info = describe(repo)
    assert (info.commit, info.branch, info.dirty) == (first, None, False)


def test_another_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature/x")
    assert describe(repo).branch == "feature/x"


def test_the_first_remote_when_there_is_no_origin(repo: Path) -> None:
    git(repo, "remote", "rename", "origin", "upstream")
    git(repo, "remote", "add", "mirror", "git@example.com:team/ml.git")
    assert describe(repo).remote in (
        "https://example.com/team/ml.git",
        "git@example.com:team/ml.git",
    )
    git(repo, "remote", "remove", "upstream")
    assert describe(repo).remote == "git@example.com:team/ml.git"
    git(repo, "remote", "remove", "mirror")
    assert describe(repo).remote is None


def test_a_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    info = describe(tmp_path)
    assert (info.commit, info.branch, info.remote, info.dirty) == (None, "main", None, False)
    assert info.root == str(tmp_path)


def test_a_folder_reached_through_a_symlink(repo: Path, tmp_path: Path) -> None:
    """git looks for `.git` above the real path, so does describe()."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "code").symlink_to(repo / "src")
    info = describe(tmp_path / "elsewhere" / "code")
    assert (info.commit, info.root) == (git(repo, "rev-parse", "HEAD"), str(repo))


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    assert describe(tmp_path / "code") == NOT_IN_GIT
    assert describe(tmp_path / "missing") == NOT_IN_GIT


def test_without_git_installed(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import git as gitpython  # noqa: F401  # loaded while git exists, as in a long-lived process

    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert describe(repo) == NOT_IN_GIT


def test_without_git_installed_from_the_start(repo: Path, tmp_path: Path) -> None:
    """gitpython refuses to import when it finds no git; describe() still answers."""
    script = (
        "import pathlib, sys; from mlform.gitinfo import describe; "
        "print(describe(pathlib.Path(sys.argv[1])))"
    )
    env = {**os.environ, "PATH": str(tmp_path / "no-bin")}
    env.pop("GIT_PYTHON_REFRESH", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(repo)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == f"{NOT_IN_GIT}\n"


def test_credentials_never_leave_the_remote_url(repo: Path) -> None:
    git(repo, "remote", "set-url", "origin", "https://user:s3cret@example.com/team/ml.git")
    assert describe(repo).remote == "https://example.com/team/ml.git"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://u:p@example.com:8443/o/r", "https://example.com:8443/o/r"),
        ("ssh://git@example.com/o/r.git", "ssh://git@example.com/o/r.git"),
        ("ssh://me:pw@example.com/o/r.git", "ssh://example.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_without_credentials(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def test_mlforms_own_folder_does_not_make_it_dirty(repo: Path) -> None:
    state = repo / ".mlform"
    (state / "runs" / "train_1").mkdir(parents=True)
    (state / "state.duckdb").write_bytes(b"state")
    assert describe(repo, ignore=[state]).dirty is False
    assert describe(repo).dirty is True  # the folder is not git-ignored here
    (repo / "src" / "new.py").write_text("")
    assert describe(repo / "src", ignore=[state]).dirty is True


def test_a_committed_state_folder_changing_does_not_make_it_dirty(repo: Path) -> None:
    state = repo / ".mlform"
    state.mkdir()
    (state / "state.duckdb").write_bytes(b"serial 1")
    git(repo, "add", ".mlform")
    git(repo, "commit", "-q", "-m", "state")
    (state / "state.duckdb").write_bytes(b"serial 2")
    assert describe(repo, ignore=[state, repo.parent / "elsewhere"]).dirty is False
