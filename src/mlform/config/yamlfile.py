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

from mlform.config.yamlbounds import MAX_DEPTH, ExpansionError, check_expansion
from mlform.config.yamlerrors import explain_yaml_error
from mlform.errors import Problem

try:
    _BaseLoader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

JsonPath = Sequence[str | int]
Where = tuple[str | int, ...]  # a path into a document, as a key of a set or dict

_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float"))
_RESOLVED: dict[tuple[str, Any], str] = {}  # (plain scalar, implicit) → its tag
_RESOLVED_MAX = 100_000


class _Unusual(Exception):
    """Something the fast construction leaves to PyYAML (see `_Loader._plain`)."""


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """Safe loader that reports duplicate keys instead of silently keeping the last."""

    duplicates: list[tuple[str, yaml.Mark]]
    root: tuple[int, int] | None = None
    text: str = ""

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        # Without path resolvers a scalar's tag depends only on its text, and workspaces
        # repeat the same keys and values thousands of times: remember the regex verdicts.
        key = (value, implicit)
        known = _RESOLVED.get(key) if kind is yaml.ScalarNode else None
        if known is not None:
            return known
        tag: str = super().resolve(kind, value, implicit)
        if kind is yaml.ScalarNode and len(_RESOLVED) < _RESOLVED_MAX:
            _RESOLVED[key] = tag
        return tag

    def construct_document(self, node: yaml.Node) -> Any:
        # The parser has the root's mark at hand: keep it, so `Source.__str__` (on every
        # planned resource) never composes the file again just to say where it starts.
        self.root = (node.start_mark.line + 1, node.start_mark.column + 1)
        try:
            return self._plain(node, set(), 0)
        except _Unusual:
            # Only aliases can make a short file huge, and only a document past the fast
            # path can hold one (or nest too deep): reading its events again costs little.
            check_expansion(self.text, _BaseLoader)
            return super().construct_document(node)

    def _plain(self, node: yaml.Node, seen: set[int], depth: int) -> Any:
        """What SafeConstructor builds, without its per-node bookkeeping (a third of the
        load time), for documents as people write them: string keys, each once, standard
        scalars, no aliases, merge keys or explicit tags. Anything else is `_Unusual`, and
        the whole document is built the usual way, duplicate-key reports included."""
        if id(node) in seen or depth > MAX_DEPTH:  # an alias: PyYAML shares the object
            raise _Unusual
        seen.add(id(node))
        kind, tag = type(node), node.tag
        if kind is yaml.ScalarNode:
            if tag == _STR_TAG:
                return node.value
            if tag in _SCALAR_TAGS:
                return self.yaml_constructors[tag](self, node)
        elif kind is yaml.MappingNode and tag == _MAP_TAG:
            mapping: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                if type(key_node) is not yaml.ScalarNode or key_node.tag != _STR_TAG:
                    raise _Unusual  # `<<`, `=`, numbers, booleans, … as keys
                if key in mapping:
                    raise _Unusual
                mapping[key] = self._plain(value_node, seen, depth + 1)
            return mapping
        elif kind is yaml.SequenceNode and tag == _SEQ_TAG:
            return [self._plain(item, seen, depth + 1) for item in node.value]
        raise _Unusual

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # flatten_mapping (called by super) deletes `<<` merge keys from this very list and,
        # when it merges, gives the node a new list with the merged pairs in front. So after
        # the call `own` holds only the pairs written here: a key overriding a merged one is
        # not a duplicate, two written keys are.
        own = node.value
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        if len(mapping) != len(node.value):
            seen: set[Hashable] = set()
            for key_node, _ in own:
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
    parsed: bool = True  # False when the file is not valid YAML (data is then None)
    _nodes: yaml.Node | None = field(default=None, repr=False)
    _root: tuple[int, int] | None = field(default=None, repr=False)  # locate(()), if known

    def problem(
        self, where: JsonPath, message: str, *, key: bool = False, severity: str = "error"
    ) -> Problem:
        line, col = self.locate(where, key=key)
        return Problem(self.display, line, col, message, severity)

    def locate(self, where: JsonPath, *, key: bool = False) -> tuple[int, int]:
        """1-based line and column of the value at `where` (of its key when `key`).

        Walks as deep as the path exists, so a missing key points at its parent mapping.
        """
        if not where and self._root is not None:
            return self._root
        root = self._compose()
        if root is None:
            return 1, 1
        node, key_node, _ = _walk(root, where)
        mark = key_node.start_mark if key and key_node is not None else node.start_mark
        return mark.line + 1, mark.column + 1

    def text(self, where: JsonPath) -> str | None:
        """The scalar at `where` exactly as written (`1.10`, `yes`), or None if not there."""
        root = self._compose()
        if root is None:
            return None
        node, _, found = _walk(root, where)
        return str(node.value) if found and isinstance(node, yaml.ScalarNode) else None

    def _compose(self) -> yaml.Node | None:
        if self._nodes is None and self.parsed:
            text = self.path.read_text(encoding="utf-8")
            self._nodes = yaml.compose(text, Loader=_BaseLoader)
        return self._nodes


def _walk(node: yaml.Node, where: JsonPath) -> tuple[yaml.Node, yaml.Node | None, bool]:
    """The deepest node along `where`, its key node, and whether all of `where` exists."""
    key_node: yaml.Node | None = None
    for step in where:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if _same_key(k, step):
                    node, key_node = v, k
                    break
            else:
                return node, key_node, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return node, key_node, False
            node, key_node = node.value[step], None
        else:
            return node, key_node, False
    return node, key_node, True


def _same_key(node: yaml.Node, step: str | int) -> bool:
    if node.tag == _STR_TAG:
        return bool(node.value == step)
    # A key written `1:` or `true:` reaches validation as the int or bool it was read as.
    if not isinstance(node, yaml.ScalarNode) or isinstance(step, str):
        return False
    try:
        value = yaml.load(node.value, Loader=_BaseLoader)
    except yaml.YAMLError:
        return False
    return bool(value == step and type(value) is type(step))


def read_document(path: Path, display: str) -> Document:
    """Parse one YAML file; malformed YAML becomes a located problem, never an exception."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        message = f"cannot read the file: {err.strerror or err}; check that it is readable"
        return Document(path, display, None, [Problem(display, 1, 1, message)], parsed=False)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - raw.rfind(b"\n", 0, err.start)
        message = f"not UTF-8 text ({err.reason}); save the file with UTF-8 encoding"
        return Document(path, display, None, [Problem(display, line, col, message)], parsed=False)
    loader = _Loader(text)
    loader.duplicates = []
    loader.text = text
    try:
        data = loader.get_single_data()
    except ExpansionError as err:
        assert err.problem_mark is not None
        mark = err.problem_mark
        problem = Problem(display, mark.line + 1, mark.column + 1, str(err.problem))
        return Document(path, display, None, [problem], parsed=False)
    except yaml.YAMLError as err:
        line, col, message = explain_yaml_error(err, text)
        return Document(path, display, None, [Problem(display, line, col, message)], parsed=False)
    finally:
        loader.dispose()
    doc = Document(path, display, data, _root=loader.root)
    for key, mark in sorted(loader.duplicates, key=lambda d: d[1].index):
        doc.problems.append(
            Problem(
                display,
                mark.line + 1,
                mark.column + 1,
                f"duplicate key '{key}': only the last one would count; remove one of them",
            )
        )
    return doc
