"""A team's state in Azure Blob Storage (Azurite) and S3 (moto's server): applied from
one clone, planned, read and downloaded from another; locked against a second writer;
never written over when it moved underneath."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from mlform.errors import StateConflict
from mlform.state import backends
from mlform.state.backends import RemoteSpec
from mlform.state.backends.leases import LEASE
from mlform.state.remote import RemoteState, lock_info
from tests.conftest import EXAMPLE, SWEEP, Ran, mlform_process
from tests.stores import Azurite, S3Server

Cli = Callable[..., Ran]


@dataclass(frozen=True)
class Remote:
    kind: str
    state: str  # `state:` in workspace.yml
    datastore: str  # the default datastore's path
    env: dict[str, str]

    @property
    def spec(self) -> RemoteSpec:
        found = backends.parse(self.state)
        assert isinstance(found, RemoteSpec)
        return found


@pytest.fixture(params=["azurite", "s3"])
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """An empty container or bucket, its credentials exported as a user's shell would."""
    name = f"t{uuid.uuid4().hex[:12]}"
    if request.param == "azurite":
        azurite: Azurite = request.getfixturevalue("azurite")
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        service.create_container(name)
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}
        found = Remote("azurite", f"az://{name}/team/state.duckdb", f"az://{name}/datastore", env)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        s3.bucket(name)
        found = Remote("s3", f"s3://{name}/team/state.duckdb", f"s3://{name}/datastore", s3.env)
    for key, value in found.env.items():
        monkeypatch.setenv(key, value)
    yield found


def clone(tmp_path: Path, remote: Remote, name: str) -> Path:
    """A checkout of the example whose state and default datastore are `remote`."""
    root = tmp_path / name
    shutil.copytree(
        EXAMPLE,
        root,
        ignore=shutil.ignore_patterns(
            ".mlform", "images", "endpoints", "pipelines", "monitors", "schedules", SWEEP
        ),
    )
    ws = root / "workspace.yml"
    text = ws.read_text()
    text = text.replace("state: .mlform/state.duckdb", f"state: {remote.state}")
    text = text.replace("path: .mlform/datastore", f"path: {remote.datastore}")
    ws.write_text(text)
    return root


def test_a_state_applied_in_one_clone_is_the_state_of_another(
    remote: Remote, cli: Cli, tmp_path: Path
) -> None:
    ci, laptop = clone(tmp_path, remote, "ci"), clone(tmp_path, remote, "laptop")
    applied = cli("apply", "--yes", cwd=ci)
    assert applied.code == 0, applied
    assert not (ci / ".mlform" / "state.duckdb").exists()  # the state is not kept here
    plan = cli("plan", "--detailed-exitcode", cwd=laptop)
    assert (plan.code, plan.err) == (0, ""), plan
    assert "No changes" in plan.out
    shown = cli("runs", "show", "train", "--json", cwd=laptop)
    assert shown.code == 0, shown
    assert json.loads(shown.out)["status"] == "completed"
    fetched = cli("models", "download", "iris-classifier:1", str(tmp_path / "model"), cwd=laptop)
    assert fetched.code == 0, fetched
    assert (tmp_path / "model" / "model.pkl").stat().st_size > 0
    # The run's outputs and logs, kept in the shared datastore as it ended.
    restored = cli("runs", "download", "train", str(tmp_path / "run"), cwd=laptop)
    assert restored.code == 0, restored
    model = tmp_path / "run" / "outputs" / "model" / "model.pkl"
    assert model.read_bytes() == (tmp_path / "model" / "model.pkl").read_bytes()
    log = (tmp_path / "run" / "logs" / "std_log.txt").read_text()
    assert log and cli("runs", "logs", "train", cwd=laptop).out == log
    listed = cli("state", "list", cwd=laptop)
    assert f"state {remote.spec.url}, lineage" in listed.out
    # The laptop's copies sit in its own .mlform, never in the repository's files.
    assert list((laptop / ".mlform" / "remote").glob("*/read/state.duckdb"))


def test_a_second_writer_is_refused_naming_the_holder(
    remote: Remote, cli: Cli, tmp_path: Path
) -> None:
    root = clone(tmp_path, remote, "ws")
    assert cli("apply", "--yes", cwd=root).code == 0
    state = RemoteState(remote.spec, root / ".mlform")
    held = state.backend.lock(lock_info("apply"), wait=0)
    try:
        refused = cli("apply", "--yes", cwd=root)
        assert refused.code != 0
        assert f"the state {remote.spec.url} is locked by `mlform apply`" in refused.err
        assert f"mlform force-unlock {held.info.id}" in refused.err
        assert "Traceback" not in refused.err
        plan = cli("plan", "--detailed-exitcode", cwd=root)  # readers take no lock
        assert plan.code == 0, plan
    finally:
        held.release()
    assert cli("apply", "--yes", cwd=root).code == 0


def test_force_unlock_breaks_a_lock_whose_process_died(
    remote: Remote, cli: Cli, tmp_path: Path
) -> None:
    root = clone(tmp_path, remote, "ws")
    assert cli("plan", cwd=root).code == 0
    # A holder in another process that dies without releasing: SIGKILL.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from mlform.state.backends import parse\n"
            "from mlform.state.remote import RemoteState, lock_info\n"
            "from pathlib import Path\n"
            f"state = RemoteState(parse({remote.state!r}), Path({str(tmp_path)!r}))\n"
            "held = state.backend.lock(lock_info('apply'), wait=0)\n"
            "print(held.info.id, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    lock_id = holder.stdout.readline().strip()
    holder.kill()
    holder.wait()
    holder.stdout.close()
    refused = cli("apply", "--yes", cwd=root)
    assert f"mlform force-unlock {lock_id}" in refused.err
    wrong = cli("force-unlock", "00000000", cwd=root)
    assert wrong.code != 0 and f"does not match the current lock {lock_id}" in wrong.err
    unlocked = cli("force-unlock", lock_id, cwd=root)
    assert unlocked.code == 0, unlocked
    assert f"Removed lock {lock_id}" in unlocked.out
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied


def test_a_state_that_moved_underneath_is_never_written_over(
    remote: Remote, tmp_path: Path, cli: Cli
) -> None:
    root = clone(tmp_path, remote, "ws")
    assert cli("apply", "--yes", cwd=root).code == 0
    state = RemoteState(remote.spec, root / ".mlform")
    before = state.backend.head()
    assert before is not None
    store = state.open("tokens create", write=True)
    try:
        # Someone else persists meanwhile (after a force-unlock, say): the ETag moves.
        other = tmp_path / "other.duckdb"
        with other.open("wb") as handle:
            state.backend.download(handle)
        con = duckdb.connect(str(other))
        con.execute("update meta set serial = serial + 1")
        con.close()
        moved = state.backend.upload(
            other, if_match=before.etag, lineage=str(before.lineage), serial=before.serial
        )
        with pytest.raises(StateConflict), store.transaction() as con:
            con.execute("update meta set workspace = workspace")
    finally:
        with pytest.raises(StateConflict):
            store.close()
    after = state.backend.head()
    assert after is not None and after.etag == moved  # untouched by the refused writes
    # The next apply sets this machine's unpersisted change aside and carries on.
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied
    assert "held changes never persisted" in applied.out + applied.err, applied
    assert list((root / ".mlform" / "remote").glob("*/unpersisted-*.duckdb"))


def test_pull_push_and_migrate_move_a_state_whole(remote: Remote, cli: Cli, tmp_path: Path) -> None:
    root = clone(tmp_path, remote, "ws")
    ws = root / "workspace.yml"
    ws.write_text(ws.read_text().replace(f"state: {remote.state}", "state: .mlform/state.duckdb"))
    assert cli("apply", "--yes", cwd=root).code == 0
    moved = cli("state", "migrate", "--to", remote.state, cwd=root)
    assert moved.code == 0, moved
    assert f"Now set `state: {remote.state}` in workspace.yml" in moved.out
    again = cli("state", "migrate", "--to", remote.state, cwd=root)
    assert again.code != 0 and "there is a state at" in again.err
    ws.write_text(ws.read_text().replace("state: .mlform/state.duckdb", f"state: {remote.state}"))
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert plan.code == 0, plan  # nothing lost on the way: nothing to do
    pulled = cli("state", "pull", str(tmp_path / "copy.duckdb"), cwd=root)
    assert pulled.code == 0, pulled
    serial = int(pulled.out.split("serial ")[1].split(")")[0])
    assert cli("runs", "list", cwd=root).code == 0
    # An older copy is refused; so is another workspace's state.
    older = tmp_path / "older.duckdb"
    shutil.copy(root / ".mlform" / "state.duckdb", older)
    con = duckdb.connect(str(older))
    con.execute("update meta set serial = ?", [serial - 1])
    con.close()
    refused = cli("state", "push", str(older), cwd=root)
    assert refused.code != 0 and f"older (serial {serial - 1})" in refused.err
    con = duckdb.connect(str(older))
    con.execute("update meta set lineage = 'another', serial = ?", [serial + 5])
    con.close()
    refused = cli("state", "push", str(older), cwd=root)
    assert refused.code != 0 and "is another state (lineage another)" in refused.err
    pushed = cli("state", "push", str(tmp_path / "copy.duckdb"), cwd=root)
    assert pushed.code == 0, pushed


def test_a_credential_in_the_file_is_refused(make_workspace: Callable[..., Path], cli: Cli) -> None:
    root = make_workspace(
        {
            "workspace.yml": """
            name: w
            state:
              backend: azurerm
              storage_account_name: acct
              container_name: tfstate
              key: w.duckdb
              access_key: abc123
            """
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.code != 0
    assert "workspace.yml:7:15: error: state.access_key would put a credential" in ran.err
    assert "ARM_ACCESS_KEY" in ran.err


def test_a_missing_bucket_or_container_says_so(remote: Remote, cli: Cli, tmp_path: Path) -> None:
    root = clone(tmp_path, remote, "ws")
    ws = root / "workspace.yml"
    missing = remote.state.replace("://t", "://missing", 1)
    ws.write_text(ws.read_text().replace(remote.state, missing))
    ran = cli("plan", cwd=root)
    assert ran.code != 0
    assert "does not exist" in ran.err and "Traceback" not in ran.err


TRAIN = """\
import sys, time
from pathlib import Path

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
time.sleep(0.5)
(out / "model.pkl").write_text("trained on code version {trial}")
"""
TRIALS = 10


def test_an_apply_killed_at_random_moments_loses_and_duplicates_nothing(
    remote: Remote, cli: Cli, make_workspace: Callable[..., Path]
) -> None:
    """Each trial changes the training code (one new model version is due), SIGKILLs
    the apply somewhere between its start and its end, frees the lock (force-unlock; one
    trial waits for the lease to lapse instead), and applies again: that apply completes,
    and the state has exactly one version and one completed run per code version."""
    root = make_workspace(
        {
            "workspace.yml": f"""
            name: killed
            state: {remote.state}
            datastores:
              - name: shared
                path: {remote.datastore}
                default: true
            """,
            "src/train.py": TRAIN.format(trial=0),
            "runconfigs/train.yml": """
            code: ../src
            command: python train.py ${{outputs.model}}
            outputs:
              model: {}
            register_model:
              name: m
              path: model/model.pkl
            """,
        }
    )
    began = time.monotonic()
    first = mlform_process("apply", "--yes", cwd=root)
    assert first.wait() == 0, first.communicate()
    lasted = time.monotonic() - began  # how long an apply that trains takes here
    first.communicate()
    backend = RemoteState(remote.spec, root / ".mlform").backend
    chance = random.Random(20261205)  # the same moments on every run of the suite
    lapsed_once = False
    held = recovered = 0  # kills that left the lock held; applies that persisted a commit
    for trial in range(1, TRIALS + 1):
        (root / "src" / "train.py").write_text(TRAIN.format(trial=trial))
        apply = mlform_process("apply", "--yes", cwd=root)
        began = time.monotonic()
        while backend.holder() is None and apply.poll() is None:
            time.sleep(0.02)  # from when it holds the lock: a kill before is no test
        left = max(0.0, lasted - (time.monotonic() - began))
        time.sleep(chance.uniform(0.0, 0.9 * left))
        apply.kill()
        apply.communicate()
        again = cli("apply", "--yes", cwd=root)
        if again.code != 0 and "mlform force-unlock" in again.err:
            held += 1
            lock_id = again.err.split("mlform force-unlock ")[1].split("`")[0]
            if not lapsed_once and remote.kind == "s3":
                lapsed_once = True  # nothing to do but wait: the lease lapses by itself
                again = cli("apply", "--yes", "--lock-timeout", str(LEASE + 15), cwd=root)
            else:
                assert cli("force-unlock", lock_id, cwd=root).code == 0
                again = cli("apply", "--yes", cwd=root)
        assert again.code == 0, (trial, again)
        recovered += "did not persist" in again.out + again.err
        assert cli("plan", "--detailed-exitcode", cwd=root).code == 0, trial
        versions = json.loads(cli("models", "list", "--json", cwd=root).out)
        assert sorted(int(v["version"]) for v in versions) == list(range(1, trial + 2)), trial
        runs = json.loads(cli("runs", "list", "--status", "completed", "--json", cwd=root).out)
        assert len(runs) == trial + 1, (trial, runs)
    print(f"{TRIALS} trials: {held} left the lock held, {recovered} left a commit to persist")
    assert held >= TRIALS // 2, "too few kills landed inside an apply to prove anything"


def test_a_write_landing_between_the_look_and_the_persist_is_never_written_over(
    remote: Remote, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An apply killed mid-upload, its lock broken: its write may land after the next
    apply looked at the state and before it persists what this machine committed. The
    next apply sets its commits aside, as for a state that moved before the look."""
    root = clone(tmp_path, remote, "ws")
    assert cli("apply", "--yes", cwd=root).code == 0
    state = RemoteState(remote.spec, root / ".mlform")
    before = state.backend.head()
    assert before is not None
    # a commit of an apply killed before it persisted it
    con = duckdb.connect(str(state.work))
    con.execute("insert into experiments values ('killed-before-persisting', now())")
    con.close()
    late = tmp_path / "late.duckdb"  # what the killed apply was uploading
    with late.open("wb") as handle:
        state.backend.download(handle)
    con = duckdb.connect(str(late))
    con.execute("update meta set serial = serial + 1")
    con.close()
    catch_up = RemoteState._catch_up

    def landing_late(self: RemoteState, log: Callable[[str], None]) -> bool:
        ahead = catch_up(self, log)
        if not getattr(landing_late, "landed", False):
            landing_late.landed = True  # type: ignore[attr-defined]
            self.backend.upload(
                late, if_match=before.etag, lineage=str(before.lineage), serial=before.serial
            )
        return ahead

    monkeypatch.setattr(RemoteState, "_catch_up", landing_late)
    said: list[str] = []
    store = RemoteState(remote.spec, root / ".mlform").open(
        "tokens create", write=True, log=said.append
    )
    with store.transaction() as con:  # a write of its own, persisted over the late one
        con.execute("update meta set workspace = workspace")
    store.close()
    assert any("did not persist" in line for line in said), said
    assert any("held changes never persisted" in line for line in said), said
    assert list((root / ".mlform" / "remote").glob("*/unpersisted-*.duckdb"))
    after = state.backend.head()
    assert after is not None and after.serial > before.serial  # its write, after the late one
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0


def test_a_working_copy_duckdb_cannot_read_is_set_aside_for_the_persisted_state(
    remote: Remote, tmp_path: Path, cli: Cli
) -> None:
    """An apply killed as DuckDB wrote this machine's working copy may leave it damaged
    (a block whose checksum no longer matches). The persisted state is the state: the
    next apply keeps the damaged copy aside, says so, and goes on from what was
    persisted; a plan then shows what still differs."""
    root = clone(tmp_path, remote, "ws")
    assert cli("apply", "--yes", cwd=root).code == 0
    state = RemoteState(remote.spec, root / ".mlform")
    # a commit not yet persisted, then the first data block torn
    con = duckdb.connect(str(state.work))
    con.execute("insert into experiments values ('killed-before-persisting', now())")
    con.close()
    with state.work.open("r+b") as handle:
        handle.seek(12288 + 100)
        handle.write(b"\xff" * 512)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied
    said = applied.out + applied.err
    assert f"this machine's copy of {remote.spec.url} could not be read" in said, said
    assert "checksum" in said and "Traceback" not in said
    kept = list((root / ".mlform" / "remote").glob("*/unreadable-*.duckdb"))
    assert len(kept) == 1 and kept[0].stat().st_size > 0
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert plan.code == 0 and "No changes" in plan.out, plan
    listed = json.loads(cli("experiments", "list", "--json", cwd=root).out)
    assert "killed-before-persisting" not in json.dumps(listed)  # never persisted: lost
