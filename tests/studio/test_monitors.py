"""A monitor's history as heat maps: a row per feature and metric, a column per run, each
cell coloured against its threshold with text that stays readable, breaches marked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlform.state.monitors import Recorded, Value
from mlform.studio.monitors import _luminance, heat_maps


def _run(n: int, shift: float, breached: bool) -> Recorded:
    end = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(days=n)
    metric = "normalized_wasserstein_distance"
    return Recorded(
        f"m_{n}",
        end,
        [
            Value("drift", "data_drift", "petal_length", metric, shift, 0.1, breached),
            Value("drift", "data_drift", "sepal_length", metric, 0.01, 0.1, False),
            Value(
                "quality",
                "data_quality",
                "sepal_length",
                "null_value_rate",
                float(n // 2),
                0.0,
                n > 1,
            ),
            Value("quality", "data_quality", "sepal_length", "out_of_bounds", 0.1, None, False),
        ],
    )


def _contrast(background: str, text: str) -> float:
    def rgb(colour: str) -> list[int]:
        return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]

    a, b = sorted((_luminance(rgb(background)), _luminance(rgb(text))))
    return (b + 0.05) / (a + 0.05)


def test_cells_are_coloured_against_their_threshold_and_breaches_marked() -> None:
    history = [_run(0, 0.02, False), _run(1, 0.1, False), _run(2, 0.35, True)]
    drift, quality = heat_maps(history)
    assert (drift.signal, quality.signal) == ("drift", "quality")
    assert [c[0] for c in drift.columns] == ["m_0", "m_1", "m_2"]  # oldest first
    petal = next(r for r in drift.rows if r.feature == "petal_length")
    assert petal.threshold == 0.1
    low, at, high = petal.cells
    assert low is not None and at is not None and high is not None
    assert (low.breached, at.breached, high.breached) == (False, False, True)
    assert low.background.startswith("#f")  # pale
    assert at.background == "#fdb863"  # amber at the threshold
    assert high.background == "#b2182b"  # red at twice it and beyond
    assert "breached" in high.title and "0.1" in high.title
    for cell in (low, at, high):
        assert _contrast(cell.background, cell.colour) >= 4.5, cell
    nulls, unheld = quality.rows
    assert nulls.threshold == 0.0 and [c.background for c in nulls.cells if c] == [
        "#f3f7fb",
        "#f3f7fb",
        "#b2182b",  # any null at all, against a nil threshold
    ]
    assert unheld.threshold is None and all(c is not None for c in unheld.cells)


def test_a_feature_missing_from_a_run_leaves_its_cell_empty() -> None:
    history = [_run(0, 0.02, False), Recorded("m_1", datetime(2026, 12, 3, tzinfo=UTC), [])]
    (drift, _quality) = heat_maps(history)
    assert all(row.cells[1] is None for row in drift.rows)
