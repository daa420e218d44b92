"""The state file: refused when unsafe, never overwritten, upgraded by named migrations."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import pytest

from mlform.state.migrations import MIGRATIONS
from mlform.state.store import Store
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

SMALL = {
    "workspace.yml": "name: small\nstate: custom/place/state.duckdb\n",
    "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
    "data/x.csv": "a,b\n1,2\n",
}


def test_state_path_is_configurable_and_migrations_are_recorded(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(SMALL)
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / "custom" / "place" / "state.duckdb"
    assert state.is_file()
    assert not (root / ".mlform" / "state.duckdb").exists()
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute("select name from migrations").fetchall() == [
            (m.name,) for m in MIGRATIONS
        ]
        serial = con.execute("select serial from meta").fetchone()
        assert serial == (2,)  # one transaction per change: the datastore, then the data
        statuses = con.execute("select status from applies").fetchall()
        assert statuses == [("succeeded",)]
    listed = cli("state", "list", cwd=root)
    assert listed.out.splitlines()[:2] == ["data/x", "datastore/workspaceblobstore"]
    assert "serial 2" in listed.out


def test_corrupted_state_is_refused_and_left_untouched(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    state = root / "custom" / "place" / "state.duckdb"
    state.parent.mkdir(parents=True)
    garbage = b"this is not a database\n" * 400
    state.write_bytes(garbage)
    for command in (("plan",), ("apply", "--yes"), ("data", "list")):
        ran = cli(*command, cwd=root)
        assert ran.code == 1, command
        assert f"error: {state} is not a readable mlform state (" in ran.err
        assert "mlform will not overwrite it: restore it from a backup" in ran.err
        assert "Traceback" not in ran.err
    assert state.read_bytes() == garbage


def test_foreign_duckdb_file_is_refused(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    state = root / "custom" / "place" / "state.duckdb"
    state.parent.mkdir(parents=True)
    with duckdb.connect(str(state)) as con:
        con.execute("create table customers (id integer)")
    before = state.read_bytes()
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 1
    assert "is a DuckDB database but not an mlform state" in ran.err
    assert state.read_bytes() == before


def test_state_from_a_newer_mlform_is_refused(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / "custom" / "place" / "state.duckdb"
    with duckdb.connect(str(state)) as con:
        con.execute("insert into migrations values ('0099_from_the_future', now(), '9.0.0')")
        con.execute("update meta set written_by = 'mlform 9.0.0'")
    before = state.read_bytes()
    ran = cli("plan", cwd=root)
    assert ran.code == 1
    assert "was written by a newer mlform (mlform 9.0.0; schema 0099_from_the_future)" in ran.err
    assert "Upgrade mlform to use it" in ran.err
    assert state.read_bytes() == before


HOLD = """
import sys, time
from pathlib import Path
from mlform.state.lock import StateLock
lock = StateLock(Path(sys.argv[1]))
lock.acquire("apply")
print(lock.info.id, flush=True)
time.sleep(60)
"""


def test_force_unlock_removes_a_stuck_lock(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    state = root / "custom" / "place" / "state.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        lock_id = holder.stdout.readline().strip()
        refused = cli("apply", "--yes", cwd=root)
        assert refused.code == 1
        assert f"`mlform apply` (lock ID {lock_id}, pid {holder.pid} on " in refused.err
        assert f"run `mlform force-unlock {lock_id}`" in refused.err

        wrong = cli("force-unlock", "nope", cwd=root)
        assert wrong.code == 1
        assert f"lock ID nope does not match the current lock {lock_id}" in wrong.err

        unlocked = cli("force-unlock", lock_id, cwd=root)
        assert unlocked.code == 0
        assert unlocked.out.startswith(f"Removed lock {lock_id}, held by `mlform apply`")
        assert cli("apply", "--yes", cwd=root).code == 0
        again = cli("force-unlock", lock_id, cwd=root)
        assert "is not locked; nothing to unlock" in again.err
    finally:
        holder.kill()
        holder.communicate()


def test_a_state_from_an_older_mlform_upgrades_itself(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / "custom" / "place" / "state.duckdb"
    with duckdb.connect(str(state)) as con:  # make it what the first release wrote
        later = ("experiments", "runs", "params", "tags", "metrics", "artifacts", "snapshots")
        for table in (*later, "models", "images", "deployments", "step_runs"):
            con.execute(f"drop table {table}")
        con.execute("delete from migrations where name <> '0001_initial'")

    plan = cli("plan", "--detailed-exitcode", cwd=root)  # a reader: upgrades, then reads
    assert plan.code == 0, plan.out + plan.err
    with duckdb.connect(str(state), read_only=True) as con:
        names = [
            row[0] for row in con.execute("select name from migrations order by name").fetchall()
        ]
        assert names == [m.name for m in MIGRATIONS]
        assert con.execute("select count(*) from runs").fetchone() == (0,)
    assert cli("data", "show", "x", cwd=root).code == 0  # nothing lost on the way


def modes(root: Path, *names: str) -> dict[str, str]:
    return {name: oct(stat.S_IMODE((root / name).stat().st_mode)) for name in names}


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_the_state_and_its_side_files_are_its_owners_only_whatever_the_umask(
    cli: Cli, make_workspace: Make, umask: int
) -> None:
    root = make_workspace({**SMALL, "workspace.yml": "name: small\n"})
    before = os.umask(umask)
    try:
        assert cli("apply", "--yes", cwd=root).code == 0
        assert cli("plan", cwd=root).code == 0  # a reader keeps its reads beside the state
        with Store.open(root / ".mlform" / "state.duckdb", "test", write=True) as store:
            with store.transaction() as con:
                con.execute("update meta set written_by = 'test'")
            wal = modes(root, ".mlform/state.duckdb.wal")
    finally:
        os.umask(before)
    assert modes(
        root,
        ".mlform",
        ".mlform/state.duckdb",
        ".mlform/state.duckdb.lock",
        ".mlform/state.duckdb.reads",
    ) == {
        ".mlform": "0o700",
        ".mlform/state.duckdb": "0o600",
        ".mlform/state.duckdb.lock": "0o600",
        ".mlform/state.duckdb.reads": "0o600",
    }
    assert wal == {".mlform/state.duckdb.wal": "0o600"}


def test_folders_made_for_the_state_are_private_and_an_older_state_is_made_so(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(SMALL)  # state: custom/place/state.duckdb
    assert cli("apply", "--yes", cwd=root).code == 0
    assert modes(root, "custom", "custom/place") == {
        "custom": "0o700",
        "custom/place": "0o700",
    }
    # As an older mlform left them: everything readable by all.
    old = make_workspace({**SMALL, "workspace.yml": "name: small\n"})
    assert cli("apply", "--yes", cwd=old).code == 0
    assert cli("plan", cwd=old).code == 0
    files = [".mlform/state.duckdb", ".mlform/state.duckdb.lock", ".mlform/state.duckdb.reads"]
    for name in [".mlform", *files]:
        (old / name).chmod(0o755 if name == ".mlform" else 0o644)
    assert cli("plan", cwd=old).code == 0
    assert set(modes(old, *files).values()) == {"0o600"}
    assert modes(old, ".mlform") == {".mlform": "0o700"}
