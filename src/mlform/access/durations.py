"""Spans and points in time as the command line writes them: `30d`, `12h`, `15m`, `2s`,
`never`; and `--since 7d` (that long ago) or `--since 2026-12-01` (a day, in UTC, or an
ISO-8601 time)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from mlform.errors import MlformError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN = re.compile(r"([1-9][0-9]{0,8})([smhdw])")
MAX_SPAN = 10 * 365 * 86400  # ten years: beyond it, write `never`


def seconds(text: str) -> float | None:
    """The seconds `text` spans; None for `never`."""
    if text == "never":
        return None
    found = _SPAN.fullmatch(text.strip())
    if not found:
        raise MlformError(
            f"{text!r} is not a duration: write a number and a unit, s, m, h, d or w "
            "(`30d`, `12h`, `2s`), or `never`"
        )
    span = int(found[1]) * _UNITS[found[2]]
    if span > MAX_SPAN:
        raise MlformError(f"{text!r} is longer than ten years: write `never` if it should not end")
    return float(span)


def since(text: str, now: float) -> float:
    """The epoch time `--since TEXT` means, at `now`: `7d` ago, or a date or time (UTC)."""
    if _SPAN.fullmatch(text.strip()):
        span = seconds(text)
        assert span is not None
        return now - span
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise MlformError(
            f"--since {text!r}: write a span back from now (`7d`, `12h`) or a date "
            "(`2026-12-01`, UTC) or time (`2026-12-01T09:30:00+00:00`)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def iso(epoch: float | None) -> str:
    """`epoch` as ISO-8601 in UTC to the second; `never` for None."""
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
