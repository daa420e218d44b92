"""`features: {top_n_feature_importance: N}` over the example's real endpoint: the
signal watches the N features the deployed model ranks highest in the importances it
exposes (`feature_importance.json` among its files, by absolute value), and a model that
exposes none is a clear error that says how to expose them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.test_endpoints import port_of, primary_key
from tests.conftest import Ran
from tests.kinds.monitor.test_kind import RETRAIN, RETRAIN_SCRIPT, captured, flowers, score

Cli = Callable[..., Ran]

MONITOR = """\
name: iris-top
trigger: {type: cron, expression: "15 3 * * *"}
create_monitor:
  monitoring_target: {ml_task: classification, endpoint_deployment_id: azureml:iris:blue}
  monitoring_signals:
    top:
      type: data_drift
      reference_data: {data_context: training, data_column_names: {target_column: species}}
      features: {top_n_feature_importance: 2}
"""
# What the retrained model says of its features: ranked by absolute value.
IMPORTANCES = {"sepal_length": 1.0, "sepal_width": -3.0, "petal_length": 2.0, "petal_width": 5.0}


def test_the_top_features_are_those_the_deployed_model_ranks_highest(
    cli: Cli, example_with_endpoint: Path
) -> None:
    root = example_with_endpoint
    (root / "monitors").mkdir()
    (root / "monitors" / "iris-top.yml").write_text(MONITOR)
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    port, key = port_of(root), primary_key(cli, root)
    rows = flowers(root)
    score(port, key, rows)
    captured(root, len(rows))

    # The example's model exposes no importances: said, with how to expose them.
    refused = cli("monitors", "run", "iris-top", cwd=root)
    assert refused.code == 1
    assert (
        "monitor/iris-top: signal top monitors the 2 most important features, but model "
        "iris-classifier:1 exposes no importances: have its training write "
        "feature_importance.json"
    ) in refused.err, refused.err
    assert "Traceback" not in refused.err

    # A model that ranks its features (and, with C = 1.0, beats the one served).
    (root / "runconfigs" / "train.yml").write_text(RETRAIN.replace("  C: 0.1", "  C: 1.0"))
    (root / "src" / "retrain.py").write_text(
        RETRAIN_SCRIPT
        + f"(out / 'feature_importance.json').write_text('{json.dumps(IMPORTANCES)}')\n"
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    shown = json.loads(cli("endpoints", "show", "iris", "--json", cwd=root).out)
    assert [d["model"] for d in shown["deployments"]] == ["iris-classifier:2"]

    ran = cli("monitors", "run", "iris-top", cwd=root)
    assert ran.code == 0, ran.out + ran.err
    latest = json.loads(cli("monitors", "show", "iris-top", "--json", cwd=root).out)[0]
    assert [v["feature"] for v in latest["values"]] == ["petal_width", "sepal_width"]
