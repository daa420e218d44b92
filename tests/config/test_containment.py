"""Local paths resolve inside the workspace, links followed; a declared datastore opts in."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran, mlform_process

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def _fix(data: bool) -> str:
    if data:
        return (
            "copy it into the workspace, or declare a local datastore in workspace.yml whose "
            "path: is the folder that holds it (paths under a declared datastore are allowed)"
        )
    return "move it into the workspace"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Files outside the workspace, as /etc would be."""
    outside = tmp_path / "host"
    (outside / "ssh").mkdir(parents=True)
    (outside / "ssh" / "id_rsa").write_text("secret\n")
    (outside / "passwd").write_text("root:x:0:0\n")
    return outside


def test_paths_outside_the_workspace_are_errors(cli: Cli, make_workspace: Make, host: Path) -> None:
    up = os.path.relpath(host, host.parent / "ws" / "data")
    root = make_workspace(
        {
            "workspace.yml": "name: contained\n",
            # Azure ML's documented data asset, model and command job shapes.
            "data/absolute.yml": f"""
                $schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
                name: absolute
                type: uri_file
                path: {host}/passwd
                """,
            "data/climbing.yml": f"""
                name: climbing
                type: uri_file
                path: {up}/passwd
                """,
            "data/url.yml": f"""
                name: url
                type: uri_file
                path: file://{host}/passwd
                """,
            "data/folder.yml": f"""
                name: folder
                type: uri_folder
                path: {host}/ssh
                """,
            "models/model.yml": f"""
                $schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
                name: model
                path: {host}/passwd
                type: custom_model
                """,
            "runconfigs/job.yml": f"""
                $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
                command: python train.py
                code: {up}/ssh
                environment:
                  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
                """,
            "runconfigs/linked.yml": """
                command: python train.py
                code: ../src
                environment:
                  image: python:3.11-slim
                """,
        }
    )
    (root / "src").symlink_to(host / "ssh")
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        f"data/absolute.yml:4:7: error: path '{host}/passwd' resolves to {host}/passwd, outside "
        f"the workspace ({root}); {_fix(True)}",
        f"data/climbing.yml:3:7: error: path '{up}/passwd' resolves to {host}/passwd, outside "
        f"the workspace ({root}); {_fix(True)}",
        f"data/folder.yml:3:7: error: path '{host}/ssh' resolves to {host}/ssh, outside the "
        f"workspace ({root}); {_fix(True)}",
        f"data/url.yml:3:7: error: path 'file://{host}/passwd' resolves to {host}/passwd, "
        f"outside the workspace ({root}); {_fix(True)}",
        f"models/model.yml:3:7: error: model path '{host}/passwd' resolves to {host}/passwd, "
        f"outside the workspace ({root}); {_fix(True)}",
        f"runconfigs/job.yml:3:7: error: code '{up}/ssh' resolves to {host}/ssh, outside the "
        f"workspace ({root}); {_fix(False)}",
        f"runconfigs/linked.yml:2:7: error: code '../src' resolves through a symbolic link to "
        f"{host}/ssh, outside the workspace ({root}); {_fix(False)}",
        "validation failed: 7 errors",
    ]


def test_a_declared_local_datastore_opts_its_folder_in(
    cli: Cli, make_workspace: Make, host: Path
) -> None:
    root = make_workspace(
        {
            "workspace.yml": f"""
                name: opted
                datastores:
                  - name: shared
                    path: {host}
                """,
            "data/keys.yml": f"""
                name: keys
                type: uri_folder
                path: {host}/ssh
                """,
            "data/by-store.yml": """
                name: by-store
                type: uri_file
                path: azureml://datastores/shared/paths/passwd
                """,
        }
    )
    ran = cli("validate", cwd=root)
    assert (ran.code, ran.err) == (0, "")


def test_a_link_inside_a_data_folder_leading_outside_is_an_error(
    cli: Cli, make_workspace: Make, host: Path
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: contained\n",
            "data/rows/part-0.csv": "a\n1\n",
            "data/rows.yml": "name: rows\ntype: uri_folder\npath: rows\n",
        }
    )
    (root / "data" / "rows" / "part-1.csv").symlink_to(host / "passwd")
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        f"data/rows.yml:3:7: error: path 'rows' holds part-1.csv, a symbolic link to "
        f"{host}/passwd, outside the workspace ({root}); copy what it points at into the "
        "folder instead",
        "validation failed: 1 error",
    ]


def test_models_register_refuses_a_path_outside(make_workspace: Make, host: Path) -> None:
    root = make_workspace({"workspace.yml": "name: contained\n", "model/w.pkl": "w\n"})
    for path, expected in [
        (
            f"{host}/ssh",
            f"error: model path '{host}/ssh' resolves to {host}/ssh, outside the workspace "
            f"({root}); {_fix(True)}",
        ),
        ("model", None),
    ]:
        process = mlform_process("models", "register", "weights", path, cwd=root)
        out, err = process.communicate(timeout=60)
        if expected is None:
            assert (process.returncode, out, err) == (0, "registered weights:1\n", "")
        else:
            assert (process.returncode, err) == (1, expected + "\n")


def test_package_files_outside_are_reported_not_read(
    cli: Cli, make_workspace: Make, host: Path
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: contained\n",
            "environments/env.yml": f"""
                $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
                name: env
                image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
                conda_file: {host}/passwd
                """,
            "environments/reqs.yml": f"""
                name: reqs
                requirements: {host}/passwd
                """,
            "endpoints/web.yml": f"""
                name: web
                deployments:
                  - name: blue
                    model: azureml:m@latest
                    environment: azureml:env@latest
                    code_configuration: {{code: {host}/ssh, scoring_script: id_rsa}}
                """,
            "models/m.yml": "name: m\npath: m.pkl\n",
            "models/m.pkl": "w\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        f"endpoints/web.yml:6:32: error: code '{host}/ssh' resolves to {host}/ssh, outside the "
        f"workspace ({root}); {_fix(False)}",
        f"environments/env.yml:4:13: error: conda_file '{host}/passwd' resolves to "
        f"{host}/passwd, outside the workspace ({root}); {_fix(False)}",
        f"environments/reqs.yml:2:15: error: requirements '{host}/passwd' resolves to "
        f"{host}/passwd, outside the workspace ({root}); {_fix(False)}",
        "validation failed: 3 errors",
    ]
