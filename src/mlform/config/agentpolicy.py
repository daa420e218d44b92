"""`agent:` in workspace.yml: which changes `mlform agent` applies on its own, and which
wait for someone to approve them (`mlform agent approve`).

    agent:
      auto_apply: [data, environment, runconfig, model]   # default: every kind
      require_approval: [endpoint]

A plan that changes any resource of a kind that needs approval waits whole: applying the
rest first could deploy half of what a reviewer is about to refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlform.config.kinds import REGISTERED
from mlform.config.yamlfile import Document
from mlform.errors import Problem

KINDS = (*(entry.name for entry in REGISTERED if entry.resource), "deployment")


@dataclass(frozen=True, slots=True)
class AgentPolicy:
    auto_apply: frozenset[str] | None = None  # None: every kind
    require_approval: frozenset[str] = frozenset()

    def holds(self, kind: str) -> bool:
        """Whether a change to a resource of `kind` waits for approval."""
        if kind in self.require_approval:
            return True
        return self.auto_apply is not None and kind not in self.auto_apply


def parse(doc: Document, body: Mapping[str, object]) -> tuple[AgentPolicy, list[Problem]]:
    found = body.get("agent")
    if not isinstance(found, Mapping):
        return AgentPolicy(), []  # absent, or a type the schema reports
    problems: list[Problem] = []
    lists: dict[str, frozenset[str]] = {}
    for key in ("auto_apply", "require_approval"):
        value = found.get(key)
        if not isinstance(value, list):
            continue
        for index, kind in enumerate(value):
            if kind not in KINDS:
                problems.append(
                    doc.problem(
                        ["agent", key, index],
                        f"'{kind}' is not a kind of resource; use some of: {', '.join(KINDS)}",
                    )
                )
        lists[key] = frozenset(str(k) for k in value)
    return AgentPolicy(
        lists.get("auto_apply"), lists.get("require_approval", frozenset())
    ), problems
