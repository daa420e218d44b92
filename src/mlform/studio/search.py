"""MLflow's run search, as its UI and `mlflow.search_runs(filter_string=…)` take it:
`metrics.test_accuracy > 0.9 and params.n_estimators = 50 and tags.team = 'vision'`.

A filter is clauses joined by `and` (as in MLflow, there is no `or`). A clause compares an
entity with a value: `metrics.KEY` (the run's last value) with a number; `params.KEY` and
`tags.KEY` with a string (`=`, `!=`, `LIKE`, `ILIKE`; a bare number is its text, as MLflow
keeps params); `attributes.NAME` or a bare `NAME` with what that attribute holds: `status`,
`experiment`, `runconfig`, `run_name`, `run_id`, `commit` (strings) and `start_time`,
`end_time` (milliseconds since the epoch, as MLflow writes them), `duration` (seconds).
A key holding a dot, a space or a dash is quoted with backticks or double quotes
(metrics.`val-loss`), as MLflow's are. `parse` is pure; `where` turns the clauses into
SQL over the state's `runs`, `params`, `tags` and `metrics` tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlform.errors import MlformError

_ENTITIES = ("metrics", "metric", "params", "param", "tags", "tag", "attributes", "attribute")
_NUMBERS = ("=", "!=", "<", "<=", ">", ">=")
_TEXTS = ("=", "!=", "LIKE", "ILIKE")
# attribute → (SQL over `runs`, kind)
_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "status": ("status", "text"),
    "experiment": ("experiment", "text"),
    "experiment_name": ("experiment", "text"),
    "runconfig": ("runconfig", "text"),
    "run_name": ("coalesce(display_name, name)", "text"),
    "run_id": ("id", "text"),
    "commit": ("git_commit", "text"),
    "start_time": ("epoch_ms(started_at)", "number"),
    "end_time": ("epoch_ms(ended_at)", "number"),
    "duration": ("duration", "number"),
}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op><=|>=|!=|=|<|>)
      | (?P<quoted>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
      | (?P<word>[A-Za-z_][\w]*)
      | (?P<dot>\.)
      | (?P<other>\S)
    )""",
    re.VERBOSE,
)


class SearchError(MlformError):
    """A search that cannot be read: says where and what would be read there."""


@dataclass(frozen=True, slots=True)
class Clause:
    entity: str  # metrics | params | tags | attributes
    key: str
    op: str  # = != < <= > >= LIKE ILIKE
    value: str | float


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    at: int  # its offset in the filter, for errors


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:  # only spaces left
            break
        kind = match.lastgroup or "other"
        found.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return found


def parse(text: str) -> list[Clause]:
    """The clauses of a filter; a SearchError that names the column it fails at."""
    tokens = _tokens(text)
    clauses: list[Clause] = []
    index = 0

    def fail(at: int, what: str) -> SearchError:
        return SearchError(f"search, at column {at + 1}: {what} (in: {text})")

    def take() -> _Token:
        nonlocal index
        if index >= len(tokens):
            raise fail(len(text), "the filter ends too soon: a clause is `ENTITY OP VALUE`")
        index += 1
        return tokens[index - 1]

    while index < len(tokens):
        first = take()
        if first.kind != "word":
            raise fail(
                first.at, f"expected metrics., params., tags. or an attribute, not {first.text!r}"
            )
        entity, key = "attributes", first.text
        if first.text.lower() in _ENTITIES:
            dot = take()
            if dot.kind != "dot":
                raise fail(dot.at, f"expected '.' after {first.text}")
            name = take()
            if name.kind not in ("word", "quoted", "number"):
                raise fail(name.at, f"expected a key after '{first.text}.'")
            entity = _entity(first.text.lower())
            key = _unquote(name.text) if name.kind == "quoted" else name.text
            # a key with dots in it (metrics.train.loss) reads on while dots follow
            while index < len(tokens) and tokens[index].kind == "dot":
                take()
                key += "." + _unquote(take().text)
        op_token = take()
        op = op_token.text.upper()
        if op_token.kind not in ("op", "word") or op not in (*_NUMBERS, *_TEXTS):
            raise fail(
                op_token.at,
                f"expected a comparison (= != < <= > >= LIKE ILIKE), not {op_token.text!r}",
            )
        value_token = take()
        if value_token.kind not in ("quoted", "number"):
            raise fail(
                value_token.at, f"expected a number or a quoted string, not {value_token.text!r}"
            )
        clauses.append(_clause(entity, key, op, value_token, fail))
        if index < len(tokens):
            joint = take()
            if joint.text.lower() != "and":
                what = "MLflow's search has no `or`: " if joint.text.lower() == "or" else ""
                raise fail(joint.at, f"{what}expected `and` between clauses, not {joint.text!r}")
            if index >= len(tokens):
                raise fail(len(text), "a clause must follow `and`")
    return clauses


def _entity(word: str) -> str:
    if word.startswith("metric"):
        return "metrics"
    if word.startswith("param"):
        return "params"
    if word.startswith("tag"):
        return "tags"
    return "attributes"


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        body = text[1:-1]
        return body if text[0] == "`" else re.sub(r"\\(.)", r"\1", body)
    return text


def _clause(entity: str, key: str, op: str, token: _Token, fail: Any) -> Clause:
    if entity == "metrics":
        if token.kind != "number" or op not in _NUMBERS:
            raise fail(token.at, f"metrics.{key} compares with a number (= != < <= > >=)")
        return Clause(entity, key, op, float(token.text))
    if entity == "attributes":
        known = _ATTRIBUTES.get(key.lower())
        if known is None:
            names = ", ".join(sorted(_ATTRIBUTES))
            raise fail(token.at, f"no attribute {key!r}; attributes are {names}")
        if known[1] == "number":
            if token.kind != "number" or op not in _NUMBERS:
                raise fail(token.at, f"{key} compares with a number (= != < <= > >=)")
            return Clause(entity, key.lower(), op, float(token.text))
    if op not in _TEXTS:
        raise fail(token.at, f"{entity}.{key} compares as text (= != LIKE ILIKE), not with {op}")
    return Clause(entity, key.lower() if entity == "attributes" else key, op, _unquote(token.text))


def where(clauses: list[Clause]) -> tuple[str, list[Any]]:
    """The clauses as one SQL condition over `runs` (its `id`), and its parameters."""
    parts: list[str] = []
    params: list[Any] = []
    for clause in clauses:
        op = "!=" if clause.op == "!=" else clause.op
        if clause.entity == "metrics":
            parts.append(
                "id in (select run_id from metrics where key = ? group by run_id "
                f"having arg_max(value, (step, ts)) {op} ?)"
            )
            params.extend([clause.key, clause.value])
        elif clause.entity in ("params", "tags"):
            parts.append(
                f"id in (select run_id from {clause.entity} where key = ? and value {op} ?)"
            )
            params.extend([clause.key, clause.value])
        else:
            column = _ATTRIBUTES[clause.key][0]
            parts.append(f"{column} {op} ?")
            params.append(clause.value)
    return (" and ".join(parts) or "true"), params
