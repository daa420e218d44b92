"""`mlform tokens create|list|revoke` and `mlform audit`, through the real CLI."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.cli.test_runs import git
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

WHEN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
T = "YYYY-MM-DDTHH:MM:SS+00:00"  # as wide as a time, so the columns stay as printed
ME = getpass.getuser()


def times(text: str) -> str:
    return WHEN.sub(T, text)


def test_create_list_revoke(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace({"workspace.yml": "name: demo\n"})
    assert cli("tokens", "list", cwd=root).out == (
        "No tokens yet. Make one with `mlform tokens create NAME --role reader`.\n"
    )
    made = cli("tokens", "create", "ci-bot", "--role", "operator", cwd=root)
    assert made.code == 0, made.err
    token = made.out.splitlines()[-1]
    assert re.fullmatch(r"mlf_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)
    assert times(made.out) == (
        f"Created token ci-bot (role operator, expires {T}).\n"
        "Copy it now: it is shown only this once, and mlform keeps only its hash.\n"
        f"{token}\n"
    )
    never = cli("tokens", "create", "owner", "--role", "admin", "--expires", "never", cwd=root)
    assert never.out.startswith("Created token owner (role admin, expires never).\n")

    again = cli("tokens", "create", "ci-bot", "--role", "reader", cwd=root)
    assert (again.code, again.err) == (
        1,
        "error: a token named 'ci-bot' is active; revoke it first "
        "(`mlform tokens revoke ci-bot`) or choose another name\n",
    )
    bad = cli("tokens", "create", "x", "--role", "reader", "--expires", "30 days", cwd=root)
    assert bad.err == (
        "error: '30 days' is not a duration: write a number and a unit, s, m, h, d or w "
        "(`30d`, `12h`, `2s`), or `never`\n"
    )

    listed = cli("tokens", "list", cwd=root)
    assert times(listed.out) == (
        "NAME    ROLE      STATUS  CREATED                    EXPIRES"
        "                    LAST USED  REVOKED\n"
        f"ci-bot  operator  active  {T}  {T}\n"
        f"owner   admin     active  {T}  never\n"
    )
    assert token not in listed.out and token.split("_")[1] not in listed.out

    revoked = cli("tokens", "revoke", "ci-bot", cwd=root)
    assert revoked.out == "Revoked token ci-bot: the servers refuse it from their next request.\n"
    twice = cli("tokens", "revoke", "ci-bot", cwd=root)
    assert twice.err == (
        "error: no token named 'ci-bot' to revoke (tokens not revoked: owner); "
        "`mlform tokens list` shows them all\n"
    )
    rows = json.loads(cli("tokens", "list", "--json", cwd=root).out)
    assert [(r["name"], r["role"], r["status"], r["created_by"]) for r in rows] == [
        ("ci-bot", "operator", "revoked", ME),
        ("owner", "admin", "active", ME),
    ]
    assert sorted(rows[0]) == [
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "name",
        "revoked_at",
        "role",
        "status",
    ]

    audit = cli("audit", cwd=root)
    who, me = "WHO".ljust(len(ME)), ME.ljust(3)
    assert times(audit.out) == (
        f"TIME                       {who}  ACTION        TARGET        STATUS     DETAIL\n"
        f"{T}  {me}  token.create  token/ci-bot  succeeded  role operator, expires {T}\n"
        f"{T}  {me}  token.create  token/owner   succeeded  role admin, expires never\n"
        f"{T}  {me}  token.revoke  token/ci-bot  succeeded\n"
    )


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
