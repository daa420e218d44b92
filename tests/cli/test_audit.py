"""`mlform audit`: who applied, who invoked, since when — through the real CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.cli.test_runs import git
from tests.cli.test_tokens import ME
from tests.conftest import Ran
from tests.kinds.pipeline.test_published import COPY, ECHO, PIPELINE

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

DATA = {
    "workspace.yml": "name: demo\n",
    "data/rows.yml": "name: rows\ntype: uri_file\npath: rows.csv\n",
    "data/rows.csv": "a,b\n1,2\n",
    ".gitignore": ".mlform/\n",
}


def test_audit_names_who_applied(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(DATA)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    subject = ["-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com"]
    git(root, *subject, "commit", "-qm", "rows")
    assert cli("apply", "--yes", cwd=root).code == 0

    (root / "data" / "rows.csv").write_text("a,b\n1,2\n3,4\n")  # not committed: dirty
    assert cli("apply", "--yes", cwd=root).code == 0

    events = json.loads(cli("audit", "--json", cwd=root).out)
    assert [(e["actor"], e["action"], e["target"], e["status"], e["message"]) for e in events] == [
        (
            "Ada Lovelace <ada@example.com>",
            "apply",
            "workspace/demo",
            "succeeded",
            "Plan: 2 to add, 0 to change, 0 to destroy, 0 to run.",
        ),
        (
            ME,
            "apply",
            "workspace/demo",
            "succeeded",
            "Plan: 0 to add, 1 to change, 0 to destroy, 0 to run.",
        ),
    ]
    assert {e["source"] for e in events} == {"cli"}

    assert cli("audit", "--since", "2000-01-01", "--json", cwd=root).out == (
        json.dumps(events, indent=2) + "\n"
    )
    assert cli("audit", "--since", "2999-01-01", cwd=root).out == (
        "No audit events since 2999-01-01T00:00:00+00:00.\n"
    )
    assert len(json.loads(cli("audit", "--since", "1h", "--json", cwd=root).out)) == 2
    wrong = cli("audit", "--since", "last week", cwd=root)
    assert wrong.err == (
        "error: --since 'last week': write a span back from now (`7d`, `12h`) or a date "
        "(`2026-12-01`, UTC) or time (`2026-12-01T09:30:00+00:00`)\n"
    )


def test_audit_names_who_invoked_a_pipeline(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: pipes\n",
            "src/echo.py": ECHO,
            "src/copy.py": COPY,
            "pipelines/echo.yml": PIPELINE,
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    invoked = cli("pipelines", "invoke", "echo", "--set", "msg=hi", cwd=root)
    assert invoked.code == 0, invoked.err
    run_id = invoked.out.splitlines()[-1].split()[1]
    events = json.loads(cli("audit", "--json", cwd=root).out)
    assert [(e["actor"], e["action"], e["target"], e["status"], e["message"]) for e in events][
        1:
    ] == [(ME, "invoke", "pipeline/echo", "completed", f"run {run_id} with msg=hi")]
