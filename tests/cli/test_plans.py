"""`mlform plan` renderings and `mlform state show` never print an environment
variable's value: a plan's Markdown is posted on pull requests, and values are secrets
often enough (an API token) that none is shown, only its name."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

ENVIRONMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: serving-env
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
environment_variables:
  API_TOKEN: s3cret-before
  OLD_TOKEN: s3cret-removed
  LOG_LEVEL: info
"""
SECRETS = ("s3cret-before", "s3cret-after", "s3cret-removed", "s3cret-added")


@pytest.fixture
def changed(cli: Cli, make_workspace: Make) -> Path:
    """An environment applied, then its file edited: one value changed, one variable
    removed, one added."""
    root = make_workspace(
        {"workspace.yml": "name: secrets\n", "environments/serving.yml": ENVIRONMENT}
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    spec = root / "environments" / "serving.yml"
    spec.write_text(
        spec.read_text()
        .replace("s3cret-before", "s3cret-after")
        .replace("  OLD_TOKEN: s3cret-removed\n", "  NEW_TOKEN: s3cret-added\n")
    )
    return root


REASONS = [
    "environment_variables.API_TOKEN: value changed",
    "environment_variables.NEW_TOKEN added",
    "environment_variables.OLD_TOKEN removed",
    "version 1 → 2",
]


def test_a_text_plan_names_changed_variables_without_their_values(cli: Cli, changed: Path) -> None:
    ran = cli("plan", cwd=changed)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == (
        "mlform will perform these actions:\n"
        "\n"
        f"  ~ environment/serving-env  ({'; '.join(REASONS)})\n"
        "\n"
        "Plan: 0 to add, 1 to change, 0 to destroy, 0 to run. 1 unchanged.\n"
    )


def test_a_markdown_plan_names_changed_variables_without_their_values(
    cli: Cli, changed: Path
) -> None:
    ran = cli("plan", "--markdown", cwd=changed)
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == (
        "### mlform plan: Plan: 0 to add, 1 to change, 0 to destroy, 0 to run\n"
        "\n"
        "```diff\n"
        f"! ~ environment/serving-env  ({'; '.join(REASONS)})\n"
        "```\n"
        "\n"
        "1 resources unchanged · state serial 2\n"
    )


def test_a_json_plan_and_a_saved_plan_name_changed_variables_without_their_values(
    cli: Cli, changed: Path, tmp_path: Path
) -> None:
    ran = cli("plan", "--json", "-o", str(tmp_path / "plan.json"), cwd=changed)
    assert (ran.code, ran.err) == (0, "")
    change = json.loads(ran.out)["changes"][0]
    assert (change["address"], change["reasons"]) == ("environment/serving-env", REASONS)
    saved = (tmp_path / "plan.json").read_text()
    assert json.loads(saved)["changes"][0]["reasons"] == REASONS
    variable = "environment_variables"
    details = [
        {"code": "spec_changed", "key": f"{variable}.API_TOKEN", "change": "hidden"},
        {"code": "spec_changed", "key": f"{variable}.NEW_TOKEN", "change": "added"},
        {"code": "spec_changed", "key": f"{variable}.OLD_TOKEN", "change": "removed"},
        {"code": "version_bump", "before": "1", "after": "2"},
    ]
    expected = [{**d, "text": text} for d, text in zip(details, REASONS, strict=True)]
    assert change["reason_details"] == expected
    assert json.loads(saved)["changes"][0]["reason_details"] == expected
    assert not [s for s in SECRETS if s in ran.out + saved]


def test_state_show_hides_variable_values(cli: Cli, changed: Path) -> None:
    ran = cli("state", "show", "environment/serving-env", cwd=changed)
    assert (ran.code, ran.err) == (0, "")
    shown = json.loads(ran.out)
    hidden = {"API_TOKEN": "(hidden)", "LOG_LEVEL": "(hidden)", "OLD_TOKEN": "(hidden)"}
    assert shown["spec"]["environment_variables"] == hidden
    assert shown["outputs"]["variables"] == hidden
    assert not [s for s in SECRETS if s in ran.out]
    # The state itself keeps them: apply needs them to start what uses the environment.
    assert "s3cret-before" in (changed / ".mlform" / "state.duckdb").read_bytes().decode("latin-1")
