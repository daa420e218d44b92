"""Read YAML files fast, and find line/column marks only when a problem needs them.

Loading with PyYAML's C loader builds plain Python objects at about twice the speed of
composing the node tree with marks. Marks matter only to point at a problem, so a
`Document` composes its file a second time, lazily, the first time it is asked where a
value is. A clean workspace never pays for marks.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlform.errors import Problem

try:
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

JsonPath = Sequence[str | int]


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader that reports duplicate keys instead of silently keeping the last."""

    duplicates: list[tuple[str, yaml.Mark]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        if len(mapping) != len(node.value):
            seen: set[Hashable] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, Hashable) and key in seen:
                    self.duplicates.append((str(key), key_node.start_mark))
                if isinstance(key, Hashable):
                    seen.add(key)
        return mapping


@dataclass(eq=False)
class Document:
    """One YAML file: its data, where it lives, and the problems found while reading it."""

    path: Path
    display: str  # the path as shown to the user, relative to the workspace root
    data: Any
    problems: list[Problem] = field(default_factory=list)
    _nodes: yaml.Node | None = field(default=None, repr=False)

    def problem(
        self, where: JsonPath, message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        line, col = self.locate(where, key=key)
        return Problem(self.display, line, col, message, severity)

    def locate(self, where: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at `where` (of its key when `key`).

        Walks as deep as the path exists, so a missing key points at its parent mapping.
        """
        node = self._compose()
        if node is None:
            return 1, 1
        mark = node.start_mark
        for step in where:
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == step:
                        mark = key_node.start_mark if key else value_node.start_mark
                        node = value_node
                        break
                else:
                    break
            elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
                if step >= len(node.value):
                    break
                node = node.value[step]
                mark = node.start_mark
            else:
                break
        return mark.line + 1, mark.column + 1

    def _compose(self) -> yaml.Node | None:
        if self._nodes is None:
            text = self.path.read_text(encoding="utf-8")
            self._nodes = yaml.compose(text, Loader=_BaseLoader)
        return self._nodes


def read_document(path: Path, display: str) -> Document:
    """Parse one YAML file; malformed YAML becomes a located problem, never an exception."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        return Document(path, display, None, [Problem(display, 1, 1, f"not UTF-8 text: {err}")])
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = err.problem or "malformed YAML"
        if err.context:
            what = f"{err.context}, {what}"
        return Document(path, display, None, [Problem(display, line, col, f"invalid YAML: {what}")])
    except yaml.YAMLError as err:
        return Document(path, display, None, [Problem(display, 1, 1, f"invalid YAML: {err}")])
    finally:
        loader.dispose()
    doc = Document(path, display, data)
    for key, mark in loader.duplicates:
        doc.problems.append(
            Problem(
                display,
                mark.line + 1,
                mark.column + 1,
                f"duplicate key '{key}': only the last one would count; remove one of them",
            )
        )
    if data is None:
        doc.problems.append(Problem(display, 1, 1, "file is empty: expected a mapping of keys"))
    elif not isinstance(data, dict):
        doc.problems.append(
            Problem(display, 1, 1, f"expected a mapping of keys, found a {_yaml_type(data)}")
        )
    return doc


def _yaml_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
