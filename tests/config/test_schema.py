"""Schema checks: one readable message per mistake, and which values cannot be used."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlform.config import schema
from mlform.config.yamlfile import read_document


def check(tmp_path: Path, kind: str, text: str) -> schema.Findings:
    path = tmp_path / "f.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return schema.check(read_document(path, "f.yml"), kind)


def messages(found: schema.Findings) -> list[str]:
    return [f"{p.line}:{p.col}: {p.message}" for p in found.problems]


def test_a_valid_document_is_clean(tmp_path: Path) -> None:
    found = check(tmp_path, "data", "name: iris\npath: iris.csv\ntags: {rows: 150, ok: true}\n")
    assert found == schema.CLEAN


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("''", "conda_file must not be empty"),
        (
            "[a]",
            "conda_file must be a path to a conda file or an inline conda mapping, not a list; "
            "write one 'key: value' per line, indented under conda_file:",
        ),
        (
            "true",
            "conda_file must be a path to a conda file or an inline conda mapping, "
            "not a boolean (true); put it in quotes to keep it as text: 'true'",
        ),
    ],
)
def test_one_of_says_what_fits(tmp_path: Path, value: str, message: str) -> None:
    found = check(tmp_path, "environment", f"name: e\nconda_file: {value}\n")
    assert messages(found) == [f"2:13: {message}"]
    assert found.bad == {("conda_file",)}


def test_a_misspelt_required_key_is_one_error(tmp_path: Path) -> None:
    found = check(tmp_path, "environment", "name: e\nbuild:\n  pth: docker\n")
    assert messages(found) == ["3:3: unknown key 'pth' in build (did you mean 'path'?)"]
    assert found.bad == {("build", "pth"), ("build", "path")}


def test_nested_problems_in_list_items(tmp_path: Path) -> None:
    found = check(
        tmp_path,
        "workspace",
        """\
        name: ws
        datastores:
          - lake
          - path: somewhere
          - name: z
            storage_options: [a]
          - name: q
            default: 'yes'
        """,
    )
    assert messages(found) == [
        "3:5: datastores[0] must be a mapping, not a string ('lake')",
        "4:5: missing required key 'name' in datastores[1]; add 'name: …'",
        "6:22: datastores[2].storage_options must be a mapping, not a list; "
        "write one 'key: value' per line, indented under storage_options:",
        "8:14: datastores[3].default must be true or false, not a string ('yes')",
    ]
    assert found.bad == {
        ("datastores", 0),
        ("datastores", 1, "name"),
        ("datastores", 2, "storage_options"),
        ("datastores", 3, "default"),
    }


def test_empty_values_and_patterns(tmp_path: Path) -> None:
    found = check(
        tmp_path,
        "data",
        """\
        name: d
        path: ''
        version: v 1
        depends_on: [iris]
        tags: {owner: }
        """,
    )
    assert messages(found) == [
        "2:7: path must not be empty",
        "3:10: version 'v 1' is not valid: a version starts with a letter or digit and has "
        "only letters, digits, '-', '_' and '.'",
        "4:14: depends_on[0] 'iris' is not valid: write it as kind/name, e.g. data/iris",
        "5:15: tags.owner must be a string, a number or true or false, not empty; "
        "write '' for an empty text",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "",
            "file is empty: declare an environment here (it needs at least 'name'), "
            "or delete the file",
        ),
        (
            "just text\n",
            "expected a mapping of keys such as 'name: …', found a string ('just text')",
        ),
        ("- a\n", "expected a mapping of keys such as 'name: …', found a list"),
    ],
)
def test_a_document_that_is_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    found = check(tmp_path, "environment", text)
    assert messages(found) == [f"1:1: {message}"]
    assert found.bad == {()}
