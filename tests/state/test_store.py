"""The state file: refused when unsafe, never overwritten, upgraded by named migrations."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb
import pytest

from mlform.errors import StateLocked
from mlform.state import store as stores
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


def _holder(state: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """A real process holding the state's lock, and what the lock file says of it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    holder.stdout.readline()
    lock = state.with_name(state.name + ".lock")
    return holder, json.loads(lock.read_text())


def test_force_unlock_refuses_a_live_holder_unless_forced(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    state = root / "custom" / "place" / "state.duckdb"
    holder, info = _holder(state)
    lock_id, host, since = info["id"], socket.gethostname(), info["since"]
    try:
        refused = cli("apply", "--yes", cwd=root)
        assert refused.code == 1
        assert f"`mlform apply` (lock ID {lock_id}, pid {holder.pid} on " in refused.err
        assert f"run `mlform force-unlock {lock_id}`" in refused.err

        wrong = cli("force-unlock", "nope", cwd=root)
        assert wrong.code == 1
        assert f"lock ID nope does not match the current lock {lock_id}" in wrong.err

        alive = cli("force-unlock", lock_id, cwd=root)
        assert (alive.code, alive.out) == (1, "")
        assert alive.err == (
            f"error: lock {lock_id} is held by `mlform apply` (lock ID {lock_id}, pid "
            f"{holder.pid} on {host}, since {since}), which is still running: removing the "
            "lock would let another apply write beside it. Wait for it to finish, or stop it "
            f"(kill {holder.pid}); if it is hung and must be left running, `mlform "
            f"force-unlock {lock_id} --force` removes the lock anyway\n"
        )
        assert state.with_name("state.duckdb.lock").exists()

        forced = cli("force-unlock", lock_id, "--force", cwd=root)
        assert (forced.code, forced.err) == (0, "")
        assert forced.out == (
            f"Removed lock {lock_id}, held by `mlform apply` (lock ID {lock_id}, pid "
            f"{holder.pid} on {host}, since {since}).\n"
        )
        assert cli("apply", "--yes", cwd=root).code == 0
        again = cli("force-unlock", lock_id, cwd=root)
        assert "is not locked; nothing to unlock" in again.err
    finally:
        holder.kill()
        holder.communicate()


def test_force_unlock_removes_the_lock_of_a_dead_holder(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    state = root / "custom" / "place" / "state.duckdb"
    holder, info = _holder(state)
    holder.kill()  # SIGKILL: the lock file keeps naming it
    holder.communicate()
    unlocked = cli("force-unlock", info["id"], cwd=root)
    assert (unlocked.code, unlocked.err) == (0, "")
    assert unlocked.out.startswith(f"Removed lock {info['id']}, held by `mlform apply` (")
    assert not state.with_name("state.duckdb.lock").exists()


def test_force_unlock_of_a_lock_from_another_host_warns(cli: Cli, make_workspace: Make) -> None:
    # A state on a shared filesystem, locked by an apply on another machine.
    root = make_workspace(SMALL)
    lock = root / "custom" / "place" / "state.duckdb.lock"
    lock.parent.mkdir(parents=True)
    info = {
        "id": "5e1f00aa",
        "pid": os.getpid(),  # a pid that runs here means nothing for another host
        "host": "build-agent-7",
        "since": "2026-11-23T12:00:01+00:00",
        "operation": "apply",
    }
    lock.write_text(json.dumps(info))
    unlocked = cli("force-unlock", "5e1f00aa", cwd=root)
    assert unlocked.code == 0
    assert unlocked.err == (
        "warning: lock 5e1f00aa was taken on host build-agent-7, where mlform cannot see "
        f"whether pid {os.getpid()} still runs; make sure no mlform process runs there\n"
    )
    assert unlocked.out == (
        "Removed lock 5e1f00aa, held by `mlform apply` (lock ID 5e1f00aa, pid "
        f"{os.getpid()} on build-agent-7, since 2026-11-23T12:00:01+00:00).\n"
    )
    assert not lock.exists()


def test_a_state_from_an_older_mlform_upgrades_itself(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(SMALL)
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / "custom" / "place" / "state.duckdb"
    with duckdb.connect(str(state)) as con:  # make it what the first release wrote
        later = ("experiments", "runs", "params", "tags", "metrics", "artifacts", "snapshots")
        for table in (
            *later,
            "models",
            "images",
            "deployments",
            "step_runs",
            "tokens",
            "run_files",
            "syncs",
            "approvals",
            "schedule_fires",
            "monitor_results",
        ):
            con.execute(f"drop table {table}")
        con.execute("alter table meta drop column workspace")
        for column in ("actor", "source", "event_id"):
            con.execute(f"alter table events drop column {column}")
        con.execute("alter table events alter column apply_id set not null")
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
    # As an older mlform left them: everything readable by all (another workspace: this
    # one, with the state moved, would be a lost state with its files registered).
    old = root.parent / "old"
    shutil.copytree(root, old, ignore=shutil.ignore_patterns("custom", ".mlform"))
    (old / "workspace.yml").write_text("name: small\n")
    assert cli("apply", "--yes", cwd=old).code == 0
    assert cli("plan", cwd=old).code == 0
    files = [".mlform/state.duckdb", ".mlform/state.duckdb.lock", ".mlform/state.duckdb.reads"]
    for name in [".mlform", *files]:
        (old / name).chmod(0o755 if name == ".mlform" else 0o644)
    assert cli("plan", cwd=old).code == 0
    assert set(modes(old, *files).values()) == {"0o600"}
    assert modes(old, ".mlform") == {".mlform": "0o700"}


TWO = {
    "alpha/workspace.yml": "name: alpha\n",
    "alpha/data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
    "alpha/data/x.csv": "a,b\n1,2\n",
    "beta/workspace.yml": "name: beta\nstate: ../alpha/.mlform/state.duckdb\n",
}


def test_another_workspace_is_refused_the_state_of_one(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(TWO)
    assert cli("apply", "--yes", cwd=root / "alpha").code == 0
    state = root / "alpha" / ".mlform" / "state.duckdb"
    before = state.read_bytes()
    refusal = (
        f"error: the state {state} belongs to workspace 'alpha', but this workspace "
        f"({root / 'beta' / 'workspace.yml'}) is named 'beta': planned from here, everything "
        "'alpha' applied would be destroyed. If this is 'alpha' renamed, set `name: alpha` "
        "back in workspace.yml; otherwise give this workspace a state of its own with "
        "`state:` in workspace.yml (the default is .mlform/state.duckdb beside it)\n"
    )
    model = root / "beta" / "m.json"
    model.write_text("{}\n")
    for command in (("plan",), ("apply", "--yes"), ("models", "register", "m", str(model))):
        ran = cli(*command, cwd=root / "beta")
        assert (ran.code, ran.out, ran.err) == (1, "", refusal), command
    assert state.read_bytes() == before
    assert cli("plan", "--detailed-exitcode", cwd=root / "alpha").code == 0


def test_a_state_without_a_workspace_name_adopts_the_first_applier(
    cli: Cli, make_workspace: Make
) -> None:
    root = make_workspace(TWO)
    assert cli("apply", "--yes", cwd=root / "alpha").code == 0
    state = root / "alpha" / ".mlform" / "state.duckdb"
    with duckdb.connect(str(state)) as con:  # as an mlform before names were recorded
        con.execute("alter table meta drop column workspace")
        con.execute("delete from migrations where name = '0008_workspace_name'")
    assert cli("plan", "--detailed-exitcode", cwd=root / "alpha").code == 0  # upgrades
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute("select workspace from meta").fetchall() == [(None,)]
    applied = cli("apply", "--yes", cwd=root / "alpha")  # nothing to change, still adopts
    assert (applied.code, applied.err) == (0, ""), applied.out
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute("select workspace from meta").fetchall() == [("alpha",)]
    refused = cli("plan", cwd=root / "beta")
    assert refused.code == 1
    assert refused.err.startswith(f"error: the state {state} belongs to workspace 'alpha', ")


def test_a_writer_lets_readers_in_between_its_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.duckdb"
    monkeypatch.setattr(stores, "ACCESS_WAIT", 0.2)
    writer = Store.open(path, "apply", write=True)
    try:
        with writer.transaction() as con:
            con.execute("update meta set workspace = 'first'")
        # Just written: the file stays open, and a reader waits, then is told by whom.
        writer.idle()
        assert writer.connected
        with pytest.raises(StateLocked, match=r"is being written by `mlform apply` \(lock ID"):
            Store.open(path, "plan", write=False)
        writer.idle(after=0.0)  # quiet, but nobody waits: a pause would cost a reopen
        assert writer.connected
        # A reader that waits knocks; the quiet writer sees it, and closes the file until
        # its next write.
        read: list[str | None] = []

        def reader() -> None:
            with Store.open(path, "plan", write=False, wait=10.0) as store:
                read.append(store.workspace())  # what was committed

        waiting = threading.Thread(target=reader)
        waiting.start()
        deadline = time.monotonic() + 10.0
        while waiting.is_alive() and time.monotonic() < deadline:
            writer.idle(after=0.0)
            time.sleep(0.01)
        waiting.join()
        assert read == ["first"] and not writer.connected
        with writer.transaction() as con:
            con.execute("update meta set workspace = 'second'")
        assert writer.connected and writer.workspace() == "second"
    finally:
        writer.close()
    with Store.open(path, "plan", write=False) as reader:
        assert reader.workspace() == "second"


def test_a_busy_writer_still_pauses_for_readers_after_holding_the_file_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.duckdb"
    with Store.open(path, "apply", write=True) as writer:
        writer.query("select 1")
        writer.idle()
        assert writer.connected  # used just now
        monkeypatch.setattr(stores, "HOLD", 0.0)
        writer.idle()
        assert writer.connected  # held long enough, but no reader waits
        knock = os.open(f"{path}.waiting", os.O_RDWR)  # as a waiting reader knocks
        try:
            fcntl.flock(knock, fcntl.LOCK_SH)
            writer.idle()
        finally:
            os.close(knock)
        assert not writer.connected  # held long enough: readers' turn
        assert writer.query("select 1") == [(1,)]  # and open again on use
        assert writer.connected
