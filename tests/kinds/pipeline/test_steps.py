"""A step's secrets are compared beside its digest: a new value reruns the steps that get
it, and what depends on them, and reuses the others."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.cli.test_runs import changes
from tests.conftest import Ran

Cli = Callable[..., Ran]

FILES = {
    "workspace.yml": "name: p\nsecrets:\n  - name: TOKEN\n    env: MLFORM_TEST_TOKEN\n",
    "pipelines/pipe.yml": """
        name: pipe
        jobs:
          prepare:
            command: python -c "open('${{outputs.out}}/x', 'w').write('1')"
            outputs:
              out:
                type: uri_folder
          call:
            command: >-
              python -c "import os; assert os.environ['TOKEN'];
              print(open('${{inputs.x}}/x').read())"
            inputs:
              x: ${{parent.jobs.prepare.outputs.out}}
            environment_variables:
              TOKEN: ${{secrets.TOKEN}}
        """,
}


def test_a_new_value_reruns_only_the_step_that_gets_it(
    cli: Cli, make_workspace: Callable[[Mapping[str, str]], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_workspace(FILES)
    monkeypatch.setenv("MLFORM_TEST_TOKEN", "first")
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    monkeypatch.setenv("MLFORM_TEST_TOKEN", "second")
    assert changes(cli("plan", cwd=root).out) == [
        "> pipeline/pipe (prepare: reuse; call: secret TOKEN changed)"
    ]
    rerun = cli("apply", "--yes", cwd=root)
    assert rerun.code == 0, rerun.out + rerun.err
    assert "ran call; reused prepare" in rerun.out
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
