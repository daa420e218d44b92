"""Prepare the iris data: drop incomplete and duplicate rows, keep the columns training uses."""

import argparse

import pandas as pd

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

frame = pd.read_csv(args.data)
columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
clean = frame[columns].dropna().drop_duplicates()
clean.to_csv(args.out, index=False)
print(f"kept {len(clean)} of {len(frame)} rows")
