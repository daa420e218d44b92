"""Train an iris classifier, log how well it does, and save the model.

mlform runs this with the registered iris data and the sklearn-env environment; the
metrics and parameters it logs appear on the run (`mlform runs show train`).
"""

import argparse
import pickle
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

import mlform

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="the iris CSV")
parser.add_argument("--model-dir", required=True, help="where to write model.pkl")
parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
parser.add_argument("--max-iter", type=int, default=200)
args = parser.parse_args()

run = mlform.get_run()
frame = pd.read_csv(args.data)
features, labels = frame.drop(columns="species"), frame["species"]
x_train, x_test, y_train, y_test = train_test_split(
    features, labels, test_size=0.3, random_state=0, stratify=labels
)
run.log_params({"C": args.C, "max_iter": args.max_iter, "rows": len(frame)})
run.set_tags({"model": "logistic-regression"})

# A learning curve: accuracy on the test set as the training set grows.
for step, share in enumerate((0.25, 0.5, 0.75, 1.0)):
    count = max(6, int(len(x_train) * share))
    partial = LogisticRegression(C=args.C, max_iter=args.max_iter)
    partial.fit(x_train[:count], y_train[:count])
    run.log("learning_curve_accuracy", accuracy_score(y_test, partial.predict(x_test)), step=step)

model = LogisticRegression(C=args.C, max_iter=args.max_iter).fit(x_train, y_train)
predicted = model.predict(x_test)
accuracy = accuracy_score(y_test, predicted)
run.log("accuracy", accuracy)
run.log("f1_macro", f1_score(y_test, predicted, average="macro"))

out = Path(args.model_dir)
out.mkdir(parents=True, exist_ok=True)
with (out / "model.pkl").open("wb") as handle:
    pickle.dump(model, handle)
print(f"accuracy {accuracy:.3f} on {len(y_test)} held-out flowers; model saved to {out}")
