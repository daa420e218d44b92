"""Writing to the terminal: colours only on a terminal, errors on stderr, thread-safe."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Iterable, Sequence

from mlform.errors import Problem

_RED, _YELLOW, _GREEN, _DIM, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[32m", "\x1b[2m", "\x1b[0m"


class Output:
    def __init__(self, *, color: bool = True) -> None:
        self.color = color and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        self._lock = threading.Lock()
        self._status: dict[str, str] = {}
        self.live = sys.stdout.isatty()  # a terminal: status lines are redrawn in place

    def line(self, text: str = "") -> None:
        with self._lock:
            sys.stdout.write(self._clear() + text + "\n" + self._bottom())
            sys.stdout.flush()

    def status(self, key: str, text: str | None) -> None:
        """Show `text` as `key`'s line at the bottom of a terminal; None removes it."""
        with self._lock:
            if text is None:
                self._status.pop(key, None)
            else:
                self._status[key] = text
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
            sys.stdout.write(text)
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
            sys.stderr.write(f"{self.bad('error:')} {message}\n")
            sys.stderr.flush()

    def warn(self, message: str) -> None:
        with self._lock:
            sys.stderr.write(f"{self.paint('warning:', _YELLOW)} {message}\n")

    def problems(self, problems: Iterable[Problem]) -> None:
        problems = list(problems)
        errors = sum(1 for p in problems if p.severity == "error")
        with self._lock:
            for p in problems:
                tag = self.bad("error") if p.severity == "error" else self.paint("warning", _YELLOW)
                sys.stderr.write(f"{p.path}:{p.line}:{p.col}: {tag}: {p.message}\n")
            if errors:
                noun = "error" if errors == 1 else "errors"
                sys.stderr.write(f"validation failed: {errors} {noun}\n")
            sys.stderr.flush()

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
        for row in (header, *rows):
            self.line("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stdout.isatty()
