"""The one rule for resource names, in files and on the command line alike.

Files are checked against the JSON Schema definition `data.schema.json#/definitions/name`
(every kind's `name:` refers to it); the command line reads the same definition here, so
a name `mlform models register` accepts is one a file could declare, and the reverse. A
name ends up in state rows, folder names in the datastore, URLs and terminal output:
`../`, `;`, spaces and escape codes have no place in it.
"""

from __future__ import annotations

import argparse
import re
from functools import cache

from mlform.config.refs import parse_asset_ref

_KIND = re.compile(r"[a-z_]+")


@cache
def _rule() -> tuple[re.Pattern[str], str]:
    # start-up: every command's module imports this one; the schema loads fastjsonschema
    from mlform.config.schema import load_schema  # jsonschema: only once a name is checked

    definition = load_schema("data")["definitions"]["name"]
    return re.compile(definition["pattern"]), str(definition["x-hint"])


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid resource name, or None when it is."""
    pattern, hint = _rule()
    # fullmatch: the schema's `$` alone would let a trailing newline through.
    if pattern.fullmatch(name):
        return None
    return f"{name!r} is not a valid name: {hint} (at most 255 characters)"


def cli_name(text: str) -> str:
    """argparse `type=` for NAME: argparse names the argument in front of the message."""
    problem = name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def cli_ref(text: str) -> str:
    """argparse `type=` for NAME, NAME:VERSION or NAME@latest (`azureml:` allowed)."""
    ref = parse_asset_ref(text)
    problem = name_problem(ref.name) if ref else name_problem(text)
    if ref is None and problem is None:
        problem = f"{text!r} is not a reference: write NAME, NAME:VERSION or NAME@latest"
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def cli_address(text: str) -> str:
    """argparse `type=` for KIND/NAME, or NAME where the kind is implied."""
    kind, slash, name = text.rpartition("/")
    if slash and not _KIND.fullmatch(kind):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KIND/NAME: the kind is a word such as runconfig or model"
        )
    return cli_name(name) and text
