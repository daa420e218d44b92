"""A container's secret variables come in a mounted file the server reads into its own
environment before anything else does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlform.serving import secretenv


def test_the_files_variables_join_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "variables.json"
    path.write_text(json.dumps({"API_TOKEN": "s3cret-value"}))
    environ = {secretenv.FILE: str(path), "OTHER": "1"}
    secretenv.load(environ)
    assert environ == {secretenv.FILE: str(path), "OTHER": "1", "API_TOKEN": "s3cret-value"}


def test_no_file_named_changes_nothing() -> None:
    environ = {"OTHER": "1"}
    secretenv.load(environ)
    assert environ == {"OTHER": "1"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "No such file or directory"),
        ("{not json", "Expecting property name"),
        ('["a list"]', "must hold a JSON object of text values"),
        ('{"N": 1}', "must hold a JSON object of text values"),
    ],
)
def test_a_file_that_cannot_be_read_is_told(tmp_path: Path, content: str | None, why: str) -> None:
    path = tmp_path / "variables.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=f"{path}.*MLFORM_SECRET_FILE.*{why}|{path}.*{why}"):
        secretenv.load({secretenv.FILE: str(path)})
