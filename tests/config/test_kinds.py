"""The registry of kinds: each line names a package whose `DECLARING` reads its files,
with a schema and a folder of its own, and (for a resource) whose `kind.KIND` adds the
lifecycle the planner calls."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mlform.config import kinds
from mlform.config.specs import Spec
from mlform.kind import KINDS, Kind
from mlform.plan.model import Payload

SCHEMAS = Path(__file__).parents[2] / "schema"


@pytest.mark.parametrize("entry", kinds.REGISTERED, ids=lambda e: e.name)
def test_each_registered_kind_is_its_package_and_schema(entry: kinds.Registered) -> None:
    reader = importlib.import_module(entry.package).DECLARING
    assert reader.name == entry.name
    assert kinds.declaring(entry.name) is reader
    schema = "workspace" if entry.name == "datastore" else entry.name  # in workspace.yml
    assert (SCHEMAS / f"{schema}.schema.json").is_file()
    for part in entry.parts:
        assert (SCHEMAS / f"{part}.schema.json").is_file()
        assert part in {p for p, _ in reader.parts.values()}
    if entry.resource:
        kind = KINDS[entry.name]
        assert kind is importlib.import_module(f"{entry.package}.kind").KIND
        assert Kind in type(kind).__mro__  # the whole contract, its defaults included
        assert isinstance(kind, type(reader))  # reads as its package's DECLARING does
        assert issubclass(kind.payload, Payload)
    else:
        assert entry.name not in KINDS
        assert not (
            Path(importlib.import_module(entry.package).__file__).parent / "kind.py"
        ).exists()


def test_folders_and_azure_schema_names_belong_to_one_kind_each() -> None:
    folders = [e.folder for e in kinds.REGISTERED if e.folder]
    assert len(folders) == len(set(folders))
    schemas = [name for e in kinds.REGISTERED for name in e.azure]
    assert len(schemas) == len(set(schemas))
    known = {e.name for e in kinds.REGISTERED} | {p for e in kinds.REGISTERED for p in e.parts}
    assert set(kinds.AZURE_SCHEMAS.values()) <= known


def test_a_spec_is_read_by_its_own_kind_or_the_kind_it_is_part_of() -> None:
    from mlform.kinds.endpoint.spec import DeploymentSpec, EndpointSpec

    assert DeploymentSpec.part_of == "endpoint"
    assert kinds.reader_of("deployment") is kinds.declaring("endpoint")
    assert kinds.reader_of("endpoint") is kinds.declaring("endpoint")
    assert kinds.reader_of("workspace") is None
    assert EndpointSpec.part_of is None and Spec.part_of is None


def test_the_executor_refuses_a_payload_of_another_kind(tmp_path: Path) -> None:
    """What `desire` hands `apply` is typed per kind; a plan that pairs a kind with
    another's payload is refused before anything is applied."""
    from mlform.context import Context
    from mlform.errors import ApplyError
    from mlform.kind import apply_change
    from mlform.kinds.compute.kind import ComputePayload
    from mlform.kinds.compute.spec import ComputeSpec
    from mlform.plan.model import Action, Change, Desired

    other = ComputePayload(ComputeSpec.__new__(ComputeSpec))
    after = Desired("data/x", "data", "x", "d", {}, {}, (), "data/x.yml:1", payload=other)
    change = Change(Action.CREATE, "data/x", "data", "x", (), None, after)
    with pytest.raises(ApplyError, match="holds a ComputePayload for a data"):
        apply_change(change, Context(config=None, hasher=None))  # type: ignore[arg-type]
