"""Show a plan as text (terminal), Markdown (a pull-request comment) or JSON.

Rendering never changes what apply does: apply reads the `Plan`, not its rendering.
"""

from __future__ import annotations

import json
from typing import Any

from mlform import __version__
from mlform.plan.model import Action, Plan
from mlform.plan.reasons import texts

_COLORS = {
    Action.CREATE: "\x1b[32m",
    Action.UPDATE: "\x1b[33m",
    Action.DELETE: "\x1b[31m",
    Action.REPLACE: "\x1b[35m",
    Action.RUN: "\x1b[36m",
}
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"


def text(plan: Plan, *, color: bool = False) -> str:
    lines: list[str] = []
    for refusal in plan.refusals:
        lines.append(f"error: {refusal}")
    for note in plan.notes:
        lines.append(f"note: {note}")
    if not plan.changes:
        if lines:
            lines.append("")
        lines.append(
            f"No changes. The workspace matches its files ({plan.unchanged} resources up to date)."
        )
        return "\n".join(lines)
    if lines:
        lines.append("")
    lines.append("mlform will perform these actions:")
    lines.append("")
    width = max(len(c.address) for c in plan.changes)
    for change in plan.changes:
        symbol = f"{change.symbol:>3}"
        if color:
            symbol = f"{_COLORS[change.action]}{symbol}{_RESET}"
        lines.append(f"{symbol} {change.address:<{width}}  ({texts(change.reasons)})")
    lines.append("")
    summary = plan.summary()
    if plan.unchanged:
        summary += f" {plan.unchanged} unchanged."
    lines.append(f"{_BOLD}{summary}{_RESET}" if color else summary)
    return "\n".join(lines)


def markdown(plan: Plan) -> str:
    """A pull-request comment (see plan/markdown.py)."""
    # start-up: the comment's layout only for `plan --markdown`
    from mlform.plan import markdown as comment

    return comment.markdown(plan)


def as_dict(plan: Plan) -> dict[str, Any]:
    counts = plan.counts
    return {
        "format_version": 1,
        "mlform_version": __version__,
        "lineage": plan.identity.lineage,
        "serial": plan.identity.serial,
        "summary": {
            "add": counts[Action.CREATE] + counts[Action.REPLACE],
            "change": counts[Action.UPDATE],
            "destroy": counts[Action.DELETE] + counts[Action.REPLACE],
            "run": counts[Action.RUN],
            "unchanged": plan.unchanged,
        },
        "refusals": list(plan.refusals),
        "notes": list(plan.notes),
        "changes": [
            {
                "address": c.address,
                "kind": c.kind,
                "name": c.name,
                "action": c.action.value,
                "symbol": c.symbol,
                "reasons": [r.text for r in c.reasons],
                "reason_details": [r.as_dict() for r in c.reasons],
                "version": c.version,
                "before_digest": c.before.digest if c.before else None,
                "after_digest": c.after.digest if c.after else None,
                "depends_on": list(c.deps),
            }
            for c in plan.changes
        ],
    }


def as_json(plan: Plan) -> str:
    return json.dumps(as_dict(plan), indent=2, default=str) + "\n"
