"""What a plan is made of: desired resources, changes with reasons, and the plan itself."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mlform.plan.reasons import Reason
from mlform.state.records import Recorded
from mlform.state.store import Identity


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    REPLACE = "replace"
    RUN = "run"


SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.DELETE: "-",
    Action.REPLACE: "-/+",
    Action.RUN: ">",
}


class Payload:
    """What a kind's `desire` computed that its `apply` needs; each kind's is a frozen
    dataclass of its own (`mlform.kind.Kind`)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Desired:
    """A resource as the files declare it, with the digest of everything it depends on."""

    address: str
    kind: str
    name: str
    digest: str
    components: Mapping[str, str]  # keyed by the stored form of a `keys.Key`
    spec: Mapping[str, Any]
    deps: tuple[str, ...]
    source: str
    protect: bool = False
    version_key: str | None = None  # for versioned kinds: a new version when this changes
    version: str | None = None  # a version fixed in the file
    replace_keys: frozenset[str] = frozenset()  # spec keys whose change forces -/+
    summary: str = ""  # shown when the resource is created
    trigger: str | None = None  # a job (on_change, always, manual); None for other kinds
    refs: Mapping[str, str] = field(default_factory=dict)  # component key → upstream address
    note: str = ""  # said under the plan when this resource changes (what a run registers)
    explain: tuple[Reason, ...] = ()  # a job's own reasons (a pipeline's, step by step)
    numbered_from: str | None = None  # highest version registered by anything else
    payload: Payload | None = field(default=None, compare=False, repr=False)  # for apply


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    address: str
    kind: str
    name: str
    reasons: tuple[Reason, ...]
    before: Recorded | None
    after: Desired | None
    deps: tuple[str, ...] = ()  # changes in this plan that must succeed first
    version: str | None = None  # the version this change registers, if any

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]  # in dependency order
    unchanged: int
    identity: Identity
    refusals: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def counts(self) -> Counter[Action]:
        return Counter(change.action for change in self.changes)

    def summary(self) -> str:
        counts = self.counts
        add = counts[Action.CREATE] + counts[Action.REPLACE]
        destroy = counts[Action.DELETE] + counts[Action.REPLACE]
        return (
            f"Plan: {add} to add, {counts[Action.UPDATE]} to change, "
            f"{destroy} to destroy, {counts[Action.RUN]} to run."
        )

    def signature(self) -> list[tuple[str, str, str | None, str | None]]:
        """What a saved plan promises: each change's action and target digest."""
        return [
            (c.address, c.action.value, c.after.digest if c.after else None, c.version)
            for c in self.changes
        ]
