"""Roles on a real pipeline endpoint (`mlform pipelines serve`, as users start it): each
role on each route, allowed or denied; tokens missing, unknown, expired and revoked
refused; every denial in the audit log; no token anywhere in plain text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import duckdb
import pytest

from tests.conftest import Ran
from tests.kinds.pipeline.test_published import Endpoint, serving_pipelines

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

RUN = "/pipelines/echo/runs/{run}"
# Each route with the role it needs, as the pipeline endpoint's README section says.
ROUTES = [
    ("GET", "/pipelines", "reader"),
    ("GET", RUN, "reader"),
    ("POST", "/pipelines/echo/runs", "operator"),
]
ROLES = ["reader", "operator", "admin"]
ORDER = {"reader": 1, "operator": 2, "admin": 3}
ALLOWED = {"GET": 200, "POST": 202}
# role × route → the status each gets
TABLE = [
    (role, method, path, ALLOWED[method] if ORDER[role] >= ORDER[needs] else 403)
    for role in ROLES
    for method, path, needs in ROUTES
]


@pytest.fixture
def served(cli: Cli, make_workspace: Make, tmp_path: Path) -> Iterator[Endpoint]:
    with serving_pipelines(cli, make_workspace, tmp_path) as endpoint:
        yield endpoint


def create(cli: Cli, root: Path, name: str, role: str, expires: str = "30d") -> str:
    made = cli("tokens", "create", name, "--role", role, "--expires", expires, cwd=root)
    assert made.code == 0, made.err
    token = made.out.splitlines()[-1]
    assert token.startswith("mlf_")
    return token


def test_each_role_on_each_route(served: Endpoint, cli: Cli) -> None:
    root = served.root
    expiring = create(cli, root, "short-lived", "admin", expires="2s")
    expired_by = time.time() + 2  # it was made before this, so it ends before it too
    tokens = {role: create(cli, root, f"the-{role}", role) for role in ROLES}
    revoked = create(cli, root, "let-go", "admin")
    assert cli("tokens", "revoke", "let-go", cwd=root).code == 0

    # The endpoint's keys keep the operator rights they always had.
    first = served.call("POST", "/pipelines/echo/runs", key=served.key)
    assert first.status == 202, first.body
    runs = [first.body["links"]["self"]]

    denied: list[tuple[str, str, str, str]] = []  # (who, route, status, why): the audit log
    for role, method, path, expected in TABLE:
        route = path.format(run=first.body["run_id"])
        answer = served.call(method, route, key=tokens[role])
        assert answer.status == expected, (role, method, route, answer.body)
        if expected == 403:
            assert answer.body == {
                "error": f"{method} {route} needs the operator role; the token 'the-{role}' "
                f"has the {role} role. Ask an admin for a token with that role",
                "status": 403,
            }
            denied.append(
                (f"the-{role}", f"{method} {route}", "403", f"needs operator, has {role}")
            )
        if expected == 202:
            runs.append(answer.body["links"]["self"])

    time.sleep(max(0.0, expired_by - time.time()) + 0.1)
    unknown = tokens["admin"][:-4] + ("AAAA" if not tokens["admin"].endswith("AAAA") else "BBBB")
    not_ours = "the credential sent is not an API token of this workspace"
    refusals = [
        (None, "anonymous", "this route needs a credential", "no credential"),
        (unknown, "anonymous", not_ours, "not a token of this workspace"),
        ("not-a-key", "anonymous", not_ours, "not a token or key of this workspace"),
        (expiring, "short-lived", "the token 'short-lived' expired at ", "expired token"),
        (revoked, "let-go", "the token 'let-go' was revoked at ", "revoked token"),
    ]
    for sent, who, said, why in refusals:
        for method, path, _ in ROUTES:
            route = path.format(run=first.body["run_id"])
            answer = served.call(method, route, key=sent)
            assert answer.status == 401, (sent, method, route, answer.body)
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.body["error"].startswith(said), answer.body
            denied.append((who, f"{method} {route}", "401", why))
    assert served.call("GET", "/health").status == 200  # open, and not audited

    for link in runs:
        served.wait_for(link)  # their invokes hold the state; `audit` needs it next
    audit = cli("audit", "--json", cwd=root)
    assert audit.code == 0, audit.err
    events = json.loads(audit.out)
    audited = [
        (e["actor"], e["target"], e["status"], e["message"])
        for e in events
        if e["action"] == "denied"
    ]
    assert audited == denied
    assert {e["source"] for e in events if e["action"] == "denied"} == {"pipeline endpoint"}
    invoked = [(e["actor"], e["target"], e["status"]) for e in events if e["action"] == "invoke"]
    assert invoked == [
        ("endpoint key", "pipeline/echo", "202"),
        ("the-operator", "pipeline/echo", "202"),
        ("the-admin", "pipeline/echo", "202"),
    ]

    listed = cli("tokens", "list", "--json", cwd=root)
    used = {t["name"]: t["last_used_at"] is not None for t in json.loads(listed.out)}
    assert used == {
        "short-lived": False,
        "the-reader": True,
        "the-operator": True,
        "the-admin": True,
        "let-go": False,
    }

    secrets = [*tokens.values(), expiring, revoked]
    secrets += [token.split("_", 2)[2] for token in secrets]  # the secret parts alone
    dump = dump_state(root / ".mlform" / "state.duckdb")
    assert "the-reader" in dump  # the dump does hold what the tables hold
    for secret in secrets:
        assert secret not in dump
        for file in (root / ".mlform").rglob("*"):
            if file.is_file():
                assert secret.encode() not in file.read_bytes(), file


def dump_state(path: Path) -> str:
    """Every row of every table of the state, as text."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [
            row[0] for row in con.execute("select table_name from duckdb_tables()").fetchall()
        ]
        assert "tokens" in tables and "events" in tables
        return "\n".join(
            f"{table}: {row}"
            for table in tables
            for row in con.execute(f"select * from {table}").fetchall()
        )
    finally:
        con.close()
