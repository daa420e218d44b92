"""Evaluate the trained model on the held-out split train.py kept out, and report it."""

import argparse
import json
import pickle
from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

import mlform

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True, help="the folder train.py saved model.pkl in")
parser.add_argument("--data", required=True)
parser.add_argument("--report", required=True)
args = parser.parse_args()

with (Path(args.model) / "model.pkl").open("rb") as handle:
    model = pickle.load(handle)
frame = pd.read_csv(args.data)
features, labels = frame.drop(columns="species"), frame["species"]
_, x_test, _, y_test = train_test_split(
    features, labels, test_size=0.3, random_state=0, stratify=labels
)
predicted = model.predict(x_test)
report = {
    "accuracy": accuracy_score(y_test, predicted),
    "f1_macro": f1_score(y_test, predicted, average="macro"),
}
run = mlform.get_run()
for key, value in report.items():
    run.log(key, value)
Path(args.report).write_text(json.dumps(report))
print(json.dumps(report))
