"""Why a change is planned: a code from a closed set, its details, and the text shown.

Each function here makes one kind of reason and renders its text from its details, so
what a terminal, a pull-request comment and `plan --json` say always agree. Details
name paths, keys, addresses, versions and secret names; never a secret's value, and
never a value the text hides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SHOWN_FILES = 3  # files named in a reason; the rest are counted


class ReasonCode(StrEnum):
    CREATED = "created"
    DELETED = "deleted"
    NO_RUN_YET = "no_run_yet"
    RERUN_REQUESTED = "rerun_requested"
    TRIGGER_ALWAYS = "trigger_always"
    LAST_APPLY_FAILED = "last_apply_failed"
    DRIFT = "drift"
    CODE_CHANGED = "code_changed"
    CONTENT_CHANGED = "content_changed"
    SPEC_CHANGED = "spec_changed"
    UPSTREAM_CHANGED = "upstream_changed"
    PART_CHANGED = "part_changed"
    INPUT_VERSION_CHANGED = "input_version_changed"
    SECRET_CHANGED = "secret_changed"
    VERSION_BUMP = "version_bump"
    VERSION_KEPT = "version_kept"
    CANNOT_CHANGE_IN_PLACE = "cannot_change_in_place"
    RUNS_FIRST = "runs_first"
    STEP_CHANGED = "step_changed"
    STEP_REUSED = "step_reused"
    TRIALS_LIMIT = "trials_limit"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Reason:
    code: ReasonCode
    text: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "text": self.text, **self.details}


def texts(reasons: Sequence[Reason]) -> str:
    """Reasons as one line of text, as every plan shows them."""
    return "; ".join(r.text for r in reasons)


def created(version: str | None = None, summary: str = "") -> Reason:
    text = f"new: version {version}" if version else "new"
    if summary:
        text += f" ({summary})" if version else f": {summary}"
    details: dict[str, Any] = {"version": version} if version else {}
    if summary:
        details["summary"] = summary
    return Reason(ReasonCode.CREATED, text, details)


def deleted(source: str) -> Reason:
    return Reason(ReasonCode.DELETED, f"no longer declared (was {source})", {"source": source})


def no_run_yet() -> Reason:
    return Reason(ReasonCode.NO_RUN_YET, "no run yet")


def rerun_requested() -> Reason:
    return Reason(ReasonCode.RERUN_REQUESTED, "--rerun")


def trigger_always() -> Reason:
    return Reason(ReasonCode.TRIGGER_ALWAYS, "trigger: always")


def last_apply_failed(error: str) -> Reason:
    return Reason(ReasonCode.LAST_APPLY_FAILED, f"last apply failed: {error}", {"error": error})


def drift(found: str) -> Reason:
    return Reason(ReasonCode.DRIFT, found, {"found": found})


def files_changed(
    code: ReasonCode, label: str, modified: list[str], added: list[str], removed: list[str]
) -> Reason:
    """`code: a.py modified, b.py added` (CODE_CHANGED) or `content changed: …`
    (CONTENT_CHANGED); without files (a folder digested whole), just `… changed`."""
    lists = {"modified": sorted(modified), "added": sorted(added), "removed": sorted(removed)}
    parts = [_files(names, how) for how, names in lists.items() if names]
    if not parts:
        return Reason(code, f"{label} changed")
    head = "code:" if code is ReasonCode.CODE_CHANGED else f"{label} changed:"
    return Reason(code, f"{head} " + ", ".join(parts), lists)


def code_changed(modified: list[str], added: list[str], removed: list[str]) -> Reason:
    return files_changed(ReasonCode.CODE_CHANGED, "code", modified, added, removed)


def content_changed(modified: list[str], added: list[str], removed: list[str]) -> Reason:
    return files_changed(ReasonCode.CONTENT_CHANGED, "content", modified, added, removed)


def _files(names: list[str], how: str) -> str:
    shown = ", ".join(names[:SHOWN_FILES])
    if len(names) > SHOWN_FILES:
        shown += f" and {len(names) - SHOWN_FILES} more"
    return f"{shown} {how}"


def spec_changed(key: str, how: str, before: Any = None, after: Any = None) -> Reason:
    """A key of the file: `how` is added, removed, hidden (its value may be a secret),
    shown (short values, before → after) or changed."""
    details: dict[str, Any] = {"key": key, "change": how}
    if how == "shown":
        details.update(before=before, after=after)
        return Reason(ReasonCode.SPEC_CHANGED, f"{key}: {before!r} → {after!r}", details)
    text = {"added": f"{key} added", "removed": f"{key} removed", "hidden": f"{key}: value changed"}
    return Reason(ReasonCode.SPEC_CHANGED, text.get(how, f"{key} changed"), details)


def upstream_changed(address: str) -> Reason:
    return Reason(ReasonCode.UPSTREAM_CHANGED, f"{address} changed", {"address": address})


def part_changed(
    name: str, how: str, before: str | None = None, after: str | None = None
) -> Reason:
    """A named part (`deployment blue model`): `how` is added, removed, shown or changed."""
    details: dict[str, Any] = {"part": name, "change": how}
    if how == "shown":
        details.update(before=before, after=after)
        return Reason(ReasonCode.PART_CHANGED, f"{name}: {before} → {after}", details)
    text = {"added": f"{name} added", "removed": f"{name} removed"}
    return Reason(ReasonCode.PART_CHANGED, text.get(how, f"{name} changed"), details)


def input_version_changed(
    input: str,
    *,
    asset: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> Reason:
    """A job's environment or data input: with `asset`, the upstream it takes @latest
    (`data: iris 2 → 3`, or `data: iris changed` when the versions are not known);
    without, the pinned reference itself (`data (train): iris:1 → iris:2`)."""
    label = "environment" if input == "environment" else "data"
    details: dict[str, Any] = {"input": input, "before": before, "after": after}
    if asset is None:
        pinned = label if input == "environment" else f"data ({input})"
        return Reason(
            ReasonCode.INPUT_VERSION_CHANGED,
            f"{pinned}: {'none' if before is None else before} → {after}",
            details,
        )
    details["asset"] = asset
    if before and after and before != after:
        text = f"{label}: {asset} {before} → {after}"
    else:
        text = f"{label}: {asset} changed"
    return Reason(ReasonCode.INPUT_VERSION_CHANGED, text, details)


def secret_changed(name: str) -> Reason:
    return Reason(ReasonCode.SECRET_CHANGED, f"secret {name} changed", {"name": name})


def version_bump(before: Any, after: str) -> Reason:
    return Reason(
        ReasonCode.VERSION_BUMP, f"version {before} → {after}", {"before": before, "after": after}
    )


def version_kept(version: Any) -> Reason:
    return Reason(
        ReasonCode.VERSION_KEPT, f"content unchanged, stays version {version}", {"version": version}
    )


def cannot_change_in_place(keys: list[str]) -> Reason:
    return Reason(
        ReasonCode.CANNOT_CHANGE_IN_PLACE,
        f"{', '.join(keys)} cannot change in place",
        {"keys": keys},
    )


def runs_first(address: str) -> Reason:
    return Reason(
        ReasonCode.RUNS_FIRST,
        f"{address} runs first and may register a new model version",
        {"address": address},
    )


def trials_limit(before: int, after: int) -> Reason:
    """A sweep whose only change is its max_total_trials: the trials it ran are reused,
    so `10 more trials: max_total_trials 20 → 30` (or none, for a lower limit)."""
    details = {"before": before, "after": after}
    change = f"max_total_trials {before} → {after}"
    if after > before:
        more = after - before
        text = f"{more} more trial{'' if more == 1 else 's'}: {change}"
    else:
        text = f"{change}: its first {after} trials are reused"
    return Reason(ReasonCode.TRIALS_LIMIT, text, details)


def step(name: str, why: str) -> Reason:
    """A pipeline step: reused, or why it runs (`train: code changed (src/train.py)`)."""
    if why == "reuse":
        return Reason(ReasonCode.STEP_REUSED, f"{name}: reuse", {"step": name})
    return Reason(ReasonCode.STEP_CHANGED, f"{name}: {why}", {"step": name, "why": why})


def changed() -> Reason:
    return Reason(ReasonCode.CHANGED, "changed")
