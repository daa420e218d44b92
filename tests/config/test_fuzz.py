"""The loader over generated YAML: never an exception, always a config or located problems.

Each kind starts from a valid file shaped as Azure ML documents it; Hypothesis then
replaces, removes and adds values anywhere in it (any YAML type, odd text, deep nesting),
and splices hostile text (aliases, tags, tabs, control characters, unclosed brackets) into
the written file. Whatever comes out, `load` returns a config or raises `ConfigInvalid`
whose every problem is `path:line:col: severity: message` on one line.

Derandomized and without an example database, so CI runs the same examples every time.
"""

from __future__ import annotations

import contextlib
import copy
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlform.errors import ConfigInvalid
from mlform.loader import load

SUPPORT = {
    "workspace.yml": "name: fuzz\n",
    "src/train.py": "print('train')\n",
    "score/score.py": "def init():\n    pass\n\n\ndef run(data):\n    return data\n",
    "data/iris.csv": "a,b\n1,2\n",
    "models/model.pkl": "weights\n",
    "environments/sklearn.yml": "name: sklearn-env\nimage: python:3.11-slim\n",
    "models/clf.yml": "name: iris-classifier\npath: model.pkl\n",
    "data/iris.yml": "name: iris\ntype: uri_file\npath: iris.csv\n",
}

# kind → (file it is written to, a valid document of that kind)
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "workspace": (
        "workspace.yml",
        {
            "name": "fuzz",
            "description": "generated",
            "state": ".mlform/state.duckdb",
            "datastores": [{"name": "workspaceblobstore", "path": ".mlform/ds", "default": True}],
        },
    ),
    "environment": (
        "environments/env.yml",
        {
            "$schema": "https://azuremlschemas.azureedge.net/latest/environment.schema.json",
            "name": "train-env",
            "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest",
            "conda_file": {
                "name": "train",
                "channels": ["conda-forge"],
                "dependencies": ["python=3.11", "pip", {"pip": ["scikit-learn==1.5.2"]}],
            },
            "environment_variables": {"SEED": "0"},
        },
    ),
    "data": (
        "data/asset.yml",
        {
            "$schema": "https://azuremlschemas.azureedge.net/latest/data.schema.json",
            "name": "flowers",
            "version": 1,
            "type": "uri_file",
            "path": "iris.csv",
            "tags": {"rows": 150},
        },
    ),
    "runconfig": (
        "runconfigs/job.yml",
        {
            "$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
            "type": "command",
            "command": "python train.py --data ${{inputs.data}} --out ${{outputs.model}}",
            "code": "../src",
            "environment": "azureml:sklearn-env@latest",
            "compute": "local",
            "inputs": {"data": {"type": "uri_file", "path": "azureml:iris@latest"}},
            "outputs": {"model": {"type": "uri_folder"}},
            "experiment_name": "fuzz",
        },
    ),
    "pipeline": (
        "pipelines/pipe.yml",
        {
            "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
            "type": "pipeline",
            "name": "pipe",
            "settings": {"default_compute": "local"},
            "inputs": {"raw": {"type": "uri_file", "path": "../data/iris.csv"}},
            "jobs": {
                "prepare": {
                    "code": "../src",
                    "command": "python train.py ${{inputs.raw}} ${{outputs.clean}}",
                    "environment": "azureml:sklearn-env@latest",
                    "inputs": {"raw": "${{parent.inputs.raw}}"},
                    "outputs": {"clean": {"type": "uri_file"}},
                },
                "train": {
                    "component": "../components/train.yml",
                    "inputs": {"data": "${{parent.jobs.prepare.outputs.clean}}"},
                },
            },
        },
    ),
    "component": (
        "components/train.yml",
        {
            "$schema": "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json",
            "name": "train_model",
            "version": 1,
            "type": "command",
            "inputs": {"data": {"type": "uri_file"}, "epochs": {"type": "integer", "default": 3}},
            "outputs": {"model": {"type": "uri_folder"}},
            "code": "../src",
            "environment": "azureml:sklearn-env@latest",
            "command": "python train.py ${{inputs.data}} ${{outputs.model}}",
        },
    ),
    "endpoint": (
        "endpoints/web.yml",
        {
            "$schema": (
                "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json"
            ),
            "name": "web",
            "auth_mode": "key",
            "traffic": {"blue": 100},
        },
    ),
    "deployment": (
        "endpoints/blue.yml",
        {
            "$schema": (
                "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json"
            ),
            "name": "blue",
            "endpoint_name": "web",
            "model": "azureml:iris-classifier@latest",
            "code_configuration": {"code": "../score", "scoring_script": "score.py"},
            "environment": "azureml:sklearn-env@latest",
            "instance_type": "Standard_DS3_v2",
            "instance_count": 1,
            "request_settings": {"request_timeout_ms": 5000},
        },
    ),
    "compute": (
        "compute/cpu.yml",
        {
            "$schema": "https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json",
            "name": "cpu-cluster",
            "type": "local",
            "size": "STANDARD_DS3_v2",
            "min_instances": 0,
            "max_instances": 2,
        },
    ),
}
# Files a kind needs beside it to be valid before it is mutated.
COMPANIONS = {
    "pipeline": ["component"],
    "deployment": ["endpoint"],
    "endpoint": ["deployment"],
}

TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    [
        "../../etc/passwd",
        "/etc/shadow",
        "file:///etc",
        "${{inputs.x}}",
        "azureml:x:1",
        "a;b",
        "\x1b[31m",
        "-r /etc/passwd",
        "--index-url x",
        "1e400",
        "~",
        "*",
        "&a",
        "!!str",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
SPLICES = st.sampled_from(
    [
        "\t",
        ":",
        ": ",
        "- ",
        "[",
        "{",
        "}",
        "]",
        "'",
        '"',
        "&a ",
        "*a",
        "*nope",
        "<<: *a",
        "!!python/object:os.system ",
        "!!binary ",
        "? ",
        "\x00",
        "\x07",
        "\ufeff",
        "---\n",
        "%YAML 1.1\n",
        "#",
        "\n  ",
        "\r",
        "\\",
        "|\n",
        ">-\n",
        "key: [" * 40,
        "- " * 120,
    ]
)


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(node, Mapping):
        for key, value in node.items():
            found.extend(_paths(value, (*at, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*at, index)))
    return found


@st.composite
def documents(draw: st.DrawFn, kind: str) -> str:
    doc = copy.deepcopy(KINDS[kind][1])
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(_paths(doc)))
        if not where:
            continue
        parent = doc
        for step in where[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if action == "set":
            parent[where[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(TEXT)] = draw(VALUES)
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(SPLICES) + text[at:]
    return text


PROBLEM = re.compile(r"[^\n:]+:[1-9]\d*:[1-9]\d*: (error|warning): [^\n]+")


@contextlib.contextmanager
def _workspace(kind: str, text: str) -> Iterator[Path]:
    """A workspace whose file of `kind` holds `text`, the rest valid."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = dict(SUPPORT)
        for companion in [kind, *COMPANIONS.get(kind, [])]:
            name, body = KINDS[companion]
            files[name] = yaml.safe_dump(body, sort_keys=False)
        files[KINDS[kind][0]] = text
        for name, content in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(content, encoding="utf-8")
        yield root


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_valid_starting_point_loads(kind: str) -> None:
    with _workspace(kind, yaml.safe_dump(KINDS[kind][1], sort_keys=False)) as root:
        load(root)


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_document_is_a_config_or_located_problems(kind: str, data: st.DataObject) -> None:
    with _workspace(kind, data.draw(documents(kind))) as root:
        try:
            load(root)
        except ConfigInvalid as err:
            assert err.problems
            for problem in err.problems:
                assert PROBLEM.fullmatch(str(problem)), str(problem)
