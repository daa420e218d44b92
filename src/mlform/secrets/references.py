"""`${{secrets.NAME}}` in a file: where it may be written, what it names, who uses it.

A reference is substituted only where a process gets it — an environment variable of a
job, a pipeline step, a component or a deployment, and a datastore's `storage_options`
(GitHub Actions' `${{ secrets.NAME }}`, Azure ML's `${{…}}` bindings). Written anywhere
else (a command, an environment, an image), it would never be substituted, or would be
baked into what the state records or an image carries: there it is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlform.config import schema
from mlform.config.yamlfile import Document, Where
from mlform.errors import Problem

REFERENCE = re.compile(r"\$\{\{\s*secrets\.([^\s}]*)\s*\}\}")

ANY = "*"  # in a place a secret may be referenced: any one key
REST = "**"  # anything below
Places = tuple[tuple[str, ...], ...]  # where a kind of file may reference a secret
WORKSPACE: Places = (("datastores", ANY, "storage_options", REST),)
PLACES = (
    "environment_variables of a job, pipeline step, component or deployment, or a "
    "datastore's storage_options"
)


def names_in(value: Any) -> list[str]:
    """The secret names referenced in a value (text, or a mapping or list of them)."""
    return list(dict.fromkeys(name for _, text in _strings(value, ()) for name in _names(text)))


def _names(text: str) -> list[str]:
    return [m[1] for m in REFERENCE.finditer(text)] if "${{" in text else []


def substitute(value: Any, lookup: Callable[[str], str]) -> Any:
    """`value` with each reference replaced by `lookup(name)`."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda m: lookup(m[1]), value) if "${{" in value else value
    if isinstance(value, Mapping):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, lookup) for v in value]
    return value


def document_problems(doc: Document, allowed: Places, declared: Mapping[str, Any]) -> list[Problem]:
    """Each reference in `doc` that names no declared secret, or sits where it is not
    substituted (`allowed`: where its kind of file may reference one)."""
    problems = []
    for where, text in _strings(doc.data, ()):
        for name in _names(text):
            written = f"${{{{secrets.{name}}}}}"
            if not any(_matches(where, pattern) for pattern in allowed):
                problems.append(
                    doc.problem(
                        list(where),
                        f"{written} is not substituted here; reference secrets in {PLACES}",
                    )
                )
            elif name not in declared:
                hint = schema.did_you_mean(name, list(declared)) or (
                    f" (declared: {', '.join(sorted(declared))})" if declared else ""
                )
                problems.append(
                    doc.problem(
                        list(where),
                        f"{written} names no declared secret{hint}; declare {name} under "
                        "secrets: in workspace.yml",
                    )
                )
    return problems


def _strings(value: Any, where: Where) -> Iterator[tuple[Where, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*where, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*where, index))


def _matches(where: Where, pattern: tuple[str, ...]) -> bool:
    for index, step in enumerate(pattern):
        if step == REST:
            return len(where) > index
        if index >= len(where) or (step != ANY and where[index] != step):
            return False
    return len(where) == len(pattern)
