"""JSON Schema validation of documents, fast when clean and thorough when not.

A compiled fastjsonschema validator answers "is this valid?" in a few microseconds, so a
clean workspace of thousands of files validates in milliseconds. Only a document that
fails is run through `jsonschema`, which lists every error; each is turned into a
message that says what to do and located with the document's marks.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import marshal
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import CodeType
from typing import TYPE_CHECKING, Any

import fastjsonschema

from mlform import durable
from mlform._resources import resource_dir
from mlform.cachedir import cache_dir
from mlform.config.yamlfile import Document, Where
from mlform.errors import Problem

if TYPE_CHECKING:
    import jsonschema


@dataclass(frozen=True, slots=True)
class Findings:
    """What is wrong with one document, and where its values cannot be trusted."""

    problems: list[Problem] = field(default_factory=list)
    # Paths of values that are wrong and of required keys that are missing: the loader
    # leaves these out and still checks the rest, so one typo does not hide other errors.
    bad: frozenset[Where] = frozenset()


CLEAN = Findings()


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The schema for `kind`, with references into sibling schema files inlined.

    The files refer to each other (`data.schema.json#/definitions/name`) so editors can
    use them in place; validators get one self-contained document.
    """
    inlined: dict[str, Any] = _inline(_raw(kind), None)
    return inlined


@cache
def _raw(kind: str) -> dict[str, Any]:
    path = resource_dir("schema") / f"{kind}.schema.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def _inline(node: Any, home: dict[str, Any] | None) -> Any:
    """`node` with references into other files replaced by what they point at; inside
    what came from another file (`home`), its references within that file too."""
    if isinstance(node, list):
        return [_inline(item, home) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and (home is not None or not ref.startswith("#")):
        filename, _, pointer = ref.partition("#")
        target: Any = _raw(filename.removesuffix(".schema.json")) if filename else home
        other = target
        for step in pointer.strip("/").split("/"):
            target = target[step]
        return _inline(target, other)
    return {key: _inline(value, home) for key, value in node.items()}


@cache
def _fast(kind: str) -> Callable[[Any], Any]:
    # use_default fills in the schema's `default` values, so a valid document comes back
    # with them (data `type: uri_folder`): writing out a default does not change a digest.
    schema = load_schema(kind)
    namespace: dict[str, Any] = {}
    root, code = _compiled(kind, schema)
    exec(code, namespace)
    validate: Callable[[Any], Any] = namespace[root]
    return validate


def _compiled(kind: str, schema: dict[str, Any]) -> tuple[str, CodeType]:
    """fastjsonschema's validator for `schema`, compiled to bytecode and kept in the
    user's cache: generating and compiling it costs tens of milliseconds per kind, on
    every command; loading it back well under one. The name of its root function (after
    the schema's $id) comes with it."""
    text = json.dumps(schema, sort_keys=True)
    tag = f"{fastjsonschema.VERSION}\0{sys.version}\0{text}"
    key = hashlib.sha256(tag.encode()).hexdigest()[:24]
    path = cache_dir() / "schemas" / f"{kind}-{key}.bin"
    try:
        root, code = marshal.loads(path.read_bytes())
        if isinstance(root, str) and isinstance(code, CodeType):
            return root, code
    except (OSError, ValueError, EOFError, TypeError):
        pass
    source: str = fastjsonschema.compile_to_code(schema, use_default=True)
    # The generated module's first function validates the root (named after its $id).
    root = source.split("\ndef ", 1)[1].split("(", 1)[0]
    code = compile(source, f"<mlform {kind} schema>", "exec")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = durable.partial(path)
        partial.write_bytes(marshal.dumps((root, code)))
        os.replace(partial, path)
    except OSError:
        pass  # a read-only cache only costs the time saved
    return root, code


@cache
def _thorough(kind: str) -> jsonschema.protocols.Validator:
    # start-up: jsonschema only for a file with a problem
    import jsonschema

    schema = load_schema(kind)
    return jsonschema.Draft7Validator(schema)


def check(doc: Document, kind: str) -> Findings:
    """Every schema problem in `doc`, located; `CLEAN` when it is valid."""
    if not isinstance(doc.data, dict):
        return Findings([_shape(doc, kind)], frozenset({()}))
    try:
        _fast(kind)(doc.data)
    except Exception:  # any failure, even a crash on odd data, means "look closer"
        pass
    else:
        return CLEAN
    errors = list(_thorough(kind).iter_errors(doc.data))
    typos = _typos(errors)
    problems: list[Problem] = []
    bad: set[Where] = set()
    for error in errors:
        where = tuple(error.absolute_path)
        if error.validator == "required":
            missing = _missing_key(error)
            bad.add((*where, missing))
            if (where, missing) in typos.values():
                continue  # reported once, as the misspelt key that was meant to be it
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            bad.update((*where, key) for key in _unknown_keys(error))
        else:
            bad.add(where)
        problems.extend(_explain(doc, error, typos))
    problems.sort(key=lambda p: (p.line, p.col))
    return Findings(problems, frozenset(bad))


def required(kind: str, body: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The keys a document of `kind` must have: every one's, and those its schema's
    `if`/`then`/`else` (an `else` may hold another `if`) asks of this `body` (a sweep
    job's `trial:`, an AutoML job's `task:`; none given: the last `else`, what a plain
    document of the kind needs)."""
    always, branches, otherwise = _required(kind)
    for condition, then in branches:
        if body is not None and _holds(condition, body):
            return always + then
    return always + otherwise


def _holds(condition: Callable[[Any], object], body: Mapping[str, Any]) -> bool:
    try:
        condition(body)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@cache
def _required(
    kind: str,
) -> tuple[
    tuple[str, ...], tuple[tuple[Callable[[Any], object], tuple[str, ...]], ...], tuple[str, ...]
]:
    schema: Mapping[str, Any] = load_schema(kind)
    always = tuple(schema.get("required", ()))
    if "if" not in schema:
        return always, (), ()
    branches = []
    while "if" in schema:  # small conditions (`type: sweep`): compiled in a millisecond
        then = tuple(schema.get("then", {}).get("required", ()))
        branches.append((fastjsonschema.compile(schema["if"]), then))
        schema = schema.get("else", {})
    return always, tuple(branches), tuple(schema.get("required", ()))


def _shape(doc: Document, kind: str) -> Problem:
    keys = " and ".join(f"'{key}'" for key in required(kind))
    needs = f" (it needs at least {keys})" if keys else ""
    if doc.data is None:
        what = str(load_schema(kind).get("title", kind)).removeprefix("mlform ")
        return doc.problem(
            [], f"file is empty: declare {with_article(what)} here{needs}, or delete the file"
        )
    text = doc.text([])
    found = _json_type(doc.data, text)
    return doc.problem([], f"expected a mapping of keys such as 'name: …', found {found}")


def _typos(errors: list[jsonschema.ValidationError]) -> dict[tuple[Where, str], tuple[Where, str]]:
    """Unknown keys that look like a missing required key: (where, unknown) → (where, meant)."""
    missing = {
        (tuple(e.absolute_path), _missing_key(e)) for e in errors if e.validator == "required"
    }
    typos: dict[tuple[Where, str], tuple[Where, str]] = {}
    for error in errors:
        if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
            continue
        where = tuple(error.absolute_path)
        wanted = [key for at, key in missing if at == where]
        for key in _unknown_keys(error):
            close = difflib.get_close_matches(str(key), wanted, n=1, cutoff=0.6)
            if close:
                typos[(where, str(key))] = (where, close[0])
    return typos


def _unknown_keys(error: jsonschema.ValidationError) -> list[Any]:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    known = schema.get("properties", {})
    instance: Any = error.instance
    return sorted((key for key in instance if key not in known), key=str)


def _missing_key(error: jsonschema.ValidationError) -> str:
    # jsonschema words it "'path' is a required property"; the name is the first quoted part.
    message = str(error.message)
    return message.split("'")[1] if message.count("'") >= 2 else message


def _explain(
    doc: Document,
    error: jsonschema.ValidationError,
    typos: Mapping[tuple[Where, str], tuple[Where, str]],
) -> Iterable[Problem]:
    where = list(error.absolute_path)
    field = _dotted(where) or "the file"
    rules: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    hint = rules.get("x-hint")
    validator = error.validator
    inside = f" in {field}" if where else ""

    if validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(rules.get("properties", {}))
        for key in _unknown_keys(error):
            typo = typos.get((tuple(where), str(key)))
            message = f"unknown key '{key}'{inside}"
            if typo:
                message += f" (did you mean '{typo[1]}'?)"
            else:
                suggestion = did_you_mean(str(key), allowed)
                message += suggestion or f"; expected one of: {', '.join(allowed)}"
            yield doc.problem([*where, key], message, key=True)
        return
    if validator == "required":
        missing = _missing_key(error)
        spec = rules.get("properties", {}).get(missing, {})
        how = spec.get("x-missing") if isinstance(spec, Mapping) else None
        message = f"missing required key '{missing}'{inside}"
        message += f": {how}" if how else f"; add '{missing}: …'"
        yield doc.problem(where, message, key=bool(where))
        return
    if validator in ("oneOf", "anyOf") and error.context:
        # start-up: jsonschema only for a file with a problem
        import jsonschema

        # A branch that failed on something other than its type is the one the value was
        # meant for ("" for a path: must not be empty); otherwise say which types fit.
        meant = [e for e in error.context if e.validator not in ("type", "oneOf", "anyOf")]
        # A branch whose required key is missing is not the one meant when another has
        # all of its keys: `path:` with a wrong `mode:` is a data input, not a value.
        unmet = {e.relative_schema_path[0] for e in meant if e.validator == "required"}
        meant = [e for e in meant if e.relative_schema_path[0] not in unmet] or meant
        if meant:
            yield from _explain(doc, jsonschema.exceptions.best_match(meant), typos)
            return
    if validator in ("type", "oneOf", "anyOf"):
        text = doc.text(where) if _is_scalar(error.instance) else None
        message = f"{field} must be {_describe(rules)}, not {_json_type(error.instance, text)}"
        fix = _type_fix(doc, where, rules, error.instance)
        message, hint = (f"{message}; {fix}", None) if fix else (message, hint)
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
    elif validator == "maximum":
        message = f"{field} is out of range: {error.message}; use at most {error.validator_value}"
    elif validator in ("minimum", "exclusiveMinimum", "exclusiveMaximum"):
        message = f"{field} is out of range: {error.message}"
    else:
        message = f"{field}: {error.message}"
    if hint:
        message += f": {hint}"
    yield doc.problem(where, message)


def _type_fix(doc: Document, where: list[Any], rules: Mapping[str, Any], value: Any) -> str:
    """How to write a value of the wrong type so it means what was meant, if we can tell."""
    types = _types(rules)
    text = doc.text(where) if _is_scalar(value) else None
    # YAML reads 1.10 as the number 1.1 and `yes` as true: quoting keeps what was typed.
    if text is not None and "string" in types:
        return f"put it in quotes to keep it as text: '{text}'"
    if value is None and "string" in types:
        return "write '' for an empty text"
    if isinstance(value, str) and "array" in types:
        return f"write a list, with one '- item' per line or as [{value}]"
    if isinstance(value, list) and "object" in types and where and isinstance(where[-1], str):
        return f"write one 'key: value' per line, indented under {where[-1]}:"
    return ""


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | datetime.date)


def _types(schema: Mapping[str, Any]) -> list[str]:
    kinds = schema.get("type")
    if kinds is None and ("oneOf" in schema or "anyOf" in schema):
        kinds = [s.get("type") for s in schema.get("oneOf", schema.get("anyOf", []))]
    if isinstance(kinds, str):
        kinds = [kinds]
    return [str(k) for k in kinds or [] if k]


def _describe(schema: Mapping[str, Any]) -> str:
    if "x-expects" in schema:
        return str(schema["x-expects"])
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "empty",
    }
    words = list(dict.fromkeys(names.get(k, k) for k in _types(schema)))
    if len(words) > 2:
        words = [", ".join(words[:-1]), words[-1]]
    return " or ".join(words) or "valid"


def _json_type(value: Any, text: str | None = None) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"a boolean ({text or str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({text or value})"
    if isinstance(value, datetime.date):
        return f"a date ({text or value.isoformat()})"
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


def with_article(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def closest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = closest(word, choices)
    return f" (did you mean '{close}'?)" if close else ""


def usable(value: Any, where: Where, bad: frozenset[Where]) -> dict[str, Any] | None:
    """The mapping at `where` without its wrong keys; None if the mapping itself is wrong."""
    if not isinstance(value, dict):
        return None
    if not bad:
        return value
    if any(where[:depth] in bad for depth in range(len(where) + 1)):
        return None
    depth = len(where)
    drop = {b[depth] for b in bad if len(b) > depth and b[:depth] == where}
    return {key: item for key, item in value.items() if key not in drop}
