"""Where a value is kept: an environment variable, a file outside the repository, an
age-encrypted file in it. A source that cannot be read is a validation error naming the
secret, its source and what to set — from `validate`, `plan` and `apply` alike, before
anything runs; a secret no resource uses need not be readable."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pyrage
import pytest

from tests.conftest import Ran

Cli = Callable[..., Ran]
IDENTITY = Path(__file__).parent / "test-identity.txt"
PUBLIC = IDENTITY.read_text().split("# public key: ")[1].split()[0]

JOB = """
    name: job
    command: python -c "import os; assert os.environ['TOKEN']"
    environment_variables:
      TOKEN: ${{secrets.TOKEN}}
    """


def _workspace(make: Callable[[Mapping[str, str]], Path], source: str) -> Path:
    return make(
        {
            "workspace.yml": f"name: s\nsecrets:\n  - name: TOKEN\n    {source}\n",
            "runconfigs/job.yml": JOB,
        }
    )


@pytest.fixture(autouse=True)
def _no_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFORM_AGE_IDENTITY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("MLFORM_TEST_TOKEN", raising=False)


def test_an_unset_variable_is_an_error_of_validate_plan_and_apply(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = _workspace(make_workspace, "env: MLFORM_TEST_TOKEN")
    expected = (
        "workspace.yml:3:5: error: secret TOKEN (env: MLFORM_TEST_TOKEN) cannot be read "
        "here: the environment variable MLFORM_TEST_TOKEN is not set; set it (in CI, from "
        "the CI system's secrets) — used by runconfig/job\nvalidation failed: 1 error\n"
    )
    for command in (["validate"], ["plan"], ["apply", "--yes"]):
        ran = cli(*command, cwd=root)
        assert (ran.code, ran.out, ran.err) == (1, "", expected), command
    assert not (root / ".mlform" / "runs").exists()  # nothing ran


def test_a_set_variable_validates(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(make_workspace, "env: MLFORM_TEST_TOKEN")
    monkeypatch.setenv("MLFORM_TEST_TOKEN", "t0ken")
    assert cli("validate", cwd=root).out.startswith("Valid: 2 resources in ")


def test_a_secret_no_resource_uses_need_not_be_readable(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = make_workspace(
        {"workspace.yml": "name: s\nsecrets:\n  - name: UNUSED\n    env: MLFORM_TEST_TOKEN\n"}
    )
    assert cli("validate", cwd=root).code == 0


def test_a_file_others_can_read_is_refused_with_the_chmod_to_run(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "token"
    secret.parent.mkdir()
    secret.write_text("t0ken\n")
    secret.chmod(0o644)
    root = _workspace(make_workspace, f"file: {secret}")
    ran = cli("validate", cwd=root)
    assert ran.err == (
        f"workspace.yml:3:5: error: secret TOKEN (file: {secret}) cannot be read here: file "
        f"{secret} can be read by others (mode 0644); run `chmod 600 {secret}` — used by "
        "runconfig/job\nvalidation failed: 1 error\n"
    )
    secret.chmod(0o600)
    assert cli("validate", cwd=root).code == 0


def test_a_missing_file_says_how_to_write_it(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    root = _workspace(make_workspace, f"file: {tmp_path / 'nowhere'}")
    assert (
        f"file {tmp_path / 'nowhere'} does not exist; write it with `mlform secrets set TOKEN` "
        "(it is made mode 0600)"
    ) in cli("validate", cwd=root).err


def test_a_file_inside_the_repository_is_refused(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = _workspace(make_workspace, "file: token.txt")
    assert cli("validate", cwd=root).err == (
        "workspace.yml:4:11: error: file: token.txt is inside the repository, where it would "
        "be committed; keep it outside (e.g. ~/.config/token), or commit it encrypted with "
        "age: secrets/TOKEN.age\nvalidation failed: 1 error\n"
    )


def _encrypted(root: Path, value: str, to: str = PUBLIC) -> None:
    path = root / "secrets" / "TOKEN.age"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(pyrage.encrypt(value.encode(), [pyrage.x25519.Recipient.from_str(to)]))


def test_an_age_secret_without_an_identity_says_where_to_put_one(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    root = _workspace(make_workspace, "age: secrets/TOKEN.age")
    _encrypted(root, "t0ken")
    keys = tmp_path / "config" / "mlform" / "age" / "keys.txt"
    assert cli("validate", cwd=root).err == (
        "workspace.yml:3:5: error: secret TOKEN (age: secrets/TOKEN.age) cannot be read "
        "here: no age identity: set MLFORM_AGE_IDENTITY to an age identity or put one in "
        f"{keys} — used by runconfig/job\nvalidation failed: 1 error\n"
    )
    keys.parent.mkdir(parents=True)
    keys.write_text(IDENTITY.read_text())  # SOPS's layout: the user's keys.txt
    assert cli("validate", cwd=root).code == 0


def test_the_identity_may_be_given_as_text_or_as_a_path(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(make_workspace, "age: secrets/TOKEN.age")
    _encrypted(root, "t0ken")
    monkeypatch.setenv("MLFORM_AGE_IDENTITY", str(IDENTITY))
    assert cli("validate", cwd=root).code == 0
    key = next(line for line in IDENTITY.read_text().splitlines() if line.startswith("AGE-"))
    monkeypatch.setenv("MLFORM_AGE_IDENTITY", key)
    assert cli("validate", cwd=root).code == 0


def test_an_age_file_for_another_identity_is_undecryptable(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(make_workspace, "age: secrets/TOKEN.age")
    _encrypted(root, "t0ken", str(pyrage.x25519.Identity.generate().to_public()))
    monkeypatch.setenv("MLFORM_AGE_IDENTITY", str(IDENTITY))
    assert cli("validate", cwd=root).err == (
        "workspace.yml:3:5: error: secret TOKEN (age: secrets/TOKEN.age) cannot be read "
        f"here: the age identity from MLFORM_AGE_IDENTITY ({IDENTITY}) cannot decrypt "
        "secrets/TOKEN.age (No matching keys found); encrypt it to that identity's public "
        "key (add it to recipients.txt and run `mlform secrets set`), or use the identity "
        "it was encrypted to — used by runconfig/job\nvalidation failed: 1 error\n"
    )


def test_a_missing_age_file_says_how_to_create_it(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(make_workspace, "age: secrets/TOKEN.age")
    monkeypatch.setenv("MLFORM_AGE_IDENTITY", str(IDENTITY))
    assert (
        "secrets/TOKEN.age does not exist; create it with `mlform secrets set TOKEN`"
        in cli("validate", cwd=root).err
    )


def test_declarations_are_checked_with_every_other_error(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = make_workspace(
        {
            "workspace.yml": """
                name: s
                secrets:
                  - name: 1TOKEN
                    env: X
                  - name: TOKEN
                  - name: TOKEN
                    env: A
                    age: secrets/TOKEN.age
                  - name: OTHER
                    env: A
                  - name: OTHER
                    env: B
                """,
        }
    )
    assert cli("validate", cwd=root).err.splitlines() == [
        "workspace.yml:3:11: error: secrets[0].name '1TOKEN' is not valid: use letters, "
        "digits and _, not starting with a digit (API_TOKEN)",
        "workspace.yml:5:5: error: secret TOKEN needs a source: env: VARIABLE, file: PATH "
        "(outside the repository) or age: secrets/TOKEN.age (committed, encrypted)",
        "workspace.yml:8:5: error: secret TOKEN has both env: and age:; keep one source",
        "workspace.yml:11:11: error: duplicate secret name 'OTHER': also declared at "
        "workspace.yml:9:11; rename one of them",
        "validation failed: 4 errors",
    ]


def test_a_value_read_from_a_file_loses_its_final_newline(
    make_workspace: Callable[[Mapping[str, str]], Path], tmp_path: Path
) -> None:
    from mlform.workspace import Workspace

    secret = tmp_path / "token"
    secret.write_text("t0ken\n")
    os.chmod(secret, 0o600)
    root = _workspace(make_workspace, f"file: {secret}")
    assert Workspace(root).validate().vault.value("TOKEN") == "t0ken"


def test_an_unreadable_secret_is_reported_with_every_other_error(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = _workspace(make_workspace, "env: MLFORM_TEST_TOKEN")
    (root / "runconfigs" / "other.yml").write_text("name: other\ncommand: echo\ncompute: gpu\n")
    assert cli("validate", cwd=root).err.splitlines() == [
        "runconfigs/other.yml:3:10: error: unknown compute 'gpu' (runs can use: local); "
        "declare it in compute/gpu.yml with type: local, or use compute: local",
        "workspace.yml:3:5: error: secret TOKEN (env: MLFORM_TEST_TOKEN) cannot be read "
        "here: the environment variable MLFORM_TEST_TOKEN is not set; set it (in CI, from "
        "the CI system's secrets) — used by runconfig/job",
        "validation failed: 2 errors",
    ]
