"""Automated ML as Azure ML's AutoML jobs declare it (`type: automl`), searched by FLAML.

- `job`: the job's keys read and checked (task, primary metric, data and validation,
  limits, allowed and blocked algorithms), Azure's algorithm names mapped onto FLAML's
  learners and Azure's primary metrics onto functions of the validation data;
- `driver`: what the job runs, in its environment on its compute: FLAML's search within
  the job's limits, each configuration it evaluates recorded as a child run, the best
  model saved as an MLflow model in the job's `best_model` output.

This package imports nothing at import time: the driver runs in a job's environment,
where mlform's own dependencies may be missing.
"""
