"""Pipelines: DAGs of steps, with content-addressed reuse.

    steps    what a step's digest is made of, the step runs on record, reuse lookups
    execute  running a pipeline: a parent run, a child run per step, independent steps in
             parallel, reused steps linked rather than run

`mlform.kinds.pipeline.kind` plans and applies them.
"""

from mlform.kinds.pipeline.kind import PipelineKind

KIND = PipelineKind()
