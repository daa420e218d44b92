"""Score iris flowers with the registered classifier (Azure ML's init/run contract).

mlform's scoring server calls init() once, with the model version's files in
MLFORM_MODEL_DIR, then run(data) for each request. MLFORM_PARSED_INPUT asks mlform to
parse the request for run(): {"data": [[5.1, 3.5, 1.4, 0.2], ...]} gives the rows;
MLflow-style dataframe_split or dataframe_records payloads arrive as a pandas DataFrame.
(Without it, run() gets the request body as a str, as on Azure ML.)
"""

import os
import pickle
from pathlib import Path

import pandas as pd

MLFORM_PARSED_INPUT = True
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
model = None


def init():
    global model
    with (Path(os.environ["MLFORM_MODEL_DIR"]) / "model.pkl").open("rb") as handle:
        model = pickle.load(handle)


def run(data):
    if isinstance(data, pd.DataFrame):
        frame = data
    elif data and isinstance(data[0], dict):
        frame = pd.DataFrame.from_records(data)
    else:
        frame = pd.DataFrame(data, columns=COLUMNS)
    return model.predict(frame[COLUMNS]).tolist()
