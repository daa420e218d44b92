"""`mlform tokens create|list|revoke`, through the real CLI."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

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
