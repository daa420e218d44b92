"""JSON Schema validation of documents, fast when clean and thorough when not.

A compiled fastjsonschema validator answers "is this valid?" in a few microseconds, so a
clean workspace of thousands of files validates in milliseconds. Only a document that
fails is run through `jsonschema`, which lists every error; each is turned into a
message that says what to do and located with the document's marks.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import fastjsonschema

from mlform._resources import resource_dir
from mlform.config.yamlfile import Document
from mlform.errors import Problem

if TYPE_CHECKING:
    import jsonschema


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The schema for `kind`, with references into sibling schema files inlined.

    The files refer to each other (`data.schema.json#/definitions/name`) so editors can
    use them in place; validators get one self-contained document.
    """
    path = resource_dir("schema") / f"{kind}.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    inlined: dict[str, Any] = _inline(schema)
    return inlined


def _inline(node: Any) -> Any:
    if isinstance(node, list):
        return [_inline(item) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        filename, _, pointer = ref.partition("#")
        target: Any = load_schema(filename.removesuffix(".schema.json"))
        for step in pointer.strip("/").split("/"):
            target = target[step]
        return target
    return {key: _inline(value) for key, value in node.items()}


@cache
def _fast(kind: str) -> Callable[[Any], Any]:
    validate: Callable[[Any], Any] = fastjsonschema.compile(load_schema(kind))
    return validate


@cache
def _thorough(kind: str) -> jsonschema.protocols.Validator:
    import jsonschema

    schema = load_schema(kind)
    return jsonschema.Draft7Validator(schema)


def check(doc: Document, kind: str) -> list[Problem]:
    """Every schema problem in `doc`, located; empty when it is valid."""
    try:
        _fast(kind)(doc.data)
    except fastjsonschema.JsonSchemaException:
        pass
    else:
        return []
    problems: list[Problem] = []
    for error in _thorough(kind).iter_errors(doc.data):
        problems.extend(_explain(doc, error))
    problems.sort(key=lambda p: (p.line, p.col))
    return problems


def _explain(doc: Document, error: jsonschema.ValidationError) -> Iterable[Problem]:
    where = list(error.absolute_path)
    field = _dotted(where) or "the file"
    rules: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    hint = rules.get("x-hint")
    validator = error.validator

    if validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(rules.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed), key=str):
            message = f"unknown key '{key}'"
            if where:
                message += f" in {field}"
            message += did_you_mean(str(key), allowed)
            yield doc.problem([*where, key], message, key=True)
        return
    if validator == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else error.message
        message = f"missing required key '{missing}'"
        if where:
            message += f" in {field}"
        yield doc.problem(where, message + (f": {hint}" if hint else ""), key=bool(where))
        return
    if validator in ("oneOf", "anyOf") and error.context:
        import jsonschema

        best = jsonschema.exceptions.best_match(error.context)
        if best.validator not in ("type", "oneOf", "anyOf"):
            yield from _explain(doc, best)
            return
        message = f"{field} must be {_describe(rules)}, not {_json_type(error.instance)}"
    elif validator == "type":
        message = f"{field} must be {_describe(rules)}, not {_json_type(error.instance)}"
    elif validator == "enum":
        choices = [str(c) for c in rules.get("enum", [])]
        message = f"{field} must be one of {', '.join(choices)}, not {error.instance!r}"
        message += did_you_mean(str(error.instance), choices)
    elif validator == "const":
        message = f"{field} must be {error.validator_value!r}, not {error.instance!r}"
    elif validator == "pattern":
        message = f"{field} {error.instance!r} is not valid"
        if not hint:
            message += f" (it must match {error.validator_value})"
    elif validator in ("minItems", "minLength", "minProperties"):
        message = f"{field} must not be empty"
    elif validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        message = f"{field} is out of range: {error.message}"
    else:
        message = f"{field}: {error.message}"
    if hint:
        message += f": {hint}"
    yield doc.problem(where, message)


def _describe(schema: Mapping[str, Any]) -> str:
    if "x-expects" in schema:
        return str(schema["x-expects"])
    kinds = schema.get("type")
    if kinds is None and ("oneOf" in schema or "anyOf" in schema):
        kinds = [s.get("type") for s in schema.get("oneOf", schema.get("anyOf", []))]
    if isinstance(kinds, str):
        kinds = [kinds]
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "empty",
    }
    words = [names.get(str(k), str(k)) for k in kinds or [] if k]
    return " or ".join(dict.fromkeys(words)) or "valid"


def _json_type(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _dotted(where: list[Any]) -> str:
    out = ""
    for step in where:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
