"""What a command loads: every command starts a Python process, so a module it does not
need is time every user waits for (a CI plan, an apply of one job on another machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.test_gitinfo import git

LOADED = """
import json, sys
from mlform.cli.main import main
try:
    code = main(sys.argv[2:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "loaded": [m for m in sys.argv[1].split(",") if m in sys.modules]}))
"""


def loaded(cwd: Path, watched: list[str], *args: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, ",".join(watched), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    return answer["code"], answer["loaded"]


def test_version_loads_no_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlform.cli.main", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("mlform ")
    code, found = loaded(tmp_path, ["mlform.cli.plans", "mlform.cli.runs", "duckdb"], "--version")
    assert (code, found) == (0, [])


def test_applying_a_job_in_git_loads_neither_gitpython_jsonschema_nor_croniter(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    files = {
        "workspace.yml": "name: quick\n",
        "src/job.py": "print('done')\n",
        # a job kind whose required keys depend on its `type:` (sweep, automl, command)
        "runconfigs/job.yml": "code: ../src\ncommand: python job.py\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    watched = ["git", "jsonschema", "croniter", "mlform.leftovers"]
    # the first apply looks for what an earlier state left behind: there is no state
    assert loaded(root, watched, "apply", "--yes") == (0, ["mlform.leftovers"])
    # the run's commit is git's own answer, and its file is valid: nothing more is loaded
    assert loaded(root, watched, "apply", "--yes", "--rerun", "runconfig/job") == (0, [])
    runs = subprocess.run(
        [sys.executable, "-m", "mlform.cli.main", "runs", "list", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    recorded = json.loads(runs.stdout)
    commit = git(root, "rev-parse", "HEAD")
    assert [(r["commit"], r["branch"], r["dirty"]) for r in recorded] == [
        (commit, "main", False)
    ] * 2
