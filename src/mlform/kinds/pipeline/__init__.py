"""Pipelines: DAGs of steps, with content-addressed reuse.

spec       PipelineSpec, StepSpec, Binding and their parsing
binding    a step that runs a component: its inputs checked, defaults, optional args
resolve    each step with what it runs from other files; the pipeline's own problems
kind       the kind: a plan that says, per step, reuse or why it runs; apply runs it
steps      what a step's digest is made of, the step runs on record, reuse lookups
execute    running a pipeline: a parent run, a child run per step, independent steps
           in parallel, reused steps linked rather than run
invoke     running a published pipeline now, outside a plan (`mlform pipelines run`)
published  published pipelines over REST (`mlform pipelines serve`)
operations what `mlform pipelines …` lists and shows
"""

from mlform.kinds.pipeline.declaring import DECLARING

__all__ = ["DECLARING"]
