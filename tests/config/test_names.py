"""One name rule for files and the command line: the schema's, applied to CLI arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mlform.config.names import name_problem
from tests.conftest import Ran, mlform_process

Make = Callable[[Mapping[str, str]], Path]
Cli = Callable[..., Ran]

HINT = (
    "a name starts with a letter or digit and has only letters, digits, '-', '_' and '.' "
    "(at most 255 characters)"
)


@pytest.mark.parametrize("name", ["iris", "iris-classifier", "v1.2_b", "0day", "a" * 255])
def test_names_a_file_may_declare_are_accepted(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["../../evil", "a;rm -rf", "\x1b[31mred", "a b", "name\n", "-flag", "", "a" * 256]
)
def test_other_names_are_refused_with_the_rule(name: str) -> None:
    assert name_problem(name) == f"{name!r} is not a valid name: {HINT}"


def _cli(root: Path, *args: str) -> tuple[int, list[str]]:
    process = mlform_process(*args, cwd=root)
    _, err = process.communicate(timeout=60)
    return process.returncode, err.splitlines()[-1:]


@pytest.fixture
def workspace(make_workspace: Make) -> Path:
    return make_workspace({"workspace.yml": "name: names\n", "model/model.pkl": "weights\n"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["models", "register", "../../evil", "model"],
            f"mlform models register: error: argument name: '../../evil' is not a valid "
            f"name: {HINT}",
        ),
        (
            ["models", "register", "evil;id", "model"],
            f"mlform models register: error: argument name: 'evil;id' is not a valid name: {HINT}",
        ),
        (
            ["models", "show", "\x1b[2Jevil:1"],
            f"mlform models show: error: argument NAME[:VERSION]: '\\x1b[2Jevil:1' is not a "
            f"valid name: {HINT}",
        ),
        (
            ["data", "show", "../iris"],
            f"mlform data show: error: argument NAME[:VERSION]: '../iris' is not a valid "
            f"name: {HINT}",
        ),
        (
            ["endpoints", "show", "iris;x"],
            f"mlform endpoints show: error: argument name: 'iris;x' is not a valid name: {HINT}",
        ),
        (
            ["runs", "show", "../x"],
            f"mlform runs show: error: argument RUN: '../x' is not a valid name: {HINT}",
        ),
        (
            ["state", "show", "model/../x"],
            "mlform state show: error: argument KIND/NAME: 'model/../x' is not KIND/NAME: the "
            "kind is a word such as runconfig or model",
        ),
        (
            ["plan", "--rerun", "train;x"],
            f"mlform plan: error: argument --rerun: 'train;x' is not a valid name: {HINT}",
        ),
    ],
)
def test_cli_names_follow_the_rule(workspace: Path, args: list[str], message: str) -> None:
    assert _cli(workspace, *args) == (2, [message])
    assert not (workspace / ".mlform" / "state.duckdb").exists()


def test_the_library_refuses_a_bad_model_name_too(workspace: Path) -> None:
    from mlform.errors import MlformError
    from mlform.registry import operations
    from mlform.workspace import Workspace

    with pytest.raises(MlformError) as caught:
        operations.register(Workspace(str(workspace)), "../../evil", workspace / "model")
    assert str(caught.value) == f"model name '../../evil' is not a valid name: {HINT}"


def test_a_name_in_a_file_follows_the_same_rule(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: names\n",
            "data/x.csv": "a\n1\n",
            # The schema's pattern alone would let the trailing newline through.
            "data/x.yml": 'name: "evil\\n"\ntype: uri_file\npath: x.csv\n',
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        f"data/x.yml:1:7: error: name 'evil\\n' is not a valid name: {HINT}",
        "validation failed: 1 error",
    ]
