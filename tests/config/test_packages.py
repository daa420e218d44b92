"""Package lists take requirement specifiers only: pip options are errors at their line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mlform.config.packages import requirement_problem
from tests.conftest import Ran

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

SPECIFIERS = "requirement specifiers only (name, name==1.2, name[extra]>=1, name @ https://…)"
INDEX = (
    "mlform has no key for package indexes yet: set PIP_INDEX_URL or pip.conf on the "
    "machine that builds the environment"
)


@pytest.mark.parametrize(
    "entry",
    [
        "scikit-learn==1.5.2",
        "pandas[parquet]>=2,<3",
        "numpy; python_version >= '3.10'",
        "mypkg @ https://example.org/mypkg-1.0.tar.gz",
        "tool @ git+https://github.com/org/tool@v1.0",
        "six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa2",
    ],
)
def test_requirements_are_accepted(entry: str, tmp_path: Path) -> None:
    assert requirement_problem(entry, tmp_path) is None


def test_local_packages_inside_the_workspace_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    entry = f"mine @ file://{tmp_path}/wheels/mine-1.0-py3-none-any.whl"
    assert requirement_problem(entry, tmp_path) is None
    assert requirement_problem(f"{tmp_path}/wheels", tmp_path) is None
    assert requirement_problem("mine @ file:///etc/passwd", tmp_path) == (
        "'mine @ file:///etc/passwd' installs from /etc/passwd, outside the workspace; copy "
        "the package into the workspace and point at it there"
    )
    assert requirement_problem("/etc/ssh", tmp_path) == (
        "'/etc/ssh' installs from /etc/ssh, outside the workspace; copy the package into the "
        "workspace and point at it there"
    )


def test_pip_options_in_every_package_list_are_errors(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: packages\n",
            # Azure ML's documented environment: an image and a conda file beside it.
            "environments/train.yml": """
                $schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
                name: train
                image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
                conda_file: conda.yml
                """,
            "environments/conda.yml": """
                name: train
                channels: [conda-forge]
                dependencies:
                  - python=3.11
                  - pip
                  - pip:
                      - --index-url https://packages.example/simple
                      - -r /etc/passwd
                      - scikit-learn==1.5.2
                      - mypkg @ https://example.org/mypkg-1.0.tar.gz
                """,
            "environments/inline.yml": """
                name: inline
                pip: [numpy, "-e /etc/ssh", ../../etc/ssh]
                requirements: requirements.txt
                """,
            "environments/requirements.txt": "numpy==2.0  # pinned\n\n  --extra-index-url http://x\n",
        }
    )
    ran = cli("validate", cwd=root)
    assert ran.err.splitlines() == [
        "environments/conda.yml:7:9: error: '--index-url https://packages.example/simple' is a "
        f"pip option (--index-url), not a package: package lists take {SPECIFIERS}; {INDEX}",
        "environments/conda.yml:8:9: error: '-r /etc/passwd' is a pip option (-r), not a "
        f"package: package lists take {SPECIFIERS}; list the packages here instead of naming "
        "another file",
        "environments/inline.yml:2:14: error: '-e /etc/ssh' is a pip option (-e), not a "
        f"package: package lists take {SPECIFIERS}; write name @ file://… for a package "
        "inside the workspace, or name @ https://…",
        "environments/inline.yml:2:29: error: '../../etc/ssh' is a relative path, which pip "
        "reads from wherever it runs; write the package's absolute path inside the workspace, "
        "or name @ file:///…",
        "environments/requirements.txt:3:3: error: '--extra-index-url http://x' is a pip "
        f"option (--extra-index-url), not a package: package lists take {SPECIFIERS}; {INDEX}",
        "validation failed: 5 errors",
    ]
