"""`register_model.when`: register a run's model only when its metrics are good enough.

A condition is `METRIC OP VALUE`, where VALUE is a number or `latest`: the same metric
as logged by the run that produced the latest version of the model. Conditions are
joined with `and` (or given as a list); all must hold. This is the seeds' "validate"
step, in the file: a retraining commit only produces a new version when it is better.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

_CONDITION = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_./-]*)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<value>latest|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Condition:
    metric: str
    op: str
    value: float | None  # None: the latest version's value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {'latest' if self.value is None else _num(self.value)}"


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]  # one per condition, saying how it went

    def __str__(self) -> str:
        return "; ".join(self.reasons)


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


def evaluate(
    conditions: Sequence[Condition],
    metrics: Mapping[str, float],
    latest: Mapping[str, float] | None,
    latest_name: str,
) -> Verdict:
    """Judge a run's final `metrics` against each condition.

    `latest` holds the metrics recorded with the current latest version (`latest_name`,
    e.g. "iris-classifier:1"), or None when there is none yet: a first version has
    nothing to beat, so `> latest` holds. A metric the run did not log fails its
    condition, since nothing shows the model is good enough.
    """
    passed = True
    reasons: list[str] = []
    for condition in conditions:
        have = metrics.get(condition.metric)
        if have is None or math.isnan(have):
            logged = ", ".join(sorted(metrics)) or "none"
            reasons.append(f"the run logged no {condition.metric} (logged: {logged})")
            passed = False
            continue
        if condition.value is None:
            if latest is None:
                reasons.append(f"{condition.metric} {_num(have)}: no version yet to compare with")
                continue
            before = latest.get(condition.metric)
            if before is None:
                reasons.append(
                    f"{condition.metric} {_num(have)}: {latest_name} has no {condition.metric} "
                    "to compare with"
                )
                continue
            target, label = before, f"latest {_num(before)} ({latest_name})"
        else:
            target, label = condition.value, _num(condition.value)
        ok = _OPS[condition.op](have, target)
        op = condition.op if ok else f"is not {condition.op}"
        reasons.append(f"{condition.metric} {_num(have)} {op} {label}")
        passed = passed and ok
    return Verdict(passed, tuple(reasons))


def _num(value: float) -> str:
    return f"{value:.4g}"
