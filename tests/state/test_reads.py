"""A plan of an unchanged state is answered from what earlier readers read, without
DuckDB; any write, by mlform or not, makes the next reader read the file again."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import duckdb

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

PLAN_WITHOUT_DUCKDB = """\
import json, sys
from mlform.cli.main import main
code = main(["-C", sys.argv[1], "plan", "--detailed-exitcode"])
print(json.dumps({"code": code, "duckdb": "duckdb" in sys.modules}))
"""


def plan_in_a_process(root: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PLAN_WITHOUT_DUCKDB, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_an_unchanged_state_is_planned_without_duckdb(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: r\n",
            "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
            "data/x.csv": "a\n1\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    assert plan_in_a_process(root) == {"code": 0, "duckdb": True}  # reads, and keeps them
    assert plan_in_a_process(root) == {"code": 0, "duckdb": False}  # answered from them
    assert (root / ".mlform" / "state.duckdb.reads").is_file()

    (root / "data" / "x.csv").write_text("a\n2\n")
    assert plan_in_a_process(root) == {"code": 2, "duckdb": False}  # files changed: same reads
    assert cli("apply", "--yes", cwd=root).code == 0  # a write: the reads are stale now
    assert plan_in_a_process(root) == {"code": 0, "duckdb": True}


def test_a_change_made_behind_mlforms_back_is_seen(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: r\n",
            "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
            "data/x.csv": "a\n1\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
    with duckdb.connect(str(root / ".mlform" / "state.duckdb")) as con:
        con.execute("delete from resources where address = 'data/x'")
    plan = cli("plan", "--detailed-exitcode", cwd=root)
    assert plan.code == 2
    assert "+ data/x" in plan.out
