"""Model monitoring: how far production data has drifted from the data a model was
trained on, how clean it is, how well the model does, and who is told when a signal
breaches its threshold.

- `metrics`: a feature's result, default thresholds, breaching; data drift per feature
- `samples`: the counting in buckets that gives the numerical drift metrics exactly
- `names`: the drift metrics' names, which `metrics` and `samples` share
- `relations`: the SQL over the monitored relations that the signals share
- `production`: a deployment's captured requests in a window, one row per scored row
- `quality`: data quality per feature (null values, data type errors, out of bounds)
- `performance`: model performance over (prediction, ground truth) pairs
- `alerts`: the alert document, and its delivery by email (SMTP) and signed webhooks

Everything is counted in DuckDB; NumPy and SciPy (the `monitoring` extra) see only
per-bucket and per-category counts, and only `metrics`, `samples` and `relations` import
them, so reading a workspace never loads them.
"""
