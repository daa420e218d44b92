"""A plan as a pull-request comment: summary first, the changes as diff blocks GitHub
colours, folded per kind when there are many, and never longer than a comment can be.

GitHub refuses a comment over 65,536 characters. The plan takes at most BUDGET of them
(the workflow adds a marker and any errors): past that, changes are left out, counted,
and the comment says so and where the whole plan is.
"""

from __future__ import annotations

from mlform.plan.model import Change, Plan
from mlform.plan.reasons import texts

LIMIT = 65_536  # GitHub's limit on a comment's length
BUDGET = 60_000
FOLD = 10  # more changes than this, and each kind folds into a <details> block
LINE = 400  # characters of one change's line at most
_MARKS = {"~": "!", "-/+": "!", ">": "+"}
_WORDS = {"+": "to add", "~": "to change", "-": "to destroy", "-/+": "to replace", ">": "to run"}


def markdown(plan: Plan, *, budget: int = BUDGET) -> str:
    head = "No changes" if not plan.changes else plan.summary().removesuffix(".")
    top = [f"### mlform plan: {head}", ""]
    for refusal in plan.refusals:
        top += [_cut(f"> **Error:** {refusal}", 2_000), ""]
    for note in plan.notes:
        top += [_cut(f"> **Note:** {note}", 2_000), ""]
    footer = f"{plan.unchanged} resources unchanged · state serial {plan.identity.serial}"
    room = budget - len("\n".join(top)) - len(footer) - 400  # 400: the note on what is left out
    body: list[str] = []
    shown = 0
    groups = _by_kind(plan.changes) if len(plan.changes) > FOLD else [("", list(plan.changes))]
    for kind, changes in groups:
        opening = ["```diff"]
        if kind:
            opening = [f"<details><summary><b>{kind}</b>: {_counts(changes)}</summary>", ""]
            opening.append("```diff")
        closing = ["```", ""] + (["</details>", ""] if kind else [])
        lines = [_line(change) for change in changes]
        cost = sum(len(s) + 1 for s in opening + closing)
        if room - cost <= 0:
            break
        taken = 0
        for line in lines:
            if room - cost - len(line) - 1 < 0:
                break
            cost += len(line) + 1
            taken += 1
        if taken == 0:
            break
        body += opening + lines[:taken] + closing
        room -= cost
        shown += taken
        if taken < len(lines):
            break
    left = len(plan.changes) - shown
    if left:
        body += [
            f"> **{left:,} of {len(plan.changes):,} changes are not shown here**: the comment "
            f"would pass GitHub's limit of {LIMIT:,} characters. `mlform plan` lists them "
            "all, as the log of this check does.",
            "",
        ]
    return "\n".join(top + body + [footer]) + "\n"


def _by_kind(changes: tuple[Change, ...]) -> list[tuple[str, list[Change]]]:
    groups: dict[str, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.kind, []).append(change)
    return list(groups.items())


def _counts(changes: list[Change]) -> str:
    tally: dict[str, int] = {}
    for change in changes:
        tally[change.symbol] = tally.get(change.symbol, 0) + 1
    parts = ", ".join(f"{n:,} {_WORDS.get(symbol, symbol)}" for symbol, n in tally.items())
    noun = "change" if len(changes) == 1 else "changes"
    return f"{len(changes):,} {noun} ({parts})"


def _line(change: Change) -> str:
    mark = _MARKS.get(change.symbol, change.symbol)
    return _cut(f"{mark} {change.symbol} {change.address}  ({texts(change.reasons)})", LINE)


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"
