"""How component files are read: found beside the jobs that run them, parsed with their
wrong parts left out, checked, and told apart by name and version."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlform.config.containment import Found, code_path
from mlform.config.kinds import Declaring
from mlform.config.schema import usable
from mlform.config.specs import Source, Spec
from mlform.config.yamlfile import Document, Where
from mlform.errors import Problem
from mlform.kinds.component import spec as components
from mlform.kinds.component.spec import ComponentSpec
from mlform.secrets.references import ANY

_BESIDE = ("runconfigs", "pipelines")


class ComponentDeclaring(Declaring[ComponentSpec]):
    name = "component"

    def parse(self, body: Mapping[str, Any], source: Source) -> ComponentSpec:
        return components.parse(body, source)

    def claims(self, data: Any, folder: str) -> bool:
        # beside the jobs and pipelines that run them, as Azure ML's examples keep them
        return folder in _BESIDE and components.declares_component(data, folder)

    def parse_document(self, doc: Document, bad: frozenset[Where]) -> ComponentSpec | None:
        # A wrong input or output leaves out only itself: the others are still checked.
        entries = {w for w in bad if len(w) > 2 and w[0] in ("inputs", "outputs")}
        body = usable(doc.data, (), bad - entries)
        for group, name in {(str(w[0]), w[1]) for w in entries}:
            kept = body.get(group) if body is not None else None
            if body is not None and isinstance(kept, dict):
                body = {**body, group: {k: v for k, v in kept.items() if k != name}}
        if body is None or "command" not in body:
            return None
        return components.parse(body, Source(doc))

    def duplicate(self, spec: ComponentSpec, others: Iterable[ComponentSpec]) -> Problem | None:
        for other in others:
            if (other.name, other.version) == (spec.name, spec.version):
                return spec.source.problem(
                    ["version" if spec.version else "name"],
                    f"component {spec} is also declared at {other.source}; give one of them "
                    "another version",
                )
        return None

    def check(self, spec: ComponentSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return components.check(spec)

    def secret_places(self, kind: str) -> tuple[tuple[str, ...], ...]:
        return (("environment_variables", ANY),)

    def defines(self, spec: Spec) -> Sequence[Spec]:
        return spec.inline if isinstance(spec, ComponentSpec) else ()

    def paths(self, spec: Spec) -> Iterable[Found]:
        if isinstance(spec, ComponentSpec):
            yield from code_path(spec.source, spec.body, ("code",), spec.code)


DECLARING = ComponentDeclaring()
