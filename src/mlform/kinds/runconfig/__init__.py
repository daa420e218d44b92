"""Runconfigs: a command run on a compute target and recorded as a run (Azure ML's
command job).

    spec     RunconfigSpec and its parsing
    checks   its command, code, inputs and register_model
    kind     the kind: planned to run when its code, data or environment changed
    payload  what a job's plan hands its run (a pipeline step's too)
    runner   one run: its folder prepared, started on a compute target, watched, recorded
    gated    the model a run registers, when its register_model gate passes
"""

from mlform.kinds.runconfig.declaring import DECLARING

__all__ = ["DECLARING"]
