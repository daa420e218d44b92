"""Bounds on what a YAML document may expand to, checked before anything walks it.

An alias shares its anchor's value, so a few hundred bytes of nested aliases (the
"billion laughs") stand for a billion values: PyYAML builds them shared and cheaply, but
validation, digests and JSON dumps walk every one. A document is refused when its aliases
stand for more values than a large workspace file holds written out, or when its values
nest deeper than any Azure ML file needs (deep nesting also exhausts Python's recursion).
The check reads parser events, whose marks give the alias's own line and column.
"""

from __future__ import annotations

from typing import cast

import yaml

MAX_ALIASED_VALUES = 100_000
MAX_DEPTH = 100


class ExpansionError(yaml.MarkedYAMLError):
    """A document past one of the bounds, located where it crosses it."""


def check_expansion(text: str, loader: type[yaml.SafeLoader]) -> None:
    """Raise `ExpansionError` at the alias or value that takes `text` past a bound."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor → (values, depth) of its value
    # Per open collection: its anchor, values so far, deepest child below it, its depth.
    stack: list[tuple[str | None, int, int]] = []
    aliased = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append((event.anchor, 1, 0))
            if len(stack) > MAX_DEPTH:
                raise _deeper(event)
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, values, below = stack.pop()
            _add(stack, values, below + 1)
            if anchor is not None:
                sizes[anchor] = (values, below + 1)
        elif isinstance(event, yaml.ScalarEvent):
            _add(stack, 1, 1)
            if event.anchor is not None:
                sizes[event.anchor] = (1, 1)
        elif isinstance(event, yaml.AliasEvent):
            values, depth = sizes.get(event.anchor or "", (1, 1))
            aliased += values
            if aliased > MAX_ALIASED_VALUES:
                raise ExpansionError(
                    problem=(
                        f"aliases make this file stand for more than {MAX_ALIASED_VALUES:,} "
                        f"values (*{event.anchor} alone for {values:,}); write the values "
                        "out, or use fewer nested aliases"
                    ),
                    problem_mark=_mark(event),
                )
            if len(stack) + depth > MAX_DEPTH:
                raise _deeper(event)
            _add(stack, values, depth)


def _add(stack: list[tuple[str | None, int, int]], values: int, depth: int) -> None:
    if stack:
        anchor, total, below = stack[-1]
        stack[-1] = (anchor, total + values, max(below, depth))


def _mark(event: yaml.Event) -> yaml.Mark:
    # libyaml's events carry its own Mark type, with the same line and column fields.
    mark = event.start_mark
    assert mark is not None  # the parser marks every event
    return cast(yaml.Mark, mark)


def _deeper(event: yaml.Event) -> ExpansionError:
    return ExpansionError(
        problem=(
            f"values nested more than {MAX_DEPTH} levels deep; no mlform file needs that "
            "many, flatten the structure"
        ),
        problem_mark=_mark(event),
    )
