"""Command-line value types shared by the scoring server and the router."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def positive(kind: type[int] | type[float], noun: str | None = None) -> Callable[[str], Any]:
    """A type that takes numbers above zero; `noun` says what in the error."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {noun or kind.__name__}")
        return value

    return parse
