"""`register_model.when` as written: `METRIC OP VALUE` conditions joined with `and`.

VALUE is a number or `latest` (the same metric as logged by the run that produced the
latest version of the model). Reading them is part of reading the file; judging a run
against them is the registry's gate (`mlform.registry.gate`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_CONDITION = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_./-]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<value>latest|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    value: float | None  # None: the latest version's value

    def __str__(self) -> str:
        return (
            f"{self.metric} {self.op} {'latest' if self.value is None else number_text(self.value)}"
        )


def parse(when: Sequence[str]) -> tuple[Condition, ...]:
    """The conditions in `when`; ValueError names the part that cannot be read."""
    conditions = []
    for text in when:
        for part in re.split(r"\s+and\s+", text.strip()):
            match = _CONDITION.match(part)
            if not match:
                raise ValueError(
                    f"cannot read condition '{part.strip()}': write METRIC OP VALUE with OP "
                    "one of >= > <= < == != and VALUE a number or latest, "
                    "e.g. accuracy >= 0.9 and accuracy > latest"
                )
            raw = match["value"]
            value = None if raw == "latest" else float(raw)
            conditions.append(Condition(match["metric"], match["op"], value))
    return tuple(conditions)


def number_text(value: float) -> str:
    """A metric's value as conditions and verdicts show it."""
    return f"{value:.4g}"
