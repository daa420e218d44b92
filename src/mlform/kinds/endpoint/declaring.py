"""How endpoint files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.containment import Found, code_path
from mlform.config.kinds import Declaring, Parser, Resolver
from mlform.config.specs import Source, Spec
from mlform.errors import Problem
from mlform.kinds.endpoint import assemble
from mlform.kinds.endpoint.spec import DeploymentSpec, EndpointSpec, deployment, parse
from mlform.kinds.image import checks as image_checks
from mlform.secrets import references
from mlform.secrets.references import ANY


class EndpointDeclaring(Declaring[EndpointSpec]):
    name = "endpoint"
    # A deployment in a file of its own, as Azure ML keeps them, names its endpoint.
    parts: ClassVar[Mapping[str, tuple[str, Parser]]] = {
        "endpoint_name": ("deployment", deployment)
    }

    def parse(self, body: Mapping[str, Any], source: Source) -> EndpointSpec:
        return parse(body, source)

    def check(self, spec: Spec, root: Path, skip: Collection[str]) -> list[Problem]:
        """An endpoint's own keys need no files; its deployments' code does (a
        deployment in a file of its own is checked as it is read)."""
        if isinstance(spec, DeploymentSpec):
            return image_checks.check(spec, root)
        if isinstance(spec, EndpointSpec):
            return [p for d in spec.deployments for p in image_checks.check(d, root)]
        return []

    def secret_places(self, kind: str) -> tuple[tuple[str, ...], ...]:
        if kind == "deployment":
            return (("environment_variables", ANY),)
        return (("deployments", ANY, "environment_variables", ANY),)

    def defines(self, spec: Spec) -> Sequence[Spec]:
        if isinstance(spec, DeploymentSpec):
            return spec.inline
        if isinstance(spec, EndpointSpec):
            return [defined for dep in spec.deployments for defined in dep.inline]
        return ()

    def assemble(
        self, spec: EndpointSpec, parts: Sequence[Spec], unbuilt: set[str]
    ) -> tuple[EndpointSpec, list[Problem]]:
        return assemble.assemble(spec, parts, unbuilt)

    def paths(self, spec: Spec) -> Iterable[Found]:
        if isinstance(spec, DeploymentSpec):
            where = ("code_configuration", "code")
            yield from code_path(spec.source, spec.body, where, spec.code)
        elif isinstance(spec, EndpointSpec):
            for dep in spec.deployments:
                yield from self.paths(dep)

    def secret_uses(self, spec: Spec) -> tuple[str, ...]:
        if isinstance(spec, EndpointSpec):
            return tuple(references.names_in([dict(d.variables) for d in spec.deployments]))
        return ()

    def references(self, spec: EndpointSpec, refs: Resolver) -> list[str]:
        """Each deployment's environment, and what registers its model."""
        found: list[str] = []
        for dep in spec.deployments:
            if dep.environment is not None:
                env = refs.asset("environment", dep.environment, dep.source, ["environment"])
                found.extend([env] if env else [])
            if dep.model is not None and refs.fits("model", dep.model, dep.source):
                found.extend(refs.producers("model", dep.model.name))
        return found


DECLARING = EndpointDeclaring()
