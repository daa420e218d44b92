"""`mlform secrets list|set|rotate`, driven as a user does: values on standard input,
never on the command line, and never printed."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

import pyrage
import pytest

from tests.conftest import Ran, mlform_process

Cli = Callable[..., Ran]
IDENTITY = Path(__file__).parents[1] / "secrets" / "test-identity.txt"
PUBLIC = IDENTITY.read_text().split("# public key: ")[1].split()[0]
VALUE = "s3cret-value-4a1f"


@pytest.fixture
def workspace(make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path) -> Path:
    return make_workspace(
        {
            "workspace.yml": f"""
                name: s
                secrets:
                  - name: API_TOKEN
                    age: secrets/API_TOKEN.age
                  - name: DB_PASSWORD
                    file: {tmp_path / "outside" / "db-password"}
                  - name: CI_TOKEN
                    env: MLFORM_TEST_CI_TOKEN
                """,
            "secrets/recipients.txt": f"# the test identity\n{PUBLIC}\n",
            "runconfigs/job.yml": """
                name: job
                command: echo hi
                environment_variables:
                  TOKEN: ${{secrets.API_TOKEN}}
                """,
            "endpoints/e.yml": "name: e\nauth_mode: token\n",
        }
    )


def _set(root: Path, *args: str, stdin: str) -> tuple[int, str, str]:
    process = mlform_process(
        "secrets", *args, cwd=root, env={"MLFORM_AGE_IDENTITY": str(IDENTITY)}, stdin=-1
    )
    out, err = process.communicate(stdin, timeout=60)
    return process.returncode, out, err


def test_set_encrypts_the_value_from_stdin_to_the_recipients(workspace: Path) -> None:
    code, out, err = _set(workspace, "set", "API_TOKEN", stdin=VALUE + "\n")
    assert (code, out, err) == (
        0,
        "encrypted to 1 recipient of secrets/recipients.txt and wrote secrets/API_TOKEN.age: "
        "commit it\nThe next `mlform apply` rolls: runconfig/job\n",
        "",
    )
    data = (workspace / "secrets" / "API_TOKEN.age").read_bytes()
    assert data.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    identity = pyrage.x25519.Identity.from_str(IDENTITY.read_text().splitlines()[-1])
    assert pyrage.decrypt(data, [identity]) == VALUE.encode()


def test_set_writes_a_file_secret_0600(workspace: Path, tmp_path: Path) -> None:
    code, out, _ = _set(workspace, "set", "DB_PASSWORD", stdin=VALUE)
    path = tmp_path / "outside" / "db-password"
    assert (code, out) == (0, f"wrote {path} (mode 0600)\nNo resource uses it yet.\n")
    assert path.read_text() == VALUE + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_of_an_environment_secret_says_to_set_the_variable(cli: Cli, workspace: Path) -> None:
    ran = cli("secrets", "set", "CI_TOKEN", cwd=workspace)
    assert (ran.code, ran.err) == (
        1,
        "error: secret CI_TOKEN comes from the environment variable MLFORM_TEST_CI_TOKEN: "
        "mlform cannot set it; set MLFORM_TEST_CI_TOKEN where mlform runs (in CI, as a "
        "secret of the CI system)\n",
    )


def test_set_of_an_undeclared_name_says_where_to_declare_it(cli: Cli, workspace: Path) -> None:
    ran = cli("secrets", "set", "API_TOKN", cwd=workspace)
    assert ran.err == (
        "error: no secret named API_TOKN in workspace.yml (did you mean 'API_TOKEN'?); "
        "declare it under secrets:\n"
    )


def test_list_says_where_each_comes_from_and_who_uses_it_never_a_value(
    cli: Cli, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _set(workspace, "set", "API_TOKEN", stdin=VALUE)[0] == 0
    monkeypatch.setenv("MLFORM_AGE_IDENTITY", str(IDENTITY))
    monkeypatch.setenv("MLFORM_TEST_CI_TOKEN", VALUE)
    ran = cli("secrets", "list", cwd=workspace)
    path = workspace.parent / "outside" / "db-password"
    assert [re.split(r"\s{2,}", line) for line in ran.out.splitlines()] == [
        ["NAME", "SOURCE", "READS HERE", "USED BY"],
        ["API_TOKEN", "age: secrets/API_TOKEN.age", "yes", "runconfig/job"],
        ["CI_TOKEN", "env: MLFORM_TEST_CI_TOKEN", "yes", "-"],
        ["DB_PASSWORD", f"file: {path}", "no", "-"],
        ["endpoint/e/signing-key", "managed: token-signing key", "yes", "endpoint/e"],
        [
            f"DB_PASSWORD: file {path} does not exist; write it with `mlform secrets set "
            "DB_PASSWORD` (it is made mode 0600)"
        ],
    ]
    assert VALUE not in ran.out + ran.err
    assert VALUE not in cli("secrets", "list", "--json", cwd=workspace).out


def test_rotate_generates_a_new_value_and_says_what_apply_rolls(workspace: Path) -> None:
    assert _set(workspace, "set", "API_TOKEN", stdin=VALUE)[0] == 0
    code, out, _ = _set(workspace, "rotate", "API_TOKEN", "--generate", stdin="")
    assert (code, out.splitlines()[-1]) == (0, "The next `mlform apply` rolls: runconfig/job")
    identity = pyrage.x25519.Identity.from_str(IDENTITY.read_text().splitlines()[-1])
    new = pyrage.decrypt((workspace / "secrets" / "API_TOKEN.age").read_bytes(), [identity])
    assert len(new) == 43 and new != VALUE.encode()
    assert new.decode() not in out


def test_a_value_is_never_taken_from_the_command_line(cli: Cli, workspace: Path) -> None:
    with pytest.raises(SystemExit):
        cli("secrets", "set", "API_TOKEN", VALUE, cwd=workspace)
    assert not (workspace / "secrets" / "API_TOKEN.age").exists()


def test_the_example_gets_its_committed_token_and_plans_a_run_when_it_is_rotated(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    root = tmp_path / "secrets"
    example = Path(__file__).parents[2] / "examples" / "secrets"
    shutil.copytree(example, root, ignore=shutil.ignore_patterns(".mlform"))
    monkeypatch.setenv("MLFORM_AGE_IDENTITY", str(IDENTITY))
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert "    runconfig/call-api: got an API token of 26 characters\n" in applied.out
    assert "demo-token-for-the-example" not in applied.out
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    rotated = cli("secrets", "rotate", "API_TOKEN", "--generate", cwd=root)
    assert rotated.out.splitlines()[-1] == "The next `mlform apply` rolls: runconfig/call-api"
    planned = cli("plan", cwd=root)
    assert "> runconfig/call-api  (secret API_TOKEN changed)" in planned.out
