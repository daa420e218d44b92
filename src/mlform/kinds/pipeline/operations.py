"""What `mlform pipelines …` reads: the published pipelines, one of them, its runs.

A pipeline is published by applying it: each apply that changes its definition makes a
new version, and the default version is the latest. Invoking it is `mlform.kinds.pipeline.invoke`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlform.opened import OpenWorkspace


@dataclass(frozen=True, slots=True)
class Published:
    name: str
    version: str
    steps: list[str]
    inputs: dict[str, Any]
    last_run: str | None
    last_status: str | None


@dataclass(frozen=True, slots=True)
class PipelineRunSummary:
    id: str
    status: str
    started: str
    duration: float | None
    steps: dict[str, str]  # step → completed | reused | failed | …


def published(ws: OpenWorkspace) -> list[Published]:
    with ws.store("pipelines") as store:
        rows = store.query(
            "select name, spec, outputs from resources where kind = 'pipeline' "
            "and status <> 'deleted' and digest is not null order by name"
        )
    found = []
    for name, spec_text, outputs_text in rows:
        spec, outputs = json.loads(spec_text), json.loads(outputs_text)
        found.append(
            Published(
                name,
                str(outputs.get("default_version", outputs.get("version", "1"))),
                list((spec.get("jobs") or {}).keys()),
                dict(spec.get("inputs") or {}),
                outputs.get("run_id"),
                outputs.get("status"),
            )
        )
    return found


def runs(ws: OpenWorkspace, name: str) -> list[PipelineRunSummary]:
    with ws.store("pipelines runs") as store:
        parents = store.query(
            "select id, status, strftime(started_at, '%Y-%m-%d %H:%M:%S'), "
            "epoch(ended_at) - epoch(started_at) from runs "
            "where runconfig = ? and parent_id is null order by created_at desc, seq desc",
            [f"pipeline/{name}"],
        )
        children = store.query(
            "select parent_id, name, status, reused_from from runs where parent_id in "
            "(select id from runs where runconfig = ? and parent_id is null)",
            [f"pipeline/{name}"],
        )
    steps: dict[str, dict[str, str]] = {}
    for parent, step, status, reused in children:
        steps.setdefault(parent, {})[step] = "reused" if reused else status
    return [
        PipelineRunSummary(id, status, started or "", duration, steps.get(id, {}))
        for id, status, started, duration in parents
    ]
