"""Tracking: the run protocol (files in a run folder) and the SDK scripts log through.

    protocol      the files and their formats; the environment a run's process gets
    sdk           `get_run()` and `Run`: what a training script imports
    buffer        metric points batched in memory, appended to metrics.csv
    lifecycle     flush and final statuses at exit, on an uncaught exception, on SIGTERM
    mlflow_store  what MLflow logged, read from its SQLite store without importing mlflow
    ingest        `read_run` and `load_metrics`: what a run folder holds
    record        `TrackingRecord`: a finished run folder written into the state
    tail          new metric points and log lines, for live progress

Nothing is imported here: a script's `import mlform` must stay cheap.
"""
