"""The register step: log the evaluation's metrics on this run, so that mlform's gate
(register_model.when in pipelines/retrain.yml) judges this model by them."""

import argparse
import json
from pathlib import Path

import mlform

parser = argparse.ArgumentParser()
parser.add_argument("--report", required=True)
args = parser.parse_args()

report = json.loads(Path(args.report).read_text())
run = mlform.get_run()
for key, value in report.items():
    run.log(key, value)
print("evaluation:", ", ".join(f"{k}={v:.4f}" for k, v in report.items()))
