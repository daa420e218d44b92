"""Score iris flowers with the registered classifier (Azure ML's init/run contract).

mlform's scoring server calls init() once, with the model version's files in
MLFORM_MODEL_DIR, then run(data) for each request. MLFORM_PARSED_INPUT asks mlform to
parse the request for run(): {"data": [[5.1, 3.5, 1.4, 0.2], ...]} gives the rows;
MLflow-style dataframe_split or dataframe_records payloads arrive as a pandas DataFrame.
(Without it, run() gets the request body as a str, as on Azure ML.) MLFORM_BATCHABLE says
run() predicts each row on its own, so mlform may give it the rows of requests that arrive
together in one call, and send each client its own rows' predictions.

No rows (an empty list, null, a frame without rows) score to no predictions. Input that
is not flowers is refused with a message for the client: mlform answers 400 to
BadPayload; where mlform's runtime is absent, it is a ValueError.
"""

import math
import os
import pickle
from pathlib import Path

import pandas as pd

try:
    from mlform.serving.scoring import BadPayload
except ImportError:
    BadPayload = ValueError

MLFORM_PARSED_INPUT = True
MLFORM_BATCHABLE = True
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EXPECTED = "send rows of 4 numbers (" + ", ".join(COLUMNS) + "), or records with those keys"
model = None


def init():
    global model
    with (Path(os.environ["MLFORM_MODEL_DIR"]) / "model.pkl").open("rb") as handle:
        model = pickle.load(handle)


def run(data):
    frame = flowers(data)
    if frame.empty:
        return []
    return model.predict(frame).tolist()


def flowers(data):
    """The rows of `data` as a frame of the model's columns; BadPayload if it has none."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif data is None or data == []:
        return pd.DataFrame(columns=COLUMNS)
    elif isinstance(data, list) and all(isinstance(row, dict) for row in data):
        frame = pd.DataFrame.from_records(data)
    elif isinstance(data, list) and all(
        isinstance(row, list) and len(row) == len(COLUMNS) for row in data
    ):
        frame = pd.DataFrame(data, columns=COLUMNS)
    else:
        raise BadPayload(f"the data is not rows of flowers; {EXPECTED}")
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise BadPayload(f"the rows have no {', '.join(missing)}; {EXPECTED}")
    values = frame[COLUMNS]
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in values.to_numpy().ravel()
    ):
        raise BadPayload(f"every measurement must be a finite number; {EXPECTED}")
    return values.astype(float)
