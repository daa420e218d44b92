"""`${{secrets.NAME}}` is checked where it is written: a name that is not declared, and a
reference where nothing substitutes it (a command, an environment, an image), are errors
at their file and line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran

Cli = Callable[..., Ran]


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFORM_TEST_TOKEN", "t0ken")


WORKSPACE = "name: s\nsecrets:\n  - name: API_TOKEN\n    env: MLFORM_TEST_TOKEN\n"


def test_an_unknown_name_is_an_error_where_it_is_referenced(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = make_workspace(
        {
            "workspace.yml": WORKSPACE,
            "runconfigs/job.yml": """
                name: job
                command: echo hi
                environment_variables:
                  TOKEN: Bearer ${{ secrets.API_TOKN }}
                """,
        }
    )
    assert cli("validate", cwd=root).err == (
        "runconfigs/job.yml:4:10: error: ${{secrets.API_TOKN}} names no declared secret (did "
        "you mean 'API_TOKEN'?); declare API_TOKN under secrets: in workspace.yml\n"
        "validation failed: 1 error\n"
    )


def test_a_reference_where_nothing_substitutes_it_is_an_error(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = make_workspace(
        {
            "workspace.yml": WORKSPACE,
            "runconfigs/job.yml": """
                name: job
                command: curl -H "token=${{secrets.API_TOKEN}}" https://example.com
                """,
            "environments/env.yml": """
                name: env
                pip: []
                environment_variables:
                  TOKEN: ${{secrets.API_TOKEN}}
                """,
        }
    )
    places = (
        "reference secrets in environment_variables of a job, pipeline step, component or "
        "deployment, or a datastore's storage_options"
    )
    assert cli("validate", cwd=root).err.splitlines() == [
        f"environments/env.yml:4:10: error: ${{{{secrets.API_TOKEN}}}} is not substituted "
        f"here; {places}",
        f"runconfigs/job.yml:2:10: error: ${{{{secrets.API_TOKEN}}}} is not substituted "
        f"here; {places}",
        "validation failed: 2 errors",
    ]


def test_references_in_steps_components_deployments_and_datastores_are_known(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path]
) -> None:
    root = make_workspace(
        {
            "workspace.yml": WORKSPACE
            + "datastores:\n  - name: store\n    path: memory://s\n    storage_options:\n"
            + "      client_kwargs:\n        token: ${{secrets.API_TOKEN}}\n",
            "components/step.yml": """
                name: step
                command: echo hi
                environment_variables:
                  TOKEN: ${{secrets.API_TOKEN}}
                """,
            "pipelines/pipe.yml": """
                name: pipe
                jobs:
                  a:
                    component: ../components/step.yml
                  b:
                    command: echo b
                    environment_variables:
                      TOKEN: ${{secrets.API_TOKEN}}
                """,
        }
    )
    from mlform.workspace import Workspace

    ran = cli("validate", cwd=root)
    assert (ran.code, ran.err) == (0, "")
    assert Workspace(root).config.secret_uses() == {
        "datastore/store": ("API_TOKEN",),
        "pipeline/pipe": ("API_TOKEN",),
    }
