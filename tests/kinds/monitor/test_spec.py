"""How a monitor's file is read: Azure's durations, the basic signals of a monitor that
names none, and the sparkline `monitors show` draws."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mlform.cli.monitors import sparkline
from mlform.kinds.monitor.spec import duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P7D", timedelta(days=7)),
        ("P0D", timedelta(0)),
        ("PT12H", timedelta(hours=12)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT90S", timedelta(seconds=90)),
    ],
)
def test_iso_durations_as_azure_writes_them(text: str, expected: timedelta) -> None:
    assert duration(text) == expected


def test_a_duration_that_is_not_one_is_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match="P7D or PT12H"):
        duration("7 days")


def test_a_sparkline_scales_to_its_range_and_leaves_gaps() -> None:
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert sparkline([1.0, None, 3.0]) == "▁ █"
    assert sparkline([None, float("nan")]) == ""


def test_a_sparkline_shows_values_against_their_threshold() -> None:
    # a change a hundredth of the threshold is a flat line, a breach reaches the top
    assert sparkline([0.001, 0.002], threshold=0.1) == "▁▁"
    assert sparkline([0.001, 0.2], threshold=0.1) == "▁█"
    assert sparkline([0.0, 0.1], threshold=0.1) == "▁█"
    assert sparkline([0.9, 0.95], threshold=0.9) == "▁█"  # at least: below it is worse


def test_a_monitor_without_signals_gets_azures_basic_three(
    make_workspace: object,
) -> None:
    from mlform.config.specs import Source
    from mlform.config.yamlfile import read_document
    from mlform.kinds.monitor.spec import parse

    assert callable(make_workspace)
    root = make_workspace(
        {
            "monitors/basic.yml": """
                name: basic
                trigger: {type: cron, expression: "15 3 * * *"}
                create_monitor:
                  monitoring_target: {endpoint_deployment_id: "azureml:iris:blue"}
                """
        }
    )
    doc = read_document(root / "monitors" / "basic.yml", "monitors/basic.yml")
    spec = parse(doc.data, Source(doc))
    assert [(s.name, s.type, s.reference, s.window) for s in spec.signals] == [
        ("data_drift", "data_drift", None, None),
        ("prediction_drift", "prediction_drift", None, None),
        ("data_quality", "data_quality", None, None),
    ]
    assert (spec.endpoint, spec.deployment) == ("iris", "blue")
