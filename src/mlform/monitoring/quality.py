"""Data quality of production data, feature by feature, against the reference data, as
Azure Machine Learning's model monitoring defines it ("Azure Machine Learning model
monitoring", Data quality metrics,
learn.microsoft.com/azure/machine-learning/concept-model-monitoring) and computes it
(azureml-assets, `data_quality_compute_metrics/compute_data_quality_metrics.py`):

- `null_value_rate`: the share of production rows whose value is NULL, or NaN (which
  Azure's pandas-style `isna` counts too).
- `data_type_error_rate`: the share of production rows whose value is present but does
  not convert to the feature's type in the reference data, from which Azure infers the
  type. A column of the same type on both sides has none.
- `out_of_bounds_rate`: the share of production rows whose value lies outside the
  reference's range, [minimum, maximum] of its finite values, for a numerical feature,
  or is a category the reference never had, for a categorical one. Nulls and values of
  the wrong type are not out of bounds (Azure imputes the first and casts the second
  before it looks).

Every rate is over all the production rows in the window. Azure rounds rates to five
decimals; mlform does not, so one null in a million rows still shows.

Each result's `baselines` are the reference's own rates: its null value rate, and 0 for
the other two, which the reference cannot break against itself. Azure alerts when
production's rate exceeds the reference's plus the threshold (azureml-assets,
`data_quality_metrics_joiner/run.py`); `FeatureResult.breaches` does the same.

One read of each relation counts every feature, and one more per categorical feature
counts its categories on both sides.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import duckdb

from mlform.monitoring.metrics import FeatureResult, FeatureType
from mlform.monitoring.names import check_metrics
from mlform.monitoring.relations import as_double, category_counts, columns_of, one_row, quote

NULL_VALUE_RATE = "null_value_rate"
DATA_TYPE_ERROR_RATE = "data_type_error_rate"
OUT_OF_BOUNDS_RATE = "out_of_bounds_rate"
QUALITY_METRICS = (NULL_VALUE_RATE, DATA_TYPE_ERROR_RATE, OUT_OF_BOUNDS_RATE)

_Kinds = Mapping[str, duckdb.sqltypes.DuckDBPyType]


def data_quality(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    production: str,
    features: Mapping[str, FeatureType],
    metrics: Collection[str] | None = None,
) -> list[FeatureResult]:
    """Each feature's data quality in `production` against `reference` (SQL that can
    follow FROM), in the order of `features`; `metrics` picks among QUALITY_METRICS,
    all of them by default."""
    wanted = (
        QUALITY_METRICS if metrics is None else tuple(m for m in QUALITY_METRICS if m in metrics)
    )
    check_metrics(metrics, QUALITY_METRICS, "data quality")
    ref_kinds = columns_of(con, reference, "reference")
    prod_kinds = columns_of(con, production, "production")
    ref_rows, ref_nulls, bounds = _reference_profile(con, reference, ref_kinds, features)
    prod_rows, counts = _production_profile(
        con, production, prod_kinds, ref_kinds, features, bounds
    )
    results = []
    for feature, kind in features.items():
        values: dict[str, float | None] = dict.fromkeys(wanted)
        baselines: dict[str, float] = {}
        note = None
        if feature not in prod_kinds:
            note = "missing from the production data"
        elif prod_rows == 0:
            note = "no production data in window"
        else:
            nulls, type_errors, outside = counts[feature]
            rates = {NULL_VALUE_RATE: nulls / prod_rows}
            if feature not in ref_kinds:
                note = "missing from the reference data"
            elif ref_rows == 0:
                note = "no reference data"
            else:
                baselines = {
                    NULL_VALUE_RATE: ref_nulls[feature] / ref_rows,
                    DATA_TYPE_ERROR_RATE: 0.0,
                    OUT_OF_BOUNDS_RATE: 0.0,
                }
                rates[DATA_TYPE_ERROR_RATE] = type_errors / prod_rows
                if kind == "categorical" and OUT_OF_BOUNDS_RATE in wanted:
                    counts_r, counts_p = category_counts(
                        con, reference, production, feature, ref_kinds, prod_kinds
                    )
                    outside = int(counts_p[counts_r == 0].sum())
                if outside is not None:
                    rates[OUT_OF_BOUNDS_RATE] = outside / prod_rows
                elif OUT_OF_BOUNDS_RATE in wanted:
                    note = "no reference value that is not null to bound production by"
            values |= {metric: rates[metric] for metric in wanted if metric in rates}
        baselines = {metric: baselines[metric] for metric in wanted if metric in baselines}
        results.append(FeatureResult(feature, kind, values, ref_rows, prod_rows, note, baselines))
    return results


def _present(name: str, kind: duckdb.sqltypes.DuckDBPyType) -> str:
    """SQL true where column `name` holds a value: neither NULL nor NaN."""
    if kind.id in ("float", "double"):
        return f"({quote(name)} IS NOT NULL AND NOT isnan({quote(name)}))"
    return f"{quote(name)} IS NOT NULL"


def _count(condition: str) -> str:
    """SQL counting the rows where `condition` holds: 0, not NULL, over no rows."""
    return f"coalesce(count_if({condition}), 0)"


def _reference_profile(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    kinds: _Kinds,
    features: Mapping[str, FeatureType],
) -> tuple[int, dict[str, int], dict[str, tuple[float, float] | None]]:
    """The reference's row count, each feature's nulls, and each numerical feature's
    range of finite values (None when it has none)."""
    present = [f for f in features if f in kinds]
    parts = ["count(*)"]
    for feature in present:
        parts.append(_count(f"NOT {_present(feature, kinds[feature])}"))
        if features[feature] == "numerical":
            v = as_double(feature, kinds[feature])
            finite = f"CASE WHEN isfinite({v}) THEN {v} END"
            parts += [f"min({finite})", f"max({finite})"]
    row = iter(one_row(con, f"SELECT {', '.join(parts)} FROM {reference}"))
    rows = int(next(row))
    nulls: dict[str, int] = {}
    bounds: dict[str, tuple[float, float] | None] = {}
    for feature in present:
        nulls[feature] = int(next(row))
        if features[feature] == "numerical":
            low, high = next(row), next(row)
            bounds[feature] = None if low is None else (float(low), float(high))
    return rows, nulls, bounds


def _production_profile(
    con: duckdb.DuckDBPyConnection,
    production: str,
    kinds: _Kinds,
    ref_kinds: _Kinds,
    features: Mapping[str, FeatureType],
    bounds: Mapping[str, tuple[float, float] | None],
) -> tuple[int, dict[str, tuple[int, int, int | None]]]:
    """Production's row count, and each feature's nulls, values of a type other than
    the reference's, and (numerical features) finite values outside the reference's
    range: None when there is no range."""
    present = [f for f in features if f in kinds]
    parts = ["count(*)"]
    params: dict[str, float] = {}
    for i, feature in enumerate(present):
        kind = kinds[feature]
        parts.append(_count(f"NOT {_present(feature, kind)}"))
        ref_kind = ref_kinds.get(feature)
        if ref_kind is not None and ref_kind != kind:
            cast = f"TRY_CAST({quote(feature)} AS {ref_kind})"
            parts.append(_count(f"{_present(feature, kind)} AND {cast} IS NULL"))
        else:
            parts.append("0")
        limits = bounds.get(feature)
        if limits is not None:
            v = as_double(feature, kind)
            params |= {f"low{i}": limits[0], f"high{i}": limits[1]}
            parts.append(_count(f"NOT isnan({v}) AND ({v} < $low{i} OR {v} > $high{i})"))
        else:
            parts.append("NULL")
    result = one_row(con, f"SELECT {', '.join(parts)} FROM {production}", params)
    counts = {
        feature: (
            int(result[1 + 3 * i]),
            int(result[2 + 3 * i]),
            None if result[3 + 3 * i] is None else int(result[3 + 3 * i]),
        )
        for i, feature in enumerate(present)
    }
    return int(result[0]), counts
