"""What a breached monitor hands the job its `on_breach` runs (`with:`), and that job
made into the variant that runs with it.

`with:` maps the job's declared inputs to values: `${{monitor.production_data}}` (the
captured rows of the window that breached, kept as CSV in the datastore, for a data
input), `${{monitor.window_start}}` and `${{monitor.window_end}}` (ISO 8601, UTC),
`${{monitor.run_id}}`, or a literal. The variant runs once, as `apply --rerun` would run
the job; its run records the inputs it had, and the job's declared state stays as its
file says (`Context.invoked`), so the next plan is what it would have been.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from mlform.config.refs import LocalPath
from mlform.config.specs import DataInput, Spec
from mlform.errors import PlanError
from mlform.kinds.monitor.spec import MONITOR_VALUE, MonitorSpec
from mlform.kinds.pipeline.spec import PipelineSpec
from mlform.kinds.runconfig.spec import RunconfigSpec
from mlform.loader import Config
from mlform.state.monitors import MonitorRun
from mlform.state.records import Recorded


def inputs(spec: MonitorSpec, result: MonitorRun) -> dict[str, str]:
    """The job's inputs `spec`'s on_breach `with:` gives, from the run that breached."""
    given = {
        "production_data": result.production_data,
        "window_start": result.start.isoformat(),
        "window_end": result.end.isoformat(),
        "run_id": result.run.id,
    }
    found: dict[str, str] = {}
    for name, value in spec.on_breach_with.items():
        match = MONITOR_VALUE.match(value)
        resolved = given.get(match[1]) if match is not None else value
        if resolved is not None:
            found[name] = resolved
    return found


def variant(
    config: Config, recorded: Mapping[str, Recorded], address: str, given: Mapping[str, str]
) -> Spec:
    """The job at `address` with `given` in place of its declared inputs: a data input
    becomes the file given, a value input the value."""
    spec = config.specs.get(address)
    if not isinstance(spec, RunconfigSpec | PipelineSpec):
        raise PlanError(f"{address} is not a runconfig or pipeline declared in this workspace")
    declared = spec.inputs
    if address not in recorded:
        raise PlanError(
            f"{address} has never been applied, so it cannot run with inputs of its own "
            "(a monitor's on_breach `with:`): run `mlform apply` first"
        )
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise PlanError(f"{address} has no input {', '.join(unknown)}")
    inputs: dict[str, DataInput | str] = dict(declared)
    for name, value in given.items():
        now = declared[name]
        if isinstance(now, DataInput):
            path = Path(value)
            kind = "uri_folder" if path.is_dir() else "uri_file"
            inputs[name] = DataInput(kind, location=LocalPath(path), mode=now.mode)
        else:
            inputs[name] = value
    return replace(spec, inputs=inputs)
