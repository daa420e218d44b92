"""Reading YAML: data fast, marks only when asked, duplicates and broken files as problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mlform.config.yamlfile import Document, read_document

TEXT = """\
name: iris
tags:
  rows: 150
  1: numbered
pip:
  - numpy
  - name: nested
    extras: [a, b]
matrix:
  - [1, 2]
  - [3, 4]
"""


@pytest.fixture
def doc(tmp_path: Path) -> Document:
    path = tmp_path / "iris.yml"
    path.write_text(TEXT, encoding="utf-8")
    return read_document(path, "data/iris.yml")


def test_data_is_read(doc: Document) -> None:
    assert doc.problems == []
    assert doc.parsed
    assert doc.data["tags"] == {"rows": 150, 1: "numbered"}


@pytest.mark.parametrize(
    ("where", "key", "expected"),
    [
        ((), False, (1, 1)),
        (("name",), False, (1, 7)),
        (("name",), True, (1, 1)),
        (("tags",), True, (2, 1)),
        (("tags", "rows"), False, (3, 9)),
        (("tags", "rows"), True, (3, 3)),
        (("tags", 1), True, (4, 3)),  # a key read as a number is found by its number
        (("pip", 0), False, (6, 5)),
        (("pip", 1), False, (7, 5)),
        (("pip", 1, "extras"), False, (8, 13)),
        (("pip", 1, "extras", 1), False, (8, 17)),
        (("matrix", 1, 0), False, (11, 6)),
    ],
)
def test_locate(doc: Document, where: tuple[str | int, ...], key: bool, expected: object) -> None:
    assert doc.locate(where, key=key) == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (("tags", "missing"), (3, 3)),  # a missing key: the mapping it is missing from
        (("pip", 9), (6, 3)),  # past the end of a list: the list
        (("name", "deeper"), (1, 7)),  # below a scalar: the scalar
        (("nope", "deeper"), (1, 1)),
    ],
)
def test_locate_stops_where_the_path_ends(
    doc: Document, where: tuple[str | int, ...], expected: object
) -> None:
    assert doc.locate(where) == expected


def test_text_is_the_scalar_as_written(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("a: 1.10\nb: yes\nc: [x]\nd: 'quoted'\n", encoding="utf-8")
    doc = read_document(path, "env.yml")
    assert doc.data == {"a": 1.1, "b": True, "c": ["x"], "d": "quoted"}
    assert doc.text(["a"]) == "1.10"
    assert doc.text(["b"]) == "yes"
    assert doc.text(["c", 0]) == "x"
    assert doc.text(["d"]) == "quoted"
    assert doc.text(["c"]) is None  # not a scalar
    assert doc.text(["e"]) is None  # not there


def read(tmp_path: Path, text: str) -> Document:
    path = tmp_path / "f.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return read_document(path, "f.yml")


def test_duplicate_keys_are_problems_at_the_second_key(tmp_path: Path) -> None:
    doc = read(
        tmp_path,
        """\
        name: a
        tags:
          x: 1
          y: 2
          x: 3
        name: b
        """,
    )
    assert [str(p) for p in doc.problems] == [
        "f.yml:5:3: error: duplicate key 'x': only the last one would count; remove one of them",
        "f.yml:6:1: error: duplicate key 'name': only the last one would count; remove one of them",
    ]
    assert doc.data == {"name": "b", "tags": {"x": 3, "y": 2}}


def test_a_key_overriding_a_merged_one_is_not_a_duplicate(tmp_path: Path) -> None:
    doc = read(
        tmp_path,
        """\
        base: &base {a: 1, b: 2}
        one:
          <<: *base
          a: 10
        two:
          <<: *base
          c: 3
          c: 4
        """,
    )
    assert [str(p) for p in doc.problems] == [
        "f.yml:8:3: error: duplicate key 'c': only the last one would count; remove one of them"
    ]
    assert doc.data["one"] == {"a": 10, "b": 2}


def test_an_empty_file_reads_as_nothing(tmp_path: Path) -> None:
    doc = read(tmp_path, "# only a comment\n")
    assert (doc.data, doc.problems, doc.parsed) == (None, [], True)
    assert doc.locate(["name"]) == (1, 1)


def test_a_broken_file_is_one_problem_and_no_data(tmp_path: Path) -> None:
    doc = read(tmp_path, "name: [a\n")
    assert doc.data is None
    assert not doc.parsed
    assert len(doc.problems) == 1
    assert doc.locate(["name"]) == (1, 1)  # never composes a file that does not parse


# (text, line, column, message after "invalid YAML: ")
BROKEN = [
    (
        "name: a\npath: [x\n",
        2,
        7,
        "this '[' starts a list that is not closed (expected ',' or ']' by line 3); "
        "add the missing ']', or put the value in quotes if '[' is part of the text",
    ),
    (
        "name: a\ntags: {a: 1\npath: x\n",
        2,
        7,
        "this '{' starts a mapping that is not closed (expected ',' or '}' by line 3); "
        "add the missing '}', or put the value in quotes if '{' is part of the text",
    ),
    (
        "name: a\n  path: x\n",
        2,
        3,
        "'path' is indented deeper than the line above it, so it reads as part of that "
        "line's value; line it up with the keys above",
    ),
    (
        "name: a\ntags:\n  a: 1\n b: 2\n",
        4,
        2,
        "the indentation of this line does not match the lines above it; "
        "indent it like the lines it belongs with",
    ),
    (
        "name: a\npip:\n  - a\n - b\n",
        4,
        2,
        "the indentation of this line does not match the lines above it; "
        "indent it like the lines it belongs with",
    ),
    (
        "name: a\n- x\n",
        2,
        1,
        "a list item where a 'key: value' line was expected; "
        "put the list under a key, indented below it",
    ),
    ("name: a\n\tpath: x\n", 2, 1, "a tab is used for indentation; indent with spaces only"),
    (
        "name: 'abc\npath: x\n",
        1,
        7,
        "the ' that starts this value is never closed; add the closing '",
    ),
    (
        'name: a\npath: "C:\\data"\n',
        2,
        10,
        "found unknown escape character in a double-quoted string; use single quotes, "
        "or write a backslash as \\\\",
    ),
    (
        "name: a\ndescription: note: this\n",
        2,
        18,
        "': ' inside a value; put the whole value in quotes",
    ),
    ("name: a\npath\n", 2, 1, "this line has no ':' after its key; write it as 'key: value'"),
    ("name: @a\n", 1, 7, "a plain value cannot start with '@'; put it in quotes"),
    (
        "name: *a\n",
        1,
        7,
        "'*' starts an alias to an anchor (&name) that is not defined; "
        "put the value in quotes if '*' is part of the text",
    ),
    ("name: a\n---\nname: b\n", 2, 1, "a second document ('---') in the file; keep one per file"),
    (
        "name: a\npath: {{ x }}\n",
        2,
        7,
        "a value that starts with '{{' is read as a mapping; put it in quotes",
    ),
    ("%YAML 1.3\n---\nname: a\n", 1, 1, "found incompatible YAML document"),
]


@pytest.mark.parametrize(("text", "line", "col", "message"), BROKEN)
def test_broken_yaml_is_explained(
    tmp_path: Path, text: str, line: int, col: int, message: str
) -> None:
    path = tmp_path / "f.yml"
    path.write_text(text, encoding="utf-8")
    (problem,) = read_document(path, "f.yml").problems
    assert (problem.line, problem.col, problem.message) == (line, col, f"invalid YAML: {message}")


def test_text_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "f.yml"
    path.write_bytes(b"name: a\ndescription: caf\xe9\n")
    (problem,) = read_document(path, "f.yml").problems
    assert str(problem) == (
        "f.yml:2:17: error: not UTF-8 text (invalid continuation byte); "
        "save the file with UTF-8 encoding"
    )


def test_a_file_that_cannot_be_read_is_a_problem(tmp_path: Path) -> None:
    folder = tmp_path / "folder.yml"
    folder.mkdir()
    (problem,) = read_document(folder, "folder.yml").problems
    assert str(problem) == (
        "folder.yml:1:1: error: cannot read the file: Is a directory; check that it is readable"
    )


def _laughs(levels: int) -> str:
    """The "billion laughs": each anchor a list of nine aliases to the one before."""
    lines = [
        "name: bomb",
        "tags:",
        '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, levels):
        anchor, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"  {anchor}: &{anchor} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_aliases_expanding_past_the_bound_are_one_problem_at_the_alias(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(_laughs(9), encoding="utf-8")
    assert len(path.read_bytes()) < 500
    doc = read_document(path, "data/bomb.yml")
    assert not doc.parsed
    assert [str(p) for p in doc.problems] == [
        "data/bomb.yml:8:10: error: aliases make this file stand for more than 100,000 values "
        "(*e alone for 66,430); write the values out, or use fewer nested aliases"
    ]


def test_aliases_within_the_bound_are_read(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yml"
    path.write_text(_laughs(4), encoding="utf-8")
    doc = read_document(path, "data/laughs.yml")
    assert doc.problems == []
    assert len(doc.data["tags"]["d"]) == 9


@pytest.mark.parametrize("nesting", ["[" * 150 + "]" * 150, "{a: " * 150 + "1" + "}" * 150])
def test_values_nested_too_deep_are_one_problem(tmp_path: Path, nesting: str) -> None:
    path = tmp_path / "deep.yml"
    path.write_text(f"name: deep\ntags: {nesting}\n", encoding="utf-8")
    doc = read_document(path, "data/deep.yml")
    assert not doc.parsed
    column = 6 + 100 if nesting.startswith("[") else 6 + 4 * 99 + 1
    assert [str(p) for p in doc.problems] == [
        f"data/deep.yml:2:{column}: error: values nested more than 100 levels deep; no mlform "
        "file needs that many, flatten the structure"
    ]


def test_an_aliased_value_nested_too_deep_is_reported_at_the_alias(tmp_path: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text(
        "name: deep\nx: &x " + "[" * 60 + "]" * 60 + "\ntags: " + "[" * 45 + "*x" + "]" * 45 + "\n",
        encoding="utf-8",
    )
    doc = read_document(path, "data/deep.yml")
    assert [str(p) for p in doc.problems] == [
        "data/deep.yml:3:52: error: values nested more than 100 levels deep; no mlform "
        "file needs that many, flatten the structure"
    ]


def test_a_control_character_is_reported_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "nul.yml"
    path.write_bytes("name: café\npath: iris\x00.csv\n".encode())
    doc = read_document(path, "data/nul.yml")
    assert [str(p) for p in doc.problems] == [
        "data/nul.yml:2:11: error: invalid YAML: the control character U+0000 cannot be in a "
        "YAML file; remove it (write it as an escape such as \\x00 inside double quotes if the "
        "value needs it)"
    ]
