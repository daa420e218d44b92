"""A canary secret handed to a job, a pipeline step, a deployment and a datastore client,
applied for real: each process gets the value, and it is nowhere else — not in a table
of the state, a plan (text, JSON, Markdown, a saved plan file), or any file of the
workspace. A new value plans exactly what uses it, with `secret CANARY changed`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import duckdb
import pytest

from mlform.context import Context
from mlform.workspace import Workspace
from tests.cli.test_runs import changes
from tests.conftest import Ran, stop_endpoints

Cli = Callable[..., Ran]
CANARY = "canary-7f3e9b21-first-value"
NEW_CANARY = "canary-0c44d8aa-second-value"

CHECK = """
import hashlib
import os
import sys
import time
from pathlib import Path

# what the process got, as a digest: the test compares it without the value being written
token = os.environ["TOKEN"]
seen = hashlib.sha256(token.encode()).hexdigest()
Path(sys.argv[1], "got.txt").write_text(seen)
# a careless script prints it, in two halves across a flush: the log shows *** whole
half = len(token) // 2
print("got the token", token[:half], end="", flush=True)
time.sleep(0.3)
print(token[half:], flush=True)
print("and on stderr:", token, file=sys.stderr, flush=True)
"""

FILES = {
    "workspace.yml": """
        name: canary
        secrets:
          - name: CANARY
            env: MLFORM_TEST_CANARY
        datastores:
          - name: workspaceblobstore
            path: .mlform/datastore
            default: true
          - name: remote
            path: memory://canary-store  # fsspec's in-memory store: options reach its client
            storage_options:
              credential: ${{secrets.CANARY}}
        """,
    "src/check.py": CHECK,
    "runconfigs/job.yml": """
        name: job
        code: ../src
        command: python check.py ${{outputs.out}}
        environment_variables:
          TOKEN: ${{secrets.CANARY}}
        outputs:
          out:
            type: uri_folder
        """,
    "pipelines/pipe.yml": """
        name: pipe
        jobs:
          step:
            code: ../src
            command: python check.py ${{outputs.out}}
            environment_variables:
              TOKEN: token ${{secrets.CANARY}}
            outputs:
              out:
                type: uri_folder
        """,
    "environments/plain.yml": "name: plain\npip: []\n",
    "models/one.yml": "name: one\npath: ../model/one.txt\ntype: custom_model\n",
    "model/one.txt": "1\n",
    "score/score.py": """
        import hashlib
        import os

        seen = None


        def init():
            global seen
            seen = hashlib.sha256(os.environ["TOKEN"].encode()).hexdigest()
            print("init got", os.environ["TOKEN"], flush=True)


        def run(raw_data):
            print("run has", os.environ["TOKEN"][:6], end="", flush=True)
            print(os.environ["TOKEN"][6:], flush=True)
            return seen
        """,
    "endpoints/canary.yml": """
        name: canary
        auth_mode: key
        deployments:
          - name: blue
            model: azureml:one:1
            code_configuration:
              code: ../score
              scoring_script: score.py
            environment: azureml:plain@latest
            environment_variables:
              TOKEN: ${{secrets.CANARY}}
            data_collector:
              sampling_rate: 1.0
        """,
}


@pytest.fixture
def canary(
    make_workspace: Callable[[Mapping[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    root = make_workspace(FILES)
    monkeypatch.setenv("MLFORM_TEST_CANARY", CANARY)
    yield root
    stop_endpoints(root)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _got(root: Path, run_dir: str) -> str:
    return (Path(run_dir) / "outputs" / "out" / "got.txt").read_text()


def _outputs(root: Path, address: str) -> dict[str, object]:
    with duckdb.connect(str(root / ".mlform" / "state.duckdb"), read_only=True) as con:
        row = con.execute("select outputs from resources where address = ?", [address]).fetchone()
    assert row is not None
    found: dict[str, object] = json.loads(row[0])
    return found


def _every_table(root: Path) -> str:
    """Every row of every table of the state, as text."""
    with duckdb.connect(str(root / ".mlform" / "state.duckdb"), read_only=True) as con:
        tables = [r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()]
        assert {"resources", "runs", "events", "deployments", "step_runs"} <= set(tables)
        rows = [(table, con.execute(f'select * from "{table}"').fetchall()) for table in tables]
    return "\n".join(f"{table}: {found}" for table, found in rows)


def _holding(root: Path, value: str) -> list[str]:
    """The files of the workspace (the state, logs, run folders…) holding `value`."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return [str(p) for p in files if value.encode() in p.read_bytes()]


def test_a_canary_reaches_each_process_and_nothing_else(
    cli: Cli, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = canary
    # a client that knows the value sends it (from outside the workspace): the captured
    # request shows ***
    request = root.parent / "request.json"
    request.write_text(json.dumps({"data": [CANARY]}))
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err

    job = _outputs(root, "runconfig/job")
    assert _got(root, str(job["run_dir"])) == _sha(CANARY)
    pipe = _outputs(root, "pipeline/pipe")
    steps = pipe["steps"]
    assert isinstance(steps, dict)
    with duckdb.connect(str(root / ".mlform" / "state.duckdb"), read_only=True) as con:
        (step_dir,) = con.execute(
            "select run_dir from runs where id = ?", [steps["step"]["run_id"]]
        ).fetchone() or ("",)
    assert _got(root, step_dir) == _sha(f"token {CANARY}")
    invoked = cli("endpoints", "invoke", "canary", "--data", str(request), cwd=root)
    assert (invoked.code, invoked.out) == (0, json.dumps(_sha(CANARY)) + "\n")
    ctx = Context(Workspace(root).validate(), hasher=None)  # type: ignore[arg-type]
    assert ctx.storage("remote").fs.storage_options == {"credential": CANARY}  # type: ignore[attr-defined]

    unchanged = cli("plan", "--detailed-exitcode", cwd=root)
    assert (unchanged.code, unchanged.err) == (0, ""), unchanged.out

    monkeypatch.setenv("MLFORM_TEST_CANARY", NEW_CANARY)
    planned = cli("plan", cwd=root)
    assert changes(planned.out) == [
        "~ datastore/remote (secret CANARY changed)",
        "~ endpoint/canary (secret CANARY changed)",
        "> pipeline/pipe (step: secret CANARY changed)",
        "> runconfig/job (secret CANARY changed)",
    ]
    shown = [
        planned.out,
        cli("plan", "--json", cwd=root).out,
        cli("plan", "--markdown", cwd=root).out,
    ]
    saved = root.parent / "plan.json"
    assert cli("plan", "-o", str(saved), cwd=root).code == 0
    shown.append(saved.read_text())
    for text in shown:
        assert CANARY not in text and NEW_CANARY not in text

    before = _outputs(root, "endpoint/canary")["deployments"]
    rolled = cli("apply", str(saved), cwd=root)
    assert rolled.code == 0, rolled.out + rolled.err
    assert "~ endpoint/canary updated: started blue; traffic blue 100%" in rolled.out
    after = _outputs(root, "endpoint/canary")["deployments"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert before["blue"]["instance"] != after["blue"]["instance"]  # restarted: a new value
    # A client that knows the new value sends it. (The old one is no secret of the new
    # deployment's any more: sent now, it would be captured as it is, like any data.)
    request.write_text(json.dumps({"data": [NEW_CANARY]}))
    captured = root / ".mlform" / "datastore" / "captures" / "canary" / "blue"
    before = set(captured.glob("*/part-*.parquet"))
    invoked = cli("endpoints", "invoke", "canary", "--data", str(request), cwd=root)
    assert invoked.out == json.dumps(_sha(NEW_CANARY)) + "\n"
    deadline = time.monotonic() + 30
    while set(captured.glob("*/part-*.parquet")) == before:  # written within a second
        assert time.monotonic() < deadline, "the second request was never captured"
        time.sleep(0.1)
    assert _got(root, str(_outputs(root, "runconfig/job")["run_dir"])) == _sha(NEW_CANARY)
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    tables = _every_table(root)
    assert "${{secrets.CANARY}}" in tables  # the specs keep the reference
    assert CANARY not in tables and NEW_CANARY not in tables
    for text in (applied.out, applied.err, rolled.out, rolled.err):
        assert CANARY not in text and NEW_CANARY not in text
    assert _holding(root, CANARY) == [] and _holding(root, NEW_CANARY) == []
    # what the processes printed and the server captured is there, the value masked
    for said in (
        "got the token ***",  # the job's and the step's logs: two halves, one ***
        "and on stderr: ***",
        "init got ***",  # the deployment's log
        "run has ***",
        '["***"]',  # the captured request
    ):
        assert _holding(root, said), f"no file of the workspace holds {said!r}"


def test_a_job_that_prints_its_secret_and_fails_leaves_it_out_of_the_state(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_workspace(
        {
            "workspace.yml": FILES["workspace.yml"],
            "runconfigs/leaky.yml": """
                name: leaky
                command: echo "the token is $TOKEN" && exit 3
                environment_variables:
                  TOKEN: ${{secrets.CANARY}}
                """,
        }
    )
    monkeypatch.setenv("MLFORM_TEST_CANARY", CANARY)
    failed = cli("apply", "--yes", cwd=root)
    assert failed.code == 1
    assert "> runconfig/leaky failed: run leaky_" in failed.out + failed.err
    tables = _every_table(root)
    assert "the token is ***" in tables  # the log's last lines, kept for the failure
    assert CANARY not in tables
