"""`register_model.when`: register a run's model only when its metrics are good enough.

A condition is `METRIC OP VALUE`, where VALUE is a number or `latest`: the same metric
as logged by the run that produced the latest version of the model. Conditions are
joined with `and` (or given as a list); all must hold. This is the seeds' "validate"
step, in the file: a retraining commit only produces a new version when it is better.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mlform.config.conditions import Condition, number_text

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]  # one per condition, saying how it went

    def __str__(self) -> str:
        return "; ".join(self.reasons)


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
                reasons.append(
                    f"{condition.metric} {number_text(have)}: no version yet to compare with"
                )
                continue
            before = latest.get(condition.metric)
            if before is None:
                reasons.append(
                    f"{condition.metric} {number_text(have)}: {latest_name} has no "
                    f"{condition.metric} to compare with"
                )
                continue
            target, label = before, f"latest {number_text(before)} ({latest_name})"
        else:
            target, label = condition.value, number_text(condition.value)
        ok = _OPS[condition.op](have, target)
        op = condition.op if ok else f"is not {condition.op}"
        reasons.append(f"{condition.metric} {number_text(have)} {op} {label}")
        passed = passed and ok
    return Verdict(passed, tuple(reasons))
