"""Source snapshots on real folders: ignore rules as git and Azure ML apply them, digests,
stored zips and their restoration."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from mlform import hashing, snapshot
from mlform.errors import MlformError, NotFound
from mlform.hashing import Hasher
from mlform.snapshot import Excluded
from mlform.storage.local import LocalStorage


def write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def git_init(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def scan(root: Path, repo_root: Path | None = None, explain: bool = False) -> snapshot.Snapshot:
    return snapshot.scan(root, Hasher(None), repo_root=repo_root, explain=explain)


def included(root: Path, repo_root: Path | None = None) -> list[str]:
    return [entry.relpath for entry in scan(root, repo_root).files]


def test_ignore_files_apply_to_their_own_folder_and_below(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "*.log\n",
            "train.py": "",
            "run.log": "",
            "lib/.gitignore": "/local.txt\n*.tmp\n",
            "lib/local.txt": "",
            "lib/deep/local.txt": "",
            "lib/deep/x.log": "",
            "lib/a.tmp": "",
            "b.tmp": "",
        },
    )
    assert included(tmp_path) == [
        ".gitignore",
        "b.tmp",
        "lib/.gitignore",
        "lib/deep/local.txt",
        "train.py",
    ]


def test_amlignore_wins_over_gitignore_in_its_folder(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".amlignore": "data/\n",
            ".gitignore": "*.py\n",
            "train.py": "",
            "data/big.csv": "",
            "sub/.gitignore": "*.csv\n",
            "sub/small.csv": "",
            "sub/score.py": "",
        },
    )
    assert included(tmp_path) == [
        ".amlignore",
        ".gitignore",
        "sub/.gitignore",
        "sub/score.py",
        "train.py",
    ]


def test_ignore_files_of_folders_above_apply_up_to_the_repository_root(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "*.py\n"})  # outside the repository: not applied
    repo = git_init(tmp_path / "repo")
    write(
        repo,
        {
            ".gitignore": "*.csv\n/top.txt\nsrc/generated/\n",
            "src/train.py": "",
            "src/data.csv": "",
            "src/top.txt": "",
            "src/generated/model.py": "",
        },
    )
    code = repo / "src"
    assert included(code) == ["top.txt", "train.py"]
    assert scan(code, explain=True).excluded == (
        Excluded("data.csv", ".gitignore", 1, "*.csv"),
        Excluded("generated/", ".gitignore", 3, "src/generated/"),
    )
    # without a repository only the folder's own ignore files count
    assert included(code, repo_root=code) == [
        "data.csv",
        "generated/model.py",
        "top.txt",
        "train.py",
    ]


def test_a_rule_above_that_ignores_the_code_folder_itself_is_not_applied(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    write(repo, {".gitignore": "/build/\n*.o\n", "build/app.py": "", "build/app.o": ""})
    assert included(repo / "build") == ["app.py"]


def test_negation_reincludes_and_deeper_files_override(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\n*.csv\n",
            "a.log": "",
            "keep.log": "",
            "sub/keep.log": "",
            "sub/.gitignore": "!wanted.csv\n",
            "sub/wanted.csv": "",
            "sub/other.csv": "",
        },
    )
    assert included(tmp_path) == [
        ".gitignore",
        "keep.log",
        "sub/.gitignore",
        "sub/keep.log",
        "sub/wanted.csv",
    ]


def test_an_ignored_folder_is_not_entered(tmp_path: Path) -> None:
    files = {f".venv/lib/m{i}.py": "" for i in range(50)}
    files[".venv/.gitignore"] = "!*\n"  # git never reads it: its folder is ignored
    write(tmp_path, {".gitignore": ".venv/\n", "train.py": "", **files})
    result = scan(tmp_path, explain=True)
    assert [e.relpath for e in result.files] == [".gitignore", "train.py"]
    assert result.excluded == (Excluded(".venv/", ".gitignore", 1, ".venv/"),)


def test_built_in_folders_are_always_left_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            ".gitignore": "!__pycache__/\n",
            ".git/HEAD": "",
            ".mlform/state.duckdb": "",
            "__pycache__/a.pyc": "",
            "pkg/__pycache__/b.pyc": "",
            "pkg/mod.py": "",
        },
    )
    result = scan(tmp_path, explain=True)
    assert [e.relpath for e in result.files] == [".gitignore", "pkg/mod.py"]
    assert result.excluded == (
        Excluded(".git/", "(built in)", 0, ".git/"),
        Excluded(".mlform/", "(built in)", 0, ".mlform/"),
        Excluded("__pycache__/", "(built in)", 0, "__pycache__/"),
        Excluded("pkg/__pycache__/", "(built in)", 0, "__pycache__/"),
    )


def test_explain_names_each_left_out_path_with_its_file_line_and_pattern(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    write(
        repo,
        {
            ".gitignore": "# outputs\n\noutputs/\n*.log\n!keep.log\n",
            "code/.amlignore": "\n/data/*\n!/data/schema.json\n",
            "code/.gitignore": "*\n",  # shadowed by .amlignore
            "code/train.py": "",
            "code/run.log": "",
            "code/keep.log": "",
            "code/outputs/model.pkl": "",
            "code/data/big.csv": "",
            "code/data/schema.json": "",
        },
    )
    result = scan(repo / "code", explain=True)
    assert [e.relpath for e in result.files] == [
        ".amlignore",
        ".gitignore",
        "data/schema.json",
        "keep.log",
        "train.py",
    ]
    assert result.excluded == (
        Excluded("data/big.csv", "code/.amlignore", 2, "/data/*"),
        Excluded("outputs/", ".gitignore", 3, "outputs/"),
        Excluded("run.log", ".gitignore", 4, "*.log"),
    )
    assert scan(repo / "code").excluded == ()


def test_the_same_files_as_git(tmp_path: Path) -> None:
    """A tree of tricky rules; git's own list of the files it does not ignore is the truth."""
    repo = git_init(tmp_path / "repo")
    write(
        repo,
        {
            ".gitignore": (
                "*.log\n!important.log\nbuild/\n/root_only.txt\ndocs/*.md\n**/tmp\n"
                "a/**/z.txt\ncache\nspaces\\ \n[Tt]emp*\n"
            ),
            "x.log": "",
            "important.log": "",
            "root_only.txt": "",
            "sub/root_only.txt": "",
            "build/out.bin": "",
            "sub/build": "a file, not a folder",
            "docs/index.md": "",
            "docs/api/ref.md": "",
            "tmp/t": "",
            "deep/er/tmp/t": "",
            "a/z.txt": "",
            "a/b/c/z.txt": "",
            "cache/c": "",
            "x/cache": "",
            "spaces ": "",
            "Temp1": "",
            "temp2/f": "",
            "keep/.gitignore": "!*.log\n/only_here\n",
            "keep/y.log": "",
            "keep/only_here": "",
            "keep/deeper/only_here": "",
            "white/.gitignore": "*\n!*/\n!*.py\n",
            "white/a.py": "",
            "white/a.txt": "",
            "white/in/b.py": "",
            "white/in/b.txt": "",
            "re/.gitignore": "logs/\n!logs/\n",
            "re/logs/l.txt": "",
            "plain.py": "",
            "p/.gitignore": "a/*\nfoo/**\n**/deep/**\n/*.cfg\n\\#hash\n\\!bang\n",
            "p/a/x": "",
            "p/a/y/z": "",
            "p/foo/bar/baz": "",
            "p/foo.txt": "",
            "p/q/deep/r/s": "",
            "p/set.cfg": "",
            "p/q/set.cfg": "",
            "p/#hash": "",
            "p/!bang": "",
            "g/.gitignore": "*.txt\n",
            "g/x/.gitignore": "!gen/\n",
            "g/x/gen/f.txt": "",
            "g/x/gen/f.py": "",
            "d/.gitignore": "*/\n!keep/\n",
            "d/top.txt": "",
            "d/drop/f": "",
            "d/keep/f": "",
            "d/keep/inner/f": "",
            "s/.gitignore": "x/**/\n",
            "s/x/f": "",
            "s/x/y/f": "",
            "t/.gitignore": "/**\n!keep\n",
            "t/a": "",
            "t/keep": "",
            "u/.gitignore": "a/**\n!a/b.txt\n",
            "u/a/b.txt": "",
            "u/a/c": "",
        },
    )
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert included(repo) == sorted(name for name in listed.split("\0") if name)


def test_digest_is_stable_and_follows_content(tmp_path: Path) -> None:
    write(tmp_path, {".gitignore": "*.log\n", "train.py": "print(1)\n", "lib/util.py": "x = 1\n"})
    first = scan(tmp_path)
    assert scan(tmp_path).digest == first.digest
    assert first.digest == hashing.tree_digest(first.files)
    assert first.size == len("*.log\n") + len("print(1)\n") + len("x = 1\n")
    write(tmp_path, {"run.log": "ignored"})
    assert scan(tmp_path).digest == first.digest
    write(tmp_path, {"lib/util.py": "x = 2\n"})
    assert scan(tmp_path).digest != first.digest


def test_an_unchanged_tree_is_rechecked_from_the_stat_cache(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {f"pkg/m{i}.py": f"x = {i}\n" for i in range(20)})
    old = time.time() - 60  # older than the stat cache's racy window
    for path in code.rglob("*.py"):
        os.utime(path, (old, old))
    cache = tmp_path / "hashes.json"
    hasher = Hasher(cache)
    first = snapshot.scan(code, hasher)
    hasher.save()
    # Same size, same mtime, same inode: the file is not read again (as git trusts its
    # index), so new bytes written behind the cache's back go unnoticed…
    target = code / "pkg/m3.py"
    target.write_text("x = 9\n")
    os.utime(target, (old, old))
    assert snapshot.scan(code, Hasher(cache)).digest == first.digest
    # …while any stat change makes it read again.
    os.utime(target, (old + 1, old + 1))
    assert snapshot.scan(code, Hasher(cache)).digest != first.digest


def test_identical_snapshots_are_stored_once(tmp_path: Path) -> None:
    files = {"train.py": "print(1)\n", "lib/util.py": "x = 1\n"}
    one = scan(write(tmp_path / "one", files))
    two = scan(write(tmp_path / "two", files))
    storage = LocalStorage(tmp_path / "store")
    key = snapshot.store(one, storage)
    assert key == f"snapshots/{one.digest}.zip" == snapshot.key(one.digest)
    assert snapshot.store(two, storage) == key
    assert [p.relative_to(storage.root).as_posix() for p in storage.root.rglob("*")] == [
        "snapshots",
        key,
    ]


def test_the_zip_depends_on_content_only(tmp_path: Path) -> None:
    files = {"b.py": "b\n", "a/x.py": "x\n"}
    one = write(tmp_path / "one", files)
    two = write(tmp_path / "two", files)
    os.utime(two / "b.py", (1, 1))
    stores = [LocalStorage(tmp_path / "s1"), LocalStorage(tmp_path / "s2")]
    keys = [snapshot.store(scan(root), s) for root, s in zip((one, two), stores, strict=True)]
    blobs = [(s.root / k).read_bytes() for s, k in zip(stores, keys, strict=True)]
    assert blobs[0] == blobs[1]
    with zipfile.ZipFile(stores[0].root / keys[0]) as zf:
        assert zf.namelist() == ["a/x.py", "b.py"]


def test_extract_restores_files_and_executable_bits(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {"run.sh": "#!/bin/sh\necho hi\n", "lib/util.py": "x = 1\n"})
    (code / "run.sh").chmod(0o750)
    (code / "lib/util.py").chmod(0o600)
    storage = LocalStorage(tmp_path / "store")
    original = scan(code)
    key = snapshot.store(original, storage)

    dest = tmp_path / "restored"
    snapshot.extract(storage, key, dest)
    assert scan(dest).digest == original.digest
    assert (dest / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "lib/util.py").stat().st_mode & 0o777 == 0o644
    ran = subprocess.run([str(dest / "run.sh")], check=True, capture_output=True, text=True)
    assert ran.stdout == "hi\n"


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt", "a\\..\\x"])
def test_extract_refuses_paths_outside_the_destination(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok")
        zf.writestr(name, "gotcha")
    storage = LocalStorage(tmp_path / "store")
    storage.put(archive, "snapshots/bad.zip")
    dest = tmp_path / "out" / "dest"
    with pytest.raises(MlformError, match="unsafe entry"):
        snapshot.extract(storage, "snapshots/bad.zip", dest)
    assert not (tmp_path / "out").exists()


def test_extract_refuses_to_write_through_a_link_in_the_destination(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {"lib/util.py": "x = 1\n"})
    storage = LocalStorage(tmp_path / "store")
    key = snapshot.store(scan(code), storage)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "lib").symlink_to(outside)
    with pytest.raises(MlformError, match="outside"):
        snapshot.extract(storage, key, dest)
    assert list(outside.iterdir()) == []


def test_extract_of_an_unknown_snapshot_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"snapshots/nope\.zip is not in"):
        snapshot.extract(LocalStorage(tmp_path), "snapshots/nope.zip", tmp_path / "d")


def test_a_file_changed_after_the_scan_is_not_stored_as_if_unchanged(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {"train.py": "print(1)\n"})
    scanned = scan(code)
    write(code, {"train.py": "print(2)\n"})
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(MlformError, match="changed while its snapshot was being stored"):
        snapshot.store(scanned, storage)
    assert not storage.exists(snapshot.key(scanned.digest))


def test_symbolic_links_are_followed_without_looping(tmp_path: Path) -> None:
    write(tmp_path, {"workspace.yml": "name: links\n"})
    code = write(tmp_path / "code", {"lib/util.py": "x = 1\n"})
    shared = write(tmp_path / "shared", {"helpers.py": "y = 2\n"})
    (code / "shared").symlink_to(shared)
    (code / "lib" / "loop").symlink_to(code / "lib")
    (code / "alias").symlink_to(code / "lib")
    (code / "dangling.py").symlink_to(tmp_path / "missing.py")
    assert included(code) == ["alias/util.py", "lib/util.py", "shared/helpers.py"]


def test_a_link_leading_outside_the_workspace_is_refused_unless_ignored(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"workspace.yml": "name: links\n", "src/train.py": "x\n"})
    write(tmp_path / "host", {"ssh/id_rsa": "secret\n"})
    (root / "src" / "etc").symlink_to(tmp_path / "host" / "ssh")
    (root / "src" / "key").symlink_to(tmp_path / "host" / "ssh" / "id_rsa")
    with pytest.raises(MlformError) as caught:
        scan(root / "src")
    assert str(caught.value) == (
        f"code folder {root}/src: etc is a symbolic link to {tmp_path}/host/ssh, outside "
        f"{root}; move what it points at into {root}, or add etc to the code folder's "
        ".amlignore to leave the link out of the snapshot"
    )
    (root / "src" / ".amlignore").write_text("etc\nkey\n")
    assert included(root / "src") == [".amlignore", "train.py"]


def test_a_link_inside_the_git_repository_is_followed(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    write(repo, {"ml/workspace.yml": "name: links\n", "ml/src/a.py": "a\n", "lib/b.py": "b\n"})
    (repo / "ml" / "src" / "lib").symlink_to(repo / "lib")
    assert included(repo / "ml" / "src") == ["a.py", "lib/b.py"]


def test_a_missing_code_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MlformError, match="does not exist or is not a folder"):
        scan(tmp_path / "nope")


def test_copying_a_tree_keeps_its_digest(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {"a.py": "a\n", "b/c.py": "c\n"})
    shutil.copytree(code, tmp_path / "copy")
    assert scan(code).digest == scan(tmp_path / "copy").digest
