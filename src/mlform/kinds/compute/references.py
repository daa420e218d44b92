"""How other kinds name a compute target: a declared one, or a built-in."""

from __future__ import annotations

from collections.abc import Mapping

from mlform.config import schema
from mlform.config.kinds import Resolver
from mlform.config.specs import Source, Spec
from mlform.kinds.compute.spec import BUILT_IN, ComputeSpec


def compute_reference(refs: Resolver, source: Source, compute: str, what: str) -> str | None:
    """The address of the compute `compute` names, if declared; a problem if it names
    neither a declared compute nor a built-in target."""
    address = f"compute/{compute}"
    if refs.is_declared(address):
        return address
    declared = refs.declared("compute")
    if compute in BUILT_IN or compute in declared:
        return None  # built in, or declared in a file too broken to build
    known = sorted({*BUILT_IN, *declared})
    hint = schema.did_you_mean(compute, known) or f" ({what} can use: {', '.join(known)})"
    refs.problem(
        source.problem(
            ["compute"],
            f"unknown compute '{compute}'{hint}; declare it in compute/{compute}.yml "
            "with type: local, or use compute: local",
        )
    )
    return None


def target_of(specs: Mapping[str, Spec], compute: str) -> str:
    """The target that runs what names `compute`: a declared compute's type, or the
    built-in target of that name (local)."""
    spec = specs.get(f"compute/{compute}")
    return spec.type if isinstance(spec, ComputeSpec) else compute
