"""Writing to the terminal: colours only on a terminal, errors on stderr, thread-safe,
credentials in URLs redacted (`mlform.redact`); and the one JSON shape of every
`list`/`show` command's `--json`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import PurePath

from mlform.errors import Problem
from mlform.redact import redact

_RED, _YELLOW, _GREEN, _DIM, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[2m", "\x1b[0m"


class Output:
    def __init__(self, *, color: bool = True) -> None:
        self.color = color and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        self._lock = threading.Lock()
        self._status: dict[str, str] = {}
        self.live = sys.stdout.isatty()  # a terminal: status lines are redrawn in place

    def line(self, text: str = "") -> None:
        with self._lock:
            sys.stdout.write(self._clear() + redact(text) + "\n" + self._bottom())
            sys.stdout.flush()

    def status(self, key: str, text: str | None) -> None:
        """Show `text` as `key`'s line at the bottom of a terminal; None removes it."""
        with self._lock:
            if text is None:
                self._status.pop(key, None)
            else:
                self._status[key] = redact(text)
            sys.stdout.write(self._clear() + self._bottom())
            sys.stdout.flush()

    def _clear(self) -> str:
        return "\r\x1b[K" if self._status or self.live else ""

    def _bottom(self) -> str:
        if not self._status:
            return ""
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = " | ".join(f"{key}: {value}" for key, value in self._status.items())
        return self.paint(text[:width], _DIM)

    def write(self, text: str) -> None:
        with self._lock:
            sys.stdout.write(redact(text))
            sys.stdout.flush()

    def paint(self, text: str, color: str) -> str:
        return f"{color}{text}{_RESET}" if self.color else text

    def ok(self, text: str) -> str:
        return self.paint(text, _GREEN)

    def bad(self, text: str) -> str:
        return self.paint(text, _RED)

    def dim(self, text: str) -> str:
        return self.paint(text, _DIM)

    def error(self, message: str) -> None:
        with self._lock:
            sys.stderr.write(f"{self.bad('error:')} {redact(message)}\n")
            sys.stderr.flush()

    def warn(self, message: str) -> None:
        with self._lock:
            sys.stderr.write(f"{self.paint('warning:', _YELLOW)} {redact(message)}\n")

    def problems(self, problems: Iterable[Problem]) -> None:
        problems = list(problems)
        errors = sum(1 for p in problems if p.severity == "error")
        with self._lock:
            for p in problems:
                tag = self.bad("error") if p.severity == "error" else self.paint("warning", _YELLOW)
                sys.stderr.write(f"{p.path}:{p.line}:{p.col}: {tag}: {redact(p.message)}\n")
            if errors:
                noun = "error" if errors == 1 else "errors"
                sys.stderr.write(f"validation failed: {errors} {noun}\n")
            sys.stderr.flush()

    def json(self, value: object) -> None:
        """`value` as JSON (see `to_json`): what every `--json` prints."""
        self.write(json.dumps(to_json(value), indent=2, ensure_ascii=False) + "\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 0) -> None:
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
        for row in (header, *rows):
            cells = "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
            self.line(" " * indent + cells.rstrip())

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stdout.isatty()


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print JSON (a list: an array of objects)"
    )


def to_json(value: object, key: str = "") -> object:
    """The JSON form of a record: a dataclass or mapping becomes an object with the same
    keys, sequences become arrays, paths strings; a time (a key ending in `_at`, or
    `started`/`ended`) becomes ISO-8601 in UTC, `2026-12-04T18:30:05+00:00`."""
    if key.endswith("_at") or key in {"started", "ended"}:
        return iso_time(value)  # type: ignore[arg-type]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime):
        return iso_time(value)
    return value


def json_object(value: object) -> dict[str, object]:
    """A record's JSON object, for a `show` that adds keys of its own."""
    found = to_json(value)
    assert isinstance(found, dict)
    return found


def iso_time(value: float | str | datetime | None) -> str | None:
    """An epoch, a datetime, or a time as the state prints it (`YYYY-MM-DD HH:MM:SS`, in
    this machine's zone, as DuckDB renders a timestamptz), as ISO-8601 in UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        when = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, datetime):
        when = value
    else:
        when = datetime.fromisoformat(value)
    return when.astimezone(UTC).isoformat(timespec="seconds")
