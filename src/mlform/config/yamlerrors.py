"""Turn libyaml's parser errors into messages that say what to change.

libyaml describes what its state machine expected ("did not find expected key",
"mapping values are not allowed in this context"). Users think in lines and
indentation, so the common cases are recognised from the message and the source line,
located where the mistake was made (the unclosed bracket, not the end of the file),
and given a fix. Anything else keeps libyaml's own words.
"""

from __future__ import annotations

import re

import yaml

_CLOSERS = {"[": ("]", "list"), "{": ("}", "mapping")}


def explain_yaml_error(err: yaml.YAMLError, text: str) -> tuple[int, int, str]:
    """(line, column, message) for a YAML parse error in `text`."""
    if isinstance(err, yaml.reader.ReaderError):
        return _unprintable(err, text)
    if not isinstance(err, yaml.MarkedYAMLError) or not (err.problem_mark or err.context_mark):
        return 1, 1, f"invalid YAML: {err}"
    lines = text.splitlines()
    at = err.problem_mark or err.context_mark
    opened = err.context_mark or at
    assert at is not None and opened is not None
    problem = err.problem or "malformed YAML"
    context = err.context or ""
    here = (at.line + 1, at.column + 1)
    start = (opened.line + 1, opened.column + 1)

    if "flow sequence" in context or "flow mapping" in context:
        bracket = _char(lines, opened)
        if bracket in _CLOSERS:
            closer, what = _CLOSERS[bracket]
            return (
                *start,
                f"invalid YAML: this '{bracket}' starts a {what} that is not closed "
                f"(expected ',' or '{closer}' by line {here[0]}); add the missing '{closer}', "
                f"or put the value in quotes if '{bracket}' is part of the text",
            )
    if "quoted scalar" in context:
        quote = _char(lines, opened) or "quote"
        if "end of stream" in problem or "document" in problem:
            return (
                *start,
                f"invalid YAML: the {quote} that starts this value is never closed; "
                f"add the closing {quote}",
            )
        if "escape" in problem:
            return (
                *here,
                f"invalid YAML: {problem} in a double-quoted string; use single quotes, "
                "or write a backslash as \\\\",
            )
    if "tab character" in problem or _char(lines, at) == "\t":
        return (*here, "invalid YAML: a tab is used for indentation; indent with spaces only")
    if "mapping values are not allowed" in problem:
        return _colon(lines, at)
    if "expected key" in problem or "expected '-' indicator" in problem or "<block end>" in problem:
        if _content(lines, at).startswith("- ") and not _previous_content(
            lines, at.line
        ).lstrip().startswith("- "):
            return (
                *here,
                "invalid YAML: a list item where a 'key: value' line was expected; "
                "put the list under a key, indented below it",
            )
        return (
            *here,
            "invalid YAML: the indentation of this line does not match the lines above it; "
            "indent it like the lines it belongs with",
        )
    if "could not find expected ':'" in problem:
        return (
            *start,
            "invalid YAML: this line has no ':' after its key; write it as 'key: value'",
        )
    if "cannot start any token" in problem:
        char = _char(lines, at)
        return (*here, f"invalid YAML: a plain value cannot start with '{char}'; put it in quotes")
    if "undefined alias" in problem:
        return (
            *here,
            "invalid YAML: '*' starts an alias to an anchor (&name) that is not defined; "
            "put the value in quotes if '*' is part of the text",
        )
    if "single document" in context:
        return (*here, "invalid YAML: a second document ('---') in the file; keep one per file")
    if "unhashable key" in problem:
        if _char(lines, opened) == "{" and _char(lines, at) == "{":
            return (
                *start,
                "invalid YAML: a value that starts with '{{' is read as a mapping; "
                "put it in quotes",
            )
        return (*here, "invalid YAML: a list or a mapping cannot be a key; write a plain key")
    message = f"invalid YAML: {problem}"
    if context and err.context_mark and start != here:
        message += f" ({context} at line {start[0]}, column {start[1]})"
    return (*here, message)


# What YAML 1.1 lets a file hold (its `c-printable`); libyaml reports the first other
# character by its byte offset, PyYAML by its character offset: find it in the text.
_NOT_PRINTABLE = re.compile(
    r"[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _unprintable(err: yaml.reader.ReaderError, text: str) -> tuple[int, int, str]:
    found = _NOT_PRINTABLE.search(text)
    if found is None:
        return 1, 1, f"invalid YAML: {err.reason}"
    start = found.start()
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    return (
        line,
        col,
        f"invalid YAML: the control character U+{ord(found[0]):04X} cannot be in a YAML "
        "file; remove it (write it as an escape such as \\x00 inside double quotes if the "
        "value needs it)",
    )


def _colon(lines: list[str], at: yaml.Mark) -> tuple[int, int, str]:
    """A ':' libyaml did not expect: an over-indented key, or a colon inside a value."""
    line = lines[at.line] if at.line < len(lines) else ""
    indent = len(line) - len(line.lstrip(" "))
    key = line[indent : at.column]
    above = _previous_content(lines, at.line)
    if above and ":" not in key and indent > _indent(above):
        return (
            at.line + 1,
            indent + 1,
            f"invalid YAML: '{key.strip()}' is indented deeper than the line above it, "
            "so it reads as part of that line's value; line it up with the keys above",
        )
    return (
        at.line + 1,
        at.column + 1,
        "invalid YAML: ': ' inside a value; put the whole value in quotes",
    )


def _previous_content(lines: list[str], index: int) -> str:
    """The nearest line above `index` that is neither blank nor a comment ('' if none)."""
    for line in reversed(lines[:index]):
        if line.strip() and not line.lstrip().startswith("#"):
            return line
    return ""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(lines: list[str], mark: yaml.Mark) -> str:
    return lines[mark.line].strip() if mark.line < len(lines) else ""


def _char(lines: list[str], mark: yaml.Mark) -> str:
    if mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""
